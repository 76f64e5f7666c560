"""grpc.aio's stream iterators in C (issue 12; docs/ARCHITECTURE.md, "The
stream iterators are C"): the server's request iterator (hot.AioRequests)
and the client's response iterator (hot.AioResponses) hand out a message
already at hand with no Python frame, and still share it with read(),
stop at an abort or a cancel, deserialize each message, and hand out
messages in the order their awaitables are awaited. For the request
iterator the client is grpcgo's sync channel on another thread, sending
every request at once so that they arrive in batches."""

import asyncio
import collections
import glob
import os
import sys

import grpc
import pytest
from grpc import aio

from serving import WAIT, aio_generic_server, run_loop

N = 2000

# The frame counts and the client's failing deserializer are grpcgo's own
# (grpcio's aio client returns None for a response it cannot deserialize:
# docs/ARCHITECTURE.md); the rest passes on grpcio 1.85.1 too.
IS_GRPCGO = bool(
    glob.glob(os.path.join(os.path.dirname(os.path.abspath(grpc.__file__)), "_engine*.so"))
)
grpcgo_only = pytest.mark.skipif(not IS_GRPCGO, reason="grpcgo's own")


def _requests(n):
    return [b"r%d" % i for i in range(n)]


def _serve(handler, loop_kind, client, deserializer=None):
    """Runs client(channel) on another thread against handler, served as a
    stream-unary method on a loop of loop_kind; client's result."""
    out = {}

    async def main():
        loop = asyncio.get_running_loop()
        method = grpc.stream_unary_rpc_method_handler(handler, request_deserializer=deserializer)
        async with aio_generic_server("reqs.R", {"M": method}) as port:
            with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
                out["result"] = await loop.run_in_executor(None, client, channel.stream_unary("/reqs.R/M"))

    run_loop(main(), loop_kind, 60)
    return out["result"]


@grpcgo_only
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_batched_request_runs_no_python_frame(loop_kind):
    counts = collections.Counter()

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            counts[(os.path.basename(code.co_filename), code.co_name)] += 1

    async def handler(request_iterator, context):
        await asyncio.sleep(0.3)  # the client's requests queue up meanwhile
        got = []
        sys.setprofile(profile)  # this (the loop's) thread only
        try:
            async for request in request_iterator:
                got.append(request)
        finally:
            sys.setprofile(None)
        return b"ok" if got == _requests(N) else b"wrong: %d" % len(got)

    assert _serve(handler, loop_kind, lambda m: m(iter(_requests(N)), timeout=WAIT)) == b"ok"
    ours = sum(n for (path, _), n in counts.items() if path == "_server.py")
    # A step in Python per batch taken (up to 256 requests each) and for
    # the end, not per request (the old __anext__ was one a request).
    assert ours < N / 10, counts.most_common(8)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_reads_and_iteration_share_the_batch(loop_kind):
    async def handler(request_iterator, context):
        await asyncio.sleep(0.3)
        got = [await context.read()]  # takes a batch, hands out its first
        async for request in request_iterator:
            got.append(request)
            if len(got) == 10:
                break
        got.append(await context.read())  # the batch's next, not a new take
        got.extend([r async for r in request_iterator])
        assert await context.read() is aio.EOF
        return b"ok" if got == _requests(N) else b"wrong: %r" % got[:12]

    assert _serve(handler, loop_kind, lambda m: m(iter(_requests(N)), timeout=WAIT)) == b"ok"


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_awaitables_held_at_once_take_requests_in_the_order_awaited(loop_kind):
    # As grpcio's __anext__ coroutines: a request is taken when awaited.
    async def handler(request_iterator, context):
        await asyncio.sleep(0.3)
        got = [await request_iterator.__anext__()]
        first = request_iterator.__anext__()
        second = request_iterator.__anext__()
        got.append(await second)
        got.append(await first)
        if sys.version_info >= (3, 10):
            got.append(await anext(request_iterator))
        got.extend([r async for r in request_iterator])
        return b"ok" if got == _requests(N) else b"wrong: %r" % got[:6]

    assert _serve(handler, loop_kind, lambda m: m(iter(_requests(N)), timeout=WAIT)) == b"ok"


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_iteration_after_an_abort_raises_it(loop_kind):
    seen = []

    async def handler(request_iterator, context):
        await asyncio.sleep(0.3)
        await request_iterator.__anext__()  # a batch is taken: more are at hand
        try:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no more")
        except aio.AbortError:
            pass
        try:
            seen.append(await request_iterator.__anext__())
        except aio.AbortError as e:
            seen.append(e)
            raise

    def client(multicallable):
        with pytest.raises(grpc.RpcError) as info:
            multicallable(iter(_requests(N)), timeout=WAIT)
        return info.value

    error = _serve(handler, loop_kind, client)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "no more"
    assert len(seen) == 1 and isinstance(seen[0], aio.AbortError), seen


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_each_request_is_deserialized_and_a_failure_ends_the_call(loop_kind):
    def deserializer(data):
        if data == b"r700":
            raise ValueError("cannot parse r700")
        return (data,)  # a tuple: the awaitable's value is not its args

    async def handler(request_iterator, context):
        await asyncio.sleep(0.3)
        got = []
        try:
            async for request in request_iterator:
                got.append(request)
        except ValueError:
            assert got == [(r,) for r in _requests(700)]
            raise

    def client(multicallable):
        with pytest.raises(grpc.RpcError) as info:
            multicallable(iter(_requests(N)), timeout=WAIT)
        return info.value

    error = _serve(handler, loop_kind, client, deserializer=deserializer)
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert error.details() == "Unexpected <class 'ValueError'>: cannot parse r700"


