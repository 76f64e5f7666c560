"""A user program that mypy --strict must accept (tests/test_typing.py):
grpc's public API as applications use it, sync and asyncio. It is only
type-checked, never run."""

from concurrent import futures
from typing import Any, Callable, Iterator, List, Optional, Tuple

import grpc
import grpc.aio
import grpc.experimental


def identity(data: bytes) -> bytes:
    return data


# -- server side ------------------------------------------------------------
def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    metadata = dict(context.invocation_metadata())
    if "reject" in metadata:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "rejected")
    context.send_initial_metadata((("k", "v"),))
    context.set_trailing_metadata((("t", b"\x00"),))
    remaining: Optional[float] = context.time_remaining()
    if remaining is not None and remaining < 0.01:
        context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
        context.set_details("too late")
    peer: str = context.peer()
    identities = context.peer_identities()
    auth = context.auth_context()
    context.set_compression(grpc.Compression.Gzip)
    context.add_callback(lambda: None)
    _ = (peer, identities, auth, context.is_active(), context.code(), context.details())
    return request


def ticks(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    while context.is_active():
        yield request


def total(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"".join(requests)


class Logging(grpc.ServerInterceptor):
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Optional[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Optional[grpc.RpcMethodHandler]:
        print(handler_call_details.method)
        return continuation(handler_call_details)


def make_server() -> Tuple[grpc.Server, int]:
    handler = grpc.method_handlers_generic_handler("t.S", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo, identity, identity),
        "Ticks": grpc.unary_stream_rpc_method_handler(ticks),
        "Total": grpc.stream_unary_rpc_method_handler(total),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler],
                         interceptors=[Logging()], options=[("grpc.so_reuseport", 0)],
                         maximum_concurrent_rpcs=10)
    port: int = server.add_insecure_port("127.0.0.1:0")
    credentials = grpc.ssl_server_credentials([(b"key", b"chain")], root_certificates=None,
                                              require_client_auth=False)
    server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


# -- client side -------------------------------------------------------------
class Stamp(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        print(client_call_details.method, client_call_details.timeout)
        return continuation(client_call_details, request)


def plugin(context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
    callback((("authorization", "Bearer " + context.method_name),), None)


def client(port: int) -> None:
    states: List[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 1)],
                               compression=grpc.Compression.Deflate) as channel:
        channel.subscribe(states.append, try_to_connect=True)
        grpc.channel_ready_future(channel).result(timeout=10)
        intercepted = grpc.intercept_channel(channel, Stamp())
        echo_call = intercepted.unary_unary("/t.S/Echo", request_serializer=identity,
                                            response_deserializer=identity)
        response: bytes = echo_call(b"x", timeout=5, metadata=[("k", "v")], wait_for_ready=True)
        response, call = echo_call.with_call(b"x")
        code: grpc.StatusCode = call.code()
        trailing = call.trailing_metadata()
        future = echo_call.future(b"x")
        future.add_done_callback(lambda f: print(f.done()))
        print(future.result(timeout=5), future.code(), code, trailing, response)
        for item in channel.unary_stream("/t.S/Ticks")(b"t", timeout=1):
            print(item)
        summed = channel.stream_unary("/t.S/Total")(iter([b"a", b"b"]))
        print(summed)
        try:
            echo_call(b"x", metadata=(("reject", "1"),))
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call):
                print(error.code(), error.details())
        channel.unsubscribe(states.append)
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=b"roots"),
        grpc.metadata_call_credentials(plugin, name="plugin"),
        grpc.access_token_call_credentials("token"),
    )
    secure = grpc.secure_channel("localhost:1", creds)
    secure.close()
    local = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
    grpc.secure_channel("unix:/tmp/x", local).close()
    grpc.secure_channel("localhost:1", grpc.experimental.insecure_channel_credentials()).close()
    print(grpc.experimental.unary_unary(b"x", f"127.0.0.1:{port}", "/t.S/Echo", insecure=True))


# -- asyncio ------------------------------------------------------------------
AioContext = grpc.aio.ServicerContext[bytes, bytes]


async def aio_echo(request: bytes, context: AioContext) -> bytes:
    if dict(context.invocation_metadata() or ()).get("reject"):
        await context.abort(grpc.StatusCode.ABORTED, "no")
    context.set_trailing_metadata((("t", "v"),))
    return request


async def aio_main() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", {
        "Echo": grpc.unary_unary_rpc_method_handler(aio_echo),
    })])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await channel.channel_ready()
        state: grpc.ChannelConnectivity = channel.get_state()
        call = channel.unary_unary("/t.S/Echo")(b"x", timeout=5)
        response: bytes = await call
        code: grpc.StatusCode = await call.code()
        print(state, response, code, await call.trailing_metadata())
        stream = channel.stream_stream("/t.S/Chat")()
        await stream.write(b"a")
        await stream.done_writing()
        async for item in stream:
            print(item)
        try:
            await channel.unary_unary("/t.S/Echo")(b"x", metadata=(("reject", "1"),))
        except grpc.aio.AioRpcError as error:
            print(error.code(), error.details())
    await server.stop(grace=1.0)
