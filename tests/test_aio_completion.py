"""The completion queue that carries engine completions to asyncio loops
(pyext/cq.h, grpc/aio/_completion.py), driven through the hot module: each
loop gets its own queue and fd, completions are drained on the loop's own
thread, and an operation dropped before it completed frees what it held."""

import asyncio
import threading

import pytest

import grpc
from grpc.aio import _completion

import echo_service


@pytest.fixture(scope="module")
def channel_handle(py_echo_port):
    channel = grpc.insecure_channel(f"127.0.0.1:{py_echo_port}")
    yield channel._handle
    channel.close()


# A key gRPC forbids: aio_unary fails the call and completes its token
# before it returns.
_BAD_METADATA = (("bad key", "v"),)


def _request(text):
    return echo_service.SERIALIZE(echo_service.msg(text))


async def _unary(handle, text):
    loop, q = _completion.queue()
    token, future = q.token(loop)
    call = q.hot.aio_unary(q.cq, token, handle, echo_service.UNARY, _request(text), 30.0, None, 0, 0, None)
    await future
    code, _, response, _, _ = q.hot.unary_wait(call, 0.0)
    assert code == 0
    return echo_service.DESERIALIZE(response).value


def test_unary_completes_on_the_loop(channel_handle):
    async def main():
        return await asyncio.gather(*(_unary(channel_handle, f"m{i}") for i in range(50)))

    assert asyncio.run(main()) == [f"m{i}" for i in range(50)]


def test_completions_racing_the_drain_lose_no_wake_up(channel_handle):
    # Go threads push tokens and write the fd after releasing the queue's
    # mutex (cq.h), so a drain can run between a push and its write, and a
    # push can find the wake-up pending: every token must still reach the
    # loop. 32 tasks keep calls completing while the loop drains, over
    # 1,600 calls; a lost wake-up leaves a call waiting (only the bound ends it).
    async def worker(i):
        for j in range(50):
            assert await _unary(channel_handle, f"{i}.{j}") == f"{i}.{j}"

    async def main():
        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(32))), 60)

    asyncio.run(main())


def test_each_loop_has_its_own_queue_and_a_second_run_gets_a_new_one(channel_handle):
    seen = []

    async def main():
        loop, q = _completion.queue()
        seen.append(q)
        assert _completion.queue()[1] is q
        return await _unary(channel_handle, "again")

    assert asyncio.run(main()) == "again"
    assert asyncio.run(main()) == "again"
    assert seen[0] is not seen[1]


def test_an_open_loops_reader_keeps_its_queue(channel_handle):
    # Nothing but the loop's reader (the drain, registered with add_reader)
    # holds a queue once its calls are gone: the loop keeps the same queue
    # and fd for its whole life.
    import gc
    import weakref

    async def main():
        loop, q = _completion.queue()
        ref, fd = weakref.ref(q), q.fd
        assert await _unary(channel_handle, "one") == "one"
        del q
        gc.collect()
        assert ref() is not None and _completion.queue()[1] is ref()
        assert ref().fd == fd
        return await _unary(channel_handle, "two")

    assert asyncio.run(main()) == "two"


def test_loops_in_several_threads_at_once(channel_handle):
    results, errors = {}, []

    def run(n):
        try:
            async def main():
                return await asyncio.gather(*(_unary(channel_handle, f"t{n}-{i}") for i in range(30)))

            results[n] = asyncio.run(main())
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {n: [f"t{n}-{i}" for i in range(30)] for n in range(4)}


def test_uvloop(channel_handle):
    import uvloop  # a test dependency (Makefile's TEST_DEPS)

    async def main():
        return await asyncio.gather(*(_unary(channel_handle, f"u{i}") for i in range(20)))

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == [f"u{i}" for i in range(20)]
    finally:
        loop.close()


def test_an_abandoned_receive_wait_loses_nothing(channel_handle):
    # aio_stream_recv answers with what is queued, or None and a token that
    # completes once something is; a wait given up (its token forgotten,
    # replaced by a later receive) loses no response: they stay queued in Go.
    async def main():
        loop, q = _completion.queue()
        hot = q.hot
        stream = hot.stream_start(channel_handle, echo_service.BIDI, 30.0, None, 0, 0, None, True, True, None, False)
        token, future = q.token(loop)
        assert hot.aio_stream_recv(q.cq, token, stream, 64) is None  # nothing sent yet
        q.forget(token)
        assert hot.stream_send(stream, _request("one")) is True
        got = []
        while not got:
            token, future = q.token(loop)
            batch = hot.aio_stream_recv(q.cq, token, stream, 64)
            if batch is None:
                await future
                continue
            q.forget(token)
            got = batch
        hot.stream_close_send(stream)
        assert [echo_service.DESERIALIZE(m).value for m in got] == ["one"]
        token, future = q.token(loop)
        status = hot.aio_stream_status(q.cq, token, stream)
        if not isinstance(status, tuple):
            await future
            status = hot.aio_result(status)
        assert status[0] == 0

    asyncio.run(main())


