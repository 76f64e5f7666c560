"""grpc.aio reads in a ping-pong: the receive that takes a message arms the
next read's wait (aio_stream_recv / aio_call_recv with a next token), so
that read awaits it without calling into the engine first
(docs/ARCHITECTURE.md, "A read armed by the take before it";
GRPCGO_AIO_RECV_ARM=0 turns it off). Client and server, both event loops:
the crossings it saves, and that no message is lost, reordered or stuck
when the stream ends, is cancelled or half-closed while such a wait is
armed, when a read waits long, and when the peer switches to a burst."""

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap

import grpc
import pytest
from grpc import aio

import grpc_impl
from serving import aio_generic_server, run_loop

SERVICE = "grpcgo.testing.AioRecvArm"
WAIT = 20
ROUNDS = 200

pytestmark = pytest.mark.skipif(
    grpc_impl.on_grpcio(),
    reason="grpcgo's engine crossings")

LOOPS = ["asyncio", "uvloop"]


def method(name):
    return f"/{SERVICE}/{name}"


def run(coro, loop_kind):
    return run_loop(coro, loop_kind, WAIT * 2)


def serving(handlers):
    return aio_generic_server(SERVICE, handlers)


async def _echo(request_iterator, context):
    async for request in request_iterator:
        yield request


async def _echo_or_burst(request_iterator, context):
    # b"burst N": N responses in a row; anything else is echoed.
    async for request in request_iterator:
        if request.startswith(b"burst "):
            for i in range(int(request.split()[1])):
                yield b"b%d" % i
        else:
            yield request


