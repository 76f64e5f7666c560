"""The benchmark client: drives grpcgo.bench.Bench with raw bytes.

Uses only grpc's public API, so the same file runs under grpcgo's venv and
under grpcio's. Prints ``IMPL {...}`` first, then one ``RESULT {json}`` line
per workload, in the order asked:

  unary    ping-pong, one call outstanding: calls/s, p50/p99 latency, CPU
           seconds per 10,000 calls in this process and in the server
  unary8   unary calls from --threads threads on one channel: calls/s, CPU
  sstream  one server-streaming call of --stream-n messages: msgs/s
  cstream  one client-streaming call of --stream-n messages: msgs/s
  bidi     --bidi-n round trips on one bidirectional stream: rt/s
  big      --big-n unary calls, --big-size request and response: MiB/s
           (request + response bytes), CPU seconds per 10,000 calls
  load     --load-n unary calls from --threads threads (drives the server
           for the RSS measurement): calls/s

    python bench/client.py --target 127.0.0.1:PORT [--server-pid PID]
        [--expect ours|grpcio] [--workloads unary,unary8,...] [counts...]
        [--max-message N]   (grpc.max_send/receive_message_length; -1: unlimited)
"""

import argparse
import json
import queue
import resource
import sys
import threading
import time

import grpc

import benchproto

MIB = benchproto.MIB


def _cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Cpu:
    """CPU seconds used by this process and the server between start and stop."""

    def __init__(self, server_pid):
        self._pid = server_pid

    def start(self):
        self._c0 = _cpu_self()
        self._s0 = benchproto.proc_cpu_seconds(self._pid) if self._pid else None

    def stop(self, calls, result):
        client = _cpu_self() - self._c0
        result["client_cpu_s_per_10k"] = client * 10000.0 / calls
        if self._pid:
            server = benchproto.proc_cpu_seconds(self._pid) - self._s0
            result["server_cpu_s_per_10k"] = server * 10000.0 / calls


def _percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-p * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def unary(channel, args, cpu):
    call = channel.unary_unary(benchproto.UNARY)
    message = benchproto.blob(args.size)
    for _ in range(args.warmup):
        call(message)
    n = args.unary_n
    latencies = [0] * n
    clock = time.perf_counter_ns
    cpu.start()
    start = clock()
    for i in range(n):
        t0 = clock()
        response = call(message)
        latencies[i] = clock() - t0
    elapsed = (clock() - start) / 1e9
    result = {"calls": n, "seconds": elapsed, "calls_per_s": n / elapsed}
    cpu.stop(n, result)
    if response != message:
        raise SystemExit("unary: the echo differs from the request")
    latencies.sort()
    result["p50_us"] = _percentile(latencies, 50) / 1e3
    result["p90_us"] = _percentile(latencies, 90) / 1e3
    result["p99_us"] = _percentile(latencies, 99) / 1e3
    result["p999_us"] = _percentile(latencies, 99.9) / 1e3
    # The tail as a share: calls slower than twice the median.
    slow = 2 * _percentile(latencies, 50)
    result["over_2x_p50"] = sum(1 for x in latencies if x > slow) / len(latencies)
    return result