# ---- the client's response iterator -----------------------------------------


def _responses(loop_kind, body, n=N, deserializer=None):
    """Runs body(call) against a server streaming n responses; its result."""
    out = {}

    async def stream(request, context):
        for i in range(n):
            yield b"p%d" % i

    async def main():
        method = grpc.unary_stream_rpc_method_handler(stream)
        async with aio_generic_server("resps.R", {"S": method}) as port:
            async with aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                call = channel.unary_stream("/resps.R/S", response_deserializer=deserializer)(b"")
                out["result"] = await body(call)

    run_loop(main(), loop_kind, 60)
    return out["result"]


async def _buffered(call, want=2):
    """Waits until the call holds at least want responses received but not
    read (grpcgo's buffer; grpcio has none to look at: just a pause)."""
    for _ in range(400):
        await asyncio.sleep(0.005)
        if len(getattr(call, "_buffer", ())) >= want:
            break


@grpcgo_only
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_buffered_response_runs_no_python_frame(loop_kind):
    counts = collections.Counter()

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            counts[(os.path.basename(code.co_filename), code.co_name)] += 1

    async def body(call):
        got = []
        sys.setprofile(profile)
        try:
            async for response in call:
                got.append(response)
        finally:
            sys.setprofile(None)
        return got

    assert _responses(loop_kind, body) == [b"p%d" % i for i in range(N)]
    ours = sum(n for (path, _), n in counts.items() if path == "_call.py")
    # Python per take (up to 256 responses each) and for the end, not per
    # response (the old __anext__ was one a response).
    assert ours < N / 10, counts.most_common(8)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_response_awaitables_take_in_the_order_awaited(loop_kind):
    async def body(call):
        it = call.__aiter__()
        got = [await it.__anext__()]
        await _buffered(call)
        first, second = it.__anext__(), it.__anext__()
        got.append(await second)
        got.append(await first)
        got.extend([r async for r in call])
        return got

    assert _responses(loop_kind, body) == [b"p%d" % i for i in range(N)]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_no_buffered_response_after_a_cancel(loop_kind):
    async def body(call):
        it = call.__aiter__()
        got = [await it.__anext__()]
        await _buffered(call)
        call.cancel()
        try:
            got.append(await it.__anext__())
        except asyncio.CancelledError:
            got.append("cancelled")
        return got, await call.code()

    got, code = _responses(loop_kind, body)
    assert got == [b"p0", "cancelled"]
    assert code is grpc.StatusCode.CANCELLED


@grpcgo_only
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_each_response_is_deserialized_and_a_failure_ends_the_call(loop_kind):
    def deserializer(data):
        if data == b"p700":
            raise ValueError("cannot parse p700")
        return (data,)

    async def body(call):
        got = []
        with pytest.raises(aio.AioRpcError) as info:
            async for response in call:
                got.append(response)
        return got, info.value.code()

    got, code = _responses(loop_kind, body, deserializer=deserializer)
    assert got == [(b"p%d" % i,) for i in range(700)]
    assert code is grpc.StatusCode.INTERNAL
