"""grpc.aio's server finishes a quick call on the event loop's thread.

A unary-response call whose finish cannot wait (nothing queued before it,
a last response of at most 16 KiB sent uncompressed, small trailing
metadata) is ended by the loop's thread itself: its response and status
are queued there and, when the call is alone on its connection and
grpc-go's writer is idle, written to the socket there with a write that
never waits, with no goroutine started for the call's end
(core.ServerCall.FinishNoWait, docs/ARCHITECTURE.md "The asyncio
server"). Anything else (a large or compressed response, responses queued
before the status, large trailers) goes to a goroutine as before. These
pin which path each finish takes (the engine's finish_stats() counters),
that the client gets the same thing either way, and that a call cancelled
or past its deadline ends exactly once; both loops.
GRPCGO_AIO_FINISH_HERE=0 turns the path off (A/B runs); the first test
then fails, the others pass.

Every RPC has a timeout; every wait is bounded.
"""

import asyncio
import contextlib
import os

import grpc
import pytest
from grpc import _runtime, aio

from serving import aio_generic_server, run_loop

SERVICE = "grpcgo.testing.AioFinishHere"
WAIT = 20
SMALL = b"s" * 3000
BIG = b"b" * (64 << 10)
ZIPPED = b"z" * 8000
LARGE_TRAILER = "t" * 9000  # more than the loop writes, less than the client takes

loop_kinds = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])


def method(name):
    return f"/{SERVICE}/{name}"


def stats():
    """(calls finished by a loop's thread, finishes written by their
    finisher, finishes left to grpc-go's writer)."""
    return _runtime.hot().finish_stats()


def run(coro, loop_kind):
    return run_loop(coro, loop_kind, WAIT * 2)


@contextlib.asynccontextmanager
async def serving(handlers):
    async with aio_generic_server(SERVICE, handlers) as port:
        # The large trailer is over the default soft limit (8 KiB).
        options = (("grpc.max_metadata_size", 64 << 10), ("grpc.absolute_max_metadata_size", 64 << 10))
        async with aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            yield channel


async def _small(request, context):
    context.set_trailing_metadata((("id", request.decode()),))
    return SMALL + request


async def _header(request, context):
    await context.send_initial_metadata((("hid", request.decode()),))
    return SMALL + request


async def _error(request, context):
    context.set_trailing_metadata((("id", request.decode()),))
    await context.abort(grpc.StatusCode.NOT_FOUND, "nf-" + request.decode())


async def _raises(request, context):
    raise ValueError("no " + request.decode())


def _sync(request, context):  # runs in the migration thread pool; finished on the loop
    return SMALL + request


@pytest.mark.skipif(os.environ.get("GRPCGO_AIO_FINISH_HERE") == "0",
                    reason="GRPCGO_AIO_FINISH_HERE=0")
@loop_kinds
def test_quick_finishes_end_on_the_loop_thread(loop_kind):
    handlers = {
        "small": grpc.unary_unary_rpc_method_handler(_small),
        "header": grpc.unary_unary_rpc_method_handler(_header),
        "error": grpc.unary_unary_rpc_method_handler(_error),
        "raises": grpc.unary_unary_rpc_method_handler(_raises),
        "sync": grpc.unary_unary_rpc_method_handler(_sync),
    }

    async def main():
        async with serving(handlers) as channel:
            before = stats()
            n = 0
            for i in range(40):
                req = b"%d" % i
                call = channel.unary_unary(method("small"))(req, timeout=WAIT)
                assert await call == SMALL + req
                assert (await call.trailing_metadata())["id"] == req.decode()
                call = channel.unary_unary(method("header"))(req, timeout=WAIT)
                assert await call == SMALL + req
                assert (await call.initial_metadata())["hid"] == req.decode()
                with pytest.raises(aio.AioRpcError) as info:
                    await channel.unary_unary(method("error"))(req, timeout=WAIT)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                assert info.value.details() == "nf-" + req.decode()
                assert info.value.trailing_metadata()["id"] == req.decode()
                with pytest.raises(aio.AioRpcError) as info:
                    await channel.unary_unary(method("raises"))(req, timeout=WAIT)
                assert info.value.code() == grpc.StatusCode.UNKNOWN
                assert await channel.unary_unary(method("sync"))(req, timeout=WAIT) == SMALL + req
                n += 5
            after = stats()
            assert after[0] - before[0] == n, (before, after)
            # One call at a time, alone on its connection: the loop's
            # thread wrote the frames whenever grpc-go's writer was idle.
            assert after[1] > before[1], (before, after)

    run(main(), loop_kind)


async def _big(request, context):
    return BIG


