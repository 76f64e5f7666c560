"""Streams cross between Python and the engine in batches (up to 256 small
received messages per crossing, queues of 64 large ones; docs/ARCHITECTURE.md,
"Streams: queues in Go, batches across"). These tests hold the edges of that
batching to grpcio's semantics: every message in order, the status after the
last message, errors and cancellation in the middle of a batch losing nothing
before them and reporting the right code, and a slow reader holding the
producer back (memory stays bounded).

grpcgo also holds small messages a handler's generator (or a request
iterator) yields in a tight loop and sends them in batches; a message never
waits there longer than a short bound, whatever the generator does next.
The tests with a generator that then blocks hold that edge: what was
yielded arrives while it blocks (a generous bound only a hang, or a hold
without a bound, would break).

Message counts are chosen above the batch size and the queue depth, so the
interesting cases (a status arriving while messages are queued, a failure on
a message inside a batch) happen whatever the machine's speed.
"""

import gc
import threading
import time
from concurrent import futures

import grpc
import pytest

RPC_TIMEOUT = 20  # seconds, for every RPC
WAIT = 10  # seconds, for every event that should happen
BLOCK = 30  # seconds a generator blocks for (longer than WAIT)

SERVICE = "grpcgo.testing.Batches"


def method(name):
    return f"/{SERVICE}/{name}"


def payload(i):
    return b"m-%06d" % i


def mixed(i):
    """300 small messages, 100 of 2 KiB, 300 small, then 2 KiB ones: a deep
    queue of small messages meets large ones, which wait for room at 64."""
    if 300 <= i < 400 or i >= 700:
        return payload(i) + b"L" * 2048
    return payload(i)


class _Service:
    def __init__(self):
        self.finished = {}  # name -> threading.Event, set when a handler returned
        self.yielded = 0  # messages the Endless generator produced
        self.cancelled = threading.Event()
        self.received = []  # what CountRequests saw
        self.lock = threading.Lock()

    def event(self, name):
        with self.lock:
            return self.finished.setdefault(name, threading.Event())

    # Yields the number of messages the request asks for, then ends with ABORTED.
    def then_abort(self, request, context):
        n = int(request)
        try:
            for i in range(n):
                yield payload(i)
        finally:
            self.event("then_abort").set()
        context.abort(grpc.StatusCode.ABORTED, "after %d" % n)

    # Yields n messages, then raises.
    def then_raise(self, request, context):
        n = int(request)
        for i in range(n):
            yield payload(i)
        raise ValueError("broke after %d" % n)

    def plain(self, request, context):
        for i in range(int(request)):
            yield payload(i)

    # Yields 1 KiB messages until the call ends; counts them.
    def endless(self, request, context):
        context.add_callback(self.cancelled.set)
        block = b"x" * 1024
        i = 0
        while context.is_active() and i < int(request):
            self.yielded = i + 1
            yield payload(i) + block
            i += 1

    # Yields small messages until the call ends; counts them.
    def endless_small(self, request, context):
        context.add_callback(self.cancelled.set)
        i = 0
        while context.is_active() and i < int(request):
            self.yielded = i + 1
            yield payload(i)
            i += 1

    # Runs of small and large messages (mixed(i)), as many as asked.
    def mixed(self, request, context):
        for i in range(int(request)):
            yield mixed(i)

    # Yields n messages as fast as it can, then blocks until released.
    def then_block(self, request, context):
        n = int(request)
        for i in range(n):
            yield payload(i)
        self.event("then_block_yielded").set()
        self.event("release").wait(BLOCK)
        yield b"after"

    def count_requests(self, request_iterator, context):
        got = []
        try:
            for r in request_iterator:
                got.append(r)
        finally:
            self.received = got
            self.event("count_requests").set()
        return b"%d" % len(got)

    def handler(self):
        return grpc.method_handlers_generic_handler(SERVICE, {
            "ThenAbort": grpc.unary_stream_rpc_method_handler(self.then_abort),
            "ThenRaise": grpc.unary_stream_rpc_method_handler(self.then_raise),
            "Plain": grpc.unary_stream_rpc_method_handler(self.plain),
            "Endless": grpc.unary_stream_rpc_method_handler(self.endless),
            "EndlessSmall": grpc.unary_stream_rpc_method_handler(self.endless_small),
            "Mixed": grpc.unary_stream_rpc_method_handler(self.mixed),
            "ThenBlock": grpc.unary_stream_rpc_method_handler(self.then_block),
            "CountRequests": grpc.stream_unary_rpc_method_handler(self.count_requests),
        })


