"""Keeps `make bench` working: runs bench/run.py in smoke mode (tiny counts,
one repeat) for grpcgo <-> grpcgo only, against the installed package.

Needs neither grpcio nor ghz nor the Go toolchain. Asserts only that every
workload completed and produced numbers: no timing assertions.
"""

import json
import math
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO_ROOT, "bench", "run.py")

CLIENT_METRICS = [
    "unary.calls_per_s", "unary.p50_us", "unary.p99_us",
    "unary.client_cpu_s_per_10k", "unary.server_cpu_s_per_10k",
    "unary8.calls_per_s", "sstream.msgs_per_s", "cstream.msgs_per_s",
    "bidi.rt_per_s", "big.mib_per_s",
]


@pytest.mark.timeout(60)
def test_bench_smoke_ours(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, RUN, "--smoke", "--contenders", "ours",
         "--ours-python", sys.executable, "--out", str(out), "--json", str(results),
         "--logdir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads(results.read_text())
    assert data["errors"] == []
    (sample,) = data["samples"]
    assert set(sample) == {"ours-ours", "bigfresh-ours", "rss-ours", "import-ours",
                           "promptness-ours", "channels-ours", "aio-ours", "aiouv-ours"}
    # The 1 MiB echo alone, in fresh processes with raised message limits.
    for key in ("bigfresh.mib_per_s", "bigfresh.client_cpu_s_per_10k"):
        value = sample["bigfresh-ours"][key]
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (key, value)
    for run in ("aio-ours", "aiouv-ours"):
        for key in ("aio_unary.calls_per_s", "aio_unary64.calls_per_s", "aio_sstream.msgs_per_s",
                    "aio_cstream.msgs_per_s", "aio_bidi.rt_per_s"):
            value = sample[run][key]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (run, key)
    for key in CLIENT_METRICS:
        value = sample["ours-ours"][key]
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (key, value)
    for key in ("rss.idle_mib", "rss.loaded_mib", "rss.load_calls_per_s"):
        assert sample["rss-ours"][key] > 0, key
    assert math.isfinite(sample["import-ours"]["import.ms"])
    for key in ("ctrl_c_ms", "grace_over_ms", "deadline_over_ms", "fail_fast_ms"):
        assert math.isfinite(sample["promptness-ours"]["promptness." + key]), key
    for key in ("open_close_us", "open_close_cpu_us", "first_call_ms", "first_call_cpu_ms"):
        assert sample["channels-ours"]["channels." + key] > 0, key

    table = out.read_text()
    assert "unary ping-pong, calls/s" in table
    assert "fresh processes, max message lengths -1" in table
    assert "Ctrl-C to KeyboardInterrupt" in table
    assert "channel open + close, us" in table
    assert "aio unary, 1 call outstanding, calls/s" in table
    assert "grpcgo" in table


@pytest.mark.timeout(60)
def test_bench_floors_ours(tmp_path):
    """bench/floors.py's own server and client (make bench-floors runs them
    against grpcio, grpc-go and ghz too): each workload runs and splits
    both ends' CPU into their Python threads and the rest."""
    floors = os.path.join(REPO_ROOT, "bench", "floors.py")
    server = subprocess.Popen([sys.executable, floors, "serve", "--expect", "ours"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while not line.startswith("PORT "):
            line = server.stdout.readline()
            assert line, "the server ended before printing its port"
        target = "127.0.0.1:" + line.split()[1]
        for workload in ("unary", "unary8", "bidi"):
            proc = subprocess.run(
                [sys.executable, floors, "client", "--target", target, "--server-pid",
                 str(server.pid), "--workload", workload, "--n", "40", "--warmup", "8"],
                capture_output=True, text=True, timeout=40, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            (result,) = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            for key in ("calls_per_s", "client_cpu_us", "client_py_cpu_us", "client_other_cpu_us"):
                assert math.isfinite(result[key]) and result[key] >= 0, (workload, key, result[key])
            assert result["server_after"], workload  # the server's threads, by id
        server.stdin.write("tids\n")
        server.stdin.flush()
        line = server.stdout.readline()
        assert line.startswith("TIDS ") and server.pid in json.loads(line[5:])
    finally:
        server.stdin.close()
        server.wait(10)


def test_gc_tail_tags_calls(tmp_path, capsys):
    """bench/gc_tail.py's analysis (the run needs perf and an engine with
    symbols): a collection spans its last gcStart to its mark termination,
    and a call is tagged by the end whose collection it overlapped."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("gc_tail", os.path.join(REPO_ROOT, "bench", "gc_tail.py"))
    gc_tail = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc_tail)
    trace = tmp_path / "gc.txt"
    trace.write_text(
        " 10 1.000: probe__engine:gcstart:\n"
        " 10 1.100: probe__engine:gcstart:\n"   # the one that started the cycle
        " 10 1.102:   probe__engine:gcend:\n"
        " 20 2.000: probe__engine:gcstart:\n"
        " 20 2.001:   probe__engine:gcend:\n")
    gcs = gc_tail.intervals(str(trace))
    assert gcs == {10: [(1.1, 1.102)], 20: [(2.0, 2.001)]}
    calls = [(0.9, 0.9002), (1.1005, 1.1012), (2.0005, 2.0009), (3.0, 3.0002)]
    gc_tail.analyze(calls, gcs, server_pid=10)
    out = capsys.readouterr().out
    assert "collections during them: server 1, client 1" in out
    assert "overlapping server GC:     1 calls" in out
    assert "overlapping client GC:     1 calls" in out
    assert "overlapping none   GC:     2 calls" in out


def test_bench_warms_each_kind_up_before_the_first_repeat(capsys):
    """bench/run.py's warm-up pass: one unrecorded ping-pong and 8-thread
    run of every kind in the bench, none in a smoke run or an --only run
    (the plan's first run came right after the build: its slow one)."""
    import importlib.util
    import types
    spec = importlib.util.spec_from_file_location("bench_run", os.path.join(REPO_ROOT, "bench", "run.py"))
    run = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))
    try:
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(os.path.join(REPO_ROOT, "bench"))

    class Bench:
        kinds = ["ours", "grpcio", "go", "ghz"]

        def __init__(self):
            self.runs = []

        def client_run(self, ckind, skind, workloads, name):
            self.runs.append((ckind, skind, workloads, name))
            return {}

    bench = Bench()
    run.warm_up(bench, types.SimpleNamespace(smoke=False, only=[]))
    assert bench.runs == [(k, k, "unary,unary8", "warmup-%s" % k) for k in ("ours", "grpcio", "go")]
    assert capsys.readouterr().out.count("(not recorded)") == 3
    for args in (types.SimpleNamespace(smoke=True, only=[]), types.SimpleNamespace(smoke=False, only=["aio"])):
        skipped = Bench()
        run.warm_up(skipped, args)
        assert skipped.runs == []
