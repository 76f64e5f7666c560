"""The asyncio benchmark client: drives grpcgo.bench.Bench through grpc.aio.

Public grpc.aio API only, so the same file runs under grpcgo's venv and
under grpcio's. Prints ``IMPL {...}`` first, then one ``RESULT {json}``
line per workload:

  aio_unary    one call outstanding: calls/s, p50/p99 latency, CPU seconds
               per 10,000 calls in this process and in the server
  aio_unary64  --tasks tasks calling on one channel: calls/s, CPU
  aio_sstream  one server-streaming call of --stream-n messages (async for)
  aio_cstream  one client-streaming call of --stream-n messages (an async
               generator of requests)
  aio_bidi     --bidi-n round trips on one stream (write, then read)

    python bench/aio_client.py --target 127.0.0.1:PORT [--loop asyncio|uvloop]
        [--server-pid PID] [--expect ours|grpcio] [--workloads ...] [counts...]
"""

import argparse
import asyncio
import json
import sys
import time

import grpc
import grpc.aio

import benchproto
from client import _Cpu, _percentile


async def aio_unary(channel, args, cpu):
    call = channel.unary_unary(benchproto.UNARY)
    message = benchproto.blob(args.size)
    for _ in range(args.warmup):
        await call(message)
    n = args.unary_n
    latencies = [0] * n
    clock = time.perf_counter_ns
    cpu.start()
    start = clock()
    for i in range(n):
        t0 = clock()
        response = await call(message)
        latencies[i] = clock() - t0
    elapsed = (clock() - start) / 1e9
    result = {"calls": n, "seconds": elapsed, "calls_per_s": n / elapsed}
    cpu.stop(n, result)
    if response != message:
        raise SystemExit("aio_unary: the echo differs from the request")
    latencies.sort()
    result["p50_us"] = _percentile(latencies, 50) / 1e3
    result["p99_us"] = _percentile(latencies, 99) / 1e3
    return result


async def aio_unary64(channel, args, cpu):
    call = channel.unary_unary(benchproto.UNARY)
    message = benchproto.blob(args.size)
    tasks = max(1, args.tasks)
    n = args.unary64_n
    per_task = [n // tasks + (1 if i < n % tasks else 0) for i in range(tasks)]

    async def work(count):
        for _ in range(count):
            await call(message)

    await asyncio.gather(*(work(max(1, args.warmup // tasks)) for _ in range(tasks)))
    cpu.start()
    start = time.perf_counter()
    await asyncio.gather(*(work(c) for c in per_task))
    elapsed = time.perf_counter() - start
    result = {"calls": n, "tasks": tasks, "seconds": elapsed, "calls_per_s": n / elapsed}
    cpu.stop(n, result)
    return result


async def aio_sstream(channel, args, cpu):
    call = channel.unary_stream(benchproto.SERVER_STREAM)
    async for _ in call(benchproto.wrap(b"%d %d" % (max(1, args.warmup), args.size))):
        pass
    n = args.stream_n
    request = benchproto.wrap(b"%d %d" % (n, args.size))
    cpu.start()
    start = time.perf_counter()
    count = 0
    async for _ in call(request):
        count += 1
    elapsed = time.perf_counter() - start
    if count != n:
        raise SystemExit("aio_sstream: got %d messages, wanted %d" % (count, n))
    result = {"messages": n, "seconds": elapsed, "msgs_per_s": n / elapsed}
    cpu.stop(n, result)
    return result


async def aio_cstream(channel, args, cpu):
    call = channel.stream_unary(benchproto.CLIENT_STREAM)
    message = benchproto.blob(args.size)

    async def requests(count):
        for _ in range(count):
            yield message

    await call(requests(max(1, args.warmup)))
    n = args.stream_n
    cpu.start()
    start = time.perf_counter()
    response = await call(requests(n))
    elapsed = time.perf_counter() - start
    if benchproto.unwrap(response) != str(n).encode():
        raise SystemExit("aio_cstream: the server counted %r, wanted %d" % (response, n))
    result = {"messages": n, "seconds": elapsed, "msgs_per_s": n / elapsed}
    cpu.stop(n, result)
    return result


async def _ping_pong(multicallable, message, n):
    call = multicallable()
    start = time.perf_counter()
    for _ in range(n):
        await call.write(message)
        response = await call.read()
        if response is grpc.aio.EOF:
            raise SystemExit("aio_bidi: the stream ended early")
    elapsed = time.perf_counter() - start
    await call.done_writing()
    if await call.read() is not grpc.aio.EOF:
        raise SystemExit("aio_bidi: a response too many")
    return elapsed


async def aio_bidi(channel, args, cpu):
    multicallable = channel.stream_stream(benchproto.BIDI)
    message = benchproto.blob(args.size)
    await _ping_pong(multicallable, message, max(1, args.warmup))
    n = args.bidi_n
    elapsed = await _ping_pong(multicallable, message, n)
    return {"round_trips": n, "seconds": elapsed, "rt_per_s": n / elapsed}


WORKLOADS = {
    "aio_unary": aio_unary,
    "aio_unary64": aio_unary64,
    "aio_sstream": aio_sstream,
    "aio_cstream": aio_cstream,
    "aio_bidi": aio_bidi,
}


async def run(args, info, names):
    cpu = _Cpu(args.server_pid)
    async with grpc.aio.insecure_channel(args.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        for name in names:
            result = await WORKLOADS[name](channel, args, cpu)
            result["workload"] = name
            result["impl"] = info["impl"]
            result["loop"] = args.loop
            print("RESULT " + json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--expect", choices=("ours", "grpcio"), default=None)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--unary-n", type=int, default=10000)
    parser.add_argument("--unary64-n", type=int, default=20000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--stream-n", type=int, default=100000)
    parser.add_argument("--bidi-n", type=int, default=10000)
    args = parser.parse_args()

    info = benchproto.announce_impl(grpc, args.expect)
    names = [w for w in args.workloads.split(",") if w]
    for name in names:
        if name not in WORKLOADS:
            raise SystemExit("unknown workload %r" % name)
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run(args, info, names))
    finally:
        loop.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
