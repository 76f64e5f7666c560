"""The Go P a Python thread holds while it runs Python or waits in C
(docs/ARCHITECTURE.md, "A Python thread's P"; patches/go_runtime_patch.py).

grpcgo builds its library with two hooks in Go's runtime: where a call
from C returns (what the thread does with its P), and where a Go thread
needs a P and finds none idle (it may take one a Python thread holds, so
goroutines the network poller readies never wait for Go's monitor thread
to take that P back). What is checked here, each in its own subprocess with a bounded time:

* the library was built with the hook; GRPCGO_RT_RETURN=2 gives the P
  up at every return, 0 (the default) never;
* a P a Python thread holds while it waits in C is taken at once by the
  network poller's thread that needs it (GRPCGO_RT_TAKE=0: left to sysmon);
* a Go thread about to steal a running P's next goroutine yields instead
  of Go's 3 us sleep by default (GRPCGO_RT_NAP=2), and 0 keeps the sleep;
* every mode serves unary calls from 8 threads, a bidi stream and grpc.aio
  calls with exact results, also with a single P (GOMAXPROCS=1, where a
  thread coming back into Go must wait for the one P), and a process with
  calls in flight exits promptly.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from test_runtime import grpcgo_only

pytestmark = grpcgo_only

TIMEOUT = 120  # seconds per subprocess: only a hang reaches it

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, threading
    from concurrent import futures
    import grpc, grpc.aio
    import grpc._introspect as gi

    def echo(request, context):
        return request

    def bidi(requests, context):
        for r in requests:
            yield r

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    before = gi.live()
    target = "127.0.0.1:%d" % port
    calls = int(sys.argv[1])
    with grpc.insecure_channel(target) as ch:
        echo_call = ch.unary_unary("/t.S/Echo")
        for i in range(calls):
            assert echo_call(b"%d" % i, timeout=30) == b"%d" % i
        errors = []
        def worker(n):
            try:
                for i in range(calls // 4):
                    want = b"%d-%d" % (n, i)
                    got = echo_call(want, timeout=30)
                    if got != want:
                        errors.append((want, got))
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert not errors, errors[:3]
        sent = [b"m%d" % i for i in range(calls)]
        got = list(ch.stream_stream("/t.S/Bidi")(iter(sent), timeout=30))
        assert got == sent

    async def aio_calls():
        async with grpc.aio.insecure_channel(target) as ach:
            m = ach.unary_unary("/t.S/Echo")
            for i in range(calls // 4):
                assert await m(b"a%d" % i, timeout=30) == b"a%d" % i
            got = await asyncio.gather(*(m(b"g%d" % i, timeout=30) for i in range(64)))
            assert got == [b"g%d" % i for i in range(64)]
    asyncio.run(aio_calls())
    after = gi.live()
    # A call in flight at exit: the process must still end promptly.
    ch = grpc.insecure_channel(target)
    ch.unary_unary("/t.S/Echo").future(b"late")
    print(json.dumps({"before": before._asdict(), "after": after._asdict()}), flush=True)
    """
)


