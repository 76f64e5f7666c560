"""Message compression, measured on the wire over loopback sockets.

grpc.Compression (NoCompression, Deflate, Gzip) on the channel, on the
server, per call, and from the handler with context.set_compression and
context.disable_next_message_compression. The observable is the number of
bytes on the wire: every channel goes through a small TCP proxy that counts
the bytes it forwards in each direction, and every payload is 1 MiB of
zeros, so a compressed message takes about a kilobyte and an uncompressed
one over a mebibyte. Expected behaviour is grpcio 1.85's, checked by running
this file against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding
grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import contextlib
import socket
import threading
import time

import grpc
import pytest

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen
MiB = 1 << 20
PAYLOAD = bytes(MiB)  # 1 MiB of zeros: compresses to about 1 KiB
SMALL = 64 << 10  # a compressed 1 MiB message takes less than this on the wire

SERVICE = "grpcgo.testing.Compression"
Gzip = grpc.Compression.Gzip
Deflate = grpc.Compression.Deflate
NoCompression = grpc.Compression.NoCompression


def method(name):
    return f"/{SERVICE}/{name}"


class _Proxy:
    """A TCP proxy on loopback counting the bytes forwarded each way."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.up = 0  # client -> server
        self.down = 0  # server -> client
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port),
                                                  timeout=WAIT)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"),
                             daemon=True).start()

    def _pump(self, src, dst, direction):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    setattr(self, direction, getattr(self, direction) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def counts(self):
        with self.lock:
            return self.up, self.down

    def close(self):
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


class _Service:
    def __init__(self):
        self.seen = {}

    def length(self, request, context):
        self.seen["metadata"] = tuple(context.invocation_metadata())
        return b"%d" % len(request)

    def big(self, request, context):
        """Answers 1 MiB of zeros; the request names a set_compression."""
        choice = {b"gzip": Gzip, b"deflate": Deflate, b"none": NoCompression}.get(request)
        if choice is not None:
            context.set_compression(choice)
        if request == b"disable":
            context.disable_next_message_compression()
        return PAYLOAD

    def big_stream(self, request, context):
        """Four 256 KiB messages; b"disable" disables compression of each."""
        if request != b"plain":
            context.set_compression(Gzip)
        for i in range(4):
            if request == b"disable" or (request == b"disable-first" and i == 0):
                context.disable_next_message_compression()
            yield bytes(MiB // 4)

    def join_lengths(self, request_iterator, context):
        return b",".join(b"%d" % len(r) for r in request_iterator)

    def bidi(self, request_iterator, context):
        for request in request_iterator:
            yield request

    def late_set_compression(self, request, context):
        context.send_initial_metadata((("x-first", "1"),))
        try:
            context.set_compression(Gzip)
        except Exception as error:  # noqa: BLE001 - reported to the client
            self.seen["late_error"] = error
        return PAYLOAD

    def handler(self):
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Length": grpc.unary_unary_rpc_method_handler(self.length),
            "Big": grpc.unary_unary_rpc_method_handler(self.big),
            "BigStream": grpc.unary_stream_rpc_method_handler(self.big_stream),
            "JoinLengths": grpc.stream_unary_rpc_method_handler(self.join_lengths),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "LateSetCompression": grpc.unary_unary_rpc_method_handler(
                self.late_set_compression),
        })


@contextlib.contextmanager
def setup(server_compression=None, channel_compression=None, server_options=None):
    """A server (with compression) behind a counting proxy and a channel to
    it; yields (channel, proxy, service)."""
    service = _Service()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[service.handler()], compression=server_compression,
                         options=server_options)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    proxy = _Proxy(port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}",
                                   compression=channel_compression) as ch:
            # Connect first, so that later counts hold only the calls.
            assert ch.unary_unary(method("Length"))(b"", timeout=RPC_TIMEOUT) == b"0"
            yield ch, proxy, service
    finally:
        proxy.close()
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def wire(proxy, call):
    """Runs call(); returns (bytes up, bytes down) it put on the wire."""
    up, down = proxy.counts()
    call()
    time.sleep(0.05)  # let the proxy forward the tail (trailers)
    up2, down2 = proxy.counts()
    return up2 - up, down2 - down


def send_big(ch, **kwargs):
    return lambda: _check(ch.unary_unary(method("Length"))(PAYLOAD, timeout=RPC_TIMEOUT,
                                                           **kwargs), b"%d" % MiB)


def get_big(ch, request=b"", **kwargs):
    return lambda: _check(len(ch.unary_unary(method("Big"))(request, timeout=RPC_TIMEOUT,
                                                            **kwargs)), MiB)


def _check(got, want):
    assert got == want


# -- channel -----------------------------------------------------------------------------


def test_no_compression_by_default():
    with setup() as (ch, proxy, service):
        up, _ = wire(proxy, send_big(ch))
        assert up > MiB
        _, down = wire(proxy, get_big(ch))
        assert down > MiB


