"""The aio server's unary path without Python it does not need (issue 12;
docs/ARCHITECTURE.md, "The asyncio server"): the drain reaches the
server's _accept with no frame of the acceptor's, a call's task is made
without asyncio's create_task wrapper when the loop has no task factory
(and through the factory when it has one), an async unary-unary handler
runs without _run's coroutine, and a call that ended normally stops its
watch without _release. Counted with sys.setprofile on the server loop's
thread; the client is grpcgo's sync channel on another thread."""

import asyncio
import collections
import os
import sys

import grpc
import pytest
from grpc import aio

from serving import WAIT, aio_generic_server, run_loop

CALLS = 50


async def _echo(request, context):
    return request


def _frames_per_call(loop_kind, handler=_echo, factory=None):
    """{(file, function): calls per unary call} on the server loop's thread
    over CALLS calls, and what the handler saw."""
    seen = []

    async def observed(request, context):
        seen.append(asyncio.current_task())
        return await handler(request, context)

    counts = collections.Counter()

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            counts[(os.path.basename(code.co_filename), code.co_name)] += 1

    async def main():
        loop = asyncio.get_running_loop()
        if factory is not None:
            loop.set_task_factory(factory)
        async with aio_generic_server("lean.L", {"E": grpc.unary_unary_rpc_method_handler(observed)}) as port:
            with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
                echo = channel.unary_unary("/lean.L/E")

                def calls(n):
                    for _ in range(n):
                        assert echo(b"x", timeout=WAIT) == b"x"

                await loop.run_in_executor(None, calls, 5)  # warm: the method read ahead
                counts.clear()
                seen.clear()
                sys.setprofile(profile)  # this (the loop's) thread only
                try:
                    await loop.run_in_executor(None, calls, CALLS)
                finally:
                    sys.setprofile(None)

    run_loop(main(), loop_kind, 60)
    return {key: n / CALLS for key, n in counts.items()}, seen


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_unary_call_runs_no_frame_it_does_not_need(loop_kind):
    frames, seen = _frames_per_call(loop_kind)
    ours = {name: n for (path, name), n in frames.items() if path == "_server.py"}
    assert ours.get("_serve") == pytest.approx(1, abs=0.1)
    # No acceptor frames in the drain, no _spawn, no _run for an async
    # unary-unary handler, no _release/forget for a call that ended itself.
    for name in ("set_result", "done", "_spawn", "_run", "_release", "_send_unary"):
        assert name not in ours, (name, ours)
    assert ("_completion.py", "forget") not in frames
    if loop_kind == "asyncio" and sys.version_info >= (3, 11):
        # The Task is made directly, not through asyncio's create_task
        # (which needs context=, 3.11+, to be skipped).
        assert ("base_events.py", "create_task") not in frames
    # Each call ran in a task of its own.
    assert len(seen) == CALLS and None not in seen and len(set(map(id, seen))) == CALLS


def test_a_task_factory_still_makes_the_calls_tasks():
    made = []

    def factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    frames, seen = _frames_per_call("asyncio", factory=factory)
    assert len(seen) == CALLS
    assert all(any(task is s for task in made) for s in seen)


def test_a_task_factory_whose_tasks_keep_their_destroy_warning():
    # A factory's task may not let grpc.aio turn off its "destroyed but
    # pending" log (here a read-only attribute; _completion.quiet): its
    # calls are served all the same.
    class StrictTask(asyncio.Task):
        @property
        def _log_destroy_pending(self):
            return True

    def factory(loop, coro, **kwargs):
        return StrictTask(coro, loop=loop, **kwargs)

    frames, seen = _frames_per_call("asyncio", factory=factory)
    assert len(seen) == CALLS
    assert all(isinstance(s, StrictTask) for s in seen)


def test_a_handler_that_aborts_or_sets_a_code_still_ends_its_way():
    # The inline OK path is taken only when nothing else was set.
    async def coded(request, context):
        if request == b"abort":
            await context.abort(grpc.StatusCode.NOT_FOUND, "gone")
        if request == b"code":
            context.set_code(grpc.StatusCode.ALREADY_EXISTS)
            context.set_details("there")
        if request == b"trailer":
            context.set_trailing_metadata((("k", "v"),))
        return b"r:" + request

    async def main():
        async with aio_generic_server("lean.L", {"C": grpc.unary_unary_rpc_method_handler(coded)}) as port:
            async with aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                call = channel.unary_unary("/lean.L/C")
                for _ in range(2):  # the first is read by _run, the rest ahead
                    with pytest.raises(aio.AioRpcError) as e:
                        await call(b"abort")
                    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.NOT_FOUND, "gone")
                    with pytest.raises(aio.AioRpcError) as e:
                        await call(b"code")
                    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.ALREADY_EXISTS, "there")
                    c = call(b"trailer")
                    assert await c == b"r:trailer"
                    assert tuple(await c.trailing_metadata()) == (("k", "v"),)
                    assert await call(b"ok") == b"r:ok"

    for loop_kind in ("asyncio", "uvloop"):
        run_loop(main(), loop_kind, 60)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_an_ended_calls_handle_is_released_with_others(loop_kind):
    # Once `await call` read the end of an aio unary call, dropping the
    # call object releases its engine handle in a batch (hotmodule.c,
    # settled) instead of a call into Go of its own: the handle a dropped
    # call leaves mostly stays until the batch of 32 is released.
    import gc

    import grpc._introspect as gi

    rises = []

    async def main():
        async with aio_generic_server("lean.L", {"E": grpc.unary_unary_rpc_method_handler(_echo)}) as port:
            async with aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                echo = channel.unary_unary("/lean.L/E")
                assert await echo(b"w") == b"w"
                for i in range(40):
                    gc.collect()
                    before = gi.live().handles
                    call = echo(b"%d" % i)
                    assert await call == b"%d" % i
                    del call
                    rises.append(gi.live().handles - before)

    run_loop(main(), loop_kind, 60)
    # Each call leaves two handles waiting: the client call's and the
    # server call's (this process serves it; a finished server call's
    # handle waited there already). 80 handles: at most three batch
    # releases in 40 calls. Without the client's, each call leaves one.
    assert sum(1 for r in rises if r == 2) >= 30, rises
    assert all(r <= 2 for r in rises), rises