async def _zipped(request, context):
    context.set_compression(grpc.Compression.Gzip)
    return ZIPPED


async def _big_trailer(request, context):
    context.set_trailing_metadata((("big", LARGE_TRAILER),))
    return SMALL


async def _stream(request, context):
    for i in range(3):
        yield b"r%d" % i


async def _written_then_returned(request, context):
    await context.write(b"w")  # a unary-stream handler that writes, then returns
    await context.write(b"x")


@loop_kinds
def test_finishes_that_could_wait_go_to_a_goroutine(loop_kind):
    handlers = {
        "big": grpc.unary_unary_rpc_method_handler(_big),
        "zipped": grpc.unary_unary_rpc_method_handler(_zipped),
        "trailer": grpc.unary_unary_rpc_method_handler(_big_trailer),
        "stream": grpc.unary_stream_rpc_method_handler(_stream),
        "written": grpc.unary_stream_rpc_method_handler(_written_then_returned),
    }

    async def main():
        async with serving(handlers) as channel:
            before = stats()
            for _ in range(3):
                assert await channel.unary_unary(method("big"))(b"q", timeout=WAIT) == BIG
                assert await channel.unary_unary(method("zipped"))(b"q", timeout=WAIT) == ZIPPED
                call = channel.unary_unary(method("trailer"))(b"q", timeout=WAIT)
                assert await call == SMALL
                assert (await call.trailing_metadata())["big"] == LARGE_TRAILER
                got = [r async for r in channel.unary_stream(method("stream"))(b"q", timeout=WAIT)]
                assert got == [b"r0", b"r1", b"r2"]
                got = [r async for r in channel.unary_stream(method("written"))(b"q", timeout=WAIT)]
                assert got == [b"w", b"x"]
            assert stats()[0] == before[0], (before, stats())

    run(main(), loop_kind)


@loop_kinds
def test_cancel_and_deadline_race_the_finish(loop_kind):
    """Calls that die before, while or after the loop finishes them: each
    ends once, with OK or the client's own status, and the server goes on
    serving and stops cleanly."""
    started = []
    running = [0]  # racing handlers not yet returned

    async def slow(request, context):
        started.append(request)
        await asyncio.sleep(WAIT)
        return SMALL

    async def racing(request, context):
        # Finishes around the client's deadline: at once, after a turn of
        # the loop, or after a short sleep.
        running[0] += 1
        try:
            i = int(request)
            if i % 3 == 1:
                await asyncio.sleep(0)
            elif i % 3 == 2:
                await asyncio.sleep((i % 7) / 10000)
            return SMALL
        finally:
            running[0] -= 1

    handlers = {
        "slow": grpc.unary_unary_rpc_method_handler(slow),
        "racing": grpc.unary_unary_rpc_method_handler(racing),
        "small": grpc.unary_unary_rpc_method_handler(_small),
    }

    async def main():
        async with serving(handlers) as channel:
            with pytest.raises(aio.AioRpcError) as info:
                await channel.unary_unary(method("slow"))(b"d", timeout=0.05)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

            call = channel.unary_unary(method("slow"))(b"c", timeout=WAIT)
            for _ in range(WAIT * 100):
                if len(started) == 2:
                    break
                await asyncio.sleep(0.01)
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await call.code() == grpc.StatusCode.CANCELLED

            codes = {}
            racing_call = channel.unary_unary(method("racing"))
            for i in range(300):
                try:
                    assert await racing_call(b"%d" % i, timeout=0.0002 + (i % 5) / 5000) == SMALL
                    code = grpc.StatusCode.OK
                except aio.AioRpcError as error:
                    code = error.code()
                assert code in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED), code
                codes[code] = codes.get(code, 0) + 1
            # Cancels at every point of a quick call's life.
            for i in range(100):
                call = racing_call(b"%d" % i, timeout=WAIT)
                for _ in range(i % 4):
                    await asyncio.sleep(0)
                call.cancel()
                try:
                    assert await call == SMALL
                except asyncio.CancelledError:
                    assert await call.code() == grpc.StatusCode.CANCELLED
            # The server still serves, quick finishes on its loop. A call
            # the client cancelled may still be finished by its handler
            # (the server learns of the cancel later): let those end
            # first, so the count below is this call's alone.
            await asyncio.sleep(0.1)
            for _ in range(WAIT * 100):
                if running[0] == 0:
                    break
                await asyncio.sleep(0.01)
            before = stats()
            assert await channel.unary_unary(method("small"))(b"1", timeout=WAIT) == SMALL + b"1"
            if os.environ.get("GRPCGO_AIO_FINISH_HERE") != "0":
                assert stats()[0] == before[0] + 1

    run(main(), loop_kind)