@pytest.fixture
def served():
    service = _Service()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((service.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield service, channel
    finally:
        channel.close()
        server.stop(None)


def read_until_error(call):
    """The messages a response stream gave before it raised, and the error."""
    got = []
    with pytest.raises(grpc.RpcError) as info:
        for m in call:
            got.append(m)
    return got, info.value


def test_status_arriving_with_messages_queued_comes_after_them(served):
    service, ch = served
    n = 1000  # > one batch and > the queues: most are queued when the status lands
    call = ch.unary_stream(method("ThenAbort"))(b"%d" % n, timeout=RPC_TIMEOUT)
    assert service.event("then_abort").wait(WAIT)
    got, error = read_until_error(call)
    assert got == [payload(i) for i in range(n)]
    assert error.code() is grpc.StatusCode.ABORTED
    assert error.details() == "after %d" % n
    assert call.code() is grpc.StatusCode.ABORTED


def test_handler_raising_after_yielding_loses_no_message(served):
    _, ch = served
    n = 300
    call = ch.unary_stream(method("ThenRaise"))(b"%d" % n, timeout=RPC_TIMEOUT)
    got, error = read_until_error(call)
    assert got == [payload(i) for i in range(n)]
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert "broke after %d" % n in error.details()


def test_deserializer_failing_inside_a_batch(served):
    _, ch = served
    n, bad = 300, 100  # message 100 sits inside the second batch of 64

    def deserialize(data):
        if data == payload(bad):
            raise ValueError("bad message")
        return data

    call = ch.unary_stream(method("Plain"), response_deserializer=deserialize)(
        b"%d" % n, timeout=RPC_TIMEOUT)
    got, error = read_until_error(call)
    assert got == [payload(i) for i in range(bad)]
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "Exception deserializing response!"
    assert call.code() is grpc.StatusCode.INTERNAL
    # The call is over: iterating again raises the same, no later message.
    with pytest.raises(grpc.RpcError):
        next(call)


def test_cancel_in_the_middle_of_a_batch(served):
    service, ch = served
    call = ch.unary_stream(method("Endless"))(b"1000000", timeout=RPC_TIMEOUT)
    got = [next(call) for _ in range(150)]
    assert [m[:8] for m in got] == [payload(i) for i in range(150)]
    assert call.cancel() is True
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert info.value.code() is grpc.StatusCode.CANCELLED
    assert call.code() is grpc.StatusCode.CANCELLED
    assert service.cancelled.wait(WAIT)


def test_slow_reader_holds_the_producer_back(served):
    # 100,000 messages of 1 KiB (100 MiB) to a reader that stops after one:
    # flow control (4 MiB stream window) and the bounded queues stop the
    # handler's generator long before the end.
    service, ch = served
    total = 100_000
    call = ch.unary_stream(method("Endless"))(b"%d" % total, timeout=RPC_TIMEOUT)
    assert next(call)[:8] == payload(0)
    last, stable, deadline = -1, 0, time.monotonic() + WAIT
    while stable < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = service.yielded
        stable = stable + 1 if now == last else 0
        last = now
    assert service.yielded < 40_000, service.yielded
    # What was held back still arrives, in order.
    for i in range(1, 2000):
        assert next(call)[:8] == payload(i)
    call.cancel()
    assert service.cancelled.wait(WAIT)


def test_request_iterator_raising_after_yielding(served):
    service, ch = served
    # More than the sender's queue takes (256 small messages): the call is
    # open on the wire before the raise, so the server sees it end.
    n = 1000

    def requests():
        for i in range(n):
            yield payload(i)
        raise ValueError("no more")

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("CountRequests"))(requests(), timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.UNKNOWN
    assert info.value.details() == "Exception iterating requests!"
    # The server saw the call end (cancelled) after an in-order prefix of
    # the requests, never one out of order or twice.
    assert service.event("count_requests").wait(WAIT)
    assert service.received == [payload(i) for i in range(len(service.received))]


def test_many_requests_arrive_in_order(served):
    service, ch = served
    n = 5000
    response = ch.stream_unary(method("CountRequests"))(
        (payload(i) for i in range(n)), timeout=RPC_TIMEOUT)
    assert response == b"%d" % n
    assert service.received == [payload(i) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 100, 255, 256, 257, 1000])
def test_messages_yielded_before_the_generator_blocks_arrive(served, n):
    # n messages in a tight loop, then the generator blocks for BLOCK
    # seconds: every one of them reaches the client while it blocks.
    service, ch = served
    call = ch.unary_stream(method("ThenBlock"))(b"%d" % n, timeout=RPC_TIMEOUT)
    got = []
    done = threading.Event()

    def read():
        for m in call:
            got.append(m)
            if len(got) == n:
                done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert done.wait(WAIT), "got %d of %d while the generator blocked" % (len(got), n)
        assert got == [payload(i) for i in range(n)]
        assert not service.event("release").is_set()
    finally:
        service.event("release").set()
        reader.join(WAIT)
    assert got[-1] == b"after"


@pytest.mark.parametrize("n", [1, 2, 100, 255, 256, 257, 1000])
def test_requests_yielded_before_the_iterator_blocks_arrive(served, n):
    # The same for a client's request iterator: the server sees all n
    # requests while the iterator blocks.
    service, ch = served
    release = threading.Event()
    seen = threading.Event()

    class Counting:
        def __init__(self):
            self.got = []

        def __call__(self, request_iterator, context):
            for r in request_iterator:
                self.got.append(r)
                if len(self.got) == n:
                    seen.set()
            return b"%d" % len(self.got)

    counting = Counting()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Count": grpc.stream_unary_rpc_method_handler(counting)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def requests():
        for i in range(n):
            yield payload(i)
        release.wait(BLOCK)

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            future = channel.stream_unary(method("Count")).future(requests(), timeout=RPC_TIMEOUT)
            try:
                assert seen.wait(WAIT), "the server saw %d of %d while the iterator blocked" % (
                    len(counting.got), n)
                assert counting.got == [payload(i) for i in range(n)]
                assert not release.is_set()
            finally:
                release.set()
            assert future.result(WAIT) == b"%d" % n
    finally:
        release.set()
        server.stop(None)


def _holds_live():
    """grpcgo's count of stream holds not yet freed (None under grpcio)."""
    runtime = getattr(grpc, "_runtime", None)
    if runtime is None or not hasattr(runtime, "hot"):
        return None
    return runtime.hot().holds_live()


def test_holds_are_used_and_all_freed(served):
    # grpcgo only: every stream that held messages frees its hold once it
    # ends, however it ends (docs/ARCHITECTURE.md, "Held sends").
    if _holds_live() is None:
        pytest.skip("grpcgo's engine counts its holds")
    service, ch = served
    base = _holds_live()

    # A hold exists while a handler that streamed fast is blocked.
    call = ch.unary_stream(method("ThenBlock"))(b"100", timeout=RPC_TIMEOUT)
    got = [next(call) for _ in range(100)]
    assert got == [payload(i) for i in range(100)]
    assert _holds_live() > base
    service.event("release").set()
    assert list(call) == [b"after"]

    # Ended every way: read to the end, cancelled mid-stream, raising, and
    # client streams ending, raising, cancelled.
    for _ in range(3):
        assert len(list(ch.unary_stream(method("Plain"))(b"300", timeout=RPC_TIMEOUT))) == 300
        endless = ch.unary_stream(method("Endless"))(b"1000000", timeout=RPC_TIMEOUT)
        for _ in range(150):
            next(endless)
        endless.cancel()
        with pytest.raises(grpc.RpcError):
            list(ch.unary_stream(method("ThenRaise"))(b"300", timeout=RPC_TIMEOUT))
        assert ch.stream_unary(method("CountRequests"))(
            (payload(i) for i in range(300)), timeout=RPC_TIMEOUT) == b"300"

        def raising():
            for i in range(300):
                yield payload(i)
            raise ValueError("no more")

        with pytest.raises(grpc.RpcError):
            ch.stream_unary(method("CountRequests"))(raising(), timeout=RPC_TIMEOUT)
        blocked = threading.Event()

        def then_block():
            for i in range(300):
                yield payload(i)
            blocked.wait(WAIT)

        future = ch.stream_unary(method("CountRequests")).future(then_block(), timeout=RPC_TIMEOUT)
        time.sleep(0.05)
        future.cancel()
        blocked.set()
        del endless, future

    deadline = time.monotonic() + WAIT
    while _holds_live() != base and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert _holds_live() == base


def test_small_and_large_messages_keep_their_order(served):
    # Runs of small messages fill a deep receive queue past 64; a large
    # message then waits for room (64 at most) and nothing is lost or
    # reordered, both ways.
    service, ch = served
    n = 800
    assert list(ch.unary_stream(method("Mixed"))(b"%d" % n, timeout=RPC_TIMEOUT)) == [
        mixed(i) for i in range(n)]
    response = ch.stream_unary(method("CountRequests"))(
        (mixed(i) for i in range(n)), timeout=RPC_TIMEOUT)
    assert response == b"%d" % n
    assert service.received == [mixed(i) for i in range(n)]


def test_cancel_in_the_middle_of_a_batch_of_small_messages(served):
    service, ch = served
    call = ch.unary_stream(method("EndlessSmall"))(b"10000000", timeout=RPC_TIMEOUT)
    got = [next(call) for _ in range(300)]
    assert got == [payload(i) for i in range(300)]
    assert call.cancel() is True
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert info.value.code() is grpc.StatusCode.CANCELLED
    assert service.cancelled.wait(WAIT)


def test_slow_reader_of_small_messages_holds_the_producer_back(served):
    # 2,000,000 small messages to a reader that stops after one: flow
    # control and the bounded queues (256 small messages) stop the
    # generator long before the end.
    service, ch = served
    total = 2_000_000
    call = ch.unary_stream(method("EndlessSmall"))(b"%d" % total, timeout=RPC_TIMEOUT)
    assert next(call) == payload(0)
    last, stable, deadline = -1, 0, time.monotonic() + WAIT
    while stable < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = service.yielded
        stable = stable + 1 if now == last else 0
        last = now
    assert service.yielded < 1_000_000, service.yielded
    for i in range(1, 2000):
        assert next(call) == payload(i)
    call.cancel()
    assert service.cancelled.wait(WAIT)


def _grpcgo():
    return _holds_live() is not None


def test_small_responses_cross_in_batches_of_up_to_256(served):
    # grpcgo only: with 1,000 small responses queued, one crossing brings up
    # to 256 of them (64 and what came meanwhile with GRPCGO_STREAM_DEEP=0). The second is a
    # generous settle for the engine to queue them, not a timing bound.
    if not _grpcgo():
        pytest.skip("grpcgo's batches")
    service, ch = served
    call = ch.unary_stream(method("ThenBlock"))(b"1000", timeout=RPC_TIMEOUT)
    try:
        assert service.event("then_block_yielded").wait(WAIT)
        time.sleep(1.0)
        assert next(call) == payload(0)
        assert 128 < len(call._buffer) + 1 <= 256, len(call._buffer) + 1
        assert [next(call) for _ in range(999)] == [payload(i) for i in range(1, 1000)]
    finally:
        service.event("release").set()
    assert list(call) == [b"after"]


def test_small_requests_cross_in_batches_of_up_to_256():
    # grpcgo only: the same for a handler's requests (after its first two
    # reads, which start the read-ahead).
    if not _grpcgo():
        pytest.skip("grpcgo's batches")
    n = 1000
    release = threading.Event()
    sizes = []

    def count(request_iterator, context):
        got = [next(request_iterator), next(request_iterator)]
        time.sleep(1.0)  # the client's requests queue up meanwhile
        for r in request_iterator:
            got.append(r)
            sizes.append(len(request_iterator._batch))
        assert got == [payload(i) for i in range(n)]
        return b"%d" % len(got)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Count": grpc.stream_unary_rpc_method_handler(count)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def requests():
        for i in range(n):
            yield payload(i)
        release.wait(WAIT)

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            future = channel.stream_unary(method("Count")).future(requests(), timeout=RPC_TIMEOUT)
            deadline = time.monotonic() + WAIT
            while not sizes and time.monotonic() < deadline:
                time.sleep(0.01)
            release.set()
            assert future.result(WAIT) == b"%d" % n
        assert 128 < max(sizes) <= 256, sizes
    finally:
        release.set()
        server.stop(None)
