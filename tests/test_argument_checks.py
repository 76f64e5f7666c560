"""Arguments of a wrong type, refused as grpcio 1.85.1 refuses them (same
exception type, and its message where it is Python's own), sync and aio;
each checked side by side with grpcio (tests pass on both, with
GRPCGO_TEST_ALLOW_GRPCIO=1).

* A call's ``compression``: anything false is none; anything else is
  looked up among the grpc.Compression values: KeyError (TypeError if
  unhashable). Ours raised TypeError.
* A call's ``credentials`` that are no credentials (``1``): AttributeError
  "'int' object has no attribute '_credentials'"; a ChannelCredentials:
  TypeError. On an aio channel made by insecure_channel any credentials
  are refused first (UsageError). Ours raised TypeError for all.
* A channel's or a server's ``compression="gzip"``: ValueError (int()).
* ``await context.send_initial_metadata(None)`` in an aio handler:
  TypeError "'NoneType' object is not iterable" (the sync server's context
  takes None). Ours took it.
"""

import asyncio
from concurrent import futures

import pytest

import grpc
from grpc import aio

from serving import generic_server

WAIT = 10
LOCAL_TCP = grpc.LocalConnectionType.LOCAL_TCP


def _echo(request, context):
    return request


def _echo_stream(request, context):
    yield request


def _count(requests, context):
    return b"%d" % len(list(requests))


def _echo_all(requests, context):
    yield from requests


HANDLERS = grpc.method_handlers_generic_handler("t", {
    "uu": grpc.unary_unary_rpc_method_handler(_echo),
    "us": grpc.unary_stream_rpc_method_handler(_echo_stream),
    "su": grpc.stream_unary_rpc_method_handler(_count),
    "ss": grpc.stream_stream_rpc_method_handler(_echo_all)})


@pytest.fixture(scope="module")
def ports():
    """(insecure port, local-credentials port) of one sync server."""
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((HANDLERS,))
    insecure = server.add_insecure_port("127.0.0.1:0")
    secure = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials(LOCAL_TCP))
    server.start()
    yield insecure, secure
    server.stop(None)


def _sync_calls(channel):
    """A call of each shape, each a function of its keyword arguments."""
    return {
        "uu": lambda **kw: channel.unary_unary("/t/uu")(b"x", timeout=WAIT, **kw),
        "uu.future": lambda **kw: channel.unary_unary("/t/uu").future(
            b"x", timeout=WAIT, **kw).result(),
        "uu.with_call": lambda **kw: channel.unary_unary("/t/uu").with_call(
            b"x", timeout=WAIT, **kw)[0],
        "us": lambda **kw: list(channel.unary_stream("/t/us")(b"x", timeout=WAIT, **kw)),
        "su": lambda **kw: channel.stream_unary("/t/su")(iter([b"x"]), timeout=WAIT, **kw),
        "ss": lambda **kw: list(channel.stream_stream("/t/ss")(iter([b"x"]), timeout=WAIT,
                                                              **kw)),
    }


_GOOD = {"uu": b"x", "uu.future": b"x", "uu.with_call": b"x", "us": [b"x"], "su": b"1",
         "ss": [b"x"]}


@pytest.mark.parametrize("secure", [False, True])
def test_sync_call_arguments(ports, secure):
    if secure:
        channel = grpc.secure_channel("127.0.0.1:%d" % ports[1],
                                      grpc.local_channel_credentials(LOCAL_TCP))
    else:
        channel = grpc.insecure_channel("127.0.0.1:%d" % ports[0])
    with channel:
        for shape, call in _sync_calls(channel).items():
            with pytest.raises(KeyError) as info:
                call(compression="gzip")
            assert info.value.args == ("gzip",), shape
            with pytest.raises(KeyError):
                call(compression=99)
            with pytest.raises(TypeError, match="unhashable"):
                call(compression=[1])
            # False is none, an int of a grpc.Compression is that one.
            assert call(compression=[]) == _GOOD[shape], shape
            assert call(compression=1) == _GOOD[shape], shape
            # Compression first, then the credentials.
            with pytest.raises(KeyError):
                call(compression="gzip", credentials=1)
            for bad, name in [(1, "int"), ("token", "str")]:
                with pytest.raises(AttributeError) as info:
                    call(credentials=bad)
                assert str(info.value) == \
                    "'%s' object has no attribute '_credentials'" % name, shape
            with pytest.raises(TypeError):
                call(credentials=grpc.local_channel_credentials(LOCAL_TCP))
            if secure:
                token = grpc.access_token_call_credentials("token")
                assert call(credentials=token) == _GOOD[shape], shape


