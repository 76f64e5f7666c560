"""The gRPC interop TestService server on grpc.aio (the asyncio API), public
API only.

    python interop/aio_server.py --port=N [--use_tls] [--host=127.0.0.1]
        [--tls_cert_file=PEM --tls_key_file=PEM]

The asyncio twin of server.py: the same flags, service, output and exit
status, with the handlers written the way asyncio code serves gRPC
(coroutines, async generators, the request stream as an async iterator,
``await context.abort``). It runs on whichever `grpc` the interpreter
imports (grpcgo or grpcio). SIGTERM or SIGINT stops it (1 s grace).
"""

import asyncio
import logging
import os
import signal
import sys

import grpc
import grpc.aio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import (_CODES, INITIAL_METADATA_KEY, TRAILING_METADATA_KEY,  # noqa: E402
                    _payload, parse_args)
from src.proto.grpc.testing import empty_pb2  # noqa: E402
from src.proto.grpc.testing import messages_pb2  # noqa: E402
from src.proto.grpc.testing import test_pb2_grpc  # noqa: E402

import tls_testdata  # noqa: E402


async def _echo_metadata(context):
    initial, trailing = None, None
    for key, value in context.invocation_metadata():
        if key == INITIAL_METADATA_KEY and initial is None:
            initial = value
        elif key == TRAILING_METADATA_KEY and trailing is None:
            trailing = value
    if initial is not None:
        await context.send_initial_metadata(((INITIAL_METADATA_KEY, initial),))
    if trailing is not None:
        context.set_trailing_metadata(((TRAILING_METADATA_KEY, trailing),))


async def _maybe_abort(request, context):
    if request.HasField("response_status") and request.response_status.code:
        status = request.response_status
        await context.abort(_CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message)


async def _responses(request):
    for parameters in request.response_parameters:
        if parameters.interval_us > 0:
            # The handler's task is cancelled if the client goes away.
            await asyncio.sleep(parameters.interval_us / 1e6)
        yield messages_pb2.StreamingOutputCallResponse(
            payload=_payload(request.response_type, parameters.size))


class TestService(test_pb2_grpc.TestServiceServicer):
    """grpc.testing.TestService per the interop test descriptions, async."""

    async def EmptyCall(self, request, context):
        return empty_pb2.Empty()

    async def UnaryCall(self, request, context):
        await _echo_metadata(context)
        await _maybe_abort(request, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return messages_pb2.SimpleResponse(payload=_payload(request.response_type,
                                                            request.response_size))

    async def CacheableUnaryCall(self, request, context):
        return await self.UnaryCall(request, context)

    async def StreamingOutputCall(self, request, context):
        await _echo_metadata(context)
        async for response in _responses(request):
            yield response
        await _maybe_abort(request, context)

    async def StreamingInputCall(self, request_iterator, context):
        size = 0
        async for request in request_iterator:
            size += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=size)

    async def FullDuplexCall(self, request_iterator, context):
        # The reader/writer way: read() until EOF, write() each response.
        await _echo_metadata(context)
        while True:
            request = await context.read()
            if request is grpc.aio.EOF:
                return
            await _maybe_abort(request, context)
            async for response in _responses(request):
                await context.write(response)

    async def HalfDuplexCall(self, request_iterator, context):
        await _echo_metadata(context)
        requests = [request async for request in request_iterator]
        for request in requests:
            await _maybe_abort(request, context)
            async for response in _responses(request):
                yield response


async def serve(args):
    server = grpc.aio.server()
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"{host}:{args.port}"
    if args.use_tls:
        cert = args.tls_cert_file or tls_testdata.path("server1.pem")
        key = args.tls_key_file or tls_testdata.path("server1.key")
        with open(key, "rb") as f:
            private_key = f.read()
        with open(cert, "rb") as f:
            certificate_chain = f.read()
        port = server.add_secure_port(
            address, grpc.ssl_server_credentials(((private_key, certificate_chain),)))
    else:
        port = server.add_insecure_port(address)
    if not port:
        raise RuntimeError(f"could not bind {address}")
    await server.start()
    return server, port


async def amain(args):
    try:
        server, port = await serve(args)
    except Exception as error:  # noqa: BLE001 - report why, exit non-zero
        print(f"interop aio server failed to start: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"Server listening on {args.host}:{port}"
          f" ({'TLS' if args.use_tls else 'plaintext'}, grpc.aio, grpc {grpc.__version__}"
          f" from {os.path.dirname(grpc.__file__)})", flush=True)
    await stop.wait()
    await server.stop(1)
    return 0


def main(argv=None):
    logging.basicConfig()
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