@contextlib.contextmanager
def counting():
    """Counts the calls of the engine's two aio receives."""
    from grpc import _runtime

    hot = _runtime.hot()
    counts = {"aio_stream_recv": 0, "aio_call_recv": 0}
    originals = {name: getattr(hot, name) for name in counts}

    def wrap(name, original):
        def counted(*args):
            counts[name] += 1
            return original(*args)
        return counted

    for name, original in originals.items():
        setattr(hot, name, wrap(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(hot, name, original)


def _arms():
    from grpc import _runtime

    return _runtime.hot().aio_recv_arm()


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_ping_pong_reads_call_in_once_a_message(loop_kind):
    if not _arms():
        pytest.skip("GRPCGO_AIO_RECV_ARM=0")

    async def main():
        async with serving({"Echo": grpc.stream_stream_rpc_method_handler(_echo)}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(method("Echo"))(timeout=WAIT)
                for i in range(20):
                    await call.write(b"w%d" % i)
                    assert await call.read() == b"w%d" % i
                with counting() as counts:
                    for i in range(ROUNDS):
                        await call.write(b"%d" % i)
                        assert await call.read() == b"%d" % i
                await call.done_writing()
                assert await call.read() is aio.EOF
                assert await call.code() is grpc.StatusCode.OK
                return counts

    counts = run(main(), loop_kind)
    # Without the armed wait each message costs two receives at each end
    # (one that finds nothing and arms, one that takes); with it, one.
    assert counts["aio_stream_recv"] < ROUNDS * 1.3, counts
    assert counts["aio_call_recv"] < ROUNDS * 1.3, counts


def test_switch_off_reads_as_before():
    # GRPCGO_AIO_RECV_ARM=0 (read once, when the engine loads): two receives
    # a message at each end, and the same messages.
    script = textwrap.dedent("""
        import asyncio, sys
        sys.path.insert(0, %r)
        import test_aio_recv_arm as t
        from grpc import aio
        import grpc

        async def main():
            async with t.serving({"Echo": grpc.stream_stream_rpc_method_handler(t._echo)}) as port:
                async with aio.insecure_channel("127.0.0.1:%%d" %% port) as channel:
                    call = channel.stream_stream(t.method("Echo"))(timeout=t.WAIT)
                    await call.write(b"w")
                    assert await call.read() == b"w"
                    with t.counting() as counts:
                        for i in range(100):
                            await call.write(b"%%d" %% i)
                            assert await call.read() == b"%%d" %% i
                    await call.done_writing()
                    assert await call.read() is aio.EOF
                    print(t._arms(), counts["aio_stream_recv"], counts["aio_call_recv"])

        asyncio.run(main())
    """) % os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, GRPCGO_AIO_RECV_ARM="0")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=WAIT * 3)
    assert out.returncode == 0, out.stderr[-3000:]
    arms, client, server = out.stdout.split()
    assert arms == "False"
    assert int(client) >= 190 and int(server) >= 190, out.stdout


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_end_right_after_the_response(loop_kind):
    # The handler answers and returns at once: the response and the end of
    # the responses arrive together, just as the take that read the
    # response arms the next read's wait. That wait must see the end.
    async def answer_then_end(request_iterator, context):
        n = 0
        async for request in request_iterator:
            yield request
            n += 1
            if n == 3:
                return

    async def main():
        async with serving({"Three": grpc.stream_stream_rpc_method_handler(answer_then_end)}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                for _ in range(40):
                    call = channel.stream_stream(method("Three"))(timeout=WAIT)
                    for i in range(3):
                        await call.write(b"%d" % i)
                        assert await call.read() == b"%d" % i
                    assert await call.read() is aio.EOF
                    assert await call.code() is grpc.StatusCode.OK

    run(main(), loop_kind)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_half_close_while_the_server_read_is_armed(loop_kind):
    # The server's read after a ping-pong awaits an armed wait; the
    # client's half-close must end it (the handler then sends its count).
    async def count(request_iterator, context):
        n = 0
        async for request in request_iterator:
            n += 1
            yield request
        yield b"end %d" % n

    async def main():
        async with serving({"Count": grpc.stream_stream_rpc_method_handler(count)}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                for _ in range(20):
                    call = channel.stream_stream(method("Count"))(timeout=WAIT)
                    for i in range(5):
                        await call.write(b"%d" % i)
                        assert await call.read() == b"%d" % i
                    await asyncio.sleep(0.001)  # the server's next read is armed and waits
                    await call.done_writing()
                    assert await call.read() == b"end 5"
                    assert await call.read() is aio.EOF
                    assert await call.code() is grpc.StatusCode.OK

    run(main(), loop_kind)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_cancel_while_a_read_waits_armed(loop_kind):
    # A read awaiting the armed wait (client), and the handler's read
    # awaiting its own: the client's cancel ends both.
    handler_ended = []

    async def echo(request_iterator, context):
        try:
            async for request in request_iterator:
                yield request
        except asyncio.CancelledError:
            handler_ended.append("cancelled")
            raise
        finally:
            handler_ended.append(context.cancelled())

    async def main():
        async with serving({"Echo": grpc.stream_stream_rpc_method_handler(echo)}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(method("Echo"))(timeout=WAIT)
                for i in range(10):
                    await call.write(b"%d" % i)
                    assert await call.read() == b"%d" % i
                reader = asyncio.ensure_future(call.read())
                await asyncio.sleep(0.05)
                assert not reader.done()  # nothing more was sent: it waits
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(reader, WAIT)
                assert call.cancelled()
                assert await call.code() is grpc.StatusCode.CANCELLED
                for _ in range(200):
                    if handler_ended:
                        break
                    await asyncio.sleep(0.01)
                # The handler's armed read ends too (today as the end of
                # the requests, the reset closing them, before the call's
                # watch cancels the task: the same with the switch off).
                assert handler_ended

    run(main(), loop_kind)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_reads_that_wait_long_and_a_burst(loop_kind):
    # Ping-pong with the client pausing (the armed waits stay pending a
    # while at both ends), two requests in one turn, then a burst of 500
    # responses read one by one (the take stops arming: they come without
    # waiting), then ping-pong again: every message, in order.
    async def main():
        async with serving({"Echo": grpc.stream_stream_rpc_method_handler(_echo_or_burst)}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(method("Echo"))(timeout=WAIT)
                for i in range(10):
                    await call.write(b"a%d" % i)
                    await asyncio.sleep(0.005)
                    assert await call.read() == b"a%d" % i
                await call.write(b"x")
                await call.write(b"y")
                assert await call.read() == b"x"
                assert await call.read() == b"y"
                await call.write(b"burst 500")
                for i in range(500):
                    assert await call.read() == b"b%d" % i
                for i in range(20):
                    await call.write(b"c%d" % i)
                    assert await call.read() == b"c%d" % i
                await call.done_writing()
                assert await call.read() is aio.EOF
                assert await call.code() is grpc.StatusCode.OK

    run(main(), loop_kind)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_iterated_responses_after_ping_pong(loop_kind):
    # The responses read by iteration (_Responses) after reads that armed:
    # the same messages, and the end.
    async def main():
        async with serving({"Echo": grpc.stream_stream_rpc_method_handler(_echo_or_burst)}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:

                async def requests():
                    for i in range(50):
                        yield b"%d" % i
                    yield b"burst 100"

                call = channel.stream_stream(method("Echo"))(requests(), timeout=WAIT)
                got = [r async for r in call]
                assert got == [b"%d" % i for i in range(50)] + [b"b%d" % i for i in range(100)]
                assert await call.code() is grpc.StatusCode.OK

    run(main(), loop_kind)


@contextlib.contextmanager
def counting_inner_reads():
    """Counts the inner read coroutines (the client call's _read_raw, the
    server context's _recv) that a read which cannot take its message at
    once goes through."""
    from grpc.aio import _call, _server

    counts = {"_read_raw": 0, "_recv": 0}
    originals = [(_call._StreamCall, "_read_raw"), (_server._ServicerContext, "_recv")]

    def wrap(name, original):
        async def counted(self):
            counts[name] += 1
            return await original(self)
        return counted

    saved = [cls.__dict__[name] for cls, name in originals]
    for cls, name in originals:
        setattr(cls, name, wrap(name, cls.__dict__[name]))
    try:
        yield counts
    finally:
        for (cls, name), original in zip(originals, saved):
            setattr(cls, name, original)


async def _echo_parsed(request_iterator, context):
    # Requests through the iterator's deserializer, responses through the
    # serializer (below: int <-> ASCII bytes).
    async for request in request_iterator:
        yield request + 1


@pytest.mark.parametrize("loop_kind", LOOPS)
@pytest.mark.parametrize("style", ["read", "iter"])
def test_ping_pong_message_runs_no_inner_read(loop_kind, style):
    # A ping-pong message is read in the read()/iteration step itself at
    # both ends (the armed wait, then one take): no _read_raw or _recv
    # coroutine a message; the messages, their (de)serializers and the end
    # are as before.
    if not _arms():
        pytest.skip("GRPCGO_AIO_RECV_ARM=0")
    handler = grpc.stream_stream_rpc_method_handler(
        _echo_parsed, request_deserializer=lambda b: int(b.decode()),
        response_serializer=lambda n: str(n).encode())

    async def main():
        async with serving({"Echo": handler}) as port:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(
                    method("Echo"), request_serializer=lambda n: str(n).encode(),
                    response_deserializer=lambda b: int(b.decode()))(timeout=WAIT)
                responses = call.__aiter__() if style == "iter" else None

                async def next_response():
                    if responses is None:
                        return await call.read()
                    return await responses.__anext__()

                for i in range(20):
                    await call.write(i)
                    assert await next_response() == i + 1
                with counting_inner_reads() as counts:
                    for i in range(ROUNDS):
                        await call.write(i * 2)
                        assert await next_response() == i * 2 + 1
                await call.done_writing()
                if responses is None:
                    assert await call.read() is aio.EOF
                else:
                    with pytest.raises(StopAsyncIteration):
                        await responses.__anext__()
                assert await call.code() is grpc.StatusCode.OK
                return counts

    counts = run(main(), loop_kind)
    assert counts["_read_raw"] < ROUNDS * 0.2, counts
    assert counts["_recv"] < ROUNDS * 0.2, counts
