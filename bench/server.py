"""The benchmark server: grpcgo.bench.Bench with raw-bytes generic handlers.

Uses only grpc's public API, so the same file runs under grpcgo's venv and
under grpcio's. Prints ``IMPL {...}`` (which grpc it imported), then
``PORT <n>`` once serving on 127.0.0.1, then serves until its standard input
closes, it gets SIGTERM, or --max-seconds pass.

    python bench/server.py [--expect ours|grpcio] [--workers 16] [--max-message N]
"""

import argparse
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

import benchproto


def _unary(request, context):
    return request


def _server_stream(request, context):
    count, size = (int(x) for x in benchproto.unwrap(request).split())
    message = benchproto.blob(size)
    for _ in range(count):
        yield message


def _client_stream(request_iterator, context):
    count = 0
    for _ in request_iterator:
        count += 1
    return benchproto.wrap(str(count).encode())


def _bidi(request_iterator, context):
    for request in request_iterator:
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", choices=("ours", "grpcio"), default=None)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--max-message", type=int, default=None,
                        help="grpc.max_send/receive_message_length (-1: unlimited)")
    args = parser.parse_args()

    benchproto.announce_impl(grpc, args.expect)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        handlers=(_Handlers(),),
        options=benchproto.max_message_options(args.max_message),
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait(args.max_seconds)
    server.stop(0).wait(5)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
