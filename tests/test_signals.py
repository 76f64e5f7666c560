"""Ctrl-C: SIGINT reaches a main thread blocked in grpc, over loopback.

Each case runs a child Python process whose main thread blocks in grpc: a
unary call, with_call, iterating a response stream, future.result(),
channel_ready_future(...).result() or server.wait_for_termination(). The
test sends it SIGINT and checks that KeyboardInterrupt arrives long before
anything else could end the wait (the calls have 60 s deadlines, the child
gets CHILD_TIMEOUT), that the interrupted call is cancelled on the server
(which runs in this process), and that the child's channel still works
afterwards. How promptly it arrives is measured by `make bench`
(bench/promptness.py, ctrl_c_ms), not asserted here. Expected
behaviour is grpcio 1.85's, checked by running this file against grpcio
(GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding grpcio).

Every wait is bounded; every child has a timeout.
"""

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
WAIT = 10  # seconds, for every event that should happen
CHILD_TIMEOUT = 30  # seconds, for every child process (its calls have 60 s deadlines)

SERVICE = "grpcgo.testing.Signals"


class _Service:
    """Handlers keyed by the request (the case name): Hold blocks until the
    call ends and records whether it ended by cancellation."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}
        self.ended = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def _hold(self, key, context):
        self.event(key + ":started").set()
        deadline = time.monotonic() + CHILD_TIMEOUT
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.ended[key] = "cancelled" if not context.is_active() else "timeout"
        self.event(key + ":ended").set()

    def hold(self, request, context):
        self._hold(request.decode(), context)
        return request

    def hold_stream(self, request, context):
        yield b"first"
        self._hold(request.decode(), context)

    def hold_stream_unary(self, request_iterator, context):
        key = next(request_iterator)
        self._hold(key.decode(), context)
        return key

    def hold_bidi(self, request_iterator, context):
        key = next(request_iterator)
        yield key
        self._hold(key.decode(), context)

    def echo(self, request, context):
        return request

    def handler(self):
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Hold": grpc.unary_unary_rpc_method_handler(self.hold),
            "HoldStream": grpc.unary_stream_rpc_method_handler(self.hold_stream),
            "HoldStreamUnary": grpc.stream_unary_rpc_method_handler(self.hold_stream_unary),
            "HoldBidi": grpc.stream_stream_rpc_method_handler(self.hold_bidi),
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
        })


@pytest.fixture(scope="module")
def served():
    service = _Service()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(pool, handlers=[service.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        yield service, port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


PRELUDE = textwrap.dedent(
    """
    import concurrent.futures, gc, sys, time
    import grpc

    PORT = int(sys.argv[1])
    SILENT = int(sys.argv[2])
    KEY = sys.argv[3]
    channel = grpc.insecure_channel("127.0.0.1:%d" % PORT)
    hold = channel.unary_unary("/SERVICE/Hold")
    hold_stream = channel.unary_stream("/SERVICE/HoldStream")
    hold_stream_unary = channel.stream_unary("/SERVICE/HoldStreamUnary")
    hold_bidi = channel.stream_stream("/SERVICE/HoldBidi")
    echo = channel.unary_unary("/SERVICE/Echo")
    assert echo(b"warm-up", timeout=10) == b"warm-up"

    def blocked():
    """
).replace("SERVICE", SERVICE)

EPILOGUE = textwrap.dedent(
    """
    try:
        blocked()
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("caught", flush=True)
    gc.collect()
    # The channel still works.
    print("after", echo(b"after", timeout=10) == b"after", flush=True)
    """
)

CASES = {
    "unary": """
        hold(KEY.encode(), timeout=60)
    """,
    "with_call": """
        hold.with_call(KEY.encode(), timeout=60)
    """,
    "response_stream": """
        call = hold_stream(KEY.encode(), timeout=60)
        for response in call:
            pass
    """,
    "stream_unary": """
        hold_stream_unary(iter([KEY.encode()]), timeout=60)
    """,
    "bidi_stream": """
        for response in hold_bidi(iter([KEY.encode()]), timeout=60):
            pass
    """,
    "unary_no_deadline": """
        hold(KEY.encode())
    """,
    "future_result": """
        future = hold.future(KEY.encode(), timeout=60)
        future.result()
    """,
    "future_result_timeout": """
        future = hold.future(KEY.encode(), timeout=60)
        future.result(timeout=50)
    """,
    "channel_ready_future": """
        silent = grpc.insecure_channel("127.0.0.1:%d" % SILENT)
        print("blocking", flush=True)
        grpc.channel_ready_future(silent).result()
    """,
    "channel_ready_future_timeout": """
        silent = grpc.insecure_channel("127.0.0.1:%d" % SILENT)
        print("blocking", flush=True)
        grpc.channel_ready_future(silent).result(timeout=50)
    """,
    "wait_for_termination": """
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        server = grpc.server(pool)
        server.add_insecure_port("127.0.0.1:0")
        server.start()
        print("blocking", flush=True)
        server.wait_for_termination()
    """,
    "wait_for_termination_timeout": """
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        server = grpc.server(pool)
        server.add_insecure_port("127.0.0.1:0")
        server.start()
        print("blocking", flush=True)
        server.wait_for_termination(timeout=50)
    """,
}

# Cases whose blocked call reaches the server's Hold handler.
CALL_CASES = {"unary", "with_call", "response_stream", "stream_unary", "bidi_stream",
              "unary_no_deadline", "future_result", "future_result_timeout"}


def _read_line(proc, deadline):
    """One line of the child's stdout before deadline (or b"")."""
    result = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()),
                              daemon=True)
    reader.start()
    reader.join(max(deadline - time.monotonic(), 0))
    return result[0] if result else b""


@pytest.mark.parametrize("case", sorted(CASES))
def test_ctrl_c_interrupts_a_blocked_main_thread(served, case):
    service, port = served
    key = f"{case}-{os.getpid()}-{time.monotonic_ns()}"
    script = PRELUDE + textwrap.indent(textwrap.dedent(CASES[case]), "    ") + EPILOGUE
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never answers: never READY
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(port), str(silent.getsockname()[1]), key],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=TESTS_DIR, env=env)
        try:
            deadline = time.monotonic() + CHILD_TIMEOUT
            if case in CALL_CASES:
                assert service.event(key + ":started").wait(WAIT), "the call never started"
            else:
                assert _read_line(proc, deadline).strip() == b"blocking"
            time.sleep(0.3)  # let the main thread settle into its wait
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    lines = [line for line in out.splitlines() if line != "blocking"]
    assert lines[:1] == ["caught"] and len(lines) == 2, out + err
    assert lines[1] == "after True"
    assert "Fatal Python error" not in err, err
    if case in CALL_CASES:
        # The interrupted call was cancelled: its handler saw the call end.
        assert service.event(key + ":ended").wait(WAIT), "the server never saw the call end"
        assert service.ended[key] == "cancelled"


def test_ctrl_c_tests_work_when_pytest_was_started_with_sigint_ignored():
    # nohup or `make test-py &` in a script start pytest with SIGINT ignored;
    # children inherit that, and Ctrl-C never reaches them. conftest.py puts
    # the KeyboardInterrupt handler back, so that the children get it too.
    probe = ("import signal, subprocess, sys\n"
             "import conftest\n"
             "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
             "sys.stdout.flush()\n"
             "subprocess.run([sys.executable, '-c', 'import signal; "
             "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)'])\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", probe], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60, env=env, cwd=TESTS_DIR,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr
