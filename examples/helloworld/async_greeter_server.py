"""The helloworld Greeter server on grpc.aio (asyncio).

Usage: python async_greeter_server.py [--port PORT]

The port defaults to $GREETER_PORT, else 50051. Port 0 lets the kernel pick a
free one; the server prints the port it bound. It listens on loopback only.
Every handler is a coroutine or an async generator; the server answers
calls carrying the metadata key "x-reject" with PERMISSION_DENIED.
"""

import argparse
import asyncio
import logging
import os
from typing import AsyncIterator

import grpc
import grpc.aio

import helloworld_pb2
import helloworld_pb2_grpc

STREAM_REPLIES = 3

_Context = grpc.aio.ServicerContext[helloworld_pb2.HelloRequest, helloworld_pb2.HelloReply]


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    async def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: _Context
    ) -> helloworld_pb2.HelloReply:
        metadata = dict(context.invocation_metadata() or ())
        if "x-reject" in metadata:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "rejected")
        context.set_trailing_metadata((("x-peer", context.peer()),))
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")

    async def SayHelloStreamReply(
        self, request: helloworld_pb2.HelloRequest, context: _Context
    ) -> AsyncIterator[helloworld_pb2.HelloReply]:
        for i in range(STREAM_REPLIES):
            yield helloworld_pb2.HelloReply(message=f"Hello number {i}, {request.name}!")


async def serve(port: int) -> None:
    server = grpc.aio.server()
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"Server started, listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GREETER_PORT", "50051")),
        help="port to listen on, 0 for any free port (default: $GREETER_PORT or 50051)",
    )
    args = parser.parse_args()
    logging.basicConfig()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
