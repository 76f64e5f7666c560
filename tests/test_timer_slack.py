"""Timer slack (pyext/slack.go): large for Go's monitor thread only.

The engine gives Go's sysmon thread a large timer slack (so it wakes less
often inside Python) and Go's other threads a minimal one, as each starts. Python's threads (the main one,
which loaded the engine, and any started later, and so any process they
spawn) must keep the slack they had. Linux only: the slack of each thread
is read from /proc/<tid>/timerslack_ns.
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/timerslack_ns"), reason="needs Linux's /proc/<tid>/timerslack_ns")

_SCRIPT = r"""
import os, threading
from concurrent import futures
import grpc

def slack(tid):
    with open("/proc/%d/timerslack_ns" % tid) as f:
        return int(f.read())

main_before = slack(threading.get_native_id())
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "t.S", {"E": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
channel = grpc.insecure_channel("127.0.0.1:%d" % port)
call = channel.unary_unary("/t.S/E")
python_threads = []

def caller():
    for _ in range(500):
        call(b"x", timeout=10)
    python_threads.append(slack(threading.get_native_id()))

threads = [threading.Thread(target=caller) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
python_threads.append(slack(threading.get_native_id()))
child = int(os.popen("cat /proc/self/timerslack_ns").read())
everyone = [slack(int(t)) for t in os.listdir("/proc/self/task")]
print(main_before, child, ",".join(map(str, python_threads)), ",".join(map(str, everyone)))
"""


def _run(env_extra):
    env = dict(os.environ, **env_extra)
    if not env_extra:
        env.pop("GRPCGO_SYSMON_SLACK_NS", None)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    before, child, python, everyone = out.stdout.split()
    return int(before), int(child), [int(s) for s in python.split(",")], [
        int(s) for s in everyone.split(",")]


def test_only_sysmon_keeps_the_large_slack():
    before, child, python, slacks = _run({})  # the default: 1 ms
    assert child == before, "a process spawned by a grpc process has its slack changed"
    assert set(python) == {before}, ("Python threads lost their timer slack", python)
    # sysmon alone has the large slack; Go's other threads the minimal one
    assert slacks.count(1000000) == 1, slacks
    assert slacks.count(1) >= 2, slacks
    assert set(slacks) == {before, 1, 1000000}, slacks


def test_slack_can_be_turned_off():
    before, child, python, slacks = _run({"GRPCGO_SYSMON_SLACK_NS": "0"})
    assert set(slacks) == {before}, slacks
    assert set(python) == {before}
