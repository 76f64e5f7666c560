"""grpc.aio's client: channels, the four call shapes and their call objects,
cancellation, deadlines, misuse errors, against a sync grpc.server in this
process (py_echo_port) and a grpc-go server (go_echo_port).

Expectations are grpcio 1.85's (docs and observed behaviour,
/work/shared/reference/aio-surface.md)."""

import asyncio
import sys
import logging

import pytest

import grpc
import grpc.aio

import echo_service as E
from echo_service import msg

BOUND = 60  # seconds: only a hang reaches it


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, BOUND)

    return asyncio.run(bounded())


@pytest.fixture(params=["py", "go"])
def target(request):
    port = request.getfixturevalue("py_echo_port" if request.param == "py" else "go_echo_port")
    return f"127.0.0.1:{port}"


@pytest.fixture
def py_target(py_echo_port):
    return f"127.0.0.1:{py_echo_port}"


def stub(channel):
    return E.EchoStub(channel)


async def values(call):
    return [m.value async for m in call]


# -- the four shapes, against both servers --------------------------------------


def test_four_shapes(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            assert (await s.UnaryEcho(msg("hi"))).value == "hi"
            assert await values(s.ServerStream(msg("3:a"))) == ["a-0", "a-1", "a-2"]
            assert (await s.ClientStream(iter([msg("a"), msg("b")]))).value == "a,b"
            assert await values(s.BidiStream(iter([msg("x"), msg("y")]))) == ["x", "y"]

    run(main())


def test_reader_writer_api(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            call = s.ServerStream(msg("2:r"))
            assert (await call.read()).value == "r-0"
            assert (await call.read()).value == "r-1"
            assert await call.read() is grpc.aio.EOF
            assert await call.read() is grpc.aio.EOF
            assert await call.code() is grpc.StatusCode.OK

            call = s.ClientStream()
            for text in "pq":
                await call.write(msg(text))
            await call.done_writing()
            await call.done_writing()  # idempotent
            assert (await call).value == "p,q"

            call = s.BidiStream()
            for text in "abc":
                await call.write(msg(text))
                assert (await call.read()).value == text
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            assert await call.code() is grpc.StatusCode.OK
            assert call.done()

    run(main())


def test_async_and_sync_request_iterators(py_target):
    async def main():
        async def requests(n):
            for i in range(n):
                await asyncio.sleep(0)
                yield msg(str(i))

        async with grpc.aio.insecure_channel(py_target) as channel:
            s = stub(channel)
            assert (await s.ClientStream(requests(5))).value == "0,1,2,3,4"
            assert (await s.ClientStream(msg(t) for t in "ab")).value == "a,b"
            assert await values(s.BidiStream(requests(3))) == ["0", "1", "2"]
            assert await values(s.BidiStream([msg("l")])) == ["l"]

    run(main())


def test_many_messages_in_both_directions(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            got = await values(s.ServerStream(msg("500:m")))
            assert got == [f"m-{i}" for i in range(500)]
            texts = [str(i) for i in range(300)]
            assert await values(s.BidiStream(iter(msg(t) for t in texts))) == texts

    run(main())


# -- metadata, status -----------------------------------------------------------


def test_metadata_and_status(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            for md in ((("x-echo-a", "1"), ("x-echo-b-bin", b"\x00\x01")),
                       grpc.aio.Metadata(("x-echo-a", "1"), ("x-echo-b-bin", b"\x00\x01"))):
                call = s.UnaryEcho(msg("m"), metadata=md)
                assert (await call).value == "m"
                initial = await call.initial_metadata()
                trailing = await call.trailing_metadata()
                assert isinstance(initial, grpc.aio.Metadata)
                assert initial["x-echo-a"] == "1" and initial["x-echo-b-bin"] == b"\x00\x01"
                assert trailing["x-trailer-a"] == "1"
                assert await call.code() is grpc.StatusCode.OK
                assert await call.details() in ("", None)

            call = s.BidiStream(metadata=(("x-echo-k", "v"),))
            initial = await call.initial_metadata()  # before any message: headers arrive
            assert initial["x-echo-k"] == "v"
            await call.done_writing()
            assert (await call.trailing_metadata())["x-trailer-k"] == "v"

    run(main())


def test_errors_are_aio_rpc_errors(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            call = s.UnaryEcho(msg("status:NOT_FOUND:gone"), metadata=(("x-echo-e", "1"),))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            error = info.value
            assert error.code() is grpc.StatusCode.NOT_FOUND
            assert error.details() == "gone"
            assert error.trailing_metadata()["x-trailer-e"] == "1"
            assert isinstance(error, grpc.RpcError)
            assert await call.code() is grpc.StatusCode.NOT_FOUND
            assert await call.details() == "gone"
            assert "NOT_FOUND" in repr(call)

            # A stream that ends with an error after two messages.
            call = s.ServerStream(msg("2:z|status:ABORTED:late"))
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for m in call:
                    got.append(m.value)
            assert got == ["z-0", "z-1"]
            assert info.value.code() is grpc.StatusCode.ABORTED
            # read() after the end raises the same status again.
            with pytest.raises(grpc.aio.AioRpcError):
                await s.ServerStream(msg("status:UNAVAILABLE:no")).read()

            with pytest.raises(grpc.aio.AioRpcError) as info:
                await s.ClientStream(iter([msg("status:PERMISSION_DENIED:nope")]))
            assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED

            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary("/no.Such/Method")(b"")
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED

    run(main())


def test_serializer_and_deserializer_failures(py_target, caplog):
    def bad(_):
        raise ValueError("no")

    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(E.UNARY, bad, E.DESERIALIZE)(msg("x"))
            assert info.value.code() is grpc.StatusCode.INTERNAL
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(E.UNARY, E.SERIALIZE, bad)(msg("x"))
            assert info.value.code() is grpc.StatusCode.INTERNAL
            call = channel.unary_stream(E.SERVER_STREAM, E.SERIALIZE, bad)(msg("2:x"))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() is grpc.StatusCode.INTERNAL
            with pytest.raises(TypeError):
                await channel.unary_unary(E.UNARY, lambda m: "text")(msg("x"))

    with caplog.at_level(logging.ERROR):
        run(main())


# -- call objects: done, callbacks, time_remaining -------------------------------


def test_done_callbacks_and_time_remaining(py_target):
    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            s = stub(channel)
            seen = []
            call = s.UnaryEcho(msg("sleep:100"), timeout=30)
            assert not call.done()
            assert 0 < call.time_remaining() <= 30
            call.add_done_callback(seen.append)
            await call
            await asyncio.sleep(0)
            assert seen == [call] and call.done() and not call.cancelled()
            call.add_done_callback(seen.append)  # already done: at once
            assert seen == [call, call]
            assert s.UnaryEcho(msg("x")).time_remaining() is None

            for call in (s.ServerStream(msg("1:s")), s.BidiStream(iter([msg("b")]))):
                done = asyncio.Event()
                call.add_done_callback(lambda c: done.set())
                assert await values(call)
                await asyncio.wait_for(done.wait(), BOUND)
                assert call.done()

    run(main())


def test_wait_for_connection(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            for call in (s.UnaryEcho(msg("w")), s.ServerStream(msg("1:w")), s.ClientStream(),
                         s.BidiStream()):
                await call.wait_for_connection()
                call.cancel()
        async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
            call = stub(channel).BidiStream(timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.wait_for_connection()
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE

    run(main())


def test_wait_for_connection_raises_for_every_stream_that_cannot_open():
    # A stream that fails to open is marked so a moment before its status
    # is set; wait_for_connection() must wait for that status, not return
    # as if connected (it did, now and then, on a loaded machine).
    async def main():
        async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
            s = stub(channel)
            for i in range(100):
                call = (s.BidiStream, s.ClientStream)[i % 2](timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call.wait_for_connection()
                assert info.value.code() is grpc.StatusCode.UNAVAILABLE

    run(main())


# -- cancellation and deadlines -------------------------------------------------


def test_cancel(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            for call in (s.UnaryEcho(msg("sleep:20000")), s.ServerStream(msg("sleep:20000")),
                         s.ClientStream(), s.BidiStream()):
                assert call.cancel()
                assert not call.cancel()
                assert call.cancelled() and call.done()
                with pytest.raises(asyncio.CancelledError):
                    if hasattr(call, "__await__"):
                        await call
                    else:
                        await call.read()
                assert await call.code() is grpc.StatusCode.CANCELLED
                assert await call.details() == "Locally cancelled by application!"
            # Cancelling a finished call does nothing.
            call = s.UnaryEcho(msg("done"))
            await call
            assert not call.cancel() and not call.cancelled()

    run(main())


def test_cancelled_task_cancels_the_rpc(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)

            async def awaiting(call):
                return await call

            async def reading(call):
                return await call.read()

            for call, how in ((s.UnaryEcho(msg("sleep:20000")), awaiting),
                              (s.ServerStream(msg("sleep:20000")), reading),
                              (s.BidiStream(), reading),
                              (s.ClientStream(), awaiting)):
                task = asyncio.ensure_future(how(call))
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert call.cancelled()
                assert await call.code() is grpc.StatusCode.CANCELLED

    run(main())


def test_deadline_exceeded(target):
    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            for call in (s.UnaryEcho(msg("sleep:20000"), timeout=0.2),
                         s.ClientStream(iter([msg("sleep:20000")]), timeout=0.2)):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call
                assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                assert not call.cancelled()
                assert call.time_remaining() == 0
            call = s.ServerStream(msg("sleep:20000"), timeout=0.2)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            call = s.BidiStream(timeout=0.2)
            with pytest.raises(grpc.aio.AioRpcError):
                async for _ in call:
                    pass
            assert await call.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    run(main())


def test_concurrent_readers_lose_no_message(py_target):
    # Two tasks wait on the same call's one outstanding receive; every
    # message reaches exactly one of them.
    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            call = stub(channel).BidiStream()
            readers = [asyncio.ensure_future(call.read()) for _ in range(2)]
            await asyncio.sleep(0.05)
            await call.write(msg("1"))
            await call.write(msg("2"))
            got = sorted(m.value for m in await asyncio.gather(*readers))
            assert got == ["1", "2"]
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF

    run(main())


def test_a_reader_cancelled_after_the_end_loses_no_message(py_target):
    # The call ended by itself while a read waited: cancelling that reader
    # does not cancel the (finished) RPC, and its message stays readable.
    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            call = stub(channel).ServerStream(msg("sleep:300"))
            reader = asyncio.ensure_future(call.read())
            await asyncio.sleep(0.05)
            assert await call.code() is grpc.StatusCode.OK
            reader.cancel()
            try:
                got = await reader
            except asyncio.CancelledError:
                got = await call.read()
            assert got.value == "sleep:300"
            assert await call.read() is grpc.aio.EOF
            assert not call.cancelled()

    run(main())


def test_request_iterator_that_raises_cancels_the_call(py_target, caplog):
    async def main():
        def requests():
            yield msg("a")
            raise RuntimeError("boom")

        async with grpc.aio.insecure_channel(py_target) as channel:
            call = stub(channel).ClientStream(requests())
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await call.code() is grpc.StatusCode.CANCELLED

    run(main())


# -- misuse -------------------------------------------------------------------------


def test_usage_errors(py_target):
    async def main():
        channel = grpc.aio.insecure_channel(py_target)
        s = stub(channel)
        call = s.ServerStream(msg("3:u"))
        await call.read()
        with pytest.raises(grpc.aio.UsageError):
            async for _ in call:
                pass
        call = s.ServerStream(msg("3:u"))
        async for _ in call:
            break
        with pytest.raises(grpc.aio.UsageError):
            await call.read()
        call.cancel()

        for call in (s.ClientStream(iter([msg("a")])), s.BidiStream(iter([msg("a")]))):
            with pytest.raises(grpc.aio.UsageError):
                await call.write(msg("b"))
            with pytest.raises(grpc.aio.UsageError):
                await call.done_writing()
            call.cancel()

        call = s.BidiStream()
        await call.done_writing()
        with pytest.raises(asyncio.InvalidStateError):
            await call.write(msg("late"))
        call = s.BidiStream()
        call.cancel()
        with pytest.raises(asyncio.InvalidStateError):
            await call.write(msg("late"))

        await channel.close()
        for invoke in (lambda: s.UnaryEcho(msg("x")), lambda: s.ServerStream(msg("1:x")),
                       lambda: s.ClientStream(), lambda: s.BidiStream()):
            with pytest.raises(grpc.aio.UsageError):
                invoke()

    run(main())


def test_bad_arguments(py_target):
    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            s = stub(channel)
            # As grpcio: call credentials on an insecure channel are refused
            # whatever they are (tests/test_argument_checks.py).
            with pytest.raises(grpc.aio.UsageError):
                s.UnaryEcho(msg("x"), credentials="nope")
            with pytest.raises(TypeError):
                s.UnaryEcho(msg("x"), timeout="soon")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await s.UnaryEcho(msg("x"), metadata=(("Bad Key", "v"),))
            assert info.value.code() is grpc.StatusCode.INTERNAL
        with pytest.raises(ValueError):
            grpc.aio.insecure_channel(py_target, interceptors=[object()])

    run(main())


# -- the channel ------------------------------------------------------------------


def test_channel_state_and_ready(py_target):
    async def main():
        channel = grpc.aio.insecure_channel(py_target)
        assert channel.get_state() is grpc.ChannelConnectivity.IDLE
        await channel.channel_ready()
        assert channel.get_state() is grpc.ChannelConnectivity.READY
        await channel.close()
        assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN

        channel = grpc.aio.insecure_channel(py_target)
        state = channel.get_state(try_to_connect=True)
        await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.IDLE), BOUND)
        assert channel.get_state() is not grpc.ChannelConnectivity.IDLE or state is not grpc.ChannelConnectivity.IDLE
        # A cancelled watcher ends and leaves the channel usable.
        await channel.channel_ready()
        watcher = asyncio.ensure_future(channel.wait_for_state_change(grpc.ChannelConnectivity.READY))
        await asyncio.sleep(0.01)
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
        assert (await stub(channel).UnaryEcho(msg("after"))).value == "after"
        await channel.close()

    run(main())


def test_close_with_grace(py_target):
    async def main():
        channel = grpc.aio.insecure_channel(py_target)
        s = stub(channel)
        quick = s.UnaryEcho(msg("sleep:100"))
        slow = s.UnaryEcho(msg("sleep:20000"))
        stream = s.ServerStream(msg("sleep:20000"))
        await asyncio.sleep(0.02)
        await channel.close(grace=1.0)
        assert (await quick).value == "sleep:100"  # finished within the grace
        for call in (slow, stream):
            assert call.done()
            assert await call.code() is grpc.StatusCode.CANCELLED
        await channel.close()  # again: nothing

        async with grpc.aio.insecure_channel(py_target) as channel:
            pending = stub(channel).UnaryEcho(msg("sleep:20000"))
        assert await pending.code() is grpc.StatusCode.CANCELLED

    run(main())


def test_the_channels_registry_of_calls_holds_none_that_ended_or_were_dropped(py_target):
    # close(grace) finds the calls not ended through a weak registry: an
    # ended call leaves it, and so does one collected before it ended.
    import gc

    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            s = stub(channel)
            assert (await s.UnaryEcho(msg("a"))).value == "a"
            assert not channel._calls
            dropped = s.UnaryEcho(msg("sleep:20000"))
            stream = s.ServerStream(msg("sleep:20000"))
            assert len(channel._calls) == 2
            del dropped, stream
            gc.collect()
            assert not channel._calls

    run(main())


def test_init_and_shutdown_are_harmless():
    grpc.aio.init_grpc_aio()
    grpc.aio.shutdown_grpc_aio()


def test_compression(py_target):
    async def main():
        async with grpc.aio.insecure_channel(py_target, compression=grpc.Compression.Gzip) as channel:
            s = stub(channel)
            assert (await s.UnaryEcho(msg("z" * 1000))).value == "z" * 1000
            assert (await s.UnaryEcho(msg("d"), compression=grpc.Compression.Deflate)).value == "d"
            assert await values(s.BidiStream(iter([msg("c")]), compression=grpc.Compression.Gzip)) == ["c"]

    run(main())


# -- the unary call's C half (pyext/aio_unary.h) ----------------------------------


def test_a_unary_calls_response_is_returned_as_is_whatever_its_type(py_target):
    # `await call` ends a C iterator with StopIteration(response): a tuple
    # or an exception instance as the response must come back unchanged,
    # not as StopIteration's arguments or raised.
    error = ValueError("a response, not an error")

    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            as_tuple = channel.unary_unary(E.UNARY, E.SERIALIZE, lambda b: (1, b"x"))
            as_error = channel.unary_unary(E.UNARY, E.SERIALIZE, lambda b: error)
            as_none = channel.unary_unary(E.UNARY, E.SERIALIZE, lambda b: None)
            assert await as_tuple(msg("t")) == (1, b"x")
            assert await as_error(msg("e")) is error
            assert await as_none(msg("n")) is None
            call = as_tuple(msg("again"))
            assert await call == (1, b"x") and await call == (1, b"x")  # awaited twice

    run(main())


def test_a_unary_calls_response_is_the_same_through_the_iterator_protocol(py_target):
    # `await call` is read through am_send (no StopIteration) where Python
    # has it; with a tracer set, the interpreter iterates with __next__ and
    # the response comes as StopIteration's value: the same either way.
    error = ValueError("a response, not an error")

    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            as_tuple = channel.unary_unary(E.UNARY, E.SERIALIZE, lambda b: (1, b"x"))
            as_error = channel.unary_unary(E.UNARY, E.SERIALIZE, lambda b: error)
            as_none = channel.unary_unary(E.UNARY, E.SERIALIZE, lambda b: None)
            plain = channel.unary_unary(E.UNARY)
            seen = []
            for _ in range(2):
                seen.append((await as_tuple(msg("t")), await as_error(msg("e")), await as_none(msg("n")),
                             await plain(b"\x0a\x01p")))
                sys.settrace(lambda *a: None)
            sys.settrace(None)
            assert seen == [((1, b"x"), error, None, b"\x0a\x01p")] * 2
            with pytest.raises(StopIteration) as e:  # the iterator itself, driven by hand
                it = as_none(msg("n")).__await__()
                while True:
                    await it.__next__()
            assert e.value.value is None

    try:
        run(main())
    finally:
        sys.settrace(None)


def test_a_unary_multicallables_call_runs_no_python_frame(py_target):
    # UnaryUnaryMultiCallable.__call__ is C once the engine is loaded
    # (pyext/aio_unary.h, AioUnaryCaller): no frame of _channel.py per
    # call, the Python function's signature and its argument errors kept.
    import inspect
    import os

    from grpc.aio import _channel

    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            call = channel.unary_unary(E.UNARY, E.SERIALIZE, E.DESERIALIZE)
            assert (await call(msg("warm"))).value == "warm"
            frames = []

            def profile(frame, event, arg):
                if event == "call":
                    frames.append((os.path.basename(frame.f_code.co_filename), frame.f_code.co_name))

            sys.setprofile(profile)
            try:
                for i in range(20):
                    assert (await call(request=msg("r%d" % i), timeout=30)).value == "r%d" % i
            finally:
                sys.setprofile(None)
            assert ("_channel.py", "__call__") not in frames, frames
            assert ("_call.py", "serialize_request") in frames  # the profile sees the call's Python
            assert str(inspect.signature(call)) == (
                "(request, *, timeout=None, metadata=None, credentials=None, wait_for_ready=None, "
                "compression=None)")
            assert _channel.UnaryUnaryMultiCallable.__call__.__name__ == "__call__"
            for bad, text in [(lambda: call(), "missing 1 required positional argument: 'request'"),
                              (lambda: call(msg("x"), 1), "takes 2 positional arguments"),
                              (lambda: call(msg("x"), deadline=1), "unexpected keyword argument 'deadline'"),
                              (lambda: call(msg("x"), request=msg("y")), "multiple values for argument")]:
                with pytest.raises(TypeError, match=text):
                    bad()
            assert channel._calls == {}

    run(main())


def test_a_unary_call_awaited_by_several_tasks_wakes_them_all(py_target):
    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            call = stub(channel).UnaryEcho(msg("sleep:50"))
            seen = []
            call.add_done_callback(seen.append)
            results = await asyncio.gather(*(asyncio.ensure_future(_await(call)) for _ in range(3)),
                                           call.code(), call.initial_metadata())
            assert [r.value for r in results[:3]] == ["sleep:50"] * 3
            assert results[3] is grpc.StatusCode.OK
            assert seen == [call] and call.done() and not channel._calls
            assert isinstance(call, grpc.aio.UnaryUnaryCall) and isinstance(call, grpc.aio.Call)
            assert repr(type(call)) == "<class 'grpc.aio._call.UnaryUnaryCall'>"

    async def _await(call):
        return await call

    run(main())


def test_a_failing_deserializer_is_logged_with_its_traceback(py_target, caplog):
    def bad(_):
        raise ValueError("cannot read it")

    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            call = channel.unary_unary(E.UNARY, E.SERIALIZE, bad)(msg("x"))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.details() == "Exception deserializing response!"
            assert await call.code() is grpc.StatusCode.INTERNAL

    with caplog.at_level(logging.ERROR):
        run(main())
    records = [r for r in caplog.records if r.getMessage() == "Exception deserializing response!"]
    assert len(records) == 1 and records[0].exc_info[0] is ValueError


def test_a_unary_call_cancelled_in_its_awaiting_task_by_a_thrown_error(py_target):
    # Only a CancelledError thrown into the awaiting task cancels the RPC;
    # another error thrown in goes on and leaves the call running.
    async def main():
        async with grpc.aio.insecure_channel(py_target) as channel:
            s = stub(channel)
            call = s.UnaryEcho(msg("sleep:100"))
            iterator = call.__await__()
            assert next(iterator) is not None  # the Wait it yields
            with pytest.raises(KeyError):
                iterator.throw(KeyError("elsewhere"))
            assert not call.done()
            assert (await call).value == "sleep:100"
            call = s.UnaryEcho(msg("sleep:20000"))
            iterator = call.__await__()
            next(iterator)
            with pytest.raises(asyncio.CancelledError):
                iterator.throw(asyncio.CancelledError())
            assert call.cancelled() and await call.code() is grpc.StatusCode.CANCELLED

    run(main())


def test_a_unary_calls_outcome_is_whole_whichever_way_it_is_read(target):
    # A plain OK call's small response is left by the engine where the loop
    # reads it without asking Go (pyext/aio_unary.h); metadata, an error's
    # details and a large response are read from the engine. Each must come
    # out whole.
    big = "b" * (64 << 10)

    async def main():
        async with grpc.aio.insecure_channel(target) as channel:
            s = stub(channel)
            call = s.UnaryEcho(msg("plain"))
            assert (await call).value == "plain"
            assert await call.details() == "" and await call.code() is grpc.StatusCode.OK
            assert await call.initial_metadata() == grpc.aio.Metadata()
            assert await call.trailing_metadata() == grpc.aio.Metadata()
            call = s.UnaryEcho(msg("status:NOT_FOUND:gone"))
            with pytest.raises(grpc.aio.AioRpcError):
                await call
            assert await call.details() == "gone" and await call.code() is grpc.StatusCode.NOT_FOUND
            call = s.UnaryEcho(msg("m"), metadata=((E.ECHO_PREFIX + "k", "v"),))
            assert (await call).value == "m"
            assert (await call.initial_metadata()).get(E.ECHO_PREFIX + "k") == "v"
            assert (await call.trailing_metadata()).get(E.TRAILER_PREFIX + "k") == "v"
            assert (await s.UnaryEcho(msg(big))).value == big

    run(main())
