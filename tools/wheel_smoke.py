"""Smoke test for an installed grpcgo: a server and a client in one process,
all four RPC shapes over loopback, sync and grpc.aio. Used by `make check-wheel`."""

import asyncio
import importlib.metadata
import os
import sys
from concurrent import futures

import grpc

here = os.path.dirname(os.path.abspath(grpc.__file__))
assert any(name.startswith("_engine") for name in os.listdir(here)), (
    "grpc at %s is not grpcgo's package" % here
)
# The wheel is the distribution `grpcio` <grpc.__version__>+grpcgo.<ours>.
version = importlib.metadata.version("grpcio")
assert version.startswith(grpc.__version__ + "+grpcgo."), version


def _reverse(request, context):
    # Metadata comes back in order: the wheel's grpc-go has grpcgo's change.
    context.set_trailing_metadata(
        [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")])
    return request[::-1]


def _count(request, context):
    for i in range(int(request)):
        yield b"%d" % i


def _join(requests, context):
    return b"".join(requests)


def _echo(requests, context):
    for request in requests:
        yield request


handler = grpc.method_handlers_generic_handler(
    "smoke.Smoke",
    {
        "Reverse": grpc.unary_unary_rpc_method_handler(_reverse),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
        "Join": grpc.stream_unary_rpc_method_handler(_join),
        "Echo": grpc.stream_stream_rpc_method_handler(_echo),
    },
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=(handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
    sent = (("x-z", "1"), ("x-a", "2"), ("x-m", "3"), ("x-a", "4"))
    response, call = channel.unary_unary("/smoke.Smoke/Reverse").with_call(
        b"abc", timeout=10, metadata=sent)
    assert response == b"cba"
    assert tuple(call.trailing_metadata()) == sent, call.trailing_metadata()
    assert list(channel.unary_stream("/smoke.Smoke/Count")(b"3", timeout=10)) == [b"0", b"1", b"2"]
    assert channel.stream_unary("/smoke.Smoke/Join")(iter([b"a", b"b"]), timeout=10) == b"ab"
    assert list(channel.stream_stream("/smoke.Smoke/Echo")(iter([b"x", b"y"]), timeout=10)) == [b"x", b"y"]
server.stop(None).wait(10)


# grpc.aio on this interpreter: an aio server with async handlers and an aio
# client, the four shapes (the aio server once used a 3.11-only asyncio API).
async def _aio_reverse(request, context):
    return request[::-1]


async def _aio_count(request, context):
    for i in range(int(request)):
        yield b"%d" % i


async def _aio_join(requests, context):
    return b"".join([request async for request in requests])


async def _aio_echo(requests, context):
    async for request in requests:
        yield request


async def _aio_smoke():
    from grpc import aio

    aio_handler = grpc.method_handlers_generic_handler(
        "smoke.Smoke",
        {
            "Reverse": grpc.unary_unary_rpc_method_handler(_aio_reverse),
            "Count": grpc.unary_stream_rpc_method_handler(_aio_count),
            "Join": grpc.stream_unary_rpc_method_handler(_aio_join),
            "Echo": grpc.stream_stream_rpc_method_handler(_aio_echo),
        },
    )
    aio_server = aio.server(handlers=(aio_handler,))
    aio_port = aio_server.add_insecure_port("127.0.0.1:0")
    await aio_server.start()
    async with aio.insecure_channel("127.0.0.1:%d" % aio_port) as aio_channel:
        assert await aio_channel.unary_unary("/smoke.Smoke/Reverse")(b"abc", timeout=10) == b"cba"
        counted = [r async for r in aio_channel.unary_stream("/smoke.Smoke/Count")(b"3", timeout=10)]
        assert counted == [b"0", b"1", b"2"], counted

        async def requests():
            yield b"a"
            yield b"b"

        assert await aio_channel.stream_unary("/smoke.Smoke/Join")(requests(), timeout=10) == b"ab"
        echoed = [r async for r in aio_channel.stream_stream("/smoke.Smoke/Echo")(iter([b"x", b"y"]),
                                                                                  timeout=10)]
        assert echoed == [b"x", b"y"], echoed
    await aio_server.stop(None)


asyncio.run(_aio_smoke())
print("wheel smoke: OK (grpc %s from %s)" % (grpc.__version__, here))
sys.exit(0)
