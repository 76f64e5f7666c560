"""A raw HTTP/2 peer for fault injection (the `h2` and `hpack` packages).

`RawServer` is a gRPC "server" that answers every call with what a test
asks for, including what no real gRPC server sends (a status code outside
0-16, illegal SETTINGS). `raw_client` connects to a real server and sends
frames byte by byte, so a test can drive it the way an attacker would.
Loopback only; every socket has a timeout.
"""

import socket
import struct
import threading

import h2.config
import h2.connection
import h2.settings
import h2.events
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
ENHANCE_YOUR_CALM = 0xB


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream & 0x7FFFFFFF) + payload


def settings(**values):
    ids = {"max_frame_size": 5, "initial_window_size": 4, "enable_push": 2,
           "max_concurrent_streams": 3, "header_table_size": 1}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


class RawServer:
    """Serves one behaviour on 127.0.0.1 until closed.

    behaviour "status": answers each call with HEADERS then trailers
    carrying grpc-status `status` (and no message).
    behaviour "bad_settings": sends a SETTINGS frame with an illegal
    MAX_FRAME_SIZE as its first frame, then nothing.
    behaviour "stall": answers the first call as "status" does, opening
    the flow-control windows wide, then never reads again (the client's
    writes fill the socket) while the connection stays up.
    """

    def __init__(self, behaviour, status=0):
        self.behaviour = behaviour
        self.status = status
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.requests = []  # each call's request headers, as [(name, value)]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.closed.set()
        self.thread.join(10)
        self.listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(0.2)
        try:
            if self.behaviour == "bad_settings":
                conn.sendall(settings(max_frame_size=1))
                while not self.closed.is_set():
                    try:
                        if not conn.recv(65536):
                            return
                    except socket.timeout:
                        pass
                return
            h2conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            h2conn.initiate_connection()
            if self.behaviour == "stall":
                h2conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
                h2conn.increment_flow_control_window((1 << 31) - 1 - 65535)
            conn.sendall(h2conn.data_to_send())
            answered = 0
            while not self.closed.is_set():
                if self.behaviour == "stall" and answered:
                    self.closed.wait(0.2)  # read nothing more
                    continue
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        self.requests.append(list(event.headers))
                        sid = event.stream_id
                        h2conn.send_headers(sid, [(":status", "200"),
                                                  ("content-type", "application/grpc")])
                        h2conn.send_headers(sid, [("grpc-status", str(self.status)),
                                                  ("grpc-message", "from a raw peer")],
                                            end_stream=True)
                        answered += 1
                conn.sendall(h2conn.data_to_send())
        except OSError:
            pass
        finally:
            conn.close()


def request_headers(port, path="/t.Raw/Call"):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
            ("te", "trailers")]


def raw_client(port):
    """A connected socket that has sent the client preface and SETTINGS."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(PREFACE + settings())
    return sock


def read_frames(sock, until):
    """Reads frames until until(kind, flags, stream, payload) is true or the
    peer closes; returns the frames read as (kind, flags, stream, payload)."""
    buf, frames = b"", []
    while True:
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n])
            buf = buf[9 + n:]
            frames.append(f)
            if until(*f):
                return frames
        try:
            data = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return frames
        if not data:
            return frames
        buf += data


def encode_headers(headers):
    return hpack.Encoder().encode(headers)
