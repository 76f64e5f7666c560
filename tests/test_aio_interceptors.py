"""grpc.aio client interceptors of the four kinds, with grpcio's semantics:
a chain run in order, continuation returning the call below, interceptors
that change the call details, answer with a response themselves, or
replace the response stream with their own async iterator; the returned
call object's methods (code, metadata, cancel, done callbacks)."""

import asyncio

import pytest

import grpc
import grpc.aio

import echo_service as E
from echo_service import msg

BOUND = 60


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, BOUND)

    return asyncio.run(bounded())


@pytest.fixture
def target(py_echo_port):
    return f"127.0.0.1:{py_echo_port}"


class Recording(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,
                grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    """Adds x-echo-<name> metadata and records the order it ran in."""

    def __init__(self, name, log):
        self.name = name
        self.log = log

    def _details(self, details):
        metadata = grpc.aio.Metadata.from_tuple(tuple(details.metadata or ()))
        metadata.add("x-echo-" + self.name, "1")
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,
                                          details.credentials, details.wait_for_ready)

    async def intercept_unary_unary(self, continuation, details, request):
        self.log.append((self.name, "uu", details.method))
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation, details, request):
        self.log.append((self.name, "us", details.method))
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation, details, request_iterator):
        self.log.append((self.name, "su", details.method))
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        self.log.append((self.name, "ss", details.method))
        return await continuation(self._details(details), request_iterator)


def test_chain_runs_in_order_for_every_kind(target):
    async def main():
        log = []
        interceptors = [Recording("a", log), Recording("b", log)]
        async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
            s = E.EchoStub(channel)
            call = s.UnaryEcho(msg("u"))
            assert isinstance(call, grpc.aio.InterceptedUnaryUnaryCall)
            assert (await call).value == "u"
            initial = await call.initial_metadata()
            assert initial["x-echo-a"] == "1" and initial["x-echo-b"] == "1"
            assert (await call.trailing_metadata())["x-trailer-b"] == "1"
            assert await call.code() is grpc.StatusCode.OK
            assert call.done() and not call.cancelled()

            assert [m.value async for m in s.ServerStream(msg("2:s"))] == ["s-0", "s-1"]
            assert (await s.ClientStream(iter([msg("c1"), msg("c2")]))).value == "c1,c2"
            assert [m.value async for m in s.BidiStream(iter([msg("b")]))] == ["b"]
        kinds = [(name, kind) for name, kind, _ in log]
        assert kinds == [("a", "uu"), ("b", "uu"), ("a", "us"), ("b", "us"),
                         ("a", "su"), ("b", "su"), ("a", "ss"), ("b", "ss")]
        assert log[0][2] == E.UNARY.encode()  # bytes, as grpcio gives it

    run(main())


def test_only_matching_kinds_intercept(target):
    class OnlyUnary(grpc.aio.UnaryUnaryClientInterceptor):
        def __init__(self):
            self.calls = 0

        async def intercept_unary_unary(self, continuation, details, request):
            self.calls += 1
            return await continuation(details, request)

    async def main():
        only = OnlyUnary()
        async with grpc.aio.insecure_channel(target, interceptors=[only]) as channel:
            s = E.EchoStub(channel)
            await s.UnaryEcho(msg("x"))
            assert [m.value async for m in s.ServerStream(msg("1:y"))] == ["y-0"]
        assert only.calls == 1

    run(main())


def test_interceptor_answers_with_a_response(target):
    class Cached(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):
            return E.msg("cached")

    async def main():
        async with grpc.aio.insecure_channel(target, interceptors=[Cached()]) as channel:
            call = E.EchoStub(channel).UnaryEcho(msg("x"))
            assert (await call).value == "cached"
            assert await call.code() is grpc.StatusCode.OK
            assert call.done()

    run(main())


def test_interceptor_sees_the_response_and_errors(target):
    class Inspect(grpc.aio.UnaryUnaryClientInterceptor):
        def __init__(self):
            self.seen = []

        async def intercept_unary_unary(self, continuation, details, request):
            call = await continuation(details, request)
            try:
                self.seen.append((await call).value)
            except grpc.aio.AioRpcError as error:
                self.seen.append(error.code())
            return call

    async def main():
        inspect = Inspect()
        async with grpc.aio.insecure_channel(target, interceptors=[inspect]) as channel:
            s = E.EchoStub(channel)
            assert (await s.UnaryEcho(msg("ok"))).value == "ok"
            call = s.UnaryEcho(msg("status:NOT_FOUND:no"))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            assert await call.code() is grpc.StatusCode.NOT_FOUND
            assert await call.details() == "no"
        assert inspect.seen == ["ok", grpc.StatusCode.NOT_FOUND]

    run(main())


def test_interceptor_raising_an_rpc_error(target):
    class Deny(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):
            raise grpc.aio.AioRpcError(grpc.StatusCode.PERMISSION_DENIED, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), "denied")

    async def main():
        async with grpc.aio.insecure_channel(target, interceptors=[Deny()]) as channel:
            call = E.EchoStub(channel).UnaryEcho(msg("x"))
            with pytest.raises(grpc.aio.AioRpcError):
                await call
            assert await call.code() is grpc.StatusCode.PERMISSION_DENIED
            assert await call.details() == "denied"
            assert call.done()

    run(main())


