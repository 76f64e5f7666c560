"""Where a ping-pong round trip's wall time goes, at both ends: bench/server.py
and bench/client.py (`unary`, 16 B) under `perf record` (system-call and
scheduler tracepoints of both processes, CLOCK_MONOTONIC timestamps) for
--seconds of steady state, then per call, medians of:

  server read->write   the request's bytes read to the response's write
                       (grpc-go's reader, the stream worker, the pool thread's
                       wake-up, Python, the finish)
  client read->post    the response's bytes read to the post that wakes the
                       calling thread (grpc-go's reader, the call's end)
  main woke->write     the calling thread's wake-up to its next request's
                       write (Python, the next call's start)
  round trip           one request write to the next

and context switches per call in each process. Tracing slows every system
call and switch, so compare contenders in the same run, not with `make
bench`. Needs root (perf) and a grpcgo install: the calling thread waits
on a semaphore on its own stack, so the post is the futex wake of an
0x7ff... address.

    python3 bench/roundtrip.py --contender a=PY --contender b=PY:VAR=0 [--rounds 3]
"""

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
EVENTS = ["sched:sched_switch", "syscalls:sys_enter_write", "syscalls:sys_exit_read",
          "syscalls:sys_enter_futex", "syscalls:sys_exit_futex"]
LINE = re.compile(r"\s*\S+\s+(\d+)/(\d+)\s+\[\d+\]\s+([\d.]+):\s+\S+:(\S+):\s*(.*)")


def trace(python, settings, seconds, out):
    env = dict(os.environ, **settings)
    server = subprocess.Popen([python, "server.py"], cwd=BENCH_DIR, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        while line and not line.startswith("PORT "):
            line = server.stdout.readline()
        client = subprocess.Popen(
            [python, "client.py", "--target", "127.0.0.1:" + line.split()[1], "--workloads", "unary",
             "--unary-n", "1000000", "--warmup", "200"],
            cwd=BENCH_DIR, env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            argv = ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-p", "%d,%d" % (server.pid, client.pid),
                    "-o", out]
            for e in EVENTS:
                argv += ["-e", e]
            subprocess.run(argv + ["--", "sleep", str(seconds)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            client.kill()
            client.wait()
    finally:
        server.stdin.close()
        server.wait(30)
    text = subprocess.run(["perf", "script", "-i", out, "-F", "comm,pid,tid,cpu,time,event,trace"],
                          capture_output=True, text=True).stdout
    return server.pid, client.pid, text


def got(rest):
    """A read that returned bytes (not EAGAIN, not the end)."""
    return rest != "0x0" and not rest.startswith("0xffff")


def segments(srv, cl, text):
    c_post, m_write, s_write, rt = [], [], [], []
    switches = {srv: 0, cl: 0}
    c_read = s_read = woke = last = None
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        pid, tid, t, event, rest = int(m[1]), int(m[2]), float(m[3]) * 1e6, m[4], m[5].strip()
        if event == "sched_switch" and pid in switches:
            switches[pid] += 1
        if pid == cl:
            if event == "sys_exit_read" and got(rest):
                c_read = t
            elif event == "sys_enter_futex" and "op: 0x00000081" in rest and "uaddr: 0x7ff" in rest and c_read:
                c_post.append(t - c_read)
                c_read = None
            elif tid == cl and event == "sys_exit_futex":
                woke = t
            elif tid == cl and event == "sys_enter_write":
                if last:
                    rt.append(t - last)
                if woke:
                    m_write.append(t - woke)
                last, woke = t, None
        elif pid == srv:
            if event == "sys_exit_read" and got(rest):
                s_read = t
            elif event == "sys_enter_write" and s_read:
                s_write.append(t - s_read)
                s_read = None
    n = max(len(rt), 1)
    med = lambda v: statistics.median(v) if v else float("nan")
    return {"calls": len(rt), "server read->write": med(s_write), "client read->post": med(c_post),
            "main woke->write": med(m_write), "round trip": med(rt),
            "server switches/call": switches[srv] / n, "client switches/call": switches[cl] / n}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contender", action="append", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=0.5)
    args = p.parse_args()
    contenders = []
    for text in args.contender:
        name, _, rest = text.partition("=")
        python, _, env = rest.partition(":")
        contenders.append((name, os.path.abspath(python), dict(kv.split("=", 1) for kv in env.split(",") if kv)))
    res = {name: [] for name, _, _ in contenders}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            k = rnd % len(contenders)
            for name, python, settings in contenders[k:] + contenders[:k]:
                row = segments(*trace(python, settings, args.seconds, os.path.join(tmp, "perf.data")))
                res[name].append(row)
                print("round %d %-10s %s" % (rnd, name, ", ".join(
                    "%s %.1f" % (a, b) if isinstance(b, float) else "%s %d" % (a, b) for a, b in row.items())),
                    flush=True)
    print("\nload average now %.1f; medians of the rounds (us; switches per call):" % os.getloadavg()[0])
    for name, rows in res.items():
        print("%-10s %s" % (name, ", ".join("%s %.1f" % (key, statistics.median(r[key] for r in rows))
                                          for key in rows[0])))


if __name__ == "__main__":
    main()
