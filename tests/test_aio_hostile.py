"""grpc.aio against hostile users and unlucky programs: odd values where the
API expects a StatusCode or a str, serializers that fail, cancellation at
every await point, loops that end with work in flight. Each case must end
with a clear error (grpcio's StatusCode) and never hang or crash.

Every test runs its own loop with asyncio.run and bounds its waits; cases
that could take the process down run in a subprocess."""

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import grpc
import pytest
from grpc import aio

SERVICE = "h.S"
WAIT = 20  # seconds: a bound that only a hang reaches


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, WAIT)

    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(handlers):
    """An aio server on 127.0.0.1 serving {name: handler} as h.S, and an aio
    channel to it: yields (server, channel)."""
    server = aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield server, channel
    finally:
        await asyncio.wait_for(server.stop(None), WAIT)


async def status_of(call):
    """(code, details) of an awaited unary-response call that failed."""
    with pytest.raises(aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details()


uu = grpc.unary_unary_rpc_method_handler
us = grpc.unary_stream_rpc_method_handler
su = grpc.stream_unary_rpc_method_handler


def test_handler_codes_that_are_not_status_codes_end_the_call(caplog):
    """set_code/abort with an int, a str or None: grpcio's aio server takes
    an int in 0..16 as that code and anything else as UNKNOWN. The call
    used to hang (finish raised before it reached the engine)."""
    caplog.set_level(logging.CRITICAL)

    async def set_code(request, context):
        context.set_code(eval(request))  # noqa: S307 - test input
        return b"r"

    async def abort(request, context):
        await context.abort(eval(request), "why")  # noqa: S307 - test input

    async def main():
        async with serving({"set": uu(set_code), "abort": uu(abort)}) as (_, channel):
            set_code_, abort_ = channel.unary_unary(f"/{SERVICE}/set"), channel.unary_unary(
                f"/{SERVICE}/abort")
            assert await status_of(set_code_(b"5")) == (grpc.StatusCode.NOT_FOUND, "")
            assert await status_of(set_code_(b"99")) == (grpc.StatusCode.UNKNOWN, "")
            assert await status_of(set_code_(b"'NOT_FOUND'")) == (grpc.StatusCode.UNKNOWN, "")
            assert await set_code_(b"0") == b"r"
            assert await status_of(abort_(b"5")) == (grpc.StatusCode.NOT_FOUND, "why")
            assert await status_of(abort_(b"None")) == (grpc.StatusCode.UNKNOWN, "why")
            assert await status_of(abort_(b"'x'")) == (grpc.StatusCode.UNKNOWN, "why")

    run(main())


def test_handler_details_that_are_not_str_end_the_call(caplog):
    """set_details/abort with details that are not a str: the call ends with
    the code the handler chose and a TypeError's details, instead of
    hanging; abort() raises the TypeError before taking its code, so that
    call ends UNKNOWN, as in grpcio (test_aio_parity.py)."""
    caplog.set_level(logging.CRITICAL)

    async def set_details(request, context):
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details(123)
        return b"r"

    async def abort(request, context):
        await context.abort(grpc.StatusCode.NOT_FOUND, b"bytes")

    async def stream(request, context):
        yield b"a"
        context.set_code(grpc.StatusCode.DATA_LOSS)
        context.set_details(object())

    async def unencodable(request, context):
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("\udcff")  # a lone surrogate: no UTF-8 for it
        return b"r"

    def plain(request, context):
        context.set_code(grpc.StatusCode.ABORTED)
        context.set_details(1.5)
        return b"r"

    async def main():
        handlers = {"d": uu(set_details), "a": uu(abort), "s": us(stream), "p": uu(plain),
                    "u": uu(unencodable)}
        async with serving(handlers) as (_, channel):
            code, details = await status_of(channel.unary_unary(f"/{SERVICE}/d")(b""))
            assert code is grpc.StatusCode.NOT_FOUND and "TypeError" in details
            code, details = await status_of(channel.unary_unary(f"/{SERVICE}/a")(b""))
            assert code is grpc.StatusCode.UNKNOWN and "TypeError" in details
            code, details = await status_of(channel.unary_unary(f"/{SERVICE}/p")(b""))
            assert code is grpc.StatusCode.ABORTED and "TypeError" in details
            code, details = await status_of(channel.unary_unary(f"/{SERVICE}/u")(b""))
            assert (code, details) == (grpc.StatusCode.INTERNAL, "Invalid status")
            call = channel.unary_stream(f"/{SERVICE}/s")(b"")
            assert await call.read() == b"a"
            with pytest.raises(aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() is grpc.StatusCode.DATA_LOSS
            assert "TypeError" in info.value.details()

    run(main())


def test_stream_unary_response_that_fails_to_deserialize_is_internal(caplog):
    """A stream-unary call whose response the deserializer rejects fails
    with INTERNAL, as a unary-unary one does (it was an AioRpcError with
    code OK)."""
    caplog.set_level(logging.CRITICAL)

    async def count(requests, context):
        n = 0
        async for _ in requests:
            n += 1
        return b"%d" % n

    def reject(data):
        raise ValueError("bad response")

    async def main():
        async with serving({"c": su(count)}) as (_, channel):
            method = f"/{SERVICE}/c"
            call = channel.stream_unary(method, response_deserializer=reject)(iter([b"x"]))
            code, details = await status_of(call)
            assert code is grpc.StatusCode.INTERNAL
            assert details == "Exception deserializing response!"
            assert await call.code() is grpc.StatusCode.INTERNAL

    run(main())


def test_calls_refused_for_their_metadata_leave_nothing_waiting():
    """A unary call whose metadata the engine refuses (TypeError) used to
    leave its future in the loop's queue for the loop's lifetime."""
    from grpc.aio import _completion

    async def echo(request, context):
        return request

    async def main():
        async with serving({"u": uu(echo)}) as (_, channel):
            unary = channel.unary_unary(f"/{SERVICE}/u")
            assert await unary(b"x") == b"x"
            _, queue = _completion.queue()
            before = len(queue.waiting)
            for _ in range(50):
                with pytest.raises(TypeError):
                    await unary(b"x", metadata=[("k", 1)])
            assert len(queue.waiting) == before
            assert await unary(b"y") == b"y"

    run(main())


def test_a_loop_that_ends_with_work_in_flight_is_collected_and_frees_the_server():
    """asyncio.run() returning with a stream left open and a call never
    awaited, on a channel that outlives the loop: the loop, its queue (and
    fd) and those calls used to live for good (the queue registry and the
    channel's cached queue held them), and the server's handlers stayed
    stuck on calls nobody would end."""
    lock = threading.Lock()
    active = [0]

    def echo(requests, context):
        with lock:
            active[0] += 1
        try:
            for request in requests:
                yield request
        finally:
            with lock:
                active[0] -= 1

    pool = concurrent.futures.ThreadPoolExecutor(8)
    server = grpc.server(pool)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {"b": grpc.stream_stream_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = None
    loops = []

    async def left_open():
        nonlocal channel
        if channel is None:
            channel = aio.insecure_channel(f"127.0.0.1:{port}")
        loops.append(weakref.ref(asyncio.get_running_loop()))
        call = channel.stream_stream(f"/{SERVICE}/b")()
        await call.write(b"x")
        assert await call.read() == b"x"
        channel.stream_stream(f"/{SERVICE}/b")(iter([b"y"]))  # never awaited

    try:
        for _ in range(3):
            asyncio.run(left_open())
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            gc.collect()
            with lock:
                if active[0] == 0 and all(loop() is None for loop in loops):
                    break
            time.sleep(0.05)
        assert [loop() for loop in loops] == [None] * 3
        assert active[0] == 0
    finally:
        server.stop(None)
        pool.shutdown(wait=False)


def test_cancelling_at_every_await_point_leaves_nothing_behind():
    """wait_for timeouts around await call, read(), async iteration,
    write() under flow control, initial_metadata() and done_writing(),
    hundreds of times: every call and server handler ends, nothing stays
    waiting on the loop's queue, and the channel still works."""
    from grpc._introspect import live
    from grpc.aio import _completion

    async def unary(request, context):
        await asyncio.sleep(WAIT)
        return request

    async def stream(request, context):
        for i in range(3):
            await asyncio.sleep(WAIT / 4)
            yield b"%d" % i

    async def bidi(requests, context):
        async for request in requests:
            await asyncio.sleep(WAIT / 4)
            yield request

    async def sink(requests, context):
        await asyncio.sleep(WAIT)
        return b""

    async def main():
        async def echo(request, context):
            return request

        handlers = {"u": uu(unary), "s": us(stream), "c": su(sink), "e": uu(echo),
                    "b": grpc.stream_stream_rpc_method_handler(bidi)}
        async with serving(handlers) as (server, channel):
            u, s = channel.unary_unary(f"/{SERVICE}/u"), channel.unary_stream(f"/{SERVICE}/s")
            c, b = channel.stream_unary(f"/{SERVICE}/c"), channel.stream_stream(f"/{SERVICE}/b")
            _, queue = _completion.queue()
            waiting = len(queue.waiting)
            big = b"x" * (1 << 20)

            async def writes(call):
                for _ in range(64):
                    await call.write(big)

            async def iterate(call):
                async for _ in call:
                    pass

            async def read_one(call):
                await call.write(b"r")
                await call.read()

            cases = [(u, lambda call: call), (s, lambda call: call.read()), (s, iterate),
                     (b, read_one), (c, writes), (s, lambda call: call.initial_metadata()),
                     (b, lambda call: call.done_writing()), (b, writes)]

            async def one(kind):
                multicallable, awaited = cases[kind]
                call = multicallable(b"r") if multicallable in (u, s) else multicallable()
                try:
                    await asyncio.wait_for(awaited(call), 0.005)
                except asyncio.TimeoutError:
                    pass
                call.cancel()

            for _ in range(5):
                await asyncio.gather(*(one(k) for k in range(len(cases)) for _ in range(8)))
            deadline = asyncio.get_running_loop().time() + WAIT
            while asyncio.get_running_loop().time() < deadline:
                gc.collect()
                counts = live()
                if (counts.client_calls, counts.server_calls, len(server._rpcs)) == (0, 0, 0) \
                        and len(queue.waiting) <= waiting:
                    break
                await asyncio.sleep(0.05)
            counts = live()
            assert (counts.client_calls, counts.server_calls, len(server._rpcs)) == (0, 0, 0)
            assert len(queue.waiting) <= waiting
            assert await channel.unary_unary(f"/{SERVICE}/e")(b"still") == b"still"
    run(main())


def run_script(source, timeout=60):
    """Runs source in a fresh interpreter; its CompletedProcess."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True,
                          text=True, timeout=timeout)


def test_a_forked_child_running_the_loop_does_not_steal_the_parents_wakeups():
    """A child forked inside a coroutine shares each completion queue's fd
    with its parent. If the child runs the inherited loop's reader (here by
    hand, as an inherited uvloop does), it must not consume the parent's
    wake-ups: the parent's calls used to stop completing."""
    result = run_script("""
        import asyncio, os, time
        import grpc, grpc.aio
        from grpc.aio import _completion

        async def echo(request, context):
            return request

        async def main():
            server = grpc.aio.server()
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                "h.S", {"U": grpc.unary_unary_rpc_method_handler(echo)}),))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            unary = channel.unary_unary("/h.S/U")
            assert await unary(b"before") == b"before"
            loop, queue = _completion.queue()
            pid = os.fork()
            if pid == 0:
                end = time.monotonic() + 2
                while time.monotonic() < end:
                    queue._drain()
                    time.sleep(0.0002)
                os._exit(0)
            calls = 0
            end = time.monotonic() + 2
            try:
                while time.monotonic() < end:
                    await asyncio.wait_for(unary(b"x"), 10)
                    calls += 1
            finally:
                os.waitpid(pid, 0)
            await channel.close()
            await server.stop(None)
            print("calls", calls)

        asyncio.run(main())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("calls ")
