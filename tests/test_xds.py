"""xDS: grpc.insecure_channel("xds:///echo") resolves, balances and routes
through a real management server (tests/xdscp, on go-control-plane): a
weighted split over 3 backends, a backend removed and re-added, a retry
policy, the management server restarted. xDS security and xDS-enabled
servers: mTLS configured by the control plane (file_watcher certificate
providers from the bootstrap), the fallback credentials when it configures
none, and a server that serves only once its Listener resource arrives.

The bootstrap is read when the engine loads, so the client runs in a child
interpreter (CLIENT) that makes calls on command and reports which backend
answered; the backends are grpcgo servers in this process, except the
xDS-enabled ones, which run in a child of their own (XDS_SERVER)."""

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

import certs
import grpc

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
BUILD_TIMEOUT = 900  # a cold module cache compiles go-control-plane
WAIT = 30  # seconds for the control plane, the client or a converging split
SERVICE = "echo"

CLIENT = r"""
import collections, json, sys
import grpc
fallback = sys.argv[1] if len(sys.argv) > 1 else None
if fallback is None:
    channel = grpc.insecure_channel("xds:///echo")
elif fallback == "insecure":
    creds = grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
    channel = grpc.secure_channel("xds:///echo", creds)
else:  # a file holding the CA certificate: TLS to a server named localhost
    with open(fallback, "rb") as f:
        creds = grpc.xds_channel_credentials(grpc.ssl_channel_credentials(f.read()))
    channel = grpc.secure_channel("xds:///echo", creds,
                                  options=[("grpc.ssl_target_name_override", "localhost")])
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


# An xDS-enabled server: answers /xds.Echo/Who with how the call's
# connection is secured and who the client is. argv: the fallback server
# credentials ("insecure", or "KEY,CERT" files for TLS).
XDS_SERVER = r"""
import json, sys, time
from concurrent import futures
import grpc

def hold(request, context):  # a call still running when the server stops
    yield b"held"
    while context.is_active():
        time.sleep(0.05)

def who(request, context):
    auth = context.auth_context()
    return json.dumps({
        "security": auth["transport_security_type"][0].decode(),
        "peer": [i.decode() for i in context.peer_identities() or ()],
    }, sort_keys=True).encode()

if sys.argv[1] == "insecure":
    fallback = grpc.insecure_server_credentials()
else:
    key, cert = (open(p, "rb").read() for p in sys.argv[1].split(","))
    fallback = grpc.ssl_server_credentials([(key, cert)])
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), xds=True)
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
    "xds.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who),
                 "Hold": grpc.unary_stream_rpc_method_handler(hold)})])