def test_stream_interceptor_replaces_the_responses(target):
    class Upper(grpc.aio.UnaryStreamClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
        async def _upper(self, call):
            async for m in call:
                yield E.msg(m.value.upper())

        async def intercept_unary_stream(self, continuation, details, request):
            return self._upper(await continuation(details, request))

        async def intercept_stream_stream(self, continuation, details, request_iterator):
            return self._upper(await continuation(details, request_iterator))

    async def main():
        async with grpc.aio.insecure_channel(target, interceptors=[Upper()]) as channel:
            s = E.EchoStub(channel)
            call = s.ServerStream(msg("2:a"))
            assert [m.value async for m in call] == ["A-0", "A-1"]
            assert await call.code() is grpc.StatusCode.OK
            call = s.BidiStream(iter([msg("q")]))
            assert [m.value async for m in call] == ["Q"]

    run(main())


def test_intercepted_stream_calls_read_and_write(target):
    async def main():
        log = []
        async with grpc.aio.insecure_channel(target, interceptors=[Recording("w", log)]) as channel:
            s = E.EchoStub(channel)
            call = s.BidiStream()
            await call.write(msg("1"))
            assert (await call.read()).value == "1"
            await call.write(msg("2"))
            assert (await call.read()).value == "2"
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            assert await call.code() is grpc.StatusCode.OK
            with pytest.raises(asyncio.InvalidStateError):
                await call.write(msg("late"))

            call = s.ClientStream()
            await call.write(msg("x"))
            await call.write(msg("y"))
            await call.done_writing()
            assert (await call).value == "x,y"

            call = s.ClientStream(iter([msg("z")]))
            with pytest.raises(grpc.aio.UsageError):
                await call.write(msg("no"))
            assert (await call).value == "z"

            call = s.ServerStream(msg("2:r"))
            assert (await call.read()).value == "r-0"
            assert (await call.read()).value == "r-1"
            assert await call.read() is grpc.aio.EOF

    run(main())


def test_intercepted_call_cancel_and_callbacks(target):
    class Slow(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):
            await asyncio.sleep(0.05)
            return await continuation(details, request)

    async def main():
        async with grpc.aio.insecure_channel(target, interceptors=[Slow()]) as channel:
            s = E.EchoStub(channel)
            # Cancelled while the interceptor still runs.
            call = s.UnaryEcho(msg("x"))
            seen = []
            call.add_done_callback(seen.append)
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert call.cancelled() and call.done()
            assert await call.code() is grpc.StatusCode.CANCELLED
            await asyncio.sleep(0)
            assert seen == [call]

            # Cancelled once the RPC runs.
            call = s.UnaryEcho(msg("sleep:20000"))
            seen = []
            call.add_done_callback(seen.append)
            await asyncio.sleep(0.2)
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert call.cancelled()
            await asyncio.sleep(0)
            assert seen == [call]

            call = s.UnaryEcho(msg("t"), timeout=30)
            await call
            assert call.time_remaining() is not None

    run(main())


# -- write() through the interceptors' request iterator ---------------------------


def test_the_write_slot_passes_on_the_room_a_cancelled_writer_was_given():
    """write()'s hand-off (grpc.aio._interceptor._Slot) with two writers
    waiting for room: the first is woken by the reader, then cancelled
    before it runs. It puts nothing, and the second writer gets the room
    (it waited for good: the wake-up went to the cancelled one). One that
    stops waiting because the call ended puts nothing either."""
    from grpc.aio._interceptor import _Slot

    async def main():
        slot = _Slot(asyncio.get_running_loop())
        await slot.put("a")
        first = asyncio.ensure_future(slot.put("b"))
        second = asyncio.ensure_future(slot.put("c"))
        await asyncio.sleep(0)
        assert not first.done() and not second.done()
        assert await slot.get() == "a"  # wakes the first, which has not run yet
        first.cancel()
        await asyncio.wait_for(second, 5)
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await slot.get() == "c"  # "b" was not put, nor anything twice
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slot.get(), 0.05)

        await slot.put("d")
        ended = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(slot.put("e", ended))
        await asyncio.sleep(0)
        ended.set_result(None)
        assert await asyncio.wait_for(waiting, 5) is False
        assert await slot.get() == "d"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slot.get(), 0.05)

    run(main())


class _Passing(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(details, request_iterator)


def test_a_write_that_timed_out_is_not_sent():
    """An intercepted stream-unary call written to until write() waits for
    room (the server reads nothing yet); a write() cancelled there (a
    wait_for timeout) has written nothing: the server gets every request
    but that one, in order, as grpcio 1.85.1's does. Ours queued it in a
    task of its own that went on after the write() was cancelled, so it
    was sent all the same (twice for a caller that wrote it again)."""
    size = 1 << 16

    async def main():
        go = asyncio.Event()

        async def collect(requests, context):
            await go.wait()
            return b",".join([r[:8].rstrip(b".") async for r in requests])

        async def release(request, context):
            go.set()
            return b""

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t", {
            "collect": grpc.stream_unary_rpc_method_handler(collect),
            "release": grpc.unary_unary_rpc_method_handler(release)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        target = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(target, interceptors=[_Passing()]) as channel, \
                    grpc.aio.insecure_channel(target) as plain:
                call = channel.stream_unary("/t/collect")()
                timed_out = None
                for i in range(5000):  # ~330 MiB at most; a few MiB fill the window
                    request = (b"%d" % i).ljust(8, b".") + b"x" * size
                    try:
                        await asyncio.wait_for(call.write(request), 0.5)
                    except asyncio.TimeoutError:
                        timed_out = i
                        break
                assert timed_out is not None, "no write ever waited"
                await plain.unary_unary("/t/release")(b"")
                await call.write(b"%d" % (timed_out + 1))
                await call.done_writing()
                got = (await call).split(b",")
                assert got == [b"%d" % i for i in range(timed_out)] + [b"%d" % (timed_out + 1)]
        finally:
            await server.stop(None)

    run(main())
