"""grpc.aio's server-side request iterator (issue 12; docs/ARCHITECTURE.md,
"Request iterators"): a request of the batch taken last comes from C
(hot.AioRequests) with no Python frame, and the iterator still shares its
batch with context.read(), stops at an abort, deserializes each request,
and hands out requests in the order its awaitables are awaited. The
client is grpcgo's sync channel on another thread, sending every request
at once so that they arrive in batches."""

import asyncio
import collections
import os
import sys

import grpc
import pytest
from grpc import aio

from serving import WAIT, aio_generic_server, run_loop

N = 2000


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
