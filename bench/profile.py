#!/usr/bin/env python3
"""Profiles grpcgo's unary paths (client and server processes) and the
grpc-go floor, for docs/BENCHMARKS.md's "Where the time goes".

For each scenario (ping-pong: one call outstanding; 8 threads on one
channel) it starts bench/server.py and a long-running bench/client.py under
grpcgo and, while they run:

  - py-spy record --native (Python frames, and the C/Go frames below them)
    on the client and on the server, summarised as top self and inclusive
    frames;
  - perf record -g on both (if perf works here): which DSO/symbol the CPU is
    in, Python vs libpython vs the Go engine vs the kernel;
  - perf stat: context switches and CPU per call (thread wake-ups).

The engine is rebuilt WITHOUT -s -w (setup.py strips it) from --src, and
--src/python/grpc is used beside it through PYTHONPATH, so native frames
have names. The grpc-go floor (gobench client and server) is profiled with
Go's pprof (-cpuprofile; `go tool pprof -top`).

Output: build/bench/profile/*.txt (summaries) and the raw profiles.

    python3 bench/profile.py [--ours-python P] [--src DIR] [--seconds 8]
        [--py-spy P] [--gobench P] [--scenarios unary,unary8]
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import run as bench_run  # noqa: E402  (Server, run helpers)


def sh(argv, timeout=600, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def build_unstripped(src, ours_python, out_dir):
    """grpc/ from src with an engine built with symbols, in out_dir/grpc."""
    pkg = os.path.join(out_dir, "grpc")
    if os.path.exists(pkg):
        shutil.rmtree(pkg)
    shutil.copytree(os.path.join(src, "python", "grpc"), pkg)
    suffix = sh([ours_python, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"]).stdout.strip()
    include = sh([ours_python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"]).stdout.strip()
    env = dict(os.environ, CGO_CFLAGS="-I%s -O2" % include, CGO_ENABLED="1")
    lib = os.path.join(pkg, "_engine" + suffix)
    # The engine users get: grpc-go with grpcgo's patch and Go's runtime
    # with grpcgo's overlay, with setup.py's flags (patches/engine_flags.py),
    # but symbols kept (no -ldflags=-s -w).
    sys.path.insert(0, os.path.join(src, "patches"))
    try:
        import engine_flags
    finally:
        sys.path.pop(0)
    patched = engine_flags.go_flags(src, "go")
    proc = sh(["go", "build", "-buildmode=c-shared", *patched, "-o", lib, "./pyext"], cwd=src, env=env,
              timeout=900)
    if proc.returncode != 0:
        raise SystemExit("profile: building the engine failed:\n" + proc.stderr)
    for name in os.listdir(pkg):
        if name.startswith("_engine") and name.endswith(".h"):  # cgo's header
            os.remove(os.path.join(pkg, name))
    return out_dir


# --- py-spy ------------------------------------------------------------------------


# Leaf frames that mean "waiting", not "computing": py-spy's idle detection
# does not see through native frames, so these are dropped for the on-CPU view.
_WAIT_LEAVES = ("runtime.futex", "read (libc", "epoll_wait", "runtime.usleep", "nanosleep",
                "sem_wait", "sem_clockwait", "pthread_cond", "__futex", "0x")


def summarize_collapsed(path, top=25):
    """Top frames of a py-spy raw (collapsed) profile: all samples, then
    on-CPU samples only (wait leaves dropped), Python frames and all frames."""
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                stack, _, n = line.rpartition(" ")
                stacks.append(([_frame(x) for x in stack.split(";")], int(n)))
    total = sum(n for _, n in stacks)
    busy = [(fr, n) for fr, n in stacks if not fr[-1].startswith(_WAIT_LEAVES)]
    nbusy = sum(n for _, n in busy)
    lines = ["samples: %d, on-CPU (leaf not a wait): %d (%.0f%%)"
             % (total, nbusy, 100.0 * nbusy / max(total, 1))]

    def table(title, rows, denom, keep=lambda fr: True, inclusive=False):
        counter = collections.Counter()
        for frames, n in rows:
            if inclusive:
                for fr in set(frames):
                    if keep(fr):
                        counter[fr] += n
            elif keep(frames[-1]):
                counter[frames[-1]] += n
        lines.extend(["", title])
        for fr, n in counter.most_common(top):
            lines.append("  %5.1f%%  %s" % (100.0 * n / max(denom, 1), fr))

    is_py = lambda fr: fr.endswith(".py)")  # noqa: E731
    table("on-CPU, inclusive, Python frames (% of on-CPU samples):", busy, nbusy, is_py, True)
    table("on-CPU, self (leaf) frames:", busy, nbusy)
    table("all samples, self (leaf) frames (waits included):", stacks, total)
    return "\n".join(lines) + "\n"


def _frame(frame):
    # "function (file.py:line)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = os.path.basename(where.rsplit(":", 1)[0]) if where else ""
    return "%s (%s)" % (name, file) if file else name


# --- perf ------------------------------------------------------------------------


def perf_works():
    if not shutil.which("perf"):
        return False
    try:
        return sh(["perf", "stat", "-e", "task-clock", "true"], timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def start_bg(argv, log):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_bg(proc, timeout):
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            bench_run._kill_group(proc)


# --- scenarios ---------------------------------------------------------------------


def profile_ours(args, scenario, pydir, outdir, use_perf):
    env = dict(os.environ, PYTHONPATH=pydir)
    secs = args.seconds
    workload, extra = ("unary", ["--unary-n", "100000000"]) if scenario == "unary" else \
        ("unary8", ["--unary8-n", "100000000", "--threads", "8"])
    logs = []

    def log(name):
        f = open(os.path.join(outdir, "%s-%s.log" % (scenario, name)), "w")
        logs.append(f)
        return f

    server_proc = subprocess.Popen(
        [args.ours_python, "server.py", "--expect", "ours"], cwd=BENCH_DIR, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log("server"), start_new_session=True)
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        line = server_proc.stdout.readline().decode()
        if not line:
            break
        if line.startswith("IMPL") and '"ours"' not in line:
            raise SystemExit("profile: the server did not import grpcgo: " + line)
        if line.startswith("PORT "):
            port = int(line[5:])
    if port is None:
        bench_run._kill_group(server_proc)
        raise SystemExit("profile: the server did not start")
    client = subprocess.Popen(
        [args.ours_python, "client.py", "--expect", "ours", "--target", "127.0.0.1:%d" % port,
         "--server-pid", str(server_proc.pid), "--workloads", workload, "--warmup", "500"] + extra,
        cwd=BENCH_DIR, env=env, stdin=subprocess.DEVNULL, stdout=log("client"),
        stderr=subprocess.STDOUT, start_new_session=True)
    summary = []
    try:
        time.sleep(2.0)  # past connection set-up and warm-up
        if client.poll() is not None:
            raise SystemExit("profile: the client exited early; see %s" % logs[-1].name)
        pids = {"client": client.pid, "server": server_proc.pid}
        tools = []
        # perf stat first, alone, so that the profilers do not inflate it.
        if use_perf:
            stats = {}
            for role, pid in pids.items():
                path = os.path.join(outdir, "%s-%s-perfstat.txt" % (scenario, role))
                stats[role] = (path, start_bg(
                    ["perf", "stat", "-e", "task-clock,context-switches,cpu-migrations",
                     "-p", str(pid), "-o", path, "--", "sleep", str(secs)], log("perfstat-" + role)))
            t0 = time.monotonic()
            for role, (_, p) in stats.items():
                stop_bg(p, secs + 30)
            summary.append("perf stat over %.1fs:" % (time.monotonic() - t0))
            for role, (path, _) in stats.items():
                summary.append("  %s: %s" % (role, _perfstat_brief(path)))
        # Then perf record, then py-spy: one tool at a time, since py-spy
        # --native pauses the process to unwind, which perf would see.
        phases = []
        if use_perf:
            phases.append([(role, "perf", os.path.join(outdir, "%s-%s.perf.data" % (scenario, role)),
                            ["perf", "record", "-F", "999", "-g", "-o",
                             os.path.join(outdir, "%s-%s.perf.data" % (scenario, role)),
                             "-p", str(pid), "--", "sleep", str(secs)])
                           for role, pid in pids.items()])
        phases.append([(role, "py-spy", os.path.join(outdir, "%s-%s.pyspy.txt" % (scenario, role)),
                        [args.py_spy, "record", "--native", "--rate", "1000",
                         "--duration", str(max(1, int(round(secs)))), "--format", "raw",
                         "--output", os.path.join(outdir, "%s-%s.pyspy.txt" % (scenario, role)),
                         "--pid", str(pid)])
                       for role, pid in pids.items()])
        for phase in phases:
            running = [(role, tool, path, start_bg(argv, log("%s-%s" % (tool, role))))
                       for role, tool, path, argv in phase]
            for role, tool, path, proc in running:
                stop_bg(proc, secs + 60)
            tools += running
    finally:
        bench_run._kill_group(client)
        try:
            server_proc.stdin.close()
        except OSError:
            pass
        try:
            server_proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        bench_run._kill_group(server_proc)
        for f in logs:
            f.close()
    for role, tool, path, _ in tools:
        out = os.path.join(outdir, "%s-%s-%s-summary.txt" % (scenario, role, tool))
        if not os.path.exists(path):
            continue
        if tool == "py-spy":
            text = summarize_collapsed(path)
        else:
            text = _perf_summary(path)
        with open(out, "w") as f:
            f.write(text)
        summary.append("%s %s: %s" % (role, tool, out))
    return summary


def _perfstat_brief(path):
    keep = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if any(k in line for k in ("task-clock", "context-switches", "cpu-migrations")):
                    keep.append(" ".join(line.split()[:3 if "msec" in line else 2]))
    except OSError:
        return "?"
    return "; ".join(keep)


def _perf_summary(data):
    out = []
    for title, argv in (
        ("by DSO (self)", ["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                           "--stdio", "-g", "none", "--percent-limit", "0.5"]),
        ("by symbol (self)", ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym",
                              "--stdio", "-g", "none", "--percent-limit", "0.7"]),
        ("by symbol (inclusive)", ["perf", "report", "-i", data, "--children", "--sort", "sym",
                                   "--stdio", "-g", "none", "--percent-limit", "3"]),
    ):
        proc = sh(argv, timeout=300)
        body = [l for l in proc.stdout.splitlines() if l.strip() and not l.startswith("#")]
        out.append("== %s ==\n%s\n" % (title, "\n".join(body[:60])))
    return "\n".join(out)


def _perf_counts(path):
    """{event: value} from a perf stat -o file (task-clock in ms)."""
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0][0].isdigit():
                name = parts[2] if parts[1] == "msec" else parts[1]
                counts[name] = float(parts[0].replace(",", ""))
    return counts


def compare_switches(args, outdir):
    """Context switches and CPU per call, whole client process vs server,
    for every implementation: where grpcgo's wake-ups stand."""
    rows = ["| impl | workload | calls/s | client CPU us/call | client ctx-sw/call "
            "| server CPU us/call | server ctx-sw/call |", "|---|---|--:|--:|--:|--:|--:|"]
    kinds = [("ours", args.ours_python), ("grpcio", args.grpcio_python), ("go", args.gobench)]
    for kind, exe in kinds:
        if not exe or not os.access(exe, os.X_OK):
            continue
        for workload, n in (("unary", 20000 if kind != "go" else 60000),
                            ("unary8", 40000 if kind != "go" else 200000)):
            tag = "cmp-%s-%s" % (kind, workload)
            with open(os.path.join(outdir, tag + "-server.log"), "w") as slog, \
                    open(os.path.join(outdir, tag + "-client.log"), "w") as clog:
                if kind == "go":
                    sargv = [exe, "server"]
                else:
                    sargv = [exe, "server.py", "--expect", kind]
                server = bench_run.Server(kind, sargv, slog)
                sstat = os.path.join(outdir, tag + "-server.perfstat")
                cstat = os.path.join(outdir, tag + "-client.perfstat")
                try:
                    sp = start_bg(["perf", "stat", "-e", "task-clock,context-switches", "-p",
                                   str(server.pid), "-o", sstat], slog)
                    time.sleep(0.3)
                    if kind == "go":
                        cargv = [exe, "client", "-target", server.target, "-workloads", workload,
                                 "-unary-n", str(n), "-unary8-n", str(n), "-warmup", "0"]
                    else:
                        cargv = [exe, "client.py", "--expect", kind, "--target", server.target,
                                 "--workloads", workload, "--unary-n", str(n), "--unary8-n", str(n),
                                 "--warmup", "0"]
                    out = bench_run.run_bounded(
                        ["perf", "stat", "-e", "task-clock,context-switches", "-o", cstat, "--"]
                        + cargv, 300, clog)
                    os.killpg(sp.pid, signal.SIGINT)
                    stop_bg(sp, 10)
                finally:
                    server.stop()
            rate = None
            for line in out.splitlines():
                if line.startswith("RESULT "):
                    rate = __import__("json").loads(line[7:])["calls_per_s"]
            c, sv = _perf_counts(cstat), _perf_counts(sstat)
            rows.append("| %s | %s | %s | %.0f | %.1f | %.0f | %.1f |" % (
                bench_run.IMPL_NAMES[kind], workload, "{:,.0f}".format(rate or 0),
                c.get("task-clock", 0) * 1e3 / n, c.get("context-switches", 0) / n,
                sv.get("task-clock", 0) * 1e3 / n, sv.get("context-switches", 0) / n))
    text = "\n".join(rows) + "\n"
    with open(os.path.join(outdir, "compare-switches.md"), "w") as f:
        f.write(text)
    return [text]


