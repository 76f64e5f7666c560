"""A server's unary call ends on the pool thread that finished it.

When grpc-go's writer is idle, the pool thread writes the call's response
and status itself with a write that never waits (docs/ARCHITECTURE.md,
"Servers"); whatever the socket does not take at once, or a busy writer,
flow control, a large or compressed response, goes to grpc-go's writer.
These tests read the server's frames with the `h2` package's client, which
checks every frame, HPACK's header table (a header block out of order
decodes wrong or not at all) and each stream's order (headers, data,
trailers): many calls at once on one connection, trailers-only errors,
large responses, and a peer that stops reading, which must hold no pool
thread. GRPCGO_SERVER_INLINE=0 turns the path off; the behaviour is the
same either way.

Every wait is bounded.
"""

import socket
import struct
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from serving import generic_server

WAIT = 20
SERVICE = "grpcgo.testing.Inline"
BIG = 200 << 10


def small_response(i):
    return (b"%d," % i * 3000)[:3000]


class _Service:
    def __init__(self):
        self.lock = threading.Lock()
        self.served = 0

    def _count(self):
        with self.lock:
            self.served += 1

    def small(self, request, context):
        context.set_trailing_metadata((("id", request.decode()),))
        self._count()
        return small_response(int(request))

    def header(self, request, context):
        context.send_initial_metadata((("hid", request.decode()),))
        context.set_trailing_metadata((("id", request.decode()),))
        self._count()
        return small_response(int(request))

    def error(self, request, context):
        context.set_trailing_metadata((("id", request.decode()),))
        self._count()
        context.abort(grpc.StatusCode.NOT_FOUND, "nf-" + request.decode())

    def big(self, request, context):
        context.set_trailing_metadata((("id", request.decode()),))
        self._count()
        return bytes([int(request) % 256]) * BIG


@pytest.fixture
def served():
    service = _Service()
    handlers = {name: grpc.unary_unary_rpc_method_handler(getattr(service, name))
                for name in ("small", "header", "error", "big")}
    with generic_server(SERVICE, handlers) as port:
        yield service, port


class Client:
    """An h2 client on one connection; rcvbuf shrinks its socket's buffer."""

    def __init__(self, port, rcvbuf=0):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        # Windows that never hold the server back.
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 30)})
        self.conn.increment_flow_control_window(1 << 30)
        self.flush()
        self.streams = {}
        self.settled = False
        # The server's SETTINGS first (its limits), as a real client does.
        while not self.settled:
            self.read_some()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def call(self, name, i):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "POST"), (":scheme", "http"), (":path", "/%s/%s" % (SERVICE, name)),
            (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")])
        req = str(i).encode()
        self.conn.send_data(sid, b"\0" + struct.pack(">I", len(req)) + req, end_stream=True)
        self.streams[sid] = {"name": name, "i": i, "headers": None, "data": b"",
                             "trailers": None, "ended": False}
        return sid

    def read_some(self):
        data = self.sock.recv(1 << 16)
        assert data, "the server closed the connection"
        for ev in self.conn.receive_data(data):
            s = self.streams.get(getattr(ev, "stream_id", 0))
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settled = True
            elif isinstance(ev, h2.events.ResponseReceived):
                assert s["headers"] is None
                s["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                assert s["headers"] is not None and s["trailers"] is None
                s["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                assert s["trailers"] is None
                s["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                s["ended"] = True
            elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise AssertionError("unexpected %r" % ev)
        self.flush()

    def read_all(self):
        deadline = time.monotonic() + WAIT
        while not all(s["ended"] for s in self.streams.values()):
            assert time.monotonic() < deadline, "calls still open"
            self.read_some()
        for s in self.streams.values():
            check(s)

    def close(self):
        self.sock.close()


def check(s):
    i, name = s["i"], s["name"]
    if name == "error":  # trailers-only
        assert s["trailers"] is None and s["data"] == b""
        h = s["headers"]
        assert (h[":status"], h["grpc-status"], h["grpc-message"], h["id"]) == (
            "200", "5", "nf-%d" % i, str(i)), s
        return
    assert s["headers"][":status"] == "200"
    if name == "header":
        assert s["headers"]["hid"] == str(i)
    want = bytes([i % 256]) * BIG if name == "big" else small_response(i)
    assert s["data"] == b"\0" + struct.pack(">I", len(want)) + want, (name, i, len(s["data"]))
    assert s["trailers"]["grpc-status"] == "0" and s["trailers"]["id"] == str(i), s["trailers"]


def test_many_calls_at_once_on_one_connection(served):
    # Finished by 4 pool threads at once: some inline, some by the writer
    # (busy, or a large response), among pings and window updates.
    _, port = served
    client = Client(port)
    try:
        names = ["small", "header", "error", "small", "big"]
        for i in range(300):
            client.call(names[i % len(names)], i)
            if i % 100 == 0:
                client.conn.ping(b"%08d" % i)
        client.flush()
        client.read_all()
        # Then one call at a time: the writer is idle for each.
        for i in range(1000, 1040):
            client.call(names[i % len(names)], i)
            client.flush()
            client.read_all()
    finally:
        client.close()


def test_a_peer_that_stops_reading_holds_no_pool_thread(served):
    # More than the two sockets' buffers hold (the server's grows to
    # tcp_wmem's 4 MiB). Every call is served while the client reads
    # nothing: no pool thread waits in a write (a second client's calls,
    # which need a pool thread, are answered), and once the client reads
    # again every call arrives whole.
    # Calls go one at a time (each alone on the connection, so its pool
    # thread writes while the writer is idle), then many at once.
    service, port = served
    client = Client(port, rcvbuf=4096)
    try:
        n = 1200  # 8 MiB of responses
        deadline = time.monotonic() + WAIT
        for i in range(n):
            client.call("big" if i % 50 == 0 else "small", i)
            if i < n // 2 or i % 200 == 0:
                client.flush()
            while i < n // 2 and service.served <= i:
                assert time.monotonic() < deadline, "%d of %d calls served" % (service.served, n)
                time.sleep(0.0002)
        client.flush()
        while service.served < n:
            assert time.monotonic() < deadline, "%d of %d calls served" % (service.served, n)
            time.sleep(0.01)
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = channel.unary_unary("/%s/small" % SERVICE)
            for i in range(8):
                assert call(b"%d" % i, timeout=WAIT) == small_response(i)
        assert not any(s["ended"] for s in client.streams.values())  # never read yet
        client.read_all()
    finally:
        client.close()
