"""grpc.aio where it once differed from grpcio 1.85.1: each case here was
observed with grpcio 1.85.1 (a differential script run once with grpcio's
venv and once with ours) and failed on grpcgo before its fix. Where grpcio's
behaviour is plainly a bug, the test pins the right behaviour instead and
says so (docs/ARCHITECTURE.md, "What grpcio code expects beyond the API").

Each test runs an aio server with raw-bytes handlers in this process, on
loopback."""

import asyncio

import pytest

import grpc
import grpc.aio

BOUND = 60  # seconds: only a hang reaches it


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, BOUND)

    return asyncio.run(bounded())


async def _serve(unary=None, unary_stream=None, stream_stream=None, stream_unary=None):
    """An aio server on 127.0.0.1 serving /t/<name> for the given handlers;
    (server, target)."""
    handlers = {}
    for kinds, make in ((unary, grpc.unary_unary_rpc_method_handler),
                        (unary_stream, grpc.unary_stream_rpc_method_handler),
                        (stream_stream, grpc.stream_stream_rpc_method_handler),
                        (stream_unary, grpc.stream_unary_rpc_method_handler)):
        for name, behavior in (kinds or {}).items():
            handlers[name] = make(behavior)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _echo(request, context):
    return request


async def _echo_stream(requests, context):
    async for request in requests:
        yield request


# -- call credentials on a channel without security ---------------------------

@pytest.mark.parametrize("kind", ["access_token", "plugin", "composite"])
def test_call_credentials_on_insecure_channel_are_a_usage_error(kind):
    """grpcio refuses them when the call is made (UsageError), for every
    shape; it does not start the RPC (grpcgo once started it and ended it
    with UNAUTHENTICATED)."""
    def plugin(context, callback):
        callback((("x-auth", "1"),), None)

    credentials = {
        "access_token": grpc.access_token_call_credentials("token"),
        "plugin": grpc.metadata_call_credentials(plugin),
        "composite": grpc.composite_call_credentials(
            grpc.access_token_call_credentials("a"), grpc.access_token_call_credentials("b")),
    }[kind]
    message = "Call credentials are only valid on secure channels"

    async def main():
        server, target = await _serve(unary={"echo": _echo},
                                      stream_stream={"bidi": _echo_stream},
                                      unary_stream={"us": _echo_stream},
                                      stream_unary={"su": _echo})
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.UsageError, match=message):
                channel.unary_unary("/t/echo")(b"x", credentials=credentials)
            with pytest.raises(grpc.aio.UsageError, match=message):
                channel.unary_stream("/t/us")(b"x", credentials=credentials)
            with pytest.raises(grpc.aio.UsageError, match=message):
                channel.stream_unary("/t/su")(credentials=credentials)
            with pytest.raises(grpc.aio.UsageError, match=message):
                channel.stream_stream("/t/bidi")(credentials=credentials)
            # The channel still works.
            assert await channel.unary_unary("/t/echo")(b"after") == b"after"
        await server.stop(None)

    run(main())


def test_call_credentials_on_local_credentials_channel_are_sent():
    """A channel with channel credentials (local credentials here) takes
    call credentials, as in grpcio."""
    seen = []

    async def auth(request, context):
        seen.append(dict(context.invocation_metadata()).get("authorization"))
        return b"ok"

    async def main():
        server, target = await _serve(unary={"auth": auth})
        credentials = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(), grpc.access_token_call_credentials("tok"))
        async with grpc.aio.secure_channel(target, credentials) as channel:
            assert await channel.unary_unary("/t/auth")(b"") == b"ok"
        await server.stop(None)

    run(main())
    assert seen == ["Bearer tok"]


# -- a task awaiting a unary call is cancelled --------------------------------

async def _forever(request, context):
    await asyncio.Event().wait()


def test_cancelling_the_task_awaiting_a_unary_call_reports_cancelled_at_once():
    """grpcio's call_test.test_cancel_unary_unary_in_task: code() asked right
    after the awaiting task was cancelled is CANCELLED (grpcgo's code() once
    returned from a status it had not learned, an AttributeError)."""
    async def main():
        server, target = await _serve(unary={"forever": _forever})
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary("/t/forever")(b"")
            started = asyncio.Event()

            async def waiter():
                started.set()
                await call

            task = asyncio.get_running_loop().create_task(waiter())
            await started.wait()
            task.cancel()
            assert await call.code() is grpc.StatusCode.CANCELLED
            assert await call.details() == "Locally cancelled by application!"
            assert call.cancelled() and call.done()
            with pytest.raises(asyncio.CancelledError):
                await task
        await server.stop(None)

    run(main())


def test_code_awaited_beside_a_cancelled_awaiter_is_not_cancelled_itself():
    """Another task waiting on code() while the task awaiting the call is
    cancelled gets the status, not a CancelledError of its own."""
    async def main():
        server, target = await _serve(unary={"forever": _forever})
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary("/t/forever")(b"")
            loop = asyncio.get_running_loop()
            code_task = loop.create_task(call.code())
            task = loop.create_task(_await(call))
            await asyncio.sleep(0.05)
            task.cancel()
            assert await code_task is grpc.StatusCode.CANCELLED
            with pytest.raises(asyncio.CancelledError):
                await task
        await server.stop(None)

    run(main())


async def _await(call):
    return await call
