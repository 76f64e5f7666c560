"""Large messages on the wire (docs/ARCHITECTURE.md, "Metadata order", the
list of grpcgo's changes to grpc-go; docs/benchmarks-history.md, "The 1 MiB row"),
seen from a raw HTTP/2 peer (the `h2` package).

- A large received message is read straight into the memory of the bytes
  object Python gets (no copy out of grpc-go's buffers): exact bytes
  whatever the framing, compressed messages and messages over the limits
  taking the usual road, and no memory left behind (below).
- A server stream whose client ended its side (END_STREAM) gets no stream
  WINDOW_UPDATE: grpc-go gave a stream's window back after every message
  of a quarter of the 4 MiB window, so a 1 MiB unary request made the
  server write a frame that opened a window nothing could use, and woke
  the client's reader for it in the middle of every call.
"""

import socket
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from serving import generic_server

WAIT = 20  # seconds, for every exchange (only a hang reaches it)
SERVICE = "grpcgo.testing.Large"
MIB = 1 << 20


def _echo(request, context):
    return request


def _methods():
    return {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}


def _open_stream(port, path):
    """A raw HTTP/2 client's connection with one gRPC call's headers sent:
    (socket, h2 connection, stream id)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                            (":authority", "127.0.0.1:%d" % port),
                            ("content-type", "application/grpc"), ("te", "trailers")])
    return sock, conn, sid


def _raw_unary(port, request, path="/%s/Echo" % SERVICE):
    """One unary call from a raw HTTP/2 client that sends its request as
    fast as the windows allow and gives back every byte it receives.
    Returns (response message bytes, trailers, the stream ids of the
    WINDOW_UPDATEs received after the request's END_STREAM went out)."""
    sock, conn, sid = _open_stream(port, path)
    body = b"\0" + len(request).to_bytes(4, "big") + request
    sent, ended = 0, False
    data, trailers, updates = bytearray(), None, []
    deadline = time.monotonic() + WAIT
    try:
        while trailers is None and time.monotonic() < deadline:
            while sent < len(body):
                n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size,
                        len(body) - sent)
                if n <= 0:
                    break
                conn.send_data(sid, body[sent:sent + n], end_stream=sent + n == len(body))
                sent += n
                ended = sent == len(body)
            sock.sendall(conn.data_to_send())
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.WindowUpdated):
                    if ended and event.stream_id == sid:
                        updates.append(event.stream_id)
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError("stream reset: %r" % event)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    assert trailers is not None, "no trailers"
    assert data[:1] == b"\0" and int.from_bytes(data[1:5], "big") == len(data) - 5
    return bytes(data[5:]), trailers, updates


@pytest.mark.parametrize("size", [MIB, 3 * MIB + 7])
def test_no_stream_window_update_after_the_clients_end_stream(size):
    request = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with generic_server(SERVICE, _methods()) as port:
        response, trailers, updates = _raw_unary(port, request)
    assert trailers.get("grpc-status") == "0", trailers
    assert response == request
    # grpc-go gives a stream's window back once a quarter of it (1 MiB of
    # 4 MiB) was read: the server wrote one here before the response.
    if size <= MIB:
        # The quarter is crossed by the last frame, the one that carries
        # END_STREAM: never an update.
        assert updates == []
    else:
        # The quarters crossed while the request still flows (at 1 and 2
        # MiB) may be given back, when the server reads them before the
        # last frame arrives (a loaded machine: CI saw one); the one
        # crossed by the last frame, END_STREAM's, never is.
        assert len(updates) <= (size - 1) // MIB - 1, updates


# --- Large messages read straight into their bytes object -------------------
#
# A received message of 64 KiB to 16 MiB, uncompressed, is read by grpc-go's
# reader into memory laid out as a bytes object, which the engine then hands
# to Python as the message (no copy out of grpc-go's buffers). What must hold
# whatever the peer does: the bytes are exact, whatever the framing (grpc-go
# peers' 128 KiB frames, grpcio's 16 KiB ones, a frame that straddles two
# messages, a prefix cut across frames, padding); compressed messages and
# messages over the limit take the usual road; and no memory is left behind
# (a stream reset in the middle of a message included).


def _recv_stats():
    """(on, messages handed over without a copy, memories neither taken nor
    freed) of this process's engine."""
    from grpc import _runtime
    return _runtime.hot().recv_stats()


_live_before = 0


@pytest.fixture(autouse=True)
def _count_only_this_tests_memories():
    # Calls of tests run before this file may still hold receive memories
    # (a finished call keeps unread frames until its handle is released,
    # which happens 32 at a time): each test here counts what it leaves.
    global _live_before
    _live_before = _recv_stats()[2]
    yield


