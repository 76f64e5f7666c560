"""grpc.aio's ping-pong read on the loop's thread (core/loopread.go): while a
stream alternates writes and reads, each end takes its messages directly
(no receiving goroutine) and its event loop reads the connection's socket
itself. These tests count that it happens and that every way out of it
(another stream on the connection, a message split over frames, a stream
of messages, a cancel, a deadline, a loop that ends mid-call) loses
nothing and leaves the connection working. Real sockets, both loops."""

import asyncio
import gc
import threading

import grpc
import pytest
from grpc import _runtime, aio
from grpc._introspect import live

import grpc_impl
from serving import run_loop

pytestmark = pytest.mark.skipif(grpc_impl.on_grpcio(), reason="grpcgo's engine only")

SERVICE = "grpcgo.testing.LoopRead"
LOOPS = ["asyncio", "uvloop"]
WAIT = 20


def counts():
    return _runtime.hot().aio_loop_read_counts()


async def echo(requests, context):
    async for request in requests:
        yield request


async def echo_then_stream(requests, context):
    # Answers each request; b"stream:N" gets N responses at once.
    async for request in requests:
        if request.startswith(b"stream:"):
            for i in range(int(request[7:])):
                yield b"%d" % i
        else:
            yield request


async def stalls(requests, context):
    async for request in requests:
        if request == b"stall":
            await asyncio.sleep(WAIT)
        yield request


def handlers():
    methods = {
        "Echo": grpc.stream_stream_rpc_method_handler(echo),
        "Mixed": grpc.stream_stream_rpc_method_handler(echo_then_stream),
        "Stalls": grpc.stream_stream_rpc_method_handler(stalls),
        "Unary": grpc.unary_unary_rpc_method_handler(lambda r, c: r),
    }
    return (grpc.method_handlers_generic_handler(SERVICE, methods),)


async def ping_pong(call, n, tag=b""):
    for i in range(n):
        request = tag + b"%d" % i
        await call.write(request)
        assert await call.read() == request


