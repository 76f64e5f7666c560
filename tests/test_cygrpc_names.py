"""grpc._cython.cygrpc: the names of grpcio's Cython module that programs
import (grpc.aio's exceptions, EOF, the constant classes) are there, the
same objects grpc.aio uses, and importing them loads no engine.

Real code does `from grpc._cython.cygrpc import AbortError` (to catch an
abort), `EOF`, `ChannelArgKey`, `_Metadatum`; grpcio's own aio tests assert
`grpc._cython.cygrpc.UsageError`. All but the grpcgo-only checks pass on
grpcio 1.85.1 (GRPCGO_TEST_ALLOW_GRPCIO=1).
"""

import asyncio
import subprocess
import sys
import textwrap

import grpc
import grpc._cython.cygrpc as cygrpc
import pytest
from grpc import aio

import grpc_impl
from serving import aio_generic_server, run_loop

grpcgo_only = pytest.mark.skipif(grpc_impl.on_grpcio(), reason="grpcgo's own behaviour")

SERVICE = "grpcgo.testing.Cygrpc"
WAIT = 20


def test_aio_names_are_cygrpcs():
    for name in ("BaseError", "UsageError", "AbortError", "InternalError", "EOF",
                 "init_grpc_aio", "shutdown_grpc_aio"):
        assert getattr(aio, name) is getattr(cygrpc, name), name
    for name in ("UsageError", "AbortError", "InternalError", "ExecuteBatchError"):
        assert issubclass(getattr(cygrpc, name), cygrpc.BaseError), name
    assert issubclass(cygrpc.ExecuteBatchError, cygrpc.InternalError)
    assert issubclass(cygrpc.BaseError, Exception)
    assert repr(cygrpc.EOF) == "<grpc.aio.EOF>" and not cygrpc.EOF


def test_constants_have_grpcios_values():
    assert cygrpc.ChannelArgKey.max_receive_message_length == b"grpc.max_receive_message_length"
    assert cygrpc.ChannelArgKey.primary_user_agent_string == b"grpc.primary_user_agent"
    assert cygrpc.ChannelArgKey.ssl_target_name_override == b"grpc.ssl_target_name_override"
    # grpc.StatusCode and grpc.ChannelConnectivity carry C-core's numbers.
    for code in grpc.StatusCode:
        assert getattr(cygrpc.StatusCode, code.name.lower()) == code.value[0], code
    for state in grpc.ChannelConnectivity:
        assert getattr(cygrpc.ConnectivityState, state.name.lower()) == state.value[0], state
    assert (cygrpc.CompressionAlgorithm.none, cygrpc.CompressionAlgorithm.deflate,
            cygrpc.CompressionAlgorithm.gzip) == (0, 1, 2)
    assert cygrpc.compression_algorithm_name(cygrpc.CompressionAlgorithm.gzip) == b"gzip"
    assert cygrpc.GRPC_COMPRESSION_REQUEST_ALGORITHM_MD_KEY == "grpc-internal-encoding-request"
    metadatum = cygrpc._Metadatum("k", "v")
    assert (metadatum.key, metadatum.value) == ("k", "v") and tuple(metadatum) == ("k", "v")


@grpcgo_only
def test_what_grpcgo_has_no_counterpart_for_says_so():
    with pytest.raises(AttributeError, match="grpc-go"):
        cygrpc.CompletionQueue
    with pytest.raises(ImportError):
        from grpc._cython.cygrpc import Channel  # noqa: F401
    with pytest.raises(ValueError, match="unknown compression algorithm"):
        cygrpc.compression_algorithm_name(7)  # grpcio returns stray bytes


@grpcgo_only
def test_importing_it_loads_no_engine():
    code = textwrap.dedent("""
        import sys
        import grpc._cython.cygrpc
        from grpc._cython.cygrpc import AbortError, EOF, ChannelArgKey
        print(sorted(m for m in sys.modules if m.startswith("grpc._engine") or m == "grpc._hot"))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


async def _echo_stream(request_iterator, context):
    count = 0
    async for _ in request_iterator:
        count += 1
    return b"%d" % count


_caught = []


async def _aborts(request, context):
    try:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
    except cygrpc.AbortError as e:
        # A handler that catches it by grpcio's name, cleans up, re-raises.
        _caught.append(e)
        raise


class _PassThrough(aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(details, request_iterator)


@pytest.mark.parametrize("loop_kind", ("asyncio", "uvloop"))
def test_misuse_and_abort_raise_the_cygrpc_classes(loop_kind):
    methods = {
        "Count": grpc.stream_unary_rpc_method_handler(_echo_stream),
        "Abort": grpc.unary_unary_rpc_method_handler(_aborts),
    }

    async def main():
        async with aio_generic_server(SERVICE, methods) as port:
            async with aio.insecure_channel("127.0.0.1:%d" % port,
                                            interceptors=[_PassThrough()]) as channel:
                count = channel.stream_unary("/%s/Count" % SERVICE)

                async def requests():
                    for _ in range(3):
                        yield b"x"

                # grpcio's test_intercepts_prohibit_mixing_style, in short.
                call = count(requests())
                with pytest.raises(cygrpc.UsageError):
                    await call.write(b"x")
                with pytest.raises(cygrpc.UsageError):
                    await call.done_writing()
                assert await asyncio.wait_for(call, WAIT) == b"3"

                abort = channel.unary_unary("/%s/Abort" % SERVICE)
                with pytest.raises(aio.AioRpcError) as raised:
                    await asyncio.wait_for(abort(b""), WAIT)
                assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert raised.value.details() == "no"

    _caught.clear()
    run_loop(main(), loop_kind, 60)
    assert len(_caught) == 1 and isinstance(_caught[0], aio.AbortError)
