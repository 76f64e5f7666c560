"""Which ping-pong calls overlap a Go collection, and how slow they are.

Puts perf uprobes on runtime.gcStart and runtime.gcMarkTermination of an
engine built with symbols, runs bench/server.py and a ping-pong client
that notes each call's start and end (CLOCK_MONOTONIC, as perf's -k
CLOCK_MONOTONIC), then tags each call with the collection it overlapped,
at the client or at the server. The machine's load slows tagged and
untagged calls alike, so the comparison holds on a loaded machine.

    python3 bench/profile.py ...   # or any `go build` of ./pyext without -s -w
    python3 bench/gc_tail.py --python .venv/bin/python \\
        --engine-dir DIR_WITH_grpc_PACKAGE [--n 20000]

(docs/benchmarks-history.md, "Ping-pong p99".)
"""

import argparse
import array
import glob
import os
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def client(target, n, out):
    import grpc
    sys.path.insert(0, BENCH_DIR)
    import benchproto

    call = grpc.insecure_channel(target).unary_unary(benchproto.UNARY)
    msg = benchproto.blob(16)
    for _ in range(300):
        call(msg)
    ts = array.array("q", [0]) * (2 * n)
    clock = time.monotonic_ns
    for i in range(n):
        ts[2 * i] = clock()
        call(msg)
        ts[2 * i + 1] = clock()
    with open(out, "w") as f:
        for i in range(n):
            f.write("%d %d\n" % (ts[2 * i], ts[2 * i + 1]))


def intervals(path):
    """{pid: [(start, end)]}: each collection from its last gcStart to its
    mark termination."""
    out, cur = {}, {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 3:
                continue
            pid, t, ev = int(p[0]), float(p[1].rstrip(":")), p[2]
            if "gcstart" in ev:
                cur[pid] = t
            elif pid in cur:
                out.setdefault(pid, []).append((cur.pop(pid), t))
    return out


def analyze(calls, gcs, server_pid):
    t0, t1 = calls[0][0], calls[-1][1]
    during = {pid: [i for i in v if i[1] >= t0 and i[0] <= t1] for pid, v in gcs.items()}
    srv = during.get(server_pid, [])
    cli = [i for pid, v in during.items() if pid != server_pid for i in v]
    spans = sorted(1e3 * (b - a) for a, b in srv + cli) or [float("nan")]
    lat = [(b - a) * 1e6 for a, b in calls]

    def overlaps(c, ivs):
        return any(a <= c[1] and b >= c[0] for a, b in ivs)

    tags = ["server" if overlaps(c, srv) else "client" if overlaps(c, cli) else "none" for c in calls]
    p50 = statistics.median(lat)
    p99 = sorted(lat)[int(0.99 * len(lat))]
    print("%d calls in %.2f s; collections during them: server %d, client %d; span median %.2f ms"
          % (len(calls), t1 - t0, len(srv), len(cli), spans[len(spans) // 2]))
    print("all calls: p50 %.0f us, p99 %.0f us" % (p50, p99))
    for tag in ("none", "client", "server"):
        sel = [x for x, t in zip(lat, tags) if t == tag]
        if sel:
            print("  overlapping %-6s GC: %5d calls, median %.0f us, over 2x p50 %.1f%%"
                  % (tag, len(sel), statistics.median(sel), 100.0 * sum(x > 2 * p50 for x in sel) / len(sel)))
    top = sorted(range(len(lat)), key=lambda i: -lat[i])[: max(1, len(lat) // 100)]
    print("slowest 1%% (%d calls): %d overlap a collection" % (len(top), sum(tags[i] != "none" for i in top)))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    p = argparse.ArgumentParser()
    p.add_argument("--python", required=True, help="a Python whose grpc is grpcgo")
    p.add_argument("--engine-dir", required=True,
                   help="a directory holding grpc/ with an engine built with symbols (put first on PYTHONPATH)")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--out", default=os.path.join(BENCH_DIR, "..", "build", "bench", "gc-tail"))
    a = p.parse_args()
    a.python = os.path.abspath(a.python)  # the processes run in bench/
    os.makedirs(a.out, exist_ok=True)
    (lib,) = glob.glob(os.path.join(a.engine_dir, "grpc", "_engine*.so"))
    for name, sym in (("gcstart", "runtime.gcStart"), ("gcend", "runtime.gcMarkTermination")):
        subprocess.run(["perf", "probe", "-q", "-d", "probe__engine:" + name], capture_output=True)
        subprocess.run(["perf", "probe", "-q", "-x", lib, "--add", "%s=%s" % (name, sym)], check=True,
                       capture_output=True)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(a.engine_dir))
    server = subprocess.Popen([a.python, "server.py"], cwd=BENCH_DIR, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    data = os.path.join(a.out, "gc.data")
    try:
        while True:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("gc_tail: the server ended")
            if line.startswith("PORT "):
                break
        rec = subprocess.Popen(["perf", "record", "-k", "CLOCK_MONOTONIC", "-e", "probe__engine:gcstart",
                                "-e", "probe__engine:gcend", "-a", "-o", data],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        calls_path = os.path.join(a.out, "calls.txt")
        subprocess.run([a.python, os.path.abspath(__file__), "client", "127.0.0.1:" + line.split()[1],
                        str(a.n), calls_path], env=env, check=True, timeout=900)
        rec.send_signal(2)
        rec.wait(60)
    finally:
        server.stdin.close()
        server.wait(30)
        for name in ("gcstart", "gcend"):
            subprocess.run(["perf", "probe", "-q", "-d", "probe__engine:" + name], capture_output=True)
    script = subprocess.run(["perf", "script", "-i", data, "-F", "pid,time,event"], capture_output=True,
                            text=True).stdout
    gc_txt = os.path.join(a.out, "gc.txt")
    with open(gc_txt, "w") as f:
        f.write(script)
    with open(calls_path) as f:
        calls = [tuple(int(x) / 1e9 for x in line.split()) for line in f]
    analyze(calls, intervals(gc_txt), server.pid)


if __name__ == "__main__":
    main()
