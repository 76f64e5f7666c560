"""A stream's messages sent as one write (docs/ARCHITECTURE.md, "Streams:
queues in Go, batches across"): the small messages a generator or request
iterator yields in a tight loop cross into the engine in batches, and a
batch goes to grpc-go's transport as ONE item whose gRPC frames (prefix and
payload of each message) lie back to back, cut into DATA frames as the flow
-control windows allow. These tests hold what a batch must keep of sending
one message at a time: windows never exceeded (a raw HTTP/2 peer with a
100-byte window, so messages are cut across DATA frames), every message in
order and whole, compression per message, the send limit checked per
message (the ones before a message that is too large still go, nothing
after it), and a stats handler (the metrics plugin) counting every
message's bytes. The raw-peer tests also check that batches happen: some
DATA frame carries more than one message (one message per frame before).
"""

import gzip
import socket
import threading
import time
from concurrent import futures

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest

RPC_TIMEOUT = 20  # seconds, for every RPC
WAIT = 20  # seconds, for every raw-peer exchange (only a hang reaches it)
WINDOW = 100  # bytes: the raw peers' stream window
COUNT = 300  # messages per stream: several batches of 64
SERVICE = "grpcgo.testing.WriteBatches"


def payload(i, size=16):
    return (b"w-%06d-" % i).ljust(size, b".")


def grpc_frames(data):
    """The (compressed flag, message) pairs of a gRPC message stream."""
    out, i = [], 0
    while i < len(data):
        assert len(data) - i >= 5, "a cut message prefix at the end"
        flag, n = data[i], int.from_bytes(data[i + 1:i + 5], "big")
        assert len(data) - i - 5 >= n, "a cut message at the end"
        out.append((flag, data[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def message_spans(sizes):
    """[start, end) of each gRPC message in the byte stream."""
    spans, off = [], 0
    for n in sizes:
        spans.append((off, off + 5 + n))
        off += 5 + n
    return spans


def check_frames(frames, sizes):
    """frames: (offset, length) of each DATA frame's payload. Checks that a
    message was cut across frames and that some frame carried more than one
    message (a batch)."""
    spans = message_spans(sizes)
    cut = any(s < off + length < e for off, length in frames for s, e in spans)
    assert cut, "no message was cut across DATA frames"
    most = max(sum(1 for s, e in spans if s < off + length and e > off) for off, length in frames)
    assert most >= 2, "every DATA frame carried one message: nothing was batched"


class _Service:
    def __init__(self):
        self.received = []

    def many(self, request, context):
        n, size = (int(x) for x in request.split())
        for i in range(n):
            yield payload(i, size)

    # Yields 50 small messages, one too large for the server's send limit,
    # then 50 more.
    def too_large(self, request, context):
        for i in range(50):
            yield payload(i)
        yield b"L" * 200
        for i in range(50, 100):
            yield payload(i)

    def count(self, requests, context):
        for m in requests:
            self.received.append(m)
        return b"%d" % len(self.received)


def _serve(service, **kwargs):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), **kwargs)
    server.add_registered_method_handlers(SERVICE, {
        "Many": grpc.unary_stream_rpc_method_handler(service.many),
        "TooLarge": grpc.unary_stream_rpc_method_handler(service.too_large),
        "Count": grpc.stream_unary_rpc_method_handler(service.count),
    })
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _small_window(conn):
    """conn, its connection started with a stream window of WINDOW bytes in
    its first SETTINGS frame. (Sent in a second SETTINGS frame, h2 took the
    first frame's ACK for it: a peer that wrote under the first frame's
    65,535 bytes before it read the second broke h2's count of the window,
    legally for HTTP/2, and h2 reset the connection.)"""
    conn.local_settings = h2.settings.Settings(
        client=conn.config.client_side,
        initial_values={**dict(conn.local_settings), h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
    conn.initiate_connection()
    return conn


def _window_update(conn, sid, n):
    conn.increment_flow_control_window(n)
    try:
        conn.increment_flow_control_window(n, stream_id=sid)
    except h2.exceptions.StreamClosedError:
        pass  # its end came in the same read: nothing more to give


def _raw_call(port, request, accept_gzip):
    """Calls Many from a raw HTTP/2 client whose stream window is WINDOW
    bytes, giving each DATA frame's bytes back only after it arrived.
    Returns (the response bytes, [(offset, length)] of the DATA frames,
    trailers)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    conn = _small_window(h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8")))
    sid = conn.get_next_available_stream_id()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/%s/Many" % SERVICE),
               (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
               ("te", "trailers")]
    if accept_gzip:
        headers.append(("grpc-accept-encoding", "identity,gzip"))
    conn.send_headers(sid, headers)
    conn.send_data(sid, b"\0" + len(request).to_bytes(4, "big") + request, end_stream=True)
    sock.sendall(conn.data_to_send())
    data, frames, trailers = bytearray(), [], None
    acked = 0  # bytes of this stream given back so far
    deadline = time.monotonic() + WAIT
    try:
        while trailers is None and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    n = event.flow_controlled_length
                    frames.append((len(data), len(event.data)))
                    data += event.data
                    # The peer may only have used what was given back
                    # before this frame was read.
                    assert len(data) <= WINDOW + acked, "the stream window was exceeded"
                    if n:
                        _window_update(conn, sid, n)
                        acked += n
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError("stream reset: %r" % event)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    assert trailers is not None, "no trailers"
    return bytes(data), frames, trailers


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_server_batches_cut_by_a_small_window(compressed):
    kwargs = {"compression": grpc.Compression.Gzip} if compressed else {}
    server, port = _serve(_Service(), **kwargs)
    try:
        data, frames, trailers = _raw_call(port, b"%d 16" % COUNT, accept_gzip=compressed)
    finally:
        server.stop(None)
    assert trailers.get("grpc-status") == "0", trailers
    assert all(length <= WINDOW for _, length in frames)
    messages = grpc_frames(data)
    assert len(messages) == COUNT
    for i, (flag, body) in enumerate(messages):
        if compressed:
            assert flag == 1, "message %d went out uncompressed" % i
            body = gzip.decompress(body)
        else:
            assert flag == 0
        assert body == payload(i)
    check_frames(frames, [len(body) for _, body in messages])


class _RawServer:
    """Answers one client-streaming call with a WINDOW-byte stream window,
    giving each DATA frame's bytes back only after it arrived; records the
    request bytes and the DATA frames."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.data, self.frames, self.error = bytearray(), [], None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            sock, _ = self.listener.accept()
            sock.settimeout(WAIT)
            with sock:
                self._serve(sock)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.done.set()
            self.listener.close()

    def _serve(self, sock):
        conn = _small_window(h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8")))
        sock.sendall(conn.data_to_send())
        acked = 0
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    n = event.flow_controlled_length
                    self.frames.append((len(self.data), len(event.data)))
                    self.data += event.data
                    assert len(self.data) <= WINDOW + acked, "the stream window was exceeded"
                    if n:
                        _window_update(conn, event.stream_id, n)
                        acked += n
                elif isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id
                    body = b"%d" % len(grpc_frames(bytes(self.data)))
                    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                    conn.send_data(sid, b"\0" + len(body).to_bytes(4, "big") + body)
                    conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())


def test_client_batches_cut_by_a_small_window():
    peer = _RawServer()
    with grpc.insecure_channel("127.0.0.1:%d" % peer.port) as channel:
        call = channel.stream_unary("/%s/Count" % SERVICE)
        response = call((payload(i) for i in range(COUNT)), timeout=RPC_TIMEOUT)
    assert peer.done.wait(WAIT)
    assert peer.error is None, peer.error
    assert response == b"%d" % COUNT
    assert all(length <= WINDOW for _, length in peer.frames)
    messages = grpc_frames(bytes(peer.data))
    assert [body for _, body in messages] == [payload(i) for i in range(COUNT)]
    check_frames(peer.frames, [len(body) for _, body in messages])


def test_server_send_limit_in_the_middle_of_a_batch():
    server, port = _serve(_Service(), options=[("grpc.max_send_message_length", 64)])
    got = []
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            call = channel.unary_stream("/%s/TooLarge" % SERVICE)(b"", timeout=RPC_TIMEOUT)
            with pytest.raises(grpc.RpcError) as info:
                for m in call:
                    got.append(m)
    finally:
        server.stop(None)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    assert got == [payload(i) for i in range(50)]


def test_client_send_limit_in_the_middle_of_a_batch():
    service = _Service()
    server, port = _serve(service)

    def requests():
        for i in range(50):
            yield payload(i)
        yield b"L" * 200
        for i in range(50, 100):
            yield payload(i)

    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port,
                                   options=[("grpc.max_send_message_length", 64)]) as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.stream_unary("/%s/Count" % SERVICE)(requests(), timeout=RPC_TIMEOUT)
    finally:
        server.stop(None)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    # What the server saw (the call was reset) is a prefix of the first 50.
    assert service.received == [payload(i) for i in range(len(service.received))]
    assert len(service.received) <= 50


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip],
                         ids=["plain", "gzip"])
