"""Running interop peers: the command lines, a server process, a client run.

Shared by interop/run_matrix.py (`make interop`) and tests/test_interop.py.
Everything listens on and connects to 127.0.0.1 (grpc-go's interop server
binds every interface; nothing but loopback connects to it), and every wait
is bounded.
"""

import os
import signal
import socket
import subprocess
import time

import tls_testdata

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_PY = os.path.join(HERE, "server.py")
CLIENT_PY = os.path.join(HERE, "client.py")
AIO_CLIENT_PY = os.path.join(HERE, "aio_client.py")
AIO_SERVER_PY = os.path.join(HERE, "aio_server.py")

HOST = "127.0.0.1"
TLS_SERVER_NAME = "foo.test.google.fr"  # in server1.pem's names (*.test.google.fr)
SERVER_READY_TIMEOUT = 30
STOP_TIMEOUT = 10

# The cases grpc-go's interop client, and ours, run locally; the soak cases
# last longest. grpc-go's client has no compressed-unary cases.
FAST_CASES = (
    "empty_unary", "large_unary", "client_streaming", "server_streaming",
    "ping_pong", "empty_stream", "timeout_on_sleeping_server",
    "cancel_after_begin", "cancel_after_first_response",
    "status_code_and_message", "special_status_message", "custom_metadata",
    "unimplemented_method", "unimplemented_service",
)
COMPRESSION_CASES = ("client_compressed_unary", "server_compressed_unary")
SOAK_CASES = ("rpc_soak", "channel_soak")
ALL_CASES = FAST_CASES + COMPRESSION_CASES + SOAK_CASES


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# -- command lines ----------------------------------------------------------

def python_server(python, port, tls):
    """interop/server.py under `python` (grpcgo's or grpcio's)."""
    return [python, SERVER_PY, f"--port={port}", f"--host={HOST}"] + (
        ["--use_tls"] if tls else [])


def python_aio_server(python, port, tls):
    """interop/aio_server.py (grpc.aio) under `python`."""
    return [python, AIO_SERVER_PY, f"--port={port}", f"--host={HOST}"] + (
        ["--use_tls"] if tls else [])


def go_server(binary, port, tls):
    cmd = [binary, f"--port={port}"]
    if tls:
        cmd += ["--use_tls", f"--tls_cert_file={tls_testdata.path('server1.pem')}",
                f"--tls_key_file={tls_testdata.path('server1.key')}"]
    return cmd


def _client_flags(port, case, tls, soak_iterations):
    flags = [f"--server_host={HOST}", f"--server_port={port}", f"--test_case={case}"]
    if tls:
        flags += ["--use_tls", "--use_test_ca",
                  f"--ca_file={tls_testdata.path('ca.pem')}",
                  f"--server_host_override={TLS_SERVER_NAME}"]
    if case in SOAK_CASES:
        flags += [f"--soak_iterations={soak_iterations}",
                  "--soak_overall_timeout_seconds=30"]
    return flags


def python_client(python, port, case, tls, soak_iterations=10):
    return [python, CLIENT_PY] + _client_flags(port, case, tls, soak_iterations)


def python_aio_client(python, port, case, tls, soak_iterations=10):
    """interop/aio_client.py (grpc.aio) under `python`."""
    return [python, AIO_CLIENT_PY] + _client_flags(port, case, tls, soak_iterations)


def go_client(binary, port, case, tls, soak_iterations=10):
    return [binary] + _client_flags(port, case, tls, soak_iterations)


# -- processes ----------------------------------------------------------------

def _env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # each python imports its own `grpc`
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _tail(text, lines=3):
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


class Server:
    """A server process on `port`; `failure` says why it is not serving."""

    def __init__(self, cmd, port, log_path):
        self.cmd, self.port, self.log_path = cmd, port, log_path
        self.failure = None
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self._log = open(log_path, "wb")
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=_env(), start_new_session=True)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.failure = (f"server exited ({self._proc.returncode}) before "
                                f"serving: {_tail(self.log())}")
                return
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.failure = f"server not listening after {SERVER_READY_TIMEOUT} s"
        self.stop()

    def log(self):
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self._proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit status."""
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        self._log.close()
        return self._proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def run_client(cmd, timeout, log_path=None):
    """Runs one client case; returns (passed, summary of its output)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env(),
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        timed_out = True
    text = out.decode(errors="replace")
    if log_path:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w") as f:
            f.write(" ".join(cmd) + "\n\n" + text)
    elapsed = time.monotonic() - started
    if timed_out:
        return False, f"timed out after {timeout} s: {_tail(text)}"
    if proc.returncode != 0:
        return False, f"exit {proc.returncode} after {elapsed:.1f} s: {_tail(text)}"
    return True, f"{elapsed:.1f} s"
