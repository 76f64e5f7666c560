"""Unary calls on a connected channel with nothing else in flight.

Such a call starts on the calling thread, its frames are written there when
grpc-go's writer is idle, and no goroutine waits for its response: grpc-go's
reader takes it when the stream ends (core/fastunary.go, docs/ARCHITECTURE.md
"The hot module"). Every case here makes a warm-up call first, so the channel
is connected and the call under test takes that path; each pins what the
call must still do: deadlines, cancellation, retries, status and metadata,
responses larger than the flow-control window, errors. Expected behaviour is
grpcio 1.85.1's: GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv with grpcio 1.85.1
passes every test but the one marked grpcio_differs.

Every RPC has a timeout; every wait is bounded.
"""

import asyncio
import concurrent.futures
import json
import threading
import time

import grpc
import grpc.aio
import pytest

import grpc_impl
import h2peer
from serving import run_loop

RPC_TIMEOUT = 10
WAIT = 10

# grpcio 1.85.1 passes every test here but those marked: there it is
# plainly wrong (a call's deadline waits for a blocked socket write).
grpcio_differs = pytest.mark.skipif(
    grpc_impl.on_grpcio(),
    reason="grpcio's bug, not copied")
MiB = 1 << 20
SERVICE = "grpcgo.testing.FastPath"


def method(name):
    return f"/{SERVICE}/{name}"


class _Service:
    def __init__(self):
        self.lock = threading.Lock()
        self.attempts = {}
        self.ended = {}
        self.events = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def echo(self, request, context):
        return request

    def sized(self, request, context):
        return b"x" * int(request)

    def status(self, request, context):
        code, details = request.decode().split(":", 1)
        context.set_trailing_metadata((("x-trailer", "t1"), ("x-trailer-bin", b"\x00\x01")))
        if request.startswith(b"OK"):
            return b""
        context.abort(grpc.StatusCode[code], details)

    def headers_then_status(self, request, context):
        context.send_initial_metadata((("x-initial", "i1"),))
        context.set_trailing_metadata((("x-trailer", "t2"),))
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("nothing " + request.decode())
        return None

    def sleep(self, request, context):
        key = request.decode()
        self.event(key + ":started").set()
        deadline = time.monotonic() + 30
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.005)
        with self.lock:
            self.ended[key] = "cancelled" if not context.is_active() else "timeout"
        self.event(key + ":ended").set()
        return b"late"

    def flaky(self, request, context):
        key = request.decode()
        with self.lock:
            n = self.attempts[key] = self.attempts.get(key, 0) + 1
        if n < 3:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return b"attempt %d" % n

    def handler(self):
        methods = {
            "Echo": self.echo, "Sized": self.sized, "Status": self.status,
            "HeadersThenStatus": self.headers_then_status,
            "Sleep": self.sleep, "Flaky": self.flaky,
        }
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()})


OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@pytest.fixture(scope="module")
def served():
    service = _Service()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(pool, handlers=[service.handler()], options=OPTIONS)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        yield service, port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def connected(port, options=()):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS + list(options))
    assert channel.unary_unary(method("Echo"))(b"warm-up", timeout=RPC_TIMEOUT) == b"warm-up"
    return channel


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 16 << 10, (16 << 10) + 1,
                                  (64 << 10) + 1, MiB, 5 * MiB])
def test_response_sizes(served, size):
    # Past 4 MiB the stream's flow-control window must be reopened while
    # the response arrives: someone reads before the stream ends.
    _, port = served
    with connected(port) as channel:
        response = channel.unary_unary(method("Sized"))(b"%d" % size, timeout=RPC_TIMEOUT)
        assert response == b"x" * size
        response, call = channel.unary_unary(method("Sized")).with_call(b"%d" % size, timeout=RPC_TIMEOUT)
        assert len(response) == size and call.code() is grpc.StatusCode.OK


@pytest.mark.parametrize("size", [4 << 10, (4 << 10) + 1, 70 << 10, 3 * MiB])
def test_request_sizes(served, size):
    _, port = served
    with connected(port) as channel:
        request = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        assert channel.unary_unary(method("Echo"))(request, timeout=RPC_TIMEOUT) == request