def test_batches_with_compression_both_ways(compression):
    service = _Service()
    server, port = _serve(service, compression=compression)
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port, compression=compression) as channel:
            many = channel.unary_stream("/%s/Many" % SERVICE)
            assert list(many(b"%d 100" % (5 * COUNT), timeout=RPC_TIMEOUT)) == [
                payload(i, 100) for i in range(5 * COUNT)]
            count = channel.stream_unary("/%s/Count" % SERVICE)
            assert count((payload(i, 100) for i in range(5 * COUNT)),
                         timeout=RPC_TIMEOUT) == b"%d" % (5 * COUNT)
    finally:
        server.stop(None)
    assert service.received == [payload(i, 100) for i in range(5 * COUNT)]


def test_metrics_count_every_message_of_a_batch():
    metrics_sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    import grpc_observability

    from test_observability import _points_of, wait_for

    reader = InMemoryMetricReader()
    provider = metrics_sdk.MeterProvider(metric_readers=[reader])
    plugin = grpc_observability.OpenTelemetryPlugin(meter_provider=provider)
    plugin.register_global()
    n = 5 * COUNT
    try:
        server, port = _serve(_Service())
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            many = channel.unary_stream("/%s/Many" % SERVICE, _registered_method=True)
            assert len(list(many(b"%d 16" % n, timeout=RPC_TIMEOUT))) == n
            count = channel.stream_unary("/%s/Count" % SERVICE, _registered_method=True)
            assert count((payload(i) for i in range(n)), timeout=RPC_TIMEOUT) == b"%d" % n
        server.stop(None).wait(10)

        def sums(seen):
            server_sent = _points_of(seen, "grpc.server.call.sent_total_compressed_message_size",
                                     grpc_method=SERVICE + "/Many")
            client_sent = _points_of(seen, "grpc.client.attempt.sent_total_compressed_message_size",
                                     grpc_method=SERVICE + "/Count")
            return [p.sum for p in server_sent], [p.sum for p in client_sent]

        # Every message's 16 bytes, each counted once: the server's
        # streaming call sent n of them, the client's streaming call n.
        seen = wait_for(reader, lambda s: sums(s) == ([16 * n], [16 * n]))
        assert sums(seen) == ([16 * n], [16 * n])
    finally:
        plugin.deregister_global()
