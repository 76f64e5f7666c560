"""TLS against grpc-go, both ways, with grpc-go's own interop programs and
test certificates.

* grpc-go's interop server (google.golang.org/grpc/interop/server@v1.85.0)
  with --use_tls serves testdata/server1.pem (*.test.google.fr, signed by
  testdata/ca.pem); our grpc's client calls it with the interop messages,
  naming the server with grpc.ssl_target_name_override.
* grpc-go's interop client with --use_tls --use_test_ca
  --server_host_override=foo.test.google.fr runs interop cases against
  interop/server.py --use_tls on our grpc.

The grpc-go programs are built once with `go install ...@v1.85.0` run outside
our module (go.mod stays untouched) into build/bin-sec/. The certificates are
read from grpc-go's module directory in the Go module cache. Every process
and call is bounded in time; clients dial 127.0.0.1 only (grpc-go's interop
server has no host flag and listens on all interfaces).
"""

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import grpc

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
INTEROP = os.path.join(ROOT, "interop")
BIN = os.path.join(ROOT, "build", "bin-sec")
GRPC_GO = "google.golang.org/grpc"
VERSION = "v1.85.0"
SERVER_NAME = "foo.test.google.fr"  # in server1.pem's names (*.test.google.fr)

GO_TIMEOUT = 900  # seconds: a cold module cache compiles all of grpc-go
START_TIMEOUT = 30
STOP_TIMEOUT = 10
CASE_TIMEOUT = 60
CALL_TIMEOUT = 10

sys.path.insert(0, INTEROP)


def _go():
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain (`go`) is not on PATH: it builds grpc-go's interop "
                    "programs", pytrace=False)
    return go


