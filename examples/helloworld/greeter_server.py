"""The Python implementation of the helloworld Greeter server.

Usage: python greeter_server.py [--port PORT]

The port defaults to $GREETER_PORT, else 50051. Port 0 lets the kernel pick a
free one; the server prints the port it bound. It listens on loopback only.
"""

import argparse
from concurrent import futures
import logging
import os
from typing import Iterator

import grpc

import helloworld_pb2
import helloworld_pb2_grpc

STREAM_REPLIES = 3


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: grpc.ServicerContext
    ) -> helloworld_pb2.HelloReply:
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")

    def SayHelloStreamReply(
        self, request: helloworld_pb2.HelloRequest, context: grpc.ServicerContext
    ) -> Iterator[helloworld_pb2.HelloReply]:
        for i in range(STREAM_REPLIES):
            yield helloworld_pb2.HelloReply(
                message=f"Hello number {i}, {request.name}!"
            )


def serve(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"Server started, listening on 127.0.0.1:{bound}", flush=True)
    server.wait_for_termination()


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
    serve(args.port)


if __name__ == "__main__":
    main()