@pytest.mark.parametrize("compression", [Gzip, Deflate])
def test_channel_compression_compresses_requests(compression):
    with setup(channel_compression=compression) as (ch, proxy, service):
        up, _ = wire(proxy, send_big(ch))
        assert up < SMALL
        # Responses follow the server's settings: not compressed.
        _, down = wire(proxy, get_big(ch))
        assert down > MiB


def test_channel_no_compression():
    with setup(channel_compression=NoCompression) as (ch, proxy, service):
        up, _ = wire(proxy, send_big(ch))
        assert up > MiB


def test_channel_compression_on_streams():
    with setup(channel_compression=Gzip) as (ch, proxy, service):
        up, _ = wire(proxy, lambda: _check(
            ch.stream_unary(method("JoinLengths"))(iter([PAYLOAD, PAYLOAD]),
                                                   timeout=RPC_TIMEOUT),
            b"%d,%d" % (MiB, MiB)))
        assert up < 2 * SMALL
        up, down = wire(proxy, lambda: _check(
            [len(r) for r in ch.stream_stream(method("Bidi"))(iter([PAYLOAD]),
                                                               timeout=RPC_TIMEOUT)],
            [MiB]))
        assert up < SMALL
        assert down > MiB


# -- per call ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [Gzip, Deflate])
def test_per_call_compression(compression):
    with setup() as (ch, proxy, service):
        up, _ = wire(proxy, send_big(ch, compression=compression))
        assert up < SMALL
        up, _ = wire(proxy, lambda: _check(
            ch.stream_unary(method("JoinLengths"))(iter([PAYLOAD]), timeout=RPC_TIMEOUT,
                                                   compression=compression),
            b"%d" % MiB))
        assert up < SMALL
        # The next call without it is not compressed.
        up, _ = wire(proxy, send_big(ch))
        assert up > MiB


def test_per_call_compression_overrides_the_channel():
    with setup(channel_compression=Gzip) as (ch, proxy, service):
        up, _ = wire(proxy, send_big(ch, compression=Deflate))
        assert up < SMALL


def test_per_call_no_compression_keeps_the_channel_default():
    # grpcio ignores compression=NoCompression on a call (it is falsy): the
    # channel's default still applies.
    with setup(channel_compression=Gzip) as (ch, proxy, service):
        up, _ = wire(proxy, send_big(ch, compression=NoCompression))
        assert up < SMALL


def test_per_call_compression_on_futures_and_with_call():
    with setup() as (ch, proxy, service):
        up, _ = wire(proxy, lambda: _check(
            ch.unary_unary(method("Length")).future(PAYLOAD, timeout=RPC_TIMEOUT,
                                                    compression=Gzip).result(timeout=WAIT),
            b"%d" % MiB))
        assert up < SMALL
        up, _ = wire(proxy, lambda: _check(
            ch.unary_unary(method("Length")).with_call(PAYLOAD, timeout=RPC_TIMEOUT,
                                                       compression=Gzip)[0],
            b"%d" % MiB))
        assert up < SMALL


def test_bad_compression_argument():
    # As grpcio 1.85: the value looked up in its table of algorithms
    # (KeyError), before sending (tests/test_argument_checks.py has more).
    with setup() as (ch, proxy, service):
        with pytest.raises(KeyError):
            ch.unary_unary(method("Length"))(b"", timeout=RPC_TIMEOUT, compression="gzip")


# -- server ------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [Gzip, Deflate])
def test_server_compression_compresses_responses(compression):
    with setup(server_compression=compression) as (ch, proxy, service):
        _, down = wire(proxy, get_big(ch))
        assert down < SMALL
        # Requests follow the channel's settings: not compressed.
        up, _ = wire(proxy, send_big(ch))
        assert up > MiB


def test_server_compression_option():
    options = [("grpc.default_compression_algorithm", int(Gzip))]
    with setup(server_options=options) as (ch, proxy, service):
        _, down = wire(proxy, get_big(ch))
        assert down < SMALL


@pytest.mark.parametrize("name", [b"gzip", b"deflate"])
def test_set_compression_in_the_handler(name):
    with setup() as (ch, proxy, service):
        _, down = wire(proxy, get_big(ch, name))
        assert down < SMALL


def test_set_no_compression_keeps_the_server_default():
    # As on the client, grpcio ignores NoCompression (falsy) here.
    with setup(server_compression=Gzip) as (ch, proxy, service):
        _, down = wire(proxy, get_big(ch, b"none"))
        assert down < SMALL


