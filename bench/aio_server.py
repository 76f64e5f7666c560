"""The asyncio benchmark server: grpcgo.bench.Bench on grpc.aio.server with
async raw-bytes generic handlers.

Public API only, so it runs under grpcgo's venv and under grpcio's. Same
protocol as server.py: prints ``IMPL {...}``, then ``PORT <n>`` once
serving on 127.0.0.1, then serves until its standard input closes, it gets
SIGTERM, or --max-seconds pass.

    python bench/aio_server.py [--expect ours|grpcio] [--loop asyncio|uvloop]
"""

import argparse
import asyncio
import os
import signal
import sys
import threading

import grpc
import grpc.aio

import benchproto


async def _unary(request, context):
    return request


async def _server_stream(request, context):
    count, size = (int(x) for x in benchproto.unwrap(request).split())
    message = benchproto.blob(size)
    for _ in range(count):
        yield message


async def _client_stream(request_iterator, context):
    count = 0
    async for _ in request_iterator:
        count += 1
    return benchproto.wrap(str(count).encode())


async def _bidi(request_iterator, context):
    async for request in request_iterator:
        yield request


class _Handlers(grpc.GenericRpcHandler):
    def __init__(self):
        self._methods = {
            benchproto.UNARY: grpc.unary_unary_rpc_method_handler(_unary),
            benchproto.SERVER_STREAM: grpc.unary_stream_rpc_method_handler(_server_stream),
            benchproto.CLIENT_STREAM: grpc.stream_unary_rpc_method_handler(_client_stream),
            benchproto.BIDI: grpc.stream_stream_rpc_method_handler(_bidi),
        }

    def service(self, handler_call_details):
        return self._methods.get(handler_call_details.method)


async def serve(args):
    server = grpc.aio.server(handlers=(_Handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print("PORT %d" % port, flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(done.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        await asyncio.wait_for(done.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    await server.stop(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", choices=("ours", "grpcio"), default=None)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args()

    benchproto.announce_impl(grpc, args.expect)
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve(args))
    finally:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
