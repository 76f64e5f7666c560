"""Floors: what issue 15's open targets ask, against what any binding with
Python at both ends can reach (docs/BENCHMARKS.md, "Floors").

Measures, in one run, contenders alternating round by round:

  ghz       ghz -c 16 --connections 1 (the issue's setting) against grpcio's
            server, ours, grpc-go's own server with its defaults, and
            grpc-go's server with the settings grpcgo's engine uses (4 MiB /
            16 MiB windows, 16 stream workers): calls/s, server CPU per call.
  pingpong  one call outstanding, 16 B, and
  threads   8 threads on one channel: grpcio<->grpcio, ours<->ours,
            grpc-go<->grpc-go, and grpc-go with the hand-offs a Python
            binding cannot avoid and no Python (the calling goroutine locked
            to its OS thread, as a Python thread calling in is; the server
            answering on a pool of goroutines locked to their threads, as
            grpc.server's thread pool is). For the Python pairs, the CPU of
            each end's Python threads (the caller, the server's pool and
            dispatcher threads) apart from the engine's own threads
            (/proc/PID/task/TID/schedstat, ns).
  bidi      ping-pong on one stream: the same pairs (the locked grpc-go
            client is not modelled: gobench's bidi client is plain).

    python bench/floors.py --ours-python P --grpcio-python P --gobench P --ghz P
        [--rounds 3] [--only ghz,pingpong,threads,bidi] [--json out.json]
    make bench-floors

Internal modes (run by the above): `floors.py serve` (bench/server.py's
service, answering "tids" on stdin with its Python threads' ids) and
`floors.py client` (bench/client.py's workloads with per-thread CPU).
"""

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import benchproto  # noqa: E402


# --- per-thread CPU ------------------------------------------------------------

def task_ns(pid):
    """{tid: CPU ns} of every thread of pid (schedstat's first field)."""
    out = {}
    base = "/proc/%d/task" % pid
    for name in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, name)) as f:
                out[int(name)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def split_ns(before, after, python_tids):
    """(Python threads' ns, other threads' ns) between two task_ns
    snapshots; a thread that started in between counts from 0."""
    py = other = 0
    for tid, ns in after.items():
        d = ns - before.get(tid, 0)
        if tid in python_tids:
            py += d
        else:
            other += d
    return py, other


# --- serve ---------------------------------------------------------------------

def serve(argv):
    import grpc
    from concurrent import futures
    import server as bench_server

    p = argparse.ArgumentParser(prog="floors.py serve")
    p.add_argument("--expect", default=None)
    p.add_argument("--workers", type=int, default=16)
    a = p.parse_args(argv)
    benchproto.announce_impl(grpc, a.expect)
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=a.workers),
                    handlers=(bench_server._Handlers(),))
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    print("PORT %d" % port, flush=True)
    for line in sys.stdin:
        if line.strip() == "tids":
            print("TIDS " + json.dumps([t.native_id for t in threading.enumerate()]), flush=True)
    s.stop(0).wait(5)
    sys.stdout.flush()
    os._exit(0)


# --- client --------------------------------------------------------------------

class ThreadCpu:
    """bench/client.py's cpu object: between start and stop, this
    process's CPU (rusage) split into its Python threads and the rest, and
    the server's threads (task_ns snapshots, split later by the server's
    own list of its Python threads)."""

    def __init__(self, server_pid):
        self.server_pid = server_pid

    def _pytids(self):
        return {t.native_id for t in threading.enumerate()}

    def start(self):
        self.py0 = self._pytids()
        self.s0 = task_ns(self.server_pid)
        self.t0 = task_ns(os.getpid())
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.r0 = r.ru_utime + r.ru_stime

    def stop(self, calls, result):
        r = resource.getrusage(resource.RUSAGE_SELF)
        total = (r.ru_utime + r.ru_stime - self.r0) * 1e9
        t1 = task_ns(os.getpid())
        s1 = task_ns(self.server_pid)
        pytids = self.py0 | self._pytids()
        # Threads that ended in between (bench workers) are gone from
        # /proc: their CPU is in rusage, and they are Python's.
        _, other = split_ns(self.t0, t1, pytids)
        result["client_cpu_us"] = total / 1e3 / calls
        result["client_other_cpu_us"] = other / 1e3 / calls
        result["client_py_cpu_us"] = (total - other) / 1e3 / calls
        result["server_before"] = self.s0
        result["server_after"] = s1


