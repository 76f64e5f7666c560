"""The Python implementation of the helloworld Greeter client.

Usage: python greeter_client.py [--port PORT] [--name NAME]

Connects to 127.0.0.1:PORT (PORT defaults to $GREETER_PORT, else 50051), makes
one unary call and one server-streaming call, and prints the replies.
"""

import argparse
import logging
import os

import grpc

import helloworld_pb2
import helloworld_pb2_grpc


def run(port: int, name: str) -> None:
    target = f"127.0.0.1:{port}"
    print(f"Will try to greet {name} at {target} ...")
    with grpc.insecure_channel(target) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        request = helloworld_pb2.HelloRequest(name=name)

        response: helloworld_pb2.HelloReply = stub.SayHello(request, timeout=10)
        print("Greeter client received: " + response.message)

        for reply in stub.SayHelloStreamReply(request, timeout=10):
            print("Greeter client received from stream: " + reply.message)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GREETER_PORT", "50051")),
        help="server port on 127.0.0.1 (default: $GREETER_PORT or 50051)",
    )
    parser.add_argument("--name", default="you", help="name to greet")
    args = parser.parse_args()
    logging.basicConfig()
    run(args.port, args.name)


if __name__ == "__main__":
    main()