def _run(cmd, timeout, **kwargs):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kwargs)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` took over {timeout} s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}",
                    pytrace=False)
    return proc.stdout


@pytest.fixture(scope="module")
def go_bin():
    """grpc-go's interop server and client, built into build/bin-sec."""
    server, client = os.path.join(BIN, "server"), os.path.join(BIN, "client")
    if not (os.access(server, os.X_OK) and os.access(client, os.X_OK)):
        go = _go()
        os.makedirs(BIN, exist_ok=True)
        with tempfile.TemporaryDirectory() as outside:  # no go.mod here
            _run([go, "install", f"{GRPC_GO}/interop/server@{VERSION}",
                  f"{GRPC_GO}/interop/client@{VERSION}"],
                 GO_TIMEOUT, cwd=outside, env=dict(os.environ, GOBIN=BIN))
    return server, client


@pytest.fixture(scope="module")
def testdata():
    """grpc-go's testdata directory in the module cache."""
    go = _go()
    modcache = _run([go, "env", "GOMODCACHE"], 60).strip()
    path = os.path.join(modcache, f"{GRPC_GO}@{VERSION}", "testdata")
    if not os.path.isfile(os.path.join(path, "ca.pem")):
        with tempfile.TemporaryDirectory() as outside:
            _run([go, "mod", "download", f"{GRPC_GO}@{VERSION}"], GO_TIMEOUT, cwd=outside)
    for name in ("ca.pem", "server1.pem", "server1.key"):
        assert os.path.isfile(os.path.join(path, name)), f"no {name} in {path}"
    return path


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
        except ProcessLookupError:
            pass
    return proc.returncode


def _log_tail(path, n=3000):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")[-n:]


@pytest.fixture(scope="module")
def go_server(go_bin, testdata, tmp_path_factory):
    """grpc-go's interop server with TLS; yields its port."""
    port = _free_port()
    log = tmp_path_factory.mktemp("go-server") / "log"
    cmd = [go_bin[0], f"--port={port}", "--use_tls",
           f"--tls_cert_file={os.path.join(testdata, 'server1.pem')}",
           f"--tls_key_file={os.path.join(testdata, 'server1.key')}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"grpc-go's interop server exited ({proc.returncode}):\n"
                            f"{_log_tail(log)}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"grpc-go's interop server not listening after "
                                f"{START_TIMEOUT} s:\n{_log_tail(log)}", pytrace=False)
                time.sleep(0.05)
        yield port
    finally:
        _stop(proc)


def _read_line(proc, timeout):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buf += chunk
    finally:
        sel.close()
    return buf.decode(errors="replace").strip()


@pytest.fixture(scope="module")
def our_server(testdata, tmp_path_factory):
    """interop/server.py --use_tls on our grpc; yields its port."""
    script = os.path.join(INTEROP, "server.py")
    err = tmp_path_factory.mktemp("our-server") / "stderr"
    env = dict(os.environ, GRPCGO_INTEROP_TESTDATA=testdata, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    with open(err, "wb") as errf:
        proc = subprocess.Popen(
            [sys.executable, script, "--port=0", "--host=127.0.0.1", "--use_tls"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
            env=env, start_new_session=True)
    try:
        line = _read_line(proc, START_TIMEOUT)
        prefix = "Server listening on 127.0.0.1:"
        if not line or not line.startswith(prefix):
            # A startup regression is a failure of every case, never a skip.
            _stop(proc)
            pytest.fail(f"interop/server.py --use_tls did not start (first line {line!r}):\n"
                        f"{_log_tail(err)}", pytrace=False)
        yield int(line[len(prefix):].split()[0])
    finally:
        _stop(proc)


# -- our client -> grpc-go's server --------------------------------------------------
@pytest.fixture(scope="module")
def stubs():
    from src.proto.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc

    return empty_pb2, messages_pb2, test_pb2_grpc


def _channel(port, testdata, override=SERVER_NAME):
    creds = grpc.ssl_channel_credentials(_read(os.path.join(testdata, "ca.pem")))
    options = [("grpc.ssl_target_name_override", override)] if override else []
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options)


def test_our_client_empty_call_raw_bytes(go_server, testdata):
    with _channel(go_server, testdata) as channel:
        call = channel.unary_unary("/grpc.testing.TestService/EmptyCall")
        response, outcome = call.with_call(b"", timeout=CALL_TIMEOUT)
        assert response == b""
        assert outcome.code() is grpc.StatusCode.OK


def test_our_client_large_unary(go_server, testdata, stubs):
    _, messages_pb2, test_pb2_grpc = stubs
    with _channel(go_server, testdata) as channel:
        stub = test_pb2_grpc.TestServiceStub(channel)
        request = messages_pb2.SimpleRequest(
            response_size=314159, payload=messages_pb2.Payload(body=b"\x00" * 271828))
        response = stub.UnaryCall(request, timeout=CALL_TIMEOUT)
        assert response.payload.body == b"\x00" * 314159


def test_our_client_streams(go_server, testdata, stubs):
    _, messages_pb2, test_pb2_grpc = stubs
    sizes = [31415, 9, 2653, 58979]
    with _channel(go_server, testdata) as channel:
        stub = test_pb2_grpc.TestServiceStub(channel)
        request = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=s) for s in sizes])
        got = [len(r.payload.body) for r in stub.StreamingOutputCall(request, timeout=CALL_TIMEOUT)]
        assert got == sizes
        requests = [messages_pb2.StreamingInputCallRequest(
            payload=messages_pb2.Payload(body=b"\x00" * n)) for n in (27182, 8, 1828, 45904)]
        response = stub.StreamingInputCall(iter(requests), timeout=CALL_TIMEOUT)
        assert response.aggregated_payload_size == 74922
        pings = [messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=s)],
            payload=messages_pb2.Payload(body=b"\x00" * s)) for s in sizes]
        got = [len(r.payload.body) for r in stub.FullDuplexCall(iter(pings), timeout=CALL_TIMEOUT)]
        assert got == sizes


def test_our_client_checks_grpc_go_s_certificate_name(go_server, testdata):
    # server1.pem does not name 127.0.0.1: without the override the
    # handshake fails, saying why.
    with _channel(go_server, testdata, override=None) as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary("/grpc.testing.TestService/EmptyCall")(b"", timeout=CALL_TIMEOUT)
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    assert any(why in error.value.details() for why in (
        "Hostname Verification Check failed", "certificate is valid for",
        "doesn't contain any IP SANs")), error.value.details()


def test_our_client_rejects_grpc_go_s_certificate_from_unknown_ca(go_server, tmp_path):
    import certs

    pki = certs.make_pki(tmp_path / "pki")
    creds = grpc.ssl_channel_credentials(pki.ca.cert)
    options = [("grpc.ssl_target_name_override", SERVER_NAME)]
    with grpc.secure_channel(f"127.0.0.1:{go_server}", creds, options) as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary("/grpc.testing.TestService/EmptyCall")(b"", timeout=CALL_TIMEOUT)
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    assert any(why in error.value.details() for why in (
        "unable to get local issuer certificate", "certificate signed by unknown authority")), \
        error.value.details()


def test_our_client_sends_call_credentials_over_tls(go_server, testdata):
    # grpc-go's interop server answers UnaryCall with the request's
    # x-grpc-test-echo-initial value as initial metadata: the value the
    # call credentials' plugin attached comes back only if it was sent.
    class Plugin(grpc.AuthMetadataPlugin):
        def __call__(self, context, callback):
            callback((("x-grpc-test-echo-initial", "from-call-credentials"),), None)

    creds = grpc.composite_call_credentials(
        grpc.access_token_call_credentials("interop-token"),
        grpc.metadata_call_credentials(Plugin()))
    with _channel(go_server, testdata) as channel:
        call = channel.unary_unary("/grpc.testing.TestService/UnaryCall")
        response, outcome = call.with_call(b"", timeout=CALL_TIMEOUT, credentials=creds)
        assert outcome.code() is grpc.StatusCode.OK
        assert ("x-grpc-test-echo-initial", "from-call-credentials") in \
            tuple(outcome.initial_metadata())
        # Without them, nothing is echoed.
        _, plain = call.with_call(b"", timeout=CALL_TIMEOUT)
        assert not any(k == "x-grpc-test-echo-initial" for k, _ in plain.initial_metadata())


# -- grpc-go's client -> our server -----------------------------------------------------
GO_CLIENT_CASES = ["empty_unary", "large_unary", "client_streaming", "server_streaming",
                   "ping_pong", "empty_stream", "custom_metadata", "status_code_and_message"]


@pytest.mark.parametrize("case", GO_CLIENT_CASES)
def test_grpc_go_client_to_our_tls_server(case, go_bin, testdata, our_server):
    cmd = [go_bin[1], "--server_host=127.0.0.1", f"--server_port={our_server}",
           f"--test_case={case}", "--use_tls", "--use_test_ca",
           f"--ca_file={os.path.join(testdata, 'ca.pem')}",
           f"--server_host_override={SERVER_NAME}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} took over {CASE_TIMEOUT} s")
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


def test_grpc_go_client_checks_our_certificate_name(go_bin, testdata, our_server):
    # Without the override grpc-go's client checks "127.0.0.1" against
    # server1.pem, which does not name it: the case must fail.
    cmd = [go_bin[1], "--server_host=127.0.0.1", f"--server_port={our_server}",
           "--test_case=empty_unary", "--use_tls", "--use_test_ca",
           f"--ca_file={os.path.join(testdata, 'ca.pem')}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} took over {CASE_TIMEOUT} s")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "127.0.0.1" in proc.stdout + proc.stderr