def _settled_live():
    """Waits (bounded) for every destination this test made to be taken or
    freed: one that grpc-go dropped is freed by a Go collection, which the
    engine runs once such memory has been out and unchanged for a second.
    Returns how many are left beyond what earlier tests held."""
    deadline = time.monotonic() + WAIT
    while _recv_stats()[2] > _live_before and time.monotonic() < deadline:
        time.sleep(0.05)
    return max(0, _recv_stats()[2] - _live_before)


def _join(requests, context):
    out = bytearray()
    for r in requests:
        out += len(r).to_bytes(4, "big") + r
    return bytes(out)


def _split(request, context):
    for _ in range(3):
        yield request


def _bidi(requests, context):
    for r in requests:
        yield r


def _all_methods():
    return {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Split": grpc.unary_stream_rpc_method_handler(_split),
        "Join": grpc.stream_unary_rpc_method_handler(_join),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    }


def _payload(size, seed=0):
    import random
    return random.Random(seed).randbytes(size)


def test_large_messages_reach_python_without_a_copy():
    assert _recv_stats()[0], "receiving into bytes objects is off in this interpreter"
    payload = _payload(MIB + 3)
    limits = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with generic_server(SERVICE, _all_methods(), options=limits) as port:
        with grpc.insecure_channel("127.0.0.1:%d" % port, options=limits) as ch:
            before = _recv_stats()[1]
            echo = ch.unary_unary("/%s/Echo" % SERVICE)
            for _ in range(5):
                assert echo(payload, timeout=WAIT) == payload
            response, call = echo.with_call(payload, timeout=WAIT)
            assert response == payload
            assert echo.future(payload, timeout=WAIT).result() == payload
            # Each call: the request at the server, the response here.
            assert _recv_stats()[1] - before == 2 * 7
            before = _recv_stats()[1]
            got = list(ch.unary_stream("/%s/Split" % SERVICE)(payload, timeout=WAIT))
            assert got == [payload] * 3
            parts = [_payload(200_000 + i, seed=i) for i in range(3)]
            assert list(ch.stream_stream("/%s/Bidi" % SERVICE)(iter(parts), timeout=WAIT)) == parts
            assert _recv_stats()[1] - before == 4 + 6
    assert _settled_live() == 0


@pytest.mark.parametrize("size", [64 * 1024 - 1, 64 * 1024, MIB, 16 * MIB, 16 * MIB + 1])
def test_sizes_around_the_bounds_arrive_exactly(size):
    payload = _payload(size, seed=size)
    limits = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with generic_server(SERVICE, _all_methods(), options=limits) as port:
        with grpc.insecure_channel("127.0.0.1:%d" % port, options=limits) as ch:
            before = _recv_stats()[1]
            assert ch.unary_unary("/%s/Echo" % SERVICE)(payload, timeout=WAIT) == payload
            taken = _recv_stats()[1] - before
    assert taken == (2 if 64 * 1024 <= size <= 16 * MIB else 0)
    assert _settled_live() == 0


def test_compressed_large_messages_are_copied_exactly():
    payload = _payload(MIB) + bytes(MIB)  # half incompressible, half zeros
    with generic_server(SERVICE, _all_methods(), compression=grpc.Compression.Gzip,
                        options=[("grpc.max_receive_message_length", -1)]) as port:
        with grpc.insecure_channel("127.0.0.1:%d" % port, compression=grpc.Compression.Gzip,
                                   options=[("grpc.max_receive_message_length", -1)]) as ch:
            before = _recv_stats()[1]
            assert ch.unary_unary("/%s/Echo" % SERVICE)(payload, timeout=WAIT) == payload
            assert _recv_stats()[1] == before
    assert _settled_live() == 0


def test_messages_at_and_over_the_receive_limit():
    limit = MIB
    at, over = _payload(limit), _payload(limit + 1)
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)]
    with generic_server(SERVICE, _all_methods(), options=options) as port:
        with grpc.insecure_channel("127.0.0.1:%d" % port, options=options) as ch:
            echo = ch.unary_unary("/%s/Echo" % SERVICE)
            assert echo(at, timeout=WAIT) == at
            with pytest.raises(grpc.RpcError) as failed:
                echo(over, timeout=WAIT)
            assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert echo(at, timeout=WAIT) == at
            # The refused request's frames stay with its stream, which the
            # finished call keeps until its handle is released (with 31
            # others): then a Go collection frees them.
            for _ in range(40):
                assert echo(b"x", timeout=WAIT) == b"x"
    assert _settled_live() == 0


