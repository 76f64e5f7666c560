"""xDS: grpc.insecure_channel("xds:///echo") resolves, balances and routes
through a real management server (tests/xdscp, on go-control-plane): a
weighted split over 3 backends, a backend removed and re-added, a retry
policy, the management server restarted.

The bootstrap is read when the engine loads, so the client runs in a child
interpreter (CLIENT) that makes calls on command and reports which backend
answered; the backends are grpcgo servers in this process."""

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent import futures

import pytest

import grpc

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
BUILD_TIMEOUT = 900  # a cold module cache compiles go-control-plane
WAIT = 30  # seconds for the control plane, the client or a converging split
SERVICE = "echo"

CLIENT = r"""
import collections, json, sys
import grpc
channel = grpc.insecure_channel("xds:///echo")
call = channel.unary_unary("/xds.Echo/Who")
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    seen = collections.Counter()
    for _ in range(n):
        try:
            seen[call(b"", timeout=10, wait_for_ready=True).decode()] += 1
        except grpc.RpcError as error:
            seen["error:" + error.code().name] += 1
    print(json.dumps(seen), flush=True)
"""


@pytest.fixture(scope="module")
def xdscp_bin(tmp_path_factory):
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is needed to build tests/xdscp", pytrace=False)
    out = str(tmp_path_factory.mktemp("xdscp") / "xdscp")
    subprocess.run([go, "build", "-o", out, "./tests/xdscp"], cwd=ROOT, check=True,
                   timeout=BUILD_TIMEOUT)
    return out


class Lines:
    """A process's stdout lines, read on a thread, taken with a bound."""

    def __init__(self, proc):
        self.proc = proc
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def next(self):
        try:
            line = self.q.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("no answer from %s within %d s" % (self.proc.args, WAIT))
        if line is None:
            pytest.fail("%s exited: %s" % (self.proc.args, self.proc.stderr.read()))
        return line


class ControlPlane:
    def __init__(self, binary, port=0):
        self.binary = binary
        self.proc = subprocess.Popen([binary, "-port", str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = Lines(self.proc)
        first = self.lines.next()
        assert first.startswith("listening on "), first
        self.port = int(first.split()[-1])

    def publish(self, clusters, retry=None):
        config = {"service": SERVICE, "clusters": clusters}
        if retry:
            config["retry"] = retry
        self.proc.stdin.write(json.dumps(config) + "\n")
        self.proc.stdin.flush()
        answer = self.lines.next()
        assert answer.startswith("ok "), answer

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


class Backend:
    """A grpcgo server answering /xds.Echo/Who with its name; fail_first
    makes its first calls fail with UNAVAILABLE."""

    def __init__(self, name, fail_first=0):
        self.name = name
        self.fail_left = fail_first
        self.calls = 0
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "xds.Echo", {"Who": grpc.unary_unary_rpc_method_handler(self._who)})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.address = "127.0.0.1:%d" % self.port

    def _who(self, request, context):
        with self.lock:
            self.calls += 1
            if self.fail_left > 0:
                self.fail_left -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "failing on purpose")
        return self.name.encode()


