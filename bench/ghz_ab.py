"""A/B of servers under ghz (`-c 16 --connections 1`, Unary, 16 B, as
`make bench` runs it): fresh server per contender per round, contenders
alternating (each round starts one later in the list), medians.

    python bench/ghz_ab.py --ghz build/bin/ghz \\
        --contender base=/path/a/python --contender new=/path/b/python:VAR=1 \\
        [--contender go=GOBENCH] [--n 20000] [--c 16] [--rounds 4]

A contender is NAME=PYTHON[:VAR=VALUE[,VAR=VALUE...]] (the settings apply to
its server), or NAME=GOBENCH for a gobench server (its path ends in
"gobench"). Per run: calls/s, ghz's p50 and p99 latency, server CPU us per call (all threads; and its
Python threads apart, from /proc/PID/task/TID/schedstat), server context
switches per call (voluntary + involuntary over its threads), ghz's own CPU
per call, and the 1-minute load average before the run.
"""

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import benchproto  # noqa: E402
from floors import Proc, task_ns, split_ns  # noqa: E402


def switches(pid):
    n = 0
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/status" % (base, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parse_contender(text):
    name, _, rest = text.partition("=")
    path, _, env = rest.partition(":")
    settings = dict(kv.split("=", 1) for kv in env.split(",") if kv)
    return name, os.path.abspath(path), settings


def one_run(args, path, settings):
    env = dict(os.environ, **settings)
    go = os.path.basename(path).startswith("gobench")
    argv = [path, "server"] if go else [path, os.path.join(BENCH_DIR, "floors.py"), "serve"]
    saved = dict(os.environ)
    os.environ.update(settings)  # Proc inherits the environment
    try:
        srv = Proc(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        data = base64.b64encode(benchproto.unwrap(benchproto.blob(16))).decode()
        base = [args.ghz, "--insecure", "--proto", os.path.join(BENCH_DIR, "bench.proto"),
                "--call", "%s.Unary" % benchproto.SERVICE, "-d", json.dumps({"data": data}),
                "--connections", "1", "-c", str(args.c), "--timeout", "20s", "--format", "json"]
        subprocess.run(base + ["-n", "1000", srv.target], capture_output=True, timeout=120)
        pytids = set() if go else srv.python_tids()
        load = os.getloadavg()[0]
        t0, w0, g0 = task_ns(srv.pid), switches(srv.pid), children_cpu()
        out = subprocess.run(base + ["-n", str(args.n), srv.target], capture_output=True,
                             text=True, timeout=300)
        g1, w1, t1 = children_cpu(), switches(srv.pid), task_ns(srv.pid)
        if not go:  # the pool may start threads during the run
            pytids |= srv.python_tids()
    finally:
        srv.stop()
    rep = json.loads(out.stdout)
    ok = rep.get("statusCodeDistribution", {}).get("OK", 0)
    if ok != args.n:
        raise SystemExit("ghz_ab: %d of %d OK: %s" % (ok, args.n, rep.get("errorDistribution")))
    py, other = split_ns(t0, t1, pytids)
    n = args.n
    lat = {d["percentage"]: d["latency"] / 1e3 for d in rep.get("latencyDistribution") or ()}
    return {"calls_per_s": rep["rps"], "p50_us": lat.get(50, 0.0), "p99_us": lat.get(99, 0.0),
            "cpu_us": (py + other) / 1e3 / n, "py_us": py / 1e3 / n,
            "go_us": other / 1e3 / n, "cs": (w1 - w0) / n, "ghz_us": (g1 - g0) * 1e6 / n,
            "load": load}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ghz", required=True)
    p.add_argument("--contender", action="append", required=True)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--c", type=int, default=16)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    args.ghz = os.path.abspath(args.ghz)
    contenders = [parse_contender(c) for c in args.contender]
    rows = {name: [] for name, _, _ in contenders}
    keys = ("calls_per_s", "p50_us", "p99_us", "cpu_us", "py_us", "go_us", "cs", "ghz_us", "load")
    for r in range(args.rounds):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for name, path, settings in order:
            res = one_run(args, path, settings)
            rows[name].append(res)
            print("round %d %-10s " % (r, name) + " ".join(
                "%s=%.1f" % (k, res[k]) for k in keys), flush=True)
    print("\nmedians (%d rounds, n=%d, c=%d):" % (args.rounds, args.n, args.c))
    first = contenders[0][0]
    for name, _, _ in contenders:
        m = {k: statistics.median(x[k] for x in rows[name]) for k in keys}
        ratio = statistics.median(a["calls_per_s"] / b["calls_per_s"]
                                  for a, b in zip(rows[name], rows[first]))
        cpur = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(rows[name], rows[first]))
        print("%-10s " % name + " ".join("%s=%.1f" % (k, m[k]) for k in keys)
              + "  rate/%s=%.3f cpu/%s=%.3f" % (first, ratio, first, cpur))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
