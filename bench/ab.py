"""A/B of installs or environment settings: bench/server.py + bench/client.py
in fresh processes per round, the contenders alternating (each round
starts one later in the list), medians and per-round ratios against the
first contender. For a loaded machine: read CPU per call next to the rates.

    python bench/ab.py --contender base=/path/a/python \\
        --contender gcoff=/path/a/python:GOGC=off \\
        --contender grpcio=/path/grpcio-venv/python \\
        [--workloads unary] [--n 10000] [--rounds 6] [--max-message -1]
        [--aio asyncio|uvloop]

--aio runs bench/aio_server.py and bench/aio_client.py on that event loop
instead (workloads aio_unary, aio_unary64, aio_sstream, aio_cstream,
aio_bidi).

A contender is NAME=PYTHON[:VAR=VALUE[,VAR=VALUE...]]: the environment
settings apply to its server and its client. A PYTHON named gobench
(build/bin/gobench) runs grpc-go's own pair (`gobench server`, `gobench
client`) instead, for the ratio to grpc-go<->grpc-go in the same rounds. --max-message sets both
message limits at both ends (as `make bench`'s 1 MiB row alone does).

--pin apart runs the server on CPU 1 and the client on CPU 0, --pin
together both on CPU 0 (sched_setaffinity, inherited by every thread):
where the two processes sit decides what a large message costs on this VM
(docs/benchmarks-history.md, "The 1 MiB row, ninth stop"). Go sizes
GOMAXPROCS from the CPUs a process may use, so a pinned Go engine runs with
one P unless the contender sets GOMAXPROCS.
"""

import argparse
import json
import os
import statistics
import subprocess

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def parse_contender(text):
    name, _, rest = text.partition("=")
    python, _, env = rest.partition(":")
    settings = dict(kv.split("=", 1) for kv in env.split(",") if kv)
    return name, os.path.abspath(python), settings


PIN = {"apart": ({1}, {0}), "together": ({0}, {0})}


def _pinned(cpus):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def one_round(python, settings, args):
    env = dict(os.environ, **settings)
    server_cpus, client_cpus = PIN.get(args.pin, (None, None))
    limits = [] if args.max_message is None else ["--max-message", str(args.max_message)]
    gobench = os.path.basename(python) == "gobench"
    server_argv = ["aio_server.py", "--loop", args.aio] if args.aio else ["server.py"] + limits
    if gobench:
        server_argv = ["server"]
    server = subprocess.Popen([python] + server_argv, cwd=BENCH_DIR, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              preexec_fn=_pinned(server_cpus))
    try:
        while True:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("ab: the server ended before printing its port")
            if line.startswith("PORT "):
                break
        n = str(args.n)
        common = ["--target", "127.0.0.1:" + line.split()[1], "--server-pid", str(server.pid),
                  "--workloads", args.workloads, "--unary-n", n, "--bidi-n", n,
                  "--stream-n", n, "--warmup", str(args.warmup)]
        if gobench:
            argv = [python, "client", "--unary8-n", n, "--big-n", n] + common
        elif args.aio:
            argv = [python, "aio_client.py", "--loop", args.aio, "--unary64-n", n] + common
        else:
            argv = [python, "client.py", "--unary8-n", n, "--big-n", n] + common + limits
        out = subprocess.run(
            argv,
            cwd=BENCH_DIR, env=env, capture_output=True, text=True, timeout=900,
            preexec_fn=_pinned(client_cpus))
    finally:
        server.stdin.close()
        server.wait(30)
    results = [json.loads(x[7:]) for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not results:
        raise SystemExit("ab: the client failed:\n" + out.stderr[-2000:])
    return results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contender", action="append", required=True, type=parse_contender)
    p.add_argument("--workloads", default="unary")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--max-message", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--aio", choices=("asyncio", "uvloop"), default=None)
    p.add_argument("--pin", choices=("apart", "together"), default=None,
                   help="server and client on different CPUs (1, 0) or both on CPU 0")
    args = p.parse_args()
    names = [c[0] for c in args.contender]
    res = {name: [] for name in names}
    for rnd in range(args.rounds):
        k = rnd % len(names)
        for name, python, settings in args.contender[k:] + args.contender[:k]:
            rows = one_round(python, settings, args)
            res[name].append(rows)
            print("round %d %-10s %s" % (rnd, name, "; ".join(
                "%s %s" % (r["workload"], json.dumps({a: round(b, 3) for a, b in r.items()
                                                      if isinstance(b, float)})) for r in rows)),
                  flush=True)
    print("\nload average now %.1f; medians, and the median of per-round ratios to %s:"
          % (os.getloadavg()[0], names[0]))
    first = res[names[0]]
    for i, w in enumerate(first[0]):
        keys = [a for a, b in w.items() if isinstance(b, float)]
        for name in names:
            rows = [r[i] for r in res[name]]
            cells = []
            for key in keys:
                if any(key not in r for r in rows):
                    continue  # gobench reports fewer figures
                m = statistics.median(r[key] for r in rows)
                ratios = [r[key] / f[i][key] for r, f in zip(rows, first) if f[i][key]]
                cells.append("%s %.3g (%.3fx)" % (key, m, statistics.median(ratios) if ratios else float("nan")))
            print("%-8s %-10s %s" % (w["workload"], name, ", ".join(cells)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