def test_status_details_and_trailing_metadata(served):
    _, port = served
    with connected(port) as channel:
        status = channel.unary_unary(method("Status"))
        with pytest.raises(grpc.RpcError) as info:
            status(b"NOT_FOUND:no such thing", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "no such thing"
        assert ("x-trailer", "t1") in info.value.trailing_metadata()
        assert ("x-trailer-bin", b"\x00\x01") in info.value.trailing_metadata()
        response, call = status.with_call(b"OK:", timeout=RPC_TIMEOUT)
        assert response == b"" and call.code() is grpc.StatusCode.OK
        assert ("x-trailer", "t1") in call.trailing_metadata()

        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(method("HeadersThenStatus")).with_call(b"here", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "nothing here"
        assert ("x-initial", "i1") in info.value.initial_metadata()
        assert ("x-trailer", "t2") in info.value.trailing_metadata()


@pytest.mark.parametrize("where", ["main", "thread"])
def test_deadline_ends_the_call_and_cancels_the_handler(served, where):
    service, port = served
    key = f"deadline-{where}-{time.monotonic_ns()}"
    with connected(port) as channel:
        sleep = channel.unary_unary(method("Sleep"))

        def call():
            with pytest.raises(grpc.RpcError) as info:
                sleep(key.encode(), timeout=0.3)
            return info.value

        start = time.monotonic()
        if where == "main":
            error = call()
        else:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                error = pool.submit(call).result(timeout=WAIT)
        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 5
        assert service.event(key + ":ended").wait(WAIT)
        assert service.ended[key] == "cancelled"
        # The channel goes on.
        assert channel.unary_unary(method("Echo"))(b"after", timeout=RPC_TIMEOUT) == b"after"


def test_closing_the_channel_cancels_a_call_in_flight(served):
    service, port = served
    key = f"close-{time.monotonic_ns()}"
    channel = connected(port)
    errors = []

    def call():
        try:
            channel.unary_unary(method("Sleep"))(key.encode(), timeout=RPC_TIMEOUT)
        except grpc.RpcError as e:
            errors.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    assert service.event(key + ":started").wait(WAIT)
    channel.close()
    caller.join(WAIT)
    assert not caller.is_alive()
    assert errors and errors[0].code() is grpc.StatusCode.CANCELLED
    assert service.event(key + ":ended").wait(WAIT)


RETRY_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": SERVICE, "method": "Flaky"}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.01s",
            "maxBackoff": "0.1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def test_retry_policy_on_a_connected_channel(served):
    # The first attempts end with the server's status; the call goes on
    # with the next attempt instead of ending.
    service, port = served
    with connected(port, [("grpc.service_config", RETRY_CONFIG)]) as channel:
        key = f"retry-{time.monotonic_ns()}"
        assert channel.unary_unary(method("Flaky"))(key.encode(), timeout=RPC_TIMEOUT) == b"attempt 3"
        assert service.attempts[key] == 3
        key = f"retry-call-{time.monotonic_ns()}"
        response, call = channel.unary_unary(method("Flaky")).with_call(key.encode(), timeout=RPC_TIMEOUT)
        assert response == b"attempt 3" and call.code() is grpc.StatusCode.OK


def test_no_retry_without_a_policy_on_a_connected_channel(served):
    service, port = served
    with connected(port) as channel:
        key = f"noretry-{time.monotonic_ns()}"
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(method("Flaky"))(key.encode(), timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == "try again"
        assert service.attempts[key] == 1


def test_many_sequential_calls_and_threads(served):
    # Calls alone on the channel and calls from several threads at once
    # (which start on the engine's workers) mix on one connection.
    _, port = served
    with connected(port) as channel:
        echo = channel.unary_unary(method("Echo"))
        for i in range(200):
            assert echo(b"%d" % i, timeout=RPC_TIMEOUT) == b"%d" % i

        def burst(t):
            for i in range(100):
                assert echo(b"%d-%d" % (t, i), timeout=RPC_TIMEOUT) == b"%d-%d" % (t, i)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for f in [pool.submit(burst, t) for t in range(4)]:
                f.result(timeout=60)
        assert echo(b"end", timeout=RPC_TIMEOUT) == b"end"


def test_aio_unary_on_a_connected_channel(served):
    service, port = served

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as channel:
            echo = channel.unary_unary(method("Echo"))
            assert await echo(b"warm-up", timeout=RPC_TIMEOUT) == b"warm-up"
            for i in range(50):
                assert await echo(b"%d" % i, timeout=RPC_TIMEOUT) == b"%d" % i
            assert await channel.unary_unary(method("Sized"))(b"%d" % (5 * MiB), timeout=RPC_TIMEOUT) == \
                b"x" * (5 * MiB)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(method("Status"))(b"NOT_FOUND:aio", timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            assert info.value.details() == "aio"
            assert ("x-trailer", "t1") in tuple(info.value.trailing_metadata())
            key = f"aio-deadline-{time.monotonic_ns()}"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(method("Sleep"))(key.encode(), timeout=0.3)
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            key = f"aio-cancel-{time.monotonic_ns()}"
            call = channel.unary_unary(method("Sleep"))(key.encode(), timeout=RPC_TIMEOUT)
            await asyncio.get_running_loop().run_in_executor(None, service.event(key + ":started").wait, WAIT)
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await asyncio.get_running_loop().run_in_executor(None, service.event(key + ":ended").wait, WAIT)

    asyncio.run(main())


def test_aio_retry_policy(served):
    service, port = served

    async def main():
        options = OPTIONS + [("grpc.service_config", RETRY_CONFIG)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            assert await channel.unary_unary(method("Echo"))(b"w", timeout=RPC_TIMEOUT) == b"w"
            key = f"aio-retry-{time.monotonic_ns()}"
            assert await channel.unary_unary(method("Flaky"))(key.encode(), timeout=RPC_TIMEOUT) == b"attempt 3"
            assert service.attempts[key] == 3

    asyncio.run(main())


@grpcio_differs
def test_a_peer_that_stops_reading_holds_no_caller():
    # The socket fills up (the writer waits in its write); a call alone on
    # the channel still ends at its deadline: its caller never waits in a
    # write, on the main thread as on another. (grpcio 1.85.1 hangs in the
    # 8 MiB call past its 1 s deadline.)
    with h2peer.RawServer("stall") as peer:
        with grpc.insecure_channel(f"127.0.0.1:{peer.port}") as channel:
            call = channel.unary_unary("/t.Raw/Call")
            assert call(b"", timeout=RPC_TIMEOUT) is None  # answered: OK, no message
            with pytest.raises(grpc.RpcError) as info:
                call(b"x" * (8 * MiB), timeout=1)
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            for where in ("main", "thread"):
                start = time.monotonic()
                if where == "main":
                    with pytest.raises(grpc.RpcError) as info:
                        call(b"small", timeout=0.5)
                    error = info.value
                else:
                    def small():
                        try:
                            call(b"small", timeout=0.5)
                        except grpc.RpcError as e:
                            return e
                    with concurrent.futures.ThreadPoolExecutor(1) as pool:
                        error = pool.submit(small).result(timeout=WAIT)
                assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                assert time.monotonic() - start < 5


@pytest.mark.skipif(grpc_impl.on_grpcio(),
                    reason="counts the engine's own starts")
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_aio_unary_alone_starts_on_the_loops_thread(served, loop_kind):
    # A grpc.aio unary call alone on its connected channel starts on the
    # event loop's thread (no worker goroutine woken for it), as a blocking
    # call alone on its channel starts on its caller's.
    from grpc import _runtime

    service, port = served

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as channel:
            echo = channel.unary_unary(method("Echo"))
            assert await echo(b"warm", timeout=RPC_TIMEOUT) == b"warm"
            before = _runtime.hot().unary_starts()
            for i in range(20):
                assert await echo(b"%d" % i, timeout=RPC_TIMEOUT) == b"%d" % i
            return _runtime.hot().unary_starts() - before

    assert run_loop(main(), loop_kind, 60) == 20


@grpcio_differs
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_peer_that_stops_reading_never_blocks_the_event_loop(loop_kind):
    # A grpc.aio unary call alone on its channel starts on the event loop's
    # thread and writes its frames there only with a write that never
    # waits; whatever starts it, a socket that no longer takes writes must
    # not stop the loop: a task keeps running while each call waits, and
    # each call ends at its deadline. (grpcio 1.85.1 holds the 8 MiB call
    # past its deadline.)
    async def main():
        loop = asyncio.get_running_loop()
        with h2peer.RawServer("stall") as peer:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{peer.port}") as channel:
                call = channel.unary_unary("/t.Raw/Call")
                assert await call(b"", timeout=RPC_TIMEOUT) is None  # answered: OK, no message
                ticks = 0

                async def ticker():
                    nonlocal ticks
                    while True:
                        ticks += 1
                        await asyncio.sleep(0.01)

                task = asyncio.create_task(ticker())
                try:
                    for payload, timeout in ((b"x" * (8 * MiB), 1), (b"small", 0.5), (b"small", 0.5)):
                        before, start = ticks, loop.time()
                        with pytest.raises(grpc.aio.AioRpcError) as info:
                            await call(payload, timeout=timeout)
                        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                        assert ticks > before  # the loop ran while the call waited
                        assert loop.time() - start < 5
                finally:
                    task.cancel()

    run_loop(main(), loop_kind, 60)