class _Server:
    async def __aenter__(self):
        self.server = aio.server()
        self.server.add_generic_rpc_handlers(handlers())
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def __aexit__(self, *exc):
        await self.server.stop(None)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_ping_pong_is_read_directly_and_by_the_loop(loop_kind):
    async def main():
        async with _Server() as s, aio.insecure_channel("127.0.0.1:%d" % s.port) as channel:
            before = counts()
            call = channel.stream_stream("/%s/Echo" % SERVICE)()
            await ping_pong(call, 300)
            await call.done_writing()
            assert await call.read() is aio.EOF
            assert await call.code() is grpc.StatusCode.OK
            after = counts()
            return after[0] - before[0], after[1] - before[1]

    direct, pumps = run_loop(main(), loop_kind, WAIT * 3)
    # Both ends, in this one process: the server from its first request,
    # the client once the stream ping-pongs (a few responses come through
    # its receiver first).
    assert direct >= 2 * 300 - 20, direct
    # Each end's loop read its socket for nearly every message.
    assert pumps >= 2 * 300 - 40, pumps


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_another_stream_on_the_connection_takes_the_reading_back(loop_kind):
    async def main():
        async with _Server() as s, aio.insecure_channel("127.0.0.1:%d" % s.port) as channel:
            echo_stream = channel.stream_stream("/%s/Echo" % SERVICE)
            unary = channel.unary_unary("/%s/Unary" % SERVICE)
            first = echo_stream()
            await ping_pong(first, 50, b"a")  # the loops read the connection now
            second = echo_stream()
            await ping_pong(second, 20, b"b")  # two streams: the goroutines read
            assert await unary(b"u", timeout=WAIT) == b"u"
            await ping_pong(first, 20, b"c")
            await second.done_writing()
            assert await second.read() is aio.EOF
            await ping_pong(first, 50, b"d")  # alone again
            await first.done_writing()
            assert await first.read() is aio.EOF
            assert await first.code() is grpc.StatusCode.OK
            assert await second.code() is grpc.StatusCode.OK

    run_loop(main(), loop_kind, WAIT * 3)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_split_messages_and_streams_leave_direct_reads_losing_nothing(loop_kind):
    big = b"x" * (1 << 20) + b"end"

    async def main():
        async with _Server() as s, aio.insecure_channel("127.0.0.1:%d" % s.port) as channel:
            call = channel.stream_stream("/%s/Mixed" % SERVICE)()
            await ping_pong(call, 30, b"a")
            # A message over many frames, each way.
            await call.write(big)
            assert await call.read() == big
            await ping_pong(call, 10, b"b")
            # Many responses to one request (several in a frame).
            await call.write(b"stream:200")
            assert [await call.read() for _ in range(200)] == [b"%d" % i for i in range(200)]
            # Many requests before any read.
            for i in range(100):
                await call.write(b"r%d" % i)
            assert [await call.read() for _ in range(100)] == [b"r%d" % i for i in range(100)]
            await ping_pong(call, 30, b"c")
            await call.done_writing()
            assert await call.read() is aio.EOF
            assert await call.code() is grpc.StatusCode.OK

    run_loop(main(), loop_kind, WAIT * 3)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_cancel_and_deadline_while_the_loop_reads(loop_kind):
    async def main():
        async with _Server() as s, aio.insecure_channel("127.0.0.1:%d" % s.port) as channel:
            stalls_method = channel.stream_stream("/%s/Stalls" % SERVICE)
            call = stalls_method()
            await ping_pong(call, 50)
            read = asyncio.ensure_future(call.read())  # waits, armed
            await asyncio.sleep(0.05)
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            assert await call.code() is grpc.StatusCode.CANCELLED

            call = stalls_method(timeout=0.5)
            await ping_pong(call, 50)
            await call.write(b"stall")  # the handler stops answering
            with pytest.raises(aio.AioRpcError) as raised:
                await call.read()
            assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

            # The connection still serves, ping-pongs included.
            call = channel.stream_stream("/%s/Echo" % SERVICE)()
            await ping_pong(call, 50)
            await call.done_writing()
            assert await call.code() is grpc.StatusCode.OK
            for _ in range(100):
                gc.collect()
                if not s.server._rpcs:
                    break
                await asyncio.sleep(0.05)
            assert not s.server._rpcs

    run_loop(main(), loop_kind, WAIT * 3)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_client_loop_that_ends_mid_ping_pong_leaves_the_server_serving(loop_kind):
    # The server runs on its own loop in a thread; a client's loop ends
    # (asyncio.run returns) with its stream still ping-ponging, the loops at
    # both ends reading the connection. The server's call ends, and a new
    # client on a new loop ping-pongs with it.
    started = threading.Event()
    stop = threading.Event()
    box = {}

    def serve():
        async def main():
            async with _Server() as s:
                box["port"], box["server"] = s.port, s.server
                started.set()
                while not stop.is_set():
                    await asyncio.sleep(0.02)
        run_loop(main(), loop_kind, WAIT * 6)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert started.wait(WAIT)

        async def abandon():
            channel = aio.insecure_channel("127.0.0.1:%d" % box["port"])
            call = channel.stream_stream("/%s/Echo" % SERVICE)()
            await ping_pong(call, 50)
            return counts()[1]

        assert run_loop(abandon(), loop_kind, WAIT) > 0
        gc.collect()

        async def again():
            async with aio.insecure_channel("127.0.0.1:%d" % box["port"]) as channel:
                call = channel.stream_stream("/%s/Echo" % SERVICE)()
                await ping_pong(call, 100)
                await call.done_writing()
                assert await call.code() is grpc.StatusCode.OK

        run_loop(again(), loop_kind, WAIT)
        for _ in range(200):
            gc.collect()
            if not box["server"]._rpcs and live().client_calls == 0:
                break
            threading.Event().wait(0.05)
        assert not box["server"]._rpcs
        assert live().client_calls == 0
    finally:
        stop.set()
        thread.join(WAIT)
