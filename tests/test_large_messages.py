"""Messages of every size arrive intact, whatever shape the call has.

Small messages cross as plain copies; from grpc-go's pooling threshold (1 KiB)
on they travel in pooled buffers, and a received message longer than one
HTTP/2 frame (16 KiB) arrives as several buffers that the engine copies
straight into one bytes object. The sizes below sit on each side of those
edges. Payloads are random so that a misplaced or repeated buffer shows.
"""

import gc
import os
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest

WAIT = 20
SERVICE = "grpcgo.testing.Large"
SIZES = [0, 1, 1023, 1024, 1025, 16383, 16384, 16385, 65537, (1 << 20) + 3, 3 << 20]
OPTIONS = [
    ("grpc.max_receive_message_length", 8 << 20),
    ("grpc.max_send_message_length", 8 << 20),
]


def _echo(request, context):
    return request


def _split(request, context):
    # request: 4-byte count, then a payload sent back `count` times
    count = int.from_bytes(request[:4], "big")
    for _ in range(count):
        yield request[4:]


def _join(request_iterator, context):
    return b"".join(request_iterator)


def _bidi(request_iterator, context):
    for request in request_iterator:
        yield request


def _serve(handlers, max_workers=2):
    """A started server of SERVICE with handlers; returns (server, port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture(scope="module")
def channel():
    server, port = _serve({
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Split": grpc.unary_stream_rpc_method_handler(_split),
        "Join": grpc.stream_unary_rpc_method_handler(_join),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    }, max_workers=4)
    with grpc.insecure_channel("127.0.0.1:%d" % port, options=OPTIONS) as ch:
        yield ch
    server.stop(None)


def _method(channel, kind, name):
    return getattr(channel, kind)("/%s/%s" % (SERVICE, name))


@pytest.mark.parametrize("size", SIZES)
def test_unary_round_trip(channel, size):
    payload = os.urandom(size)
    echo = _method(channel, "unary_unary", "Echo")
    assert echo(payload, timeout=WAIT) == payload
    response, call = echo.with_call(payload, timeout=WAIT)
    assert response == payload and call.code() is grpc.StatusCode.OK
    assert echo.future(payload, timeout=WAIT).result() == payload


@pytest.mark.parametrize("size", [16385, (1 << 20) + 3])
def test_streams_round_trip(channel, size):
    payload = os.urandom(size)
    got = list(_method(channel, "unary_stream", "Split")((3).to_bytes(4, "big") + payload, timeout=WAIT))
    assert got == [payload] * 3
    parts = [os.urandom(size) for _ in range(3)]
    assert _method(channel, "stream_unary", "Join")(iter(parts), timeout=WAIT) == b"".join(parts)
    assert list(_method(channel, "stream_stream", "Bidi")(iter(parts), timeout=WAIT)) == parts


def test_future_result_from_many_threads_is_one_bytes_object(channel):
    payload = os.urandom((1 << 20) + 3)
    future = _method(channel, "unary_unary", "Echo").future(payload, timeout=WAIT)
    results = []
    barrier = threading.Barrier(4)

    def fetch():
        barrier.wait(WAIT)
        results.append(future.result(WAIT))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(results) == 4
    assert all(r == payload for r in results)
    assert all(r is results[0] for r in results)



def _settles(refs, base, nudge):
    """Waits (bounded) until refs() is back to base: grpc-go frees lent
    buffers on its own threads and the references are dropped at the next
    call into the engine or by a pending call soon after."""
    deadline = time.monotonic() + WAIT
    while refs() > base and time.monotonic() < deadline:
        nudge()
        gc.collect()  # calls that ended may sit in reference cycles
        time.sleep(0.01)
    return refs()


def test_large_bytes_lent_to_the_engine_are_given_back(channel):
    # Requests of 64 KiB and more are lent to grpc-go rather than copied:
    # every reference taken is dropped once it is done, and the bytes on the
    # wire are the object's.
    payload = os.urandom((1 << 20) + 5)
    echo = _method(channel, "unary_unary", "Echo")
    refs = lambda: sys.getrefcount(payload)  # noqa: E731
    base = refs()
    _exercise(channel, payload)
    assert _settles(refs, base, lambda: echo(b"x", timeout=WAIT)) == base


def _exercise(channel, payload):
    # Plain checks, not asserts: pytest keeps an assert's operands alive.
    echo = _method(channel, "unary_unary", "Echo")
    ok = all(echo(payload, timeout=WAIT) == payload for _ in range(20))
    futures_ = [echo.future(payload, timeout=WAIT) for _ in range(10)]
    ok = ok and all(f.result() == payload for f in futures_)
    parts = [payload] * 5
    ok = ok and _method(channel, "stream_unary", "Join")(iter(parts), timeout=WAIT) == payload * 5
    ok = ok and list(_method(channel, "stream_stream", "Bidi")(iter(parts), timeout=WAIT)) == parts
    if not ok:
        raise AssertionError("a large message came back changed")


def test_responses_lent_by_the_server_are_given_back():
    big = os.urandom(1 << 20)

    def handler(request, context):
        return big

    def stream(request, context):
        for _ in range(3):
            yield big

    server, port = _serve({
        "Big": grpc.unary_unary_rpc_method_handler(handler),
        "BigStream": grpc.unary_stream_rpc_method_handler(stream),
    })
    refs = lambda: sys.getrefcount(big)  # noqa: E731
    base = refs()
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port, options=OPTIONS) as ch:
            for _ in range(10):
                ok = ch.unary_unary("/%s/Big" % SERVICE)(b"", timeout=WAIT) == big
                ok = ok and list(ch.unary_stream("/%s/BigStream" % SERVICE)(b"", timeout=WAIT)) == [big] * 3
                if not ok:
                    raise AssertionError("a large response came back changed")
    finally:
        server.stop(None)
    assert _settles(refs, base, lambda: None) == base


def test_large_messages_of_a_call_that_ended_are_given_back():
    # The server ends the call at once; requests the client had queued, or
    # offers after the end, never reach grpc-go and are given back. (grpc-go
    # itself may drop a frame queued for a stream reset meanwhile without
    # freeing it; the engine's collector gives that back, and closing the
    # channel frees whatever its transport still holds.)
    payload = os.urandom(1 << 20)

    def refuse(request_iterator, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    server, port = _serve({"Refuse": grpc.stream_unary_rpc_method_handler(refuse)})
    refs = lambda: sys.getrefcount(payload)  # noqa: E731
    base = refs()
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port, options=OPTIONS) as ch:
            call = ch.stream_unary("/%s/Refuse" % SERVICE)
            for _ in range(5):
                try:
                    call(iter([payload] * 20), timeout=WAIT)
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
                else:
                    raise AssertionError("the call succeeded")
    finally:
        server.stop(None)
    after = _settles(refs, base, lambda: None)
    assert after == base, (after, base)