def _raw_stream(port, path, chunks, reset_after=None):
    """A call from a raw HTTP/2 client that sends the request stream's bytes
    in the DATA frames `chunks` gives ((payload bytes, pad length) each),
    waiting for window as needed, then END_STREAM (or, with reset_after=i,
    RST_STREAM after the i-th frame). Returns (the response's gRPC
    messages, trailers), or (None, None) after a reset."""
    sock, conn, sid = _open_stream(port, path)
    i = 0
    data, trailers = bytearray(), None
    deadline = time.monotonic() + WAIT
    try:
        while trailers is None and time.monotonic() < deadline:
            while i < len(chunks):
                chunk, pad = chunks[i]
                need = len(chunk) + (pad + 1 if pad else 0)
                if conn.local_flow_control_window(sid) < need:
                    break
                last = i == len(chunks) - 1 and reset_after is None
                conn.send_data(sid, chunk, end_stream=last, pad_length=pad or None)
                i += 1
                if reset_after is not None and i == reset_after:
                    conn.reset_stream(sid)
                    sock.sendall(conn.data_to_send())
                    return None, None
            sock.sendall(conn.data_to_send())
            got = sock.recv(1 << 20)
            if not got:
                break
            for event in conn.receive_data(got):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError("stream reset: %r" % event)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    assert trailers is not None, "no trailers"
    messages, rest = [], bytes(data)
    while rest:
        n = int.from_bytes(rest[1:5], "big")
        messages.append(rest[5:5 + n])
        rest = rest[5 + n:]
    return messages, trailers


def _cut(body, sizes):
    """body cut into DATA frame payloads of the given sizes (the last one
    repeated), no padding."""
    out, at, k = [], 0, 0
    while at < len(body):
        n = sizes[min(k, len(sizes) - 1)]
        out.append((body[at:at + n], 0))
        at += n
        k += 1
    return out


def _frames_of(messages):
    return b"".join(b"\0" + len(m).to_bytes(4, "big") + m for m in messages)


def _joined(messages):
    return b"".join(len(m).to_bytes(4, "big") + m for m in messages)


@pytest.mark.parametrize("shape", [
    "grpcio_16k_frames",      # every frame 16 KiB, as grpcio and grpc-go peers send
    "straddling_frame",       # a frame holds the end of one message and the start of the next
    "prefix_cut",             # a message's 5-byte prefix cut across two frames
    "tiny_then_large",        # small messages, several per frame, then large ones
    "padded",                 # padded DATA frames (the stream is then read as usual)
])
def test_any_framing_arrives_exactly(shape):
    big = [_payload(300_000 + i, seed=i) for i in range(3)]
    if shape == "grpcio_16k_frames":
        messages = big
        chunks = _cut(_frames_of(messages), [16384])
    elif shape == "straddling_frame":
        messages = big
        chunks = _cut(_frames_of(messages), [70_001])
    elif shape == "prefix_cut":
        messages = big
        body = _frames_of(messages)
        first = 5 + len(big[0]) + 2  # the second message's prefix: 2 bytes here, 3 next
        chunks = _cut(body[:first], [65536]) + _cut(body[first:], [3, 65536])
    elif shape == "tiny_then_large":
        messages = [b"a", b"bc", b""] + big
        body = _frames_of(messages)
        head = 5 * 3 + 3
        chunks = [(body[:head], 0)] + _cut(body[head:], [131072])
    else:
        messages = big
        chunks = [(c, 7) for c, _ in _cut(_frames_of(messages), [65536])]
    with generic_server(SERVICE, _all_methods()) as port:
        got, trailers = _raw_stream(port, "/%s/Join" % SERVICE, chunks)
    assert trailers.get("grpc-status") == "0", trailers
    assert got == [_joined(messages)]
    assert _settled_live() == 0


def test_a_stream_reset_in_the_middle_of_a_message_leaves_no_memory():
    body = _frames_of([_payload(MIB)])
    chunks = _cut(body, [131072])
    with generic_server(SERVICE, _all_methods()) as port:
        for _ in range(3):
            assert _raw_stream(port, "/%s/Join" % SERVICE, chunks, reset_after=3) == (None, None)
        # The frames read stay with their stream, which the cancelled call
        # keeps until its handle is released (with 31 others): then a Go
        # collection frees the memory.
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            for _ in range(40):
                assert ch.unary_unary("/%s/Echo" % SERVICE)(b"x", timeout=WAIT) == b"x"
        assert _settled_live() == 0
