"""A/B of grpc.aio unary calls with one outstanding, per thread: bench/aio_server.py
and a client of its own in fresh processes per round, the contenders
alternating (each round starts one later in the list), both ends on the
same loop. Each round reads every thread's CPU and context switches from
/proc/PID/task/* in both processes around --n calls (after 300 warm-up
calls), so the event loop's thread ("loop") is told apart from the rest
(Go's threads and sysmon, or C-core's). Prints one line per round and the
medians, with the load average. Linux only.

    python bench/aio_ab.py --contender base=/path/a/python \\
        --contender new=/path/b/python:GOGC=off \\
        [--loop asyncio|uvloop] [--n 5000] [--rounds 6] [--workload unary|bidi]

--workload bidi counts bidi ping-pong round trips on one stream instead
(write one 16 B message, read the answer), per round trip.

A contender is NAME=PYTHON[:VAR=VALUE[,VAR=VALUE...]] (the settings apply to
its server and its client). grpcio's venv works as a contender too (public
grpc.aio API only).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def parse_contender(text):
    name, _, rest = text.partition("=")
    python, _, env = rest.partition(":")
    settings = dict(kv.split("=", 1) for kv in env.split(",") if kv)
    return name, os.path.abspath(python), settings


# -- the client (run as: aio_ab.py --client ...) ---------------------------------


def snapshot(pid):
    """{tid: (cpu s from schedstat, voluntary, involuntary switches)}, and the process's CPU s."""
    threads = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                run_ns = int(f.read().split()[0])
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                status = f.read()
        except OSError:
            continue
        vol = inv = 0
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                vol = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                inv = int(line.split()[1])
        threads[int(tid)] = (run_ns / 1e9, vol, inv)
    # The process: its threads' run time (schedstat, ns; a thread that ended
    # in between is not counted), finer than /proc/PID/stat's clock ticks.
    return threads, sum(t[0] for t in threads.values())


def per_call(before, after, pid, n):
    """us of CPU per call (process, loop thread, the rest) and switches per call."""
    loop = [0.0, 0, 0]
    rest = [0.0, 0, 0]
    for tid, now in after[0].items():
        was = before[0].get(tid, (0.0, 0, 0))
        into = loop if tid == pid else rest
        for i in range(3):
            into[i] += now[i] - was[i]
    return {"cpu_us": (after[1] - before[1]) / n * 1e6, "loop_us": loop[0] / n * 1e6,
            "loop_vol": loop[1] / n, "loop_inv": loop[2] / n, "rest_us": rest[0] / n * 1e6,
            "rest_vol": rest[1] / n, "rest_inv": rest[2] / n}


async def client(target, server_pid, n, workload="unary"):
    import grpc.aio

    import benchproto

    async with grpc.aio.insecure_channel(target) as channel:
        message = benchproto.blob(16)
        me = os.getpid()
        if workload == "bidi":
            # One stream, write one message then read its answer (aio_client's ping-pong).
            call = channel.stream_stream(benchproto.BIDI)()
            for _ in range(300):
                await call.write(message)
                await call.read()
            c0, s0 = snapshot(me), snapshot(server_pid)
            start = time.perf_counter()
            for _ in range(n):
                await call.write(message)
                await call.read()
            elapsed = time.perf_counter() - start
            c1, s1 = snapshot(me), snapshot(server_pid)
            await call.done_writing()
            if await call.read() is not grpc.aio.EOF:
                raise SystemExit("aio_ab: a response too many")
            return {"calls_per_s": n / elapsed, "client": per_call(c0, c1, me, n),
                    "server": per_call(s0, s1, server_pid, n)}
        call = channel.unary_unary(benchproto.UNARY)
        for _ in range(300):
            await call(message)
        c0, s0 = snapshot(me), snapshot(server_pid)
        start = time.perf_counter()
        for _ in range(n):
            await call(message)
        elapsed = time.perf_counter() - start
        c1, s1 = snapshot(me), snapshot(server_pid)
    return {"calls_per_s": n / elapsed, "client": per_call(c0, c1, me, n),
            "server": per_call(s0, s1, server_pid, n)}