port = server.add_secure_port("127.0.0.1:0", grpc.xds_server_credentials(fallback))
server.start()
print("port %d" % port, flush=True)
sys.stdin.read()
server.stop(None)
"""

LISTENER_TEMPLATE = "grpc/server?xds.resource.listening_address=%s"


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

    def publish(self, clusters, retry=None, client_tls=None, servers=()):
        config = {"service": SERVICE, "clusters": clusters, "servers": list(servers)}
        if retry:
            config["retry"] = retry
        if client_tls:
            config["client_tls"] = client_tls
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


def bootstrap_env(control_port, identity=None, ca=None):
    """The environment of a child whose bootstrap names the management
    server; identity (a certs pair) and ca make the file_watcher
    certificate provider instance "certs"."""
    bootstrap = {
        "xds_servers": [{"server_uri": "127.0.0.1:%d" % control_port,
                         "channel_creds": [{"type": "insecure"}],
                         "server_features": ["xds_v3"]}],
        "node": {"id": "grpcgo-test", "locality": {"zone": "test"}},
        "server_listener_resource_name_template": LISTENER_TEMPLATE,
    }
    if identity is not None:
        bootstrap["certificate_providers"] = {"certs": {
            "plugin_name": "file_watcher",
            "config": {"certificate_file": identity.cert_path,
                       "private_key_file": identity.key_path,
                       "ca_certificate_file": ca.cert_path,
                       "refresh_interval": "600s"},
        }}
    env = dict(os.environ, GRPC_XDS_BOOTSTRAP_CONFIG=json.dumps(bootstrap))
    env.pop("GRPC_XDS_BOOTSTRAP", None)
    return env


class Client:
    def __init__(self, control_port, fallback=None, identity=None, ca=None):
        args = [sys.executable, "-c", CLIENT] + ([fallback] if fallback else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=bootstrap_env(control_port, identity, ca))
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


# -- xDS security and xDS-enabled servers --------------------------------------
class XDSServer:
    """A Python xDS-enabled server in a child interpreter."""

    def __init__(self, control_port, fallback, identity=None, ca=None):
        self.proc = subprocess.Popen([sys.executable, "-c", XDS_SERVER, fallback],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=bootstrap_env(control_port, identity, ca))
        self.lines = Lines(self.proc)
        first = self.lines.next()
        assert first.startswith("port "), first
        self.address = "127.0.0.1:%d" % int(first.split()[1])
        # the Listener resource this server asks for
        self.listener = LISTENER_TEMPLATE % self.address

    def resource(self, tls=None):
        return {"name": self.listener, "address": self.address, "tls": tls}

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secure_mesh(xdscp_bin):
    made = {"control": ControlPlane(xdscp_bin), "server": None, "client": None}
    try:
        yield made
    finally:
        for name in ("client", "server"):
            if made[name] is not None:
                made[name].stop()
        made["control"].stop()


def the_server_cluster(server):
    return [{"name": "c0", "weight": 1, "endpoints": [server.address]}]


CERTS = {"identity": "certs", "root": "certs"}


def test_mtls_configured_by_the_control_plane(secure_mesh, pki):
    control = secure_mesh["control"]
    # Plaintext fallbacks on both sides: TLS can only come from xDS.
    server = secure_mesh["server"] = XDSServer(control.port, "insecure", pki.server, pki.ca)
    control.publish(the_server_cluster(server), client_tls=CERTS,
                    servers=[server.resource(dict(CERTS, require_client_cert=True))])
    client = secure_mesh["client"] = Client(control.port, "insecure", pki.client, pki.ca)
    seen = client.calls(3)
    # the server saw a TLS connection and the client certificate the
    # client's bootstrap names
    assert seen == {json.dumps({"peer": ["grpcgo-client"], "security": "ssl"}): 3}, seen


def test_fallback_credentials_without_xds_security(secure_mesh, pki):
    control = secure_mesh["control"]
    # TLS fallbacks (the server's certificate, the CA), no client
    # certificate; the control plane configures no security.
    server = secure_mesh["server"] = XDSServer(
        control.port, "%s,%s" % (pki.server.key_path, pki.server.cert_path), pki.server, pki.ca)
    control.publish(the_server_cluster(server), servers=[server.resource()])
    client = secure_mesh["client"] = Client(control.port, pki.ca.cert_path, pki.client, pki.ca)
    seen = client.calls(3)
    assert seen == {json.dumps({"peer": [], "security": "ssl"}): 3}, seen


def test_a_server_serves_only_while_its_listener_is_there(secure_mesh):
    control = secure_mesh["control"]
    server = secure_mesh["server"] = XDSServer(control.port, "insecure")
    # The control plane has no Listener for it: NOT_SERVING, connections
    # are closed as they are accepted.
    control.publish([])
    with grpc.insecure_channel(server.address) as channel:
        who = channel.unary_unary("/xds.Echo/Who")
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as caught:
                who(b"", timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
        # Its Listener (plaintext, routes from RDS) arrives: it serves.
        control.publish([], servers=[server.resource()])
        answer = json.loads(who(b"", timeout=WAIT, wait_for_ready=True))
        assert answer == {"peer": [], "security": "insecure"}
        # The Listener is withdrawn: NOT_SERVING again (its connections are
        # drained, new ones closed at accept).
        control.publish([])
        deadline = time.monotonic() + WAIT
        while True:
            try:
                who(b"", timeout=5)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                break
            assert time.monotonic() < deadline, "still serving without its Listener"
            time.sleep(0.1)


def test_an_xds_servers_stop_ends_its_calls_as_grpcios(secure_mesh):
    # A call that outlives the stop's grace ends UNAVAILABLE "Cancelling
    # all calls" on its stream, as on a plain server (and grpcio's).
    control = secure_mesh["control"]
    server = secure_mesh["server"] = XDSServer(control.port, "insecure")
    control.publish([], servers=[server.resource()])
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_stream("/xds.Echo/Hold")(b"", timeout=WAIT, wait_for_ready=True)
        assert next(call) == b"held"
        server.stop()  # stop(None)
        with pytest.raises(grpc.RpcError) as caught:
            next(call)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
        assert caught.value.details() == "Cancelling all calls", caught.value
    secure_mesh["server"] = None


def test_an_xds_server_without_bootstrap_serves_plainly():
    # As grpcio: without a bootstrap (this process has none) the engine
    # logs why and the server serves as configured by its code.
    assert "GRPC_XDS_BOOTSTRAP" not in os.environ
    assert "GRPC_XDS_BOOTSTRAP_CONFIG" not in os.environ
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), xds=True)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "xds.Echo", {"Who": grpc.unary_unary_rpc_method_handler(lambda r, c: b"plain")})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            assert channel.unary_unary("/xds.Echo/Who")(b"", timeout=WAIT) == b"plain"
    finally:
        server.stop(None)