class Client:
    def __init__(self, control_port):
        bootstrap = {
            "xds_servers": [{"server_uri": "127.0.0.1:%d" % control_port,
                             "channel_creds": [{"type": "insecure"}],
                             "server_features": ["xds_v3"]}],
            "node": {"id": "grpcgo-test", "locality": {"zone": "test"}},
        }
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP_CONFIG=json.dumps(bootstrap))
        env.pop("GRPC_XDS_BOOTSTRAP", None)
        self.proc = subprocess.Popen([sys.executable, "-c", CLIENT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines = Lines(self.proc)
        assert self.lines.next() == "ready"

    def calls(self, n):
        self.proc.stdin.write("%d\n" % n)
        self.proc.stdin.flush()
        return json.loads(self.lines.next())

    def until(self, predicate, n=30):
        """Calls in rounds of n until predicate(counts) holds; the last counts."""
        deadline = time.monotonic() + WAIT
        while True:
            seen = self.calls(n)
            if predicate(seen) or time.monotonic() > deadline:
                return seen

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def mesh(xdscp_bin):
    backends = [Backend("b1"), Backend("b2"), Backend("b3")]
    control = ControlPlane(xdscp_bin)
    made = {"control": control, "backends": backends, "client": None}
    try:
        yield made
    finally:
        if made["client"] is not None:
            made["client"].stop()
        made["control"].stop()
        for b in backends:
            b.server.stop(None)


def clusters(backends, weights):
    return [{"name": "c%d" % i, "weight": w, "endpoints": [b.address]}
            for i, (b, w) in enumerate(zip(backends, weights)) if w]


def test_weighted_split_over_three_backends(mesh):
    control, (b1, b2, b3) = mesh["control"], mesh["backends"]
    control.publish(clusters((b1, b2, b3), (70, 20, 10)))
    client = mesh["client"] = Client(control.port)
    seen = client.calls(400)
    assert set(seen) == {"b1", "b2", "b3"}, seen
    # 70/20/10 of 400: far from any boundary a fair split could reach
    assert seen["b1"] > seen["b2"] > seen["b3"] > 0, seen
    assert seen["b1"] > 200, seen
    # new weights are followed
    control.publish(clusters((b1, b2, b3), (10, 10, 80)))
    seen = client.until(lambda s: s.get("b3", 0) > s.get("b1", 0) + s.get("b2", 0), n=100)
    assert seen["b3"] > seen.get("b1", 0) + seen.get("b2", 0), seen


def test_a_backend_removed_and_re_added(mesh):
    # one cluster, round robin over three endpoints (EDS)
    control, backends = mesh["control"], mesh["backends"]
    b1, b2, b3 = backends
    everyone = [{"name": "c0", "weight": 1, "endpoints": [b.address for b in backends]}]
    control.publish(everyone)
    client = mesh["client"] = Client(control.port)
    seen = client.until(lambda s: set(s) == {"b1", "b2", "b3"})
    assert set(seen) == {"b1", "b2", "b3"}, seen
    # b2 leaves the endpoints: traffic moves to the others, no call fails
    control.publish([{"name": "c0", "weight": 1, "endpoints": [b1.address, b3.address]}])
    seen = client.until(lambda s: "b2" not in s)
    assert set(seen) == {"b1", "b3"}, seen
    # and comes back
    control.publish(everyone)
    seen = client.until(lambda s: "b2" in s)
    assert set(seen) == {"b1", "b2", "b3"}, seen


def test_retry_policy_from_the_route(mesh):
    control, (b1, _, _) = mesh["control"], mesh["backends"]
    flaky = Backend("flaky", fail_first=2)
    mesh["backends"].append(flaky)
    control.publish([{"name": "c0", "weight": 1, "endpoints": [flaky.address]}],
                    retry={"on": "unavailable", "num": 3})
    client = mesh["client"] = Client(control.port)
    # the first call fails twice with UNAVAILABLE and is retried by the
    # route's policy: the application sees one success
    assert client.calls(1) == {"flaky": 1}
    assert flaky.calls == 3


def test_management_server_restart_loses_no_calls(mesh, xdscp_bin):
    control, (b1, b2, b3) = mesh["control"], mesh["backends"]
    control.publish(clusters((b1, b2, b3), (1, 1, 1)))
    client = mesh["client"] = Client(control.port)
    assert not any(k.startswith("error") for k in client.calls(30))
    port = control.port
    control.stop()
    # the client keeps its last configuration while the server is away
    seen = client.calls(30)
    assert not any(k.startswith("error") for k in seen), seen
    restarted = mesh["control"] = ControlPlane(xdscp_bin, port)
    restarted.publish(clusters((b1, b2, b3), (0, 1, 0)))
    # it reconnects and follows the new server's configuration
    seen = client.until(lambda s: set(s) == {"b2"})
    assert seen == {"b2": 30}, seen
