"""The helloworld Greeter client on grpc.aio (asyncio).

Usage: python async_greeter_client.py [--port PORT] [--name NAME]

Connects to 127.0.0.1:PORT (PORT defaults to $GREETER_PORT, else 50051), makes
one unary call and one server-streaming call, and prints the replies.
"""

import argparse
import asyncio
import logging
import os

import grpc
import grpc.aio

import helloworld_pb2
import helloworld_pb2_grpc


async def run(port: int, name: str) -> None:
    target = f"127.0.0.1:{port}"
    print(f"Will try to greet {name} at {target} ...")
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        request = helloworld_pb2.HelloRequest(name=name)

        response: helloworld_pb2.HelloReply = await stub.SayHello(request, timeout=10)
        print("Greeter client received: " + response.message)

        reply: helloworld_pb2.HelloReply
        async for reply in stub.SayHelloStreamReply(request, timeout=10):
            print("Greeter client received from stream: " + reply.message)

        try:
            await stub.SayHello(request, timeout=10, metadata=(("x-reject", "1"),))
        except grpc.aio.AioRpcError as error:
            print(f"Rejected as expected: {error.code().name} {error.details()}")


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
    asyncio.run(run(args.port, args.name))


if __name__ == "__main__":
    main()