def profile_go(args, outdir):
    """pprof of the grpc-go floor, ping-pong and 8 goroutines."""
    summary = []
    for scenario, workload, extra in (("unary", "unary", ["-unary-n", "60000"]),
                                      ("unary8", "unary8", ["-unary8-n", "200000"])):
        sprof = os.path.join(outdir, "go-%s-server.pprof" % scenario)
        cprof = os.path.join(outdir, "go-%s-client.pprof" % scenario)
        with open(os.path.join(outdir, "go-%s-server.log" % scenario), "w") as slog, \
                open(os.path.join(outdir, "go-%s-client.log" % scenario), "w") as clog:
            server = bench_run.Server("go", [args.gobench, "server", "-cpuprofile", sprof], slog)
            try:
                bench_run.run_bounded([args.gobench, "client", "-target", server.target,
                                       "-server-pid", str(server.pid), "-workloads", workload,
                                       "-cpuprofile", cprof] + extra, 300, clog)
            finally:
                server.stop()
        for role, prof in (("client", cprof), ("server", sprof)):
            if not os.path.exists(prof):
                continue
            top = sh(["go", "tool", "pprof", "-top", "-nodecount=30", args.gobench, prof], cwd=ROOT)
            path = os.path.join(outdir, "go-%s-%s-pprof.txt" % (scenario, role))
            with open(path, "w") as f:
                f.write(top.stdout + top.stderr)
            summary.append("grpc-go %s %s: %s" % (scenario, role, path))
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ours-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    p.add_argument("--src", default=ROOT, help="source tree to build the symbol-ful engine from")
    p.add_argument("--py-spy", default=os.path.join(ROOT, "build", "bench-prof-venv", "bin", "py-spy"))
    p.add_argument("--gobench", default=os.path.join(ROOT, "build", "bin", "gobench"))
    p.add_argument("--grpcio-python",
                   default=os.path.join(ROOT, "build", "bench-grpcio-venv", "bin", "python"))
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--scenarios", default="unary,unary8")
    p.add_argument("--outdir", default=os.path.join(ROOT, "build", "bench", "profile"))
    p.add_argument("--no-go", action="store_true")
    p.add_argument("--no-compare", action="store_true")
    p.add_argument("--reuse-engine", action="store_true",
                   help="keep the engine a previous run built under --outdir")
    args = p.parse_args()
    for attr in ("ours_python", "grpcio_python", "gobench", "py_spy"):
        setattr(args, attr, os.path.abspath(getattr(args, attr)))
    os.makedirs(args.outdir, exist_ok=True)
    pydir = os.path.join(args.outdir, "pythonpath")
    if not (args.reuse_engine and os.path.isdir(os.path.join(pydir, "grpc"))):
        build_unstripped(os.path.abspath(args.src), args.ours_python, pydir)
    use_perf = perf_works()
    summary = ["engine with symbols: %s/grpc (from %s)" % (pydir, args.src),
               "perf: %s" % ("yes" if use_perf else "not available")]
    for scenario in [s for s in args.scenarios.split(",") if s]:
        summary.append("")
        summary.append("== ours %s ==" % scenario)
        summary += profile_ours(args, scenario, pydir, args.outdir, use_perf)
    if not args.no_go and os.access(args.gobench, os.X_OK):
        summary.append("")
        summary += profile_go(args, args.outdir)
    if use_perf and not args.no_compare:
        summary.append("")
        summary.append("== context switches and CPU per call (perf stat, whole client process) ==")
        summary += compare_switches(args, args.outdir)
    text = "\n".join(summary) + "\n"
    with open(os.path.join(args.outdir, "SUMMARY.txt"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