def run(env_extra, calls=200):
    env = dict(os.environ)
    env.update(env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(calls)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_library_has_the_hook_and_mode_2_gives_a_p_up_at_every_return():
    out = run({"GRPCGO_RT_RETURN": ""})
    assert out["after"]["return_mode"] == 0, "the library was built without the runtime hook"
    out = run({"GRPCGO_RT_RETURN": "2"})
    assert out["after"]["return_mode"] == 2
    # Every call crosses into Go and back at least once in each process
    # part (client thread, server thread): far more Ps given up than calls.
    released = out["after"]["ps_released"] - out["before"]["ps_released"]
    assert released >= 200, out


def test_mode_0_keeps_the_runtime_as_it_is():
    out = run({"GRPCGO_RT_RETURN": "0"})
    assert out["after"]["return_mode"] == 0
    assert out["after"]["ps_released"] == 0, out


@pytest.mark.parametrize("mode", ["1", "2", "3", "4"])
@pytest.mark.parametrize("procs", ["1", "2"])
def test_every_mode_serves_exactly(mode, procs):
    out = run({"GRPCGO_RT_RETURN": mode, "GOMAXPROCS": procs}, calls=120)
    assert out["after"]["return_mode"] == int(mode)
    assert out["after"]["go_procs"] == int(procs)


TAKE_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys
    import grpc
    import grpc._introspect as gi

    # The server in its own process: here only the client's Python thread
    # holds Ps, and with GOMAXPROCS=1 it holds the only one while it
    # waits in C for a response.
    server = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        echo = ch.unary_unary("/t.S/Echo")
        assert echo(b"warm", timeout=30) == b"warm"
        before = gi.live().ps_taken
        for i in range(100):
            # The call waits for its response in C, holding the P.
            assert echo(b"%d" % i, timeout=30) == b"%d" % i
        after = gi.live()
    server.stdin.close()
    server.wait(30)
    print(json.dumps({"taken": after.ps_taken - before, "procs": after.go_procs}))
    """
)

ECHO_SERVER = textwrap.dedent(
    """
    import sys
    from concurrent import futures
    import grpc
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}),))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    sys.stdin.read()
    server.stop(None)
    """
)


def run_take(take):
    # sysmon's slack at 20 ms: it would take the P back too, but only after
    # the response arrived.
    env = dict(os.environ, GOMAXPROCS="1", GRPCGO_RT_RETURN="0", GRPCGO_RT_TAKE=take,
               GRPCGO_SYSMON_SLACK_NS="20000000")
    proc = subprocess.run([sys.executable, "-c", TAKE_SCRIPT, ECHO_SERVER], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_p_held_by_a_python_thread_in_c_is_taken_by_the_poller():
    # The response's goroutine needs the one P, which the sleeping Python
    # thread holds: the poller's thread takes it at once instead of
    # waiting for sysmon to.
    out = run_take("1")
    assert out["procs"] == 1
    assert out["taken"] > 0, out


def test_take_0_leaves_such_ps_to_sysmon():
    out = run_take("0")
    assert out["taken"] == 0, out


# How a Go thread about to steal the goroutine a running P readied last
# waits for that P first (GRPCGO_RT_NAP; patches/go-runtime/grpcgo_return.go.in,
# grpcgoStealNap): 2, the default, yields the CPU once instead of Go's 3 us
# sleep. The 8 client threads and the pool's threads ready goroutines on
# busy Ps all the time, so a run makes such waits.

NAP_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from concurrent import futures
    import grpc
    import grpc._introspect as gi

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    before = gi.live().naps
    errors = []
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        echo = ch.unary_unary("/t.S/Echo")
        def worker(n):
            try:
                for i in range(300):
                    if echo(b"%d-%d" % (n, i), timeout=30) != b"%d-%d" % (n, i):
                        errors.append(i)
            except Exception as e:
                errors.append(repr(e))
        # Rounds of 8 threads until a wait was done (or a generous bound,
        # for the modes that make none).
        deadline = time.monotonic() + float(sys.argv[1])
        while True:
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for t in threads: t.start()
            for t in threads: t.join()
            after = gi.live()
            if errors or after.naps > before or time.monotonic() > deadline:
                break
    server.stop(None)
    print(json.dumps({"errors": errors[:3], "mode": after.nap_mode,
                      "naps": after.naps - before}), flush=True)
    """
)


def run_nap(env_extra, seconds):
    env = dict(os.environ)
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", NAP_SCRIPT, str(seconds)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == [], out
    return out


def test_a_thread_about_to_steal_yields_instead_of_sleeping_by_default():
    out = run_nap({"GRPCGO_RT_NAP": ""}, 60)
    assert out["mode"] == 2, "the library was built without the runtime hook"
    assert out["naps"] > 0, out


def test_nap_0_keeps_the_runtime_sleep():
    out = run_nap({"GRPCGO_RT_NAP": "0"}, 0)
    assert out["mode"] == 0
    assert out["naps"] == 0, out


@pytest.mark.parametrize("nap", ["0", "1", "2"])
def test_every_nap_mode_serves_exactly(nap):
    out = run({"GRPCGO_RT_NAP": nap, "GOMAXPROCS": "2"}, calls=120)
    assert out["after"]["nap_mode"] == int(nap)