def test_set_compression_on_a_response_stream():
    with setup() as (ch, proxy, service):
        _, down = wire(proxy, lambda: _check(
            [len(r) for r in ch.unary_stream(method("BigStream"))(b"", timeout=RPC_TIMEOUT)],
            [MiB // 4] * 4))
        assert down < SMALL
        _, down = wire(proxy, lambda: _check(
            [len(r) for r in ch.unary_stream(method("BigStream"))(b"plain",
                                                                   timeout=RPC_TIMEOUT)],
            [MiB // 4] * 4))
        assert down > MiB


def test_disable_next_message_compression():
    with setup() as (ch, proxy, service):
        _, down = wire(proxy, lambda: _check(
            [len(r) for r in ch.unary_stream(method("BigStream"))(b"disable",
                                                                   timeout=RPC_TIMEOUT)],
            [MiB // 4] * 4))
        # Every message went uncompressed.
        assert down > MiB


def test_disable_next_message_compression_is_for_the_next_one_only():
    with setup() as (ch, proxy, service):
        _, down = wire(proxy, lambda: _check(
            [len(r) for r in ch.unary_stream(method("BigStream"))(b"disable-first",
                                                                   timeout=RPC_TIMEOUT)],
            [MiB // 4] * 4))
        # The first message went uncompressed, the other three compressed.
        assert MiB // 4 < down < MiB // 4 + SMALL


def test_disable_next_message_compression_of_a_unary_response():
    with setup(server_compression=Gzip) as (ch, proxy, service):
        _, down = wire(proxy, get_big(ch, b"disable"))
        assert down > MiB
        _, down = wire(proxy, get_big(ch, b""))
        assert down < SMALL


def test_compressed_both_ways_and_still_the_same_bytes():
    with setup(server_compression=Gzip, channel_compression=Deflate) as (ch, proxy, service):
        data = bytes(range(256)) * 64 + bytes(MiB)
        up, down = wire(proxy, lambda: _check(
            list(ch.stream_stream(method("Bidi"))(iter([data, b"", data]),
                                                   timeout=RPC_TIMEOUT)),
            [data, b"", data]))
        assert up < 2 * SMALL
        assert down < 2 * SMALL


def test_handler_sees_no_grpc_headers():
    # grpcio's invocation_metadata holds no grpc-* entries (grpc-encoding,
    # grpc-accept-encoding, grpc-timeout are transport business).
    with setup(channel_compression=Gzip) as (ch, proxy, service):
        ch.unary_unary(method("Length"))(b"x", timeout=RPC_TIMEOUT,
                                         metadata=(("x-mine", "1"),))
        keys = [k for k, _ in service.seen["metadata"]]
        assert "x-mine" in keys
        assert [k for k in keys if k.startswith("grpc-")] == []


def test_set_compression_after_initial_metadata():
    # grpcio: no error, and the response goes uncompressed (the headers that
    # would have named the encoding are gone).
    with setup() as (ch, proxy, service):
        _, down = wire(proxy, lambda: _check(
            len(ch.unary_unary(method("LateSetCompression"))(b"", timeout=RPC_TIMEOUT)), MiB))
        assert "late_error" not in service.seen, service.seen.get("late_error")
        assert down > MiB


# -- what the response headers name --------------------------------------------------------


def _raw_unary(port, request_encoding=None, accept="identity, deflate, gzip"):
    """One unary Length call over a raw HTTP/2 connection (the `h2` package),
    so the test sees the response's headers as sent; returns (headers, the
    response's gRPC message frame, trailers)."""
    import gzip
    import struct

    import h2.config
    import h2.connection
    import h2.events

    body = b"abc"
    flag = 0
    headers = [(":method", "POST"), (":scheme", "http"), (":path", method("Length")),
               (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers"),
               ("grpc-accept-encoding", accept)]
    if request_encoding:
        headers.append(("grpc-encoding", request_encoding))
        body, flag = gzip.compress(body), 1
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    got = {"data": b""}
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        conn.initiate_connection()
        conn.send_headers(1, headers)
        conn.send_data(1, bytes([flag]) + struct.pack(">I", len(body)) + body, end_stream=True)
        sock.sendall(conn.data_to_send())
        while "trailers" not in got:
            data = sock.recv(65536)
            assert data, "connection closed before the trailers"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    got["headers"] = dict((k.decode(), v.decode()) for k, v in event.headers)
                elif isinstance(event, h2.events.TrailersReceived):
                    got["trailers"] = dict((k.decode(), v.decode()) for k, v in event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    got["data"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
            sock.sendall(conn.data_to_send())
    return got["headers"], got["data"], got["trailers"]


@contextlib.contextmanager
def _raw_server(compression=None):
    service = _Service()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool, handlers=[service.handler()], compression=compression)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.mark.parametrize("request_encoding", [None, "gzip"])
def test_uncompressed_responses_name_no_encoding(request_encoding):
    # grpcio's server names no grpc-encoding in the response headers unless
    # it compresses (not even "identity", and whatever the request's
    # encoding was); grpc-go would answer a gzip request in gzip.
    with _raw_server() as port:
        headers, data, trailers = _raw_unary(port, request_encoding)
    assert trailers["grpc-status"] == "0"
    assert "grpc-encoding" not in headers, headers
    assert data == b"\x00\x00\x00\x00\x01" + b"3"  # uncompressed, len(b"abc")


def test_compressed_responses_name_their_encoding():
    with _raw_server(compression=Gzip) as port:
        headers, data, trailers = _raw_unary(port)
    assert trailers["grpc-status"] == "0"
    assert headers.get("grpc-encoding") == "gzip", headers
    # Either flag is right: grpcio leaves a 1-byte message uncompressed.
    assert data[:1] in (b"\x00", b"\x01")
