"""A loopback TCP proxy that reads the HTTP/2 frames passing through it.

Used where a test must see the wire itself: a keepalive PING sent by one
side, or a peer that stops answering. It forwards every byte unchanged until
``freeze()``; from then on it keeps both connections open but drops
everything, so each side sees a peer that went silent (no FIN, no RST), as
when a machine vanishes. It counts the PING frames (not the acks) each side
sends, and notes when a side closes its connection.

    with FrameProxy(server_port) as proxy:
        channel = grpc.insecure_channel(f"127.0.0.1:{proxy.port}")
        ...
        proxy.freeze()
        assert proxy.pinged["server"].wait(WAIT)
        assert proxy.closed["server"].wait(WAIT)

"client" is the side that connected to the proxy, "server" the target.
"""

import socket
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PING = 0x6
ACK = 0x1


class FrameProxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self._target = (host, target_port)
        self._listener = socket.socket()
        self._listener.bind((host, 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets = []
        self._frozen = threading.Event()
        self._stopped = threading.Event()
        self.pings = {"client": 0, "server": 0}
        self.pinged = {"client": threading.Event(), "server": threading.Event()}
        self.closed = {"client": threading.Event(), "server": threading.Event()}
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def freeze(self):
        """From now on nothing passes, in either direction; both
        connections stay open."""
        with self._lock:
            self.pings = {"client": 0, "server": 0}
            for event in self.pinged.values():
                event.clear()
            self._frozen.set()

    def close(self):
        self._stopped.set()
        for sock in [self._listener] + self._sockets:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept(self):
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for src, dst, side, preface in ((client, server, "client", True),
                                            (server, client, "server", False)):
                t = threading.Thread(target=self._pump, args=(src, dst, side, preface),
                                     daemon=True)
                self._threads.append(t)
                t.start()

    def _pump(self, src, dst, side, preface):
        buf = b""
        skip = len(PREFACE) if preface else 0
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed[side].set()
                if not self._frozen.is_set():
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                return
            buf += data
            out = b""
            if skip:
                n = min(skip, len(buf))
                out, buf, skip = buf[:n], buf[n:], skip - n
            while not skip and len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                if kind == PING and not flags & ACK:
                    with self._lock:
                        self.pings[side] += 1
                        self.pinged[side].set()
                out += buf[:9 + length]
                buf = buf[9 + length:]
            if out and not self._frozen.is_set():
                try:
                    dst.sendall(out)
                except OSError:
                    pass
