"""A Python thread leaving the engine gives its Go P up (docs/ARCHITECTURE.md,
"A Python thread's P"; patches/go_runtime_patch.py).

grpcgo builds its library with a hook in Go's runtime at the point where a
call from C returns: a Python thread no longer keeps a P "in a system call"
while it runs Python, so goroutines it readied, and goroutines the network
poller readies, never wait for Go's monitor thread to take that P back.
What is checked here, each in its own subprocess with a bounded time:

* the library was built with the hook, and gives Ps up by default;
* GRPCGO_RT_RETURN=0 turns it off (no P is given up);
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


def test_the_library_gives_ps_up_by_default():
    out = run({"GRPCGO_RT_RETURN": ""})
    assert out["after"]["return_mode"] == 2, "the library was built without the runtime hook"
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