def _threaded_unary(channel, args, n, cpu):
    call = channel.unary_unary(benchproto.UNARY)
    message = benchproto.blob(args.size)
    threads = max(1, args.threads)
    per_thread = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    warm = max(1, args.warmup // threads)
    barrier = threading.Barrier(threads + 1)
    errors = []

    def work(count):
        try:
            for _ in range(warm):
                call(message)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        barrier.wait()
        try:
            for _ in range(count):
                call(message)
        except Exception as error:
            errors.append(error)

    workers = [threading.Thread(target=work, args=(c,), daemon=True) for c in per_thread]
    for w in workers:
        w.start()
    barrier.wait()
    if cpu is not None:
        cpu.start()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit("threaded unary failed: %r" % (errors[0],))
    result = {"calls": n, "threads": threads, "seconds": elapsed, "calls_per_s": n / elapsed}
    if cpu is not None:
        cpu.stop(n, result)
    return result


def unary8(channel, args, cpu):
    return _threaded_unary(channel, args, args.unary8_n, cpu)


def load(channel, args, cpu):
    return _threaded_unary(channel, args, args.load_n, None)


def sstream(channel, args, cpu):
    call = channel.unary_stream(benchproto.SERVER_STREAM)
    warm = benchproto.wrap(b"%d %d" % (max(1, args.warmup), args.size))
    for _ in call(warm):
        pass
    n = args.stream_n
    request = benchproto.wrap(b"%d %d" % (n, args.size))
    cpu.start()
    start = time.perf_counter()
    count = 0
    for _ in call(request):
        count += 1
    elapsed = time.perf_counter() - start
    if count != n:
        raise SystemExit("sstream: got %d messages, wanted %d" % (count, n))
    result = {"messages": n, "seconds": elapsed, "msgs_per_s": n / elapsed}
    cpu.stop(n, result)
    return result


def cstream(channel, args, cpu):
    call = channel.stream_unary(benchproto.CLIENT_STREAM)
    message = benchproto.blob(args.size)

    def requests(count):
        for _ in range(count):
            yield message

    call(requests(max(1, args.warmup)))
    n = args.stream_n
    cpu.start()
    start = time.perf_counter()
    response = call(requests(n))
    elapsed = time.perf_counter() - start
    if benchproto.unwrap(response) != str(n).encode():
        raise SystemExit("cstream: the server counted %r, wanted %d" % (response, n))
    result = {"messages": n, "seconds": elapsed, "msgs_per_s": n / elapsed}
    cpu.stop(n, result)
    return result


def _ping_pong(call, message, n):
    """n round trips on one stream; returns the seconds they took."""
    outbox = queue.SimpleQueue()

    def requests():
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    start = time.perf_counter()
    outbox.put(message)
    responses = call(requests())
    count = 0
    elapsed = None
    for _ in responses:
        count += 1
        if count == n:
            elapsed = time.perf_counter() - start
            outbox.put(None)
        else:
            outbox.put(message)
    if count != n:
        raise SystemExit("bidi: got %d responses, wanted %d" % (count, n))
    return elapsed


def bidi(channel, args, cpu):
    call = channel.stream_stream(benchproto.BIDI)
    message = benchproto.blob(args.size)
    _ping_pong(call, message, max(1, args.warmup))
    n = args.bidi_n
    elapsed = _ping_pong(call, message, n)
    return {"round_trips": n, "seconds": elapsed, "rt_per_s": n / elapsed}


def big(channel, args, cpu):
    call = channel.unary_unary(benchproto.UNARY)
    message = benchproto.blob(args.big_size)
    for _ in range(2):
        call(message)
    n = args.big_n
    cpu.start()
    start = time.perf_counter()
    for _ in range(n):
        response = call(message)
    elapsed = time.perf_counter() - start
    if len(response) != len(message):
        raise SystemExit("big: the echo differs from the request")
    moved = 2.0 * n * len(message) / MIB
    result = {"calls": n, "bytes": len(message), "seconds": elapsed, "mib_per_s": moved / elapsed}
    cpu.stop(n, result)
    return result


WORKLOADS = {
    "unary": unary,
    "unary8": unary8,
    "sstream": sstream,
    "cstream": cstream,
    "bidi": bidi,
    "big": big,
    "load": load,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--expect", choices=("ours", "grpcio"), default=None)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--workloads", default="unary,unary8,sstream,cstream,bidi,big")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--unary-n", type=int, default=10000)
    parser.add_argument("--unary8-n", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--stream-n", type=int, default=100000)
    parser.add_argument("--bidi-n", type=int, default=10000)
    parser.add_argument("--big-n", type=int, default=100)
    parser.add_argument("--big-size", type=int, default=MIB)
    parser.add_argument("--load-n", type=int, default=100000)
    parser.add_argument("--max-message", type=int, default=None,
                        help="grpc.max_send/receive_message_length (-1: unlimited)")
    args = parser.parse_args()

    info = benchproto.announce_impl(grpc, args.expect)
    names = [w for w in args.workloads.split(",") if w]
    for name in names:
        if name not in WORKLOADS:
            raise SystemExit("unknown workload %r" % name)
    cpu = _Cpu(args.server_pid)
    options = benchproto.max_message_options(args.max_message)
    with grpc.insecure_channel(args.target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        for name in names:
            result = WORKLOADS[name](channel, args, cpu)
            result["workload"] = name
            result["impl"] = info["impl"]
            print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
