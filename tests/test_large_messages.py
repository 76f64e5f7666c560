"""Messages of every size arrive intact, whatever shape the call has.

Small messages cross as plain copies; from grpc-go's pooling threshold (1 KiB)
on they travel in pooled buffers, and a received message longer than one
HTTP/2 frame (16 KiB) arrives as several buffers that the engine copies
straight into one bytes object. The sizes below sit on each side of those
edges. Payloads are random so that a misplaced or repeated buffer shows.
"""

import os
import threading
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


@pytest.fixture(scope="module")
def channel():
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Split": grpc.unary_stream_rpc_method_handler(_split),
        "Join": grpc.stream_unary_rpc_method_handler(_join),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
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