@pytest.mark.parametrize("secure", [False, True])
def test_aio_call_arguments(ports, secure):
    async def main():
        if secure:
            channel = aio.secure_channel("127.0.0.1:%d" % ports[1],
                                         grpc.local_channel_credentials(LOCAL_TCP))
        else:
            channel = aio.insecure_channel("127.0.0.1:%d" % ports[0])
        async with channel:
            calls = {
                "uu": lambda **kw: channel.unary_unary("/t/uu")(b"x", timeout=WAIT, **kw),
                "us": lambda **kw: channel.unary_stream("/t/us")(b"x", timeout=WAIT, **kw),
                "su": lambda **kw: channel.stream_unary("/t/su")(iter([b"x"]), timeout=WAIT,
                                                                 **kw),
                "ss": lambda **kw: channel.stream_stream("/t/ss")(iter([b"x"]), timeout=WAIT,
                                                                  **kw),
            }
            for shape, call in calls.items():
                # All raised when the call is made, as grpcio's.
                with pytest.raises(KeyError) as info:
                    call(compression="gzip")
                assert info.value.args == ("gzip",), shape
                with pytest.raises(TypeError, match="unhashable"):
                    call(compression=[1])
                with pytest.raises(KeyError):
                    call(compression="gzip", credentials=1)
                made = call(compression=[])
                if shape in ("us", "ss"):
                    assert [r async for r in made] == [b"x"]
                else:
                    assert await made in (b"x", b"1")
                if not secure:
                    # Any credentials, before their type.
                    for bad in [1, grpc.local_channel_credentials(LOCAL_TCP),
                                grpc.access_token_call_credentials("token")]:
                        with pytest.raises(aio.UsageError,
                                           match="only valid on secure channels"):
                            call(credentials=bad)
                    continue
                with pytest.raises(AttributeError) as info:
                    call(credentials=1)
                assert str(info.value) == "'int' object has no attribute '_credentials'"
                with pytest.raises(TypeError):
                    call(credentials=grpc.local_channel_credentials(LOCAL_TCP))

    asyncio.run(asyncio.wait_for(main(), 60))


def test_channel_and_server_compression_of_a_wrong_type():
    with pytest.raises(ValueError):
        grpc.insecure_channel("127.0.0.1:1", compression="gzip")
    with pytest.raises(ValueError):
        grpc.server(futures.ThreadPoolExecutor(1), compression="gzip")

    async def aio_ones():
        with pytest.raises(ValueError):
            aio.server(compression="gzip")
        with pytest.raises(ValueError):
            aio.insecure_channel("127.0.0.1:1", compression="gzip")

    asyncio.run(aio_ones())


def test_send_initial_metadata_none():
    """aio handlers (async, and plain ones in the migration pool) get
    grpcio's TypeError, and can still send metadata after it; the sync
    server's context takes None, as grpcio's."""
    seen = {}

    async def async_handler(request, context):
        try:
            await context.send_initial_metadata(None)
        except TypeError as error:
            seen["async"] = str(error)
        await context.send_initial_metadata((("k", "async"),))
        return request

    def pool_handler(request, context):
        try:
            context.send_initial_metadata(None)
        except TypeError as error:
            seen["pool"] = str(error)
        context.send_initial_metadata((("k", "pool"),))
        return request

    def sync_handler(request, context):
        context.send_initial_metadata(None)
        seen["sync"] = "taken"
        return request

    async def main():
        server = aio.server(futures.ThreadPoolExecutor(2))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t", {
            "async": grpc.unary_unary_rpc_method_handler(async_handler),
            "pool": grpc.unary_unary_rpc_method_handler(pool_handler)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with aio.insecure_channel("127.0.0.1:%d" % port) as channel:
                for kind in ["async", "pool"]:
                    call = channel.unary_unary("/t/" + kind)(b"x", timeout=WAIT)
                    assert await call == b"x"
                    assert ("k", kind) in tuple(await call.initial_metadata())
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert seen == {"async": "'NoneType' object is not iterable",
                    "pool": "'NoneType' object is not iterable"}

    with generic_server("t", {"sync": grpc.unary_unary_rpc_method_handler(sync_handler)},
                        workers=2) as port:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            assert channel.unary_unary("/t/sync")(b"x", timeout=WAIT) == b"x"
    assert seen["sync"] == "taken"