def test_a_result_is_taken_once(channel_handle):
    async def main():
        loop, q = _completion.queue()
        hot = q.hot
        stream = hot.stream_start(channel_handle, echo_service.BIDI, 30.0, None, 0, 0, None, True, True, None, False)
        token, future = q.token(loop)
        op = hot.aio_stream_header(q.cq, token, stream)
        with pytest.raises(RuntimeError, match="not completed"):
            hot.aio_result(op)
        hot.stream_send(stream, _request("x"))
        await future
        assert isinstance(hot.aio_result(op), tuple)
        with pytest.raises(RuntimeError, match="already taken"):
            hot.aio_result(op)
        hot.stream_cancel(stream)

    asyncio.run(main())


def test_a_drain_that_fails_for_memory_loses_no_token(channel_handle):
    # A queue no loop watches, drained by hand: tokens too large for
    # Python's small-int cache, so building them allocates.
    import select

    _testcapi = pytest.importorskip("_testcapi")
    from grpc import _runtime

    hot = _runtime.hot()
    cq = hot.cq_new()
    fd = hot.cq_fd(cq)
    base = 1 << 40
    # Metadata gRPC forbids: the engine fails each call (INTERNAL) and
    # queues its token before aio_unary returns. (A call that ends on the
    # network queues its token just after unary_wait sees it ended, so the
    # drain below could miss the last one.)
    calls = [
        hot.aio_unary(cq, base + i, channel_handle, echo_service.UNARY, _request(f"m{i}"), 30.0,
                      _BAD_METADATA, 0, 0, None)
        for i in range(3)
    ]
    for call in calls:
        assert hot.unary_wait(call, 30.0)[0] == grpc.StatusCode.INTERNAL.value[0]
    assert select.select([fd], [], [], 30)[0] == [fd]
    _testcapi.set_nomemory(0, 0)
    try:
        hot.cq_drain(cq)
    except MemoryError:
        failed = True
    else:
        failed = False
    finally:
        _testcapi.remove_mem_hooks()
    assert failed
    assert select.select([fd], [], [], 30)[0] == [fd]  # woken again
    assert sorted(hot.cq_drain(cq)) == [base, base + 1, base + 2]
    assert select.select([fd], [], [], 0)[0] == []
    assert hot.cq_drain(cq) == ()


# -- Wait: a token's future that wakes its awaiting task in the drain's turn --


def test_a_wait_resolved_outside_a_task_resumes_its_task_at_once():
    # asyncio.Future.set_result only schedules the waiting task (one more
    # turn of the loop before it runs); the drain resolves a Wait from the
    # loop's reader callback, where no task runs, and the task resumes
    # before set_result returns.
    async def main():
        loop = asyncio.get_running_loop()
        wait = _completion.Wait(loop)
        steps = []

        async def waiter():
            await wait
            steps.append("resumed")

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)  # the task now awaits the Wait
        done = loop.create_future()

        def resolve():  # a plain callback, as the drain is
            wait.set_result(None)
            steps.append("set_result returned")
            done.set_result(None)

        loop.call_soon(resolve)
        await done
        await task
        return steps

    assert asyncio.run(main()) == ["resumed", "set_result returned"]