def client(argv):
    import grpc
    import client as bench_client

    p = argparse.ArgumentParser(prog="floors.py client")
    p.add_argument("--target", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--workload", choices=("unary", "unary8", "bidi"), required=True)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--warmup", type=int, default=200)
    a = p.parse_args(argv)
    args = argparse.Namespace(size=16, warmup=a.warmup, unary_n=a.n, unary8_n=a.n,
                              threads=a.threads, bidi_n=a.n)
    cpu = ThreadCpu(a.server_pid)
    with grpc.insecure_channel(a.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        if a.workload == "bidi":
            call = channel.stream_stream(benchproto.BIDI)
            message = benchproto.blob(16)
            bench_client._ping_pong(call, message, a.warmup)
            result = {}
            cpu.start()
            elapsed = bench_client._ping_pong(call, message, a.n)
            result.update(seconds=elapsed, calls_per_s=a.n / elapsed)
            cpu.stop(a.n, result)
        else:
            result = bench_client.WORKLOADS[a.workload](channel, args, cpu)
    print("RESULT " + json.dumps(result), flush=True)


# --- the run -------------------------------------------------------------------

class Proc:
    """A server: started, its port read, stopped by closing stdin."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, cwd=BENCH_DIR, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            line = self.p.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("floors: server %r did not start" % (argv,))
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                break
        self.pid = self.p.pid
        self.target = "127.0.0.1:%d" % self.port

    def python_tids(self):
        self.p.stdin.write("tids\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                return set()
            if line.startswith("TIDS "):
                return set(json.loads(line[5:]))

    def stop(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, 9)
            self.p.wait()


def run_client(argv, timeout=600):
    out = subprocess.run(argv, cwd=BENCH_DIR, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit("floors: client %r failed:\n%s" % (argv, out.stderr[-2000:]))


GO_ENGINE = ["-window", "4194304", "-workers", "16"]


def server_argv(args, kind):
    if kind == "go":
        return [args.gobench, "server"]
    if kind == "go-engine":
        return [args.gobench, "server"] + GO_ENGINE
    if kind == "go-pool":
        return [args.gobench, "server", "-pool", "16"] + GO_ENGINE
    return [args.python[kind], os.path.join(BENCH_DIR, "floors.py"), "serve", "--expect", kind]


def ghz_round(args, kind):
    srv = Proc(server_argv(args, kind))
    try:
        data = base64.b64encode(benchproto.unwrap(benchproto.blob(16))).decode()
        base = [args.ghz, "--insecure", "--proto", os.path.join(BENCH_DIR, "bench.proto"),
                "--call", "%s.Unary" % benchproto.SERVICE, "-d", json.dumps({"data": data}),
                "--connections", "1", "-c", str(args.ghz_c), "--timeout", "20s", "--format", "json"]
        subprocess.run(base + ["-n", "500", srv.target], capture_output=True, timeout=120)
        s0 = benchproto.proc_cpu_seconds(srv.pid)
        g0 = children_cpu()
        out = subprocess.run(base + ["-n", str(args.ghz_n), srv.target], capture_output=True,
                             text=True, timeout=300)
        g1 = children_cpu()
        s1 = benchproto.proc_cpu_seconds(srv.pid)
    finally:
        srv.stop()
    rep = json.loads(out.stdout)
    ok = rep.get("statusCodeDistribution", {}).get("OK", 0)
    if ok != args.ghz_n:
        raise SystemExit("floors: ghz->%s: %d of %d OK" % (kind, ok, args.ghz_n))
    return {"calls_per_s": rep["rps"], "server_cpu_us": (s1 - s0) * 1e6 / args.ghz_n,
            "client_cpu_us": (g1 - g0) * 1e6 / args.ghz_n}  # ghz's own CPU


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# (client kind, server kind) per pairing
PAIRS = {
    "grpcio": ("grpcio", "grpcio"),
    "ours": ("ours", "ours"),
    "go": ("go", "go"),
    "go-engine": ("go", "go-engine"),
    "go-handoffs": ("go-lock", "go-pool"),
}


def pair_round(args, pair, workload, n):
    ckind, skind = PAIRS[pair]
    srv = Proc(server_argv(args, skind))
    try:
        if ckind.startswith("go"):
            gw = {"unary": "unary", "unary8": "unary8", "bidi": "bidi"}[workload]
            argv = [args.gobench, "client", "-target", srv.target, "-server-pid", str(srv.pid),
                    "-workloads", gw, "-warmup", "200", "-unary-n", str(n), "-unary8-n", str(n),
                    "-threads", "8", "-bidi-n", str(n)]
            if ckind == "go-lock":
                argv.append("-lock-os-thread")
            if skind != "go":
                argv += ["-window", "4194304"]
            r = run_client(argv)
            if "server_cpu_s_per_10k" in r:
                r["server_cpu_us"] = r["server_cpu_s_per_10k"] * 100
            if "client_cpu_s_per_10k" in r:
                r["client_cpu_us"] = r["client_cpu_s_per_10k"] * 100
            if workload == "bidi":
                r["calls_per_s"] = r.get("rt_per_s", r.get("calls_per_s"))
            return r
        r = run_client([args.python[ckind], os.path.join(BENCH_DIR, "floors.py"), "client",
                        "--target", srv.target, "--server-pid", str(srv.pid),
                        "--workload", workload, "--n", str(n)])
        pytids = srv.python_tids()
    finally:
        srv.stop()
    py, other = split_ns({int(k): v for k, v in r.pop("server_before").items()},
                         {int(k): v for k, v in r.pop("server_after").items()}, pytids)
    r["server_py_cpu_us"] = py / 1e3 / n
    r["server_other_cpu_us"] = other / 1e3 / n
    r["server_cpu_us"] = (py + other) / 1e3 / n
    return r


def perf_shares(args, only):
    """{section: {"client": share, "server": share}}: libpython's share of
    each end's cpu-clock samples, ours<->ours, one run per section."""
    out = {}
    if shutil.which("perf") is None:
        print("floors: no perf here: libpython's share not measured", flush=True)
        return out
    tmp = os.path.join(BENCH_DIR, "..", "build", "bench", "floors-perf")
    os.makedirs(tmp, exist_ok=True)
    for section, workload in (("pingpong", "unary"), ("threads", "unary8"), ("bidi", "bidi")):
        if section not in only:
            continue
        srv = Proc(server_argv(args, "ours"))
        sdata, cdata = os.path.join(tmp, section + "-server.data"), os.path.join(tmp, section + "-client.data")
        try:
            # Both ends sampled for the same 1.5 s, once the client is past its
            # start (imports, channel, warm-up): steady state only.
            cli = subprocess.Popen([args.python["ours"], os.path.join(BENCH_DIR, "floors.py"), "client",
                                    "--target", srv.target, "--server-pid", str(srv.pid),
                                    "--workload", workload, "--n", str(args.n)], cwd=BENCH_DIR,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            recs = [subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-p", str(pid),
                                      "-o", data, "--", "sleep", "1.5"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for pid, data in ((srv.pid, sdata), (cli.pid, cdata))]
            for r in recs:
                r.wait(60)
            cli.wait(600)
        finally:
            srv.stop()
        out[section] = {"client": libpython_share(cdata), "server": libpython_share(sdata)}
    return out


def libpython_share(data):
    rep = subprocess.run(["perf", "report", "-i", data, "--sort", "dso", "--stdio"],
                         capture_output=True, text=True, timeout=120).stdout
    share = 0.0
    for line in rep.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%") and "libpython" in parts[1]:
            share += float(parts[0][:-1]) / 100
    return share


def med(rows, key):
    vals = [r[key] for r in rows if key in r and r[key] == r[key]]
    return statistics.median(vals) if vals else float("nan")


def main_run(argv):
    p = argparse.ArgumentParser(prog="floors.py")
    p.add_argument("--ours-python", required=True)
    p.add_argument("--grpcio-python", required=True)
    p.add_argument("--gobench", required=True)
    p.add_argument("--ghz", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default="ghz,pingpong,threads,bidi")
    p.add_argument("--ghz-n", type=int, default=20000)
    p.add_argument("--ghz-c", type=int, default=16)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--json", default=None)
    p.add_argument("--perf", action="store_true",
                   help="then one more run of ours per section under perf record (cpu-clock): the share "
                        "of each end's CPU spent in libpython, the interpreter itself")
    args = p.parse_args(argv)
    # The processes run in bench/: paths given relative to here must work there.
    ab = os.path.abspath
    args.gobench, args.ghz = ab(args.gobench), ab(args.ghz)
    args.python = {"ours": ab(args.ours_python), "grpcio": ab(args.grpcio_python)}
    only = args.only.split(",")
    t0 = time.time()
    load0 = os.getloadavg()[0]
    res = {}
    jobs = []
    if "ghz" in only:
        for k in ("grpcio", "ours", "go", "go-engine"):
            jobs.append((("ghz", k), lambda k=k: ghz_round(args, k)))
    for section, workload in (("pingpong", "unary"), ("threads", "unary8"), ("bidi", "bidi")):
        if section in only:
            for pair in PAIRS:
                if section == "bidi" and pair == "go-handoffs":
                    continue
                jobs.append(((section, pair), lambda pr=pair, w=workload: pair_round(args, pr, w, args.n)))
    for rnd in range(args.rounds):
        k = rnd % len(jobs)
        for key, job in jobs[k:] + jobs[:k]:
            r = job()
            res.setdefault(key, []).append(r)
            print("round %d %s %s" % (rnd, "/".join(key), json.dumps(
                {a: round(b, 2) for a, b in r.items() if isinstance(b, (int, float))})), flush=True)
    summary = {"load_before": load0, "load_after": os.getloadavg()[0], "seconds": time.time() - t0,
               "rounds": args.rounds, "medians": {}}
    for key, rows in res.items():
        keys = sorted({a for r in rows for a, b in r.items() if isinstance(b, (int, float))})
        summary["medians"]["/".join(key)] = row = {a: med(rows, a) for a in keys}
        # calls/s against grpcio's in the same round, median over rounds
        g = res.get((key[0], "grpcio"))
        if g:
            row["x_grpcio"] = statistics.median(r["calls_per_s"] / q["calls_per_s"] for r, q in zip(rows, g))
    if args.perf:
        summary["python_share"] = perf_shares(args, only)
    print_summary(summary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rounds": {"/".join(k): v for k, v in res.items()}}, f, indent=1)


def print_summary(s):
    m = s["medians"]
    if s.get("python_share"):
        print("\nlibpython's share of each end's CPU, ours<->ours (perf): %s" % json.dumps(s["python_share"]))
    print("\nload average %.1f -> %.1f, %.0f s, %d rounds (medians)" % (
        s["load_before"], s["load_after"], s["seconds"], s["rounds"]))
    for key in sorted(m):
        row = m[key]
        cols = ["%s %.2f" % ("x_grpcio", row["x_grpcio"])] if "x_grpcio" in row else []
        cols += ["%s %.1f" % (a, row[a]) for a in ("calls_per_s", "p50_us", "p99_us", "client_cpu_us",
                                                   "client_py_cpu_us", "client_other_cpu_us",
                                                   "server_cpu_us", "server_py_cpu_us",
                                                   "server_other_cpu_us") if a in row]
        print("%-22s %s" % (key, ", ".join(cols)))
    # The targets (issue 15), and what each asks per call against the floor.
    for sec, mult in (("ghz", 3), ("pingpong", 3), ("threads", 4), ("bidi", 2)):
        g = m.get(sec + "/grpcio")
        if not g:
            continue
        want = mult * g["calls_per_s"]
        line = ["%s: target %dx grpcio = %.0f/s (%.1f us a call)" % (sec, mult, want, 1e6 / want)]
        for k in ("ours", "go", "go-engine", "go-handoffs"):
            if sec + "/" + k in m:
                r = m[sec + "/" + k]
                line.append("%s %.2fx (%.1f us)" % (k, r["x_grpcio"], 1e6 / r["calls_per_s"]))
        print("  ".join(line))
        o = m.get(sec + "/ours")
        if o and "client_py_cpu_us" in o and sec != "ghz":
            py = o["client_py_cpu_us"] + o["server_py_cpu_us"]
            print("    ours' Python threads per call, both ends: %.1f us (client %.1f, server %.1f);"
                  " all CPU per call %.1f us; 2 CPUs give %.1f us a call at the target"
                  % (py, o["client_py_cpu_us"], o["server_py_cpu_us"],
                     o["client_cpu_us"] + o["server_cpu_us"], 2e6 / want))
            share = s.get("python_share", {}).get(sec)
            if share:
                interp = o["client_cpu_us"] * share["client"] + o["server_cpu_us"] * share["server"]
                print("    of which the interpreter (libpython: client %.0f%%, server %.0f%% of each end's"
                      " CPU): %.1f us a call" % (100 * share["client"], 100 * share["server"], interp))
                h = m.get(sec + "/go-handoffs")
                if h:
                    print("    floor: grpc-go with the hand-offs %.1f us a call + the interpreter = %.1f us"
                          " (%.2fx grpcio); its CPU %.1f us + %.1f = %.1f us a call"
                          % (1e6 / h["calls_per_s"], 1e6 / h["calls_per_s"] + interp,
                             1e6 / (1e6 / h["calls_per_s"] + interp) / g["calls_per_s"],
                             h["client_cpu_us"] + h["server_cpu_us"], interp,
                             h["client_cpu_us"] + h["server_cpu_us"] + interp))
                    if "p50_us" in h:
                        # The median call is what the load disturbs least.
                        print("    by median calls: grpcio's p50 / %d = %.1f us; grpc-go<->grpc-go %.1f,"
                              " with the hand-offs %.1f, + the interpreter = %.1f us; ours %.1f"
                              % (mult, g["p50_us"] / mult, m[sec + "/go"]["p50_us"], h["p50_us"],
                                 h["p50_us"] + interp, o["p50_us"]))

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--summary":  # re-print a --json file's summary
        with open(sys.argv[2]) as f:
            print_summary(json.load(f)["summary"])
    elif len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2:])
    else:
        main_run(sys.argv[1:])
