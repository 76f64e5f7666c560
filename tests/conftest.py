"""Shared pytest fixtures for grpcgo's tests.

* ``grpc_is_ours`` (autouse, session): fails every test loudly unless
  ``import grpc`` gives grpcgo's package (it ships ``grpc/_engine*.so`` next
  to ``grpc/__init__.py``; grpcio ships ``grpc/_cython/cygrpc*.so`` instead). Set GRPCGO_TEST_ALLOW_GRPCIO=1 to
  run the suite against another ``grpc`` on purpose (for example grpcio, to
  check the tests themselves).
* ``gopeer_bin``: the Go test peers from tests/gopeer, built once per session.
* ``go_echo_port``: a grpc-go server for grpcgo.testing.Echo; yields its port.
* ``py_echo_port``: grpcgo's ``grpc.server`` serving the same service
  (tests/echo_service.py); yields its port.

Everything listens on 127.0.0.1 only.
"""

import concurrent.futures
import os
import selectors
import shutil
import signal
import subprocess
import time
import types

import pytest

import grpc_impl

# Started with SIGINT ignored (nohup, or `make test-py &` from a script: a
# non-interactive shell's background jobs ignore it), Python installs no
# KeyboardInterrupt handler and every child the tests start inherits SIG_IGN:
# each Ctrl-C test then waits out its timeout (180 s) and fails. Ctrl-C is
# what they test, so they get it back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)

GO_BUILD_TIMEOUT = 600  # seconds; a cold module cache compiles all of grpc-go
SERVER_START_TIMEOUT = 30
PROCESS_STOP_TIMEOUT = 10


def not_grpcgo(grpc_dir):
    """Why the ``grpc`` package in grpc_dir is not grpcgo's, or None if it is.

    grpcgo ships grpc/_engine*.so; grpcio ships grpc/_cython/cygrpc*.so.
    PyPI's grpcio installed over us (pip uninstalls our `grpcio`
    distribution first) leaves no engine; grpcio's files written beside
    ours leave its compiled core.
    """
    if not grpc_impl.has_engine(grpc_dir):
        return "no grpc/_engine*.so in it"
    if grpc_impl.has_grpcio_core(grpc_dir):
        return "grpcio's grpc/_cython/cygrpc*.so is in it"
    return None


@pytest.fixture(scope="session", autouse=True)
def grpc_is_ours():
    """Fails loudly if ``grpc`` is not grpcgo's package (e.g. grpcio)."""
    import grpc

    why = not_grpcgo(os.path.dirname(os.path.abspath(grpc.__file__)))
    if why is None:
        return grpc
    message = (
        f"`import grpc` loaded {grpc.__file__}, which is not grpcgo's package: "
        f"{why}. Probably PyPI's grpcio was installed over grpcgo. "
        f"Reinstall grpcgo (`make install`)."
    )
    if os.environ.get("GRPCGO_TEST_ALLOW_GRPCIO") == "1":
        print(f"\nWARNING: {message} Continuing: GRPCGO_TEST_ALLOW_GRPCIO=1.")
        return grpc
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def gopeer_bin(tmp_path_factory):
    """Builds tests/gopeer's server and client; returns their paths."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the Go toolchain (`go`) is not on PATH: it is needed to build the "
            "grpc-go test peers in tests/gopeer",
            pytrace=False,
        )
    out = tmp_path_factory.mktemp("gopeer")
    cmd = [go, "build", "-o", str(out) + os.sep,
           "./tests/gopeer/server", "./tests/gopeer/client"]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=GO_BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` took over {GO_BUILD_TIMEOUT}s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` failed:\n{proc.stdout}{proc.stderr}",
                    pytrace=False)
    return types.SimpleNamespace(server=str(out / "server"),
                                 client=str(out / "client"))


def _read_line(proc, timeout):
    """Reads one line of proc.stdout within timeout seconds, or returns None."""
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


def _stop(proc):
    """Closes proc's stdin (its signal to stop), then kills it if it lingers."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(PROCESS_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(PROCESS_STOP_TIMEOUT)


@pytest.fixture(scope="session")
def go_echo_port(gopeer_bin, tmp_path_factory):
    """Starts the grpc-go Echo server on 127.0.0.1; yields its port."""
    log = tmp_path_factory.mktemp("gopeer-server") / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([gopeer_bin.server, "--port", "0"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err)
    try:
        line = _read_line(proc, SERVER_START_TIMEOUT)
        if not line or not line.startswith("LISTENING "):
            proc.kill()
            proc.wait(PROCESS_STOP_TIMEOUT)
            pytest.fail(f"Go echo server did not start (first line {line!r}); "
                        f"stderr:\n{log.read_text(errors='replace')}", pytrace=False)
        yield int(line.split()[1])
    finally:
        if proc.poll() is None:
            _stop(proc)


@pytest.fixture(scope="session")
def py_echo_port(grpc_is_ours):
    """Starts grpc.server serving the Python Echo service; yields its port."""
    import grpc

    import echo_service

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(executor)
    server.add_generic_rpc_handlers((echo_service.generic_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0, "add_insecure_port('127.0.0.1:0') returned no port"
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(PROCESS_STOP_TIMEOUT)
        executor.shutdown(wait=False)


class GoEchoServer:
    """A grpc-go Echo server process a test starts and stops itself."""

    def __init__(self, binary, args, log):
        self.args = list(args)
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([binary] + self.args, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err)
        line = _read_line(self.proc, SERVER_START_TIMEOUT)
        if not line or not line.startswith("LISTENING "):
            self.proc.kill()
            self.proc.wait(PROCESS_STOP_TIMEOUT)
            pytest.fail(f"Go echo server {self.args} did not start (first line {line!r}); "
                        f"stderr:\n{log.read_text(errors='replace')}", pytrace=False)
        self.port = int(line.split()[1])

    def stop(self):
        """Stops it gracefully (closing its stdin), killing it if it lingers."""
        if self.proc.poll() is None:
            _stop(self.proc)


@pytest.fixture
def go_echo_server(gopeer_bin, tmp_path):
    """A factory: go_echo_server(*args) starts tests/gopeer/server with
    those arguments (--port N, --tls_cert F --tls_key F) and returns a
    GoEchoServer; every one still running is stopped after the test."""
    started = []

    def start(*args):
        server = GoEchoServer(gopeer_bin.server, args,
                              tmp_path / f"gopeer-server-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