def test_a_wait_speaks_asyncios_future_protocol():
    import contextvars

    var = contextvars.ContextVar("var", default="outer")

    async def main():
        loop = asyncio.get_running_loop()
        # wait_for gives up on it: cancelled, and the awaiting task is not
        wait = _completion.Wait(loop)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(wait, 0.01)
        assert wait.cancelled() and wait.done()
        with pytest.raises(asyncio.CancelledError):
            wait.result()
        # a task cancelled while it awaits one cancels it
        wait = _completion.Wait(loop)
        task = asyncio.ensure_future(wait)  # a future already: returned as is
        assert task is wait
        waiter = asyncio.ensure_future(asyncio.shield(wait))
        holder = asyncio.ensure_future(_await(wait))
        await asyncio.sleep(0)
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert wait.cancelled()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # shield, gather and callbacks (in their own context) once it completes
        wait = _completion.Wait(loop)
        seen = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "inner")
        wait.add_done_callback(lambda w: seen.append(var.get()), context=ctx)
        wait.add_done_callback(lambda w: seen.append(var.get()))
        def removed(w):
            seen.append("removed")

        wait.add_done_callback(removed)
        assert wait.remove_done_callback(removed) == 1
        shielded = asyncio.ensure_future(asyncio.shield(wait))
        gathered = asyncio.ensure_future(asyncio.gather(wait))
        await asyncio.sleep(0)
        loop.call_soon(wait.set_result, None)
        assert await shielded is None
        assert await gathered == [None]
        assert seen == ["inner", "outer"]
        # a callback added once it is done runs soon, as asyncio's do
        later = loop.create_future()
        wait.add_done_callback(lambda w: later.set_result(w.done()))
        assert await later is True
        assert await wait is None
        assert not wait.cancel()

    async def _await(awaitable):
        return await awaitable

    asyncio.run(main())


def test_a_waits_one_callback_and_its_arguments():
    # A task's wake-up is usually a Wait's only callback (kept without a
    # list): removing it, adding more after it, and bad arguments.
    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        wait = _completion.Wait(loop)
        wait.add_done_callback(seen.append)
        assert wait.remove_done_callback(seen.append) == 1
        assert wait.remove_done_callback(seen.append) == 0
        wait.add_done_callback(fn=lambda w: seen.append("by name"))
        wait.add_done_callback(lambda w: seen.append("second"), context=None)
        wait.add_done_callback(lambda w: seen.append("third"))
        with pytest.raises(TypeError):
            wait.add_done_callback()
        with pytest.raises(TypeError):
            wait.add_done_callback(seen.append, seen.append)
        with pytest.raises(TypeError):
            wait.add_done_callback(seen.append, loop=loop)
        loop.call_soon(wait.set_result, None)
        await wait
        assert seen == ["by name", "second", "third"]

    asyncio.run(main())


def test_the_drains_arguments_are_checked():
    # cq_resolve is the loop's reader (no argument tuple: METH_FASTCALL);
    # wrong arguments are a TypeError, never a crash.
    from grpc import _runtime

    hot = _runtime.hot()
    cq = hot.cq_new()
    for args in [(), (cq,), (cq, {}, None, None), ("not a queue", {}), (cq, [])]:
        with pytest.raises(TypeError):
            hot.cq_resolve(*args)
    assert hot.cq_resolve(cq, {}) is None
    assert hot.cq_resolve(cq, {}, object()) is None


def test_a_failing_callback_of_a_wait_goes_to_the_loops_handler():
    async def main():
        loop = asyncio.get_running_loop()
        errors, seen = [], []
        loop.set_exception_handler(lambda loop, context: errors.append(context["exception"]))
        wait = _completion.Wait(loop)

        def bad(w):
            raise ValueError("boom")

        wait.add_done_callback(bad)
        wait.add_done_callback(seen.append)
        done = loop.create_future()
        loop.call_soon(lambda: (wait.set_result(None), done.set_result(None)))
        await done
        assert seen == [wait]
        assert [type(e) for e in errors] == [ValueError]

    asyncio.run(main())


def test_keyboardinterrupt_out_of_a_woken_task_loses_no_other_token(channel_handle):
    # A woken task runs inside the drain; if KeyboardInterrupt escapes it,
    # the tokens drained after its own still complete (in a later turn).
    loop = asyncio.new_event_loop()
    try:
        async def get_queue():
            return _completion.queue()[1]

        q = loop.run_until_complete(get_queue())
        hot = q.hot
        first, second = next(q.tokens), next(q.tokens)

        class Interrupting:
            def done(self):
                return False

            def set_result(self, _):
                raise KeyboardInterrupt

        q.waiting[first] = Interrupting()
        later = q.waiting[second] = loop.create_future()
        for token in (first, second):  # queued at once, in this order (see _BAD_METADATA)
            call = hot.aio_unary(q.cq, token, channel_handle, echo_service.UNARY, _request("k"), 30.0,
                                 _BAD_METADATA, 0, 0, None)
            assert hot.unary_wait(call, 30.0) is not None
        with pytest.raises(KeyboardInterrupt):
            q._drain()
        assert not later.done()
        loop.run_until_complete(asyncio.wait_for(later, 30))
    finally:
        loop.close()
