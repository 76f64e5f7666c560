"""What a channel costs to open and close, and to make its first call.

Measured the same way under grpcgo and grpcio, in one process with a
local server of the same kind:

  open_close_us        grpc.insecure_channel(...) then close(): median
                       wall time per pair, microseconds
  open_close_cpu_us    process CPU time per pair, microseconds
  first_call_ms        open a channel, make one unary call (connecting
                       included), close it: median wall time, milliseconds
  first_call_cpu_ms    process CPU time per such cycle, milliseconds

Prints ``IMPL {...}`` first, then one ``RESULT {json}`` line.

    python bench/channels.py [--expect ours|grpcio] [--n 2000] [--first-n 200]
"""

import argparse
import json
import os
import statistics
import time
from concurrent import futures

import grpc

import benchproto

ECHO = "/grpcgo.bench.Channels/Echo"


def open_close(target, n):
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        grpc.insecure_channel(target).close()
        walls.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    return statistics.median(walls) * 1e6, cpu / n * 1e6


def first_call(target, n):
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        channel = grpc.insecure_channel(target)
        assert channel.unary_unary(ECHO)(b"x", timeout=30) == b"x"
        channel.close()
        walls.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    return statistics.median(walls) * 1e3, cpu / n * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", choices=("ours", "grpcio"), default=None)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--first-n", type=int, default=200)
    args = parser.parse_args()
    benchproto.announce_impl(grpc, args.expect)
    pool = futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[grpc.method_handlers_generic_handler(
        "grpcgo.bench.Channels", {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)})])
    target = "127.0.0.1:%d" % server.add_insecure_port("127.0.0.1:0")
    server.start()
    open_close(target, max(1, args.n // 10))  # warm up
    result = {"workload": "channels"}
    result["open_close_us"], result["open_close_cpu_us"] = open_close(target, args.n)
    result["first_call_ms"], result["first_call_cpu_ms"] = first_call(target, args.first_n)
    server.stop(None)
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