def run_client(args):
    sys.path.insert(0, BENCH_DIR)
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(client(args.target, args.server_pid, args.n, args.workload))
    finally:
        loop.close()
    print("RESULT " + json.dumps(result), flush=True)


# -- the rounds -------------------------------------------------------------------


def one_round(python, settings, args):
    env = dict(os.environ, **settings)
    server = subprocess.Popen([python, "aio_server.py", "--loop", args.loop], cwd=BENCH_DIR, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stdout:
            if line.startswith("PORT "):
                port = line.split()[1]
                break
        if port is None:
            raise SystemExit("aio_ab: the server ended before printing its port")
        load = os.getloadavg()[0]
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--client", "--target", "127.0.0.1:" + port,
             "--server-pid", str(server.pid), "--n", str(args.n), "--loop", args.loop,
             "--workload", args.workload],
            cwd=BENCH_DIR, env=env, capture_output=True, text=True, timeout=900)
    finally:
        server.stdin.close()
        server.wait(30)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise SystemExit("aio_ab: the client failed:\n" + out.stderr[-2000:])
    result = json.loads(lines[0][7:])
    result["load"] = (load + os.getloadavg()[0]) / 2
    return result


def show(name, label, r):
    c, s = r["client"], r["server"]
    print("%-8s %s calls/s %6.0f | client %5.1f us (loop %5.1f, %.2f vol %.2f invol; rest %5.1f, %.2f vol)"
          " | server %5.1f us (loop %5.1f; rest %5.1f, %.2f vol) | load %.1f" % (
              name, label, r["calls_per_s"], c["cpu_us"], c["loop_us"], c["loop_vol"], c["loop_inv"],
              c["rest_us"], c["rest_vol"], s["cpu_us"], s["loop_us"], s["rest_us"], s["rest_vol"],
              r["load"]), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contender", action="append", type=parse_contender)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--workload", choices=("unary", "bidi"), default="unary",
                   help="unary: calls with one outstanding; bidi: round trips on one stream")
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        run_client(args)
        return
    if not args.contender:
        p.error("at least one --contender")
    results = {c[0]: [] for c in args.contender}
    for rnd in range(args.rounds):
        k = rnd % len(args.contender)
        for name, python, settings in args.contender[k:] + args.contender[:k]:
            r = one_round(python, settings, args)
            results[name].append(r)
            show(name, "r%d" % rnd, r)
    print("medians (%s %s, %d rounds of %d calls):" % (args.loop, args.workload, args.rounds, args.n))
    for name, rs in results.items():
        def med(part, key=None):
            return statistics.median(x[part] if key is None else x[part][key] for x in rs)

        show(name, "  ", {
            "calls_per_s": med("calls_per_s"), "load": med("load"),
            "client": {k: med("client", k) for k in rs[0]["client"]},
            "server": {k: med("server", k) for k in rs[0]["server"]}})
    first = args.contender[0][0]
    for name, rs in results.items():
        if name == first:
            continue
        base = results[first]

        def ratio(get):
            return statistics.median(get(b) and get(r) / get(b) for r, b in zip(rs, base))

        print("%-8s /%s, per-round medians: calls/s %.3fx, client CPU %.3fx (loop %.3fx), server CPU"
              " %.3fx (loop %.3fx)" % (
                  name, first, ratio(lambda x: x["calls_per_s"]), ratio(lambda x: x["client"]["cpu_us"]),
                  ratio(lambda x: x["client"]["loop_us"]), ratio(lambda x: x["server"]["cpu_us"]),
                  ratio(lambda x: x["server"]["loop_us"])), flush=True)


if __name__ == "__main__":
    main()
