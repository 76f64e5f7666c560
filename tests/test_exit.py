"""Clean interpreter exit with grpc objects alive, each case in a subprocess.

The interpreter must exit promptly, with status 0 and without a hang, a
crash or a traceback, while it still has: live channels, a running server,
calls in flight in both directions (a client blocked in a thread, a server
handler blocked on its client), pending done callbacks, connectivity
subscriptions and a stop() under way. (test_runtime.py covers a few
in-flight cases already: streams in flight, a pending unary future, exit
from a non-main thread.)

Expected behaviour is grpcio 1.85's where grpcio exits cleanly (checked by
running this file against grpcio, GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv
holding grpcio); where grpcio 1.85 hangs, the case is grpcgo's promise and
is skipped under grpcio.
"""

import glob
import os
import subprocess
import sys
import textwrap
import time

import grpc
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
EXIT_BOUND = 20  # seconds: a child still running after this hangs

IS_GRPCGO = bool(
    glob.glob(os.path.join(os.path.dirname(os.path.abspath(grpc.__file__)), "_engine*.so"))
)

PRELUDE = textwrap.dedent(
    """
    import concurrent.futures, os, socket, sys, threading, time
    import grpc

    FOREVER = threading.Event()  # never set

    def _echo(request, context):
        return request

    def _hold(request, context):
        # Blocked until its call ends (bounded).
        deadline = time.monotonic() + 60
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        return request

    def _drain(request_iterator, context):
        # Blocked reading requests the client never finishes sending.
        return b"".join(request_iterator)

    def _flood(request, context):
        # Blocked sending: 1 MiB messages to a client that stops reading.
        for _ in range(1000):
            if not context.is_active():
                return
            yield bytes(1 << 20)

    def _bidi(request_iterator, context):
        for request in request_iterator:
            yield request

    HANDLER = grpc.method_handlers_generic_handler("t.Exit", {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Hold": grpc.unary_unary_rpc_method_handler(_hold),
        "Drain": grpc.stream_unary_rpc_method_handler(_drain),
        "Flood": grpc.unary_stream_rpc_method_handler(_flood),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    })

    def start_server(workers=8):
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        server = grpc.server(pool, handlers=[HANDLER])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return server, port

    def blocked_requests(first=b"one"):
        yield first
        FOREVER.wait()

    REMOTE_SERVER = (
        "import concurrent.futures, grpc, sys, time\\n"
        "def hold(request, context):\\n"
        "    deadline = time.monotonic() + 30\\n"
        "    while context.is_active() and time.monotonic() < deadline:\\n"
        "        time.sleep(0.01)\\n"
        "    return request\\n"
        "def drain(request_iterator, context):\\n"
        "    return b''.join(request_iterator)\\n"
        "def slow(request, context):\\n"
        "    time.sleep(float(request))\\n"
        "    return request\\n"
        "def ticks(request, context):\\n"
        "    for _ in range(int(request)):\\n"
        "        yield b'tick'\\n"
        "h = grpc.method_handlers_generic_handler('t.Exit', {\\n"
        "    'Hold': grpc.unary_unary_rpc_method_handler(hold),\\n"
        "    'Slow': grpc.unary_unary_rpc_method_handler(slow),\\n"
        "    'Ticks': grpc.unary_stream_rpc_method_handler(ticks),\\n"
        "    'Drain': grpc.stream_unary_rpc_method_handler(drain)})\\n"
        "s = grpc.server(concurrent.futures.ThreadPoolExecutor(4), handlers=[h])\\n"
        "print(s.add_insecure_port('127.0.0.1:0'), flush=True)\\n"
        "s.start()\\n"
        "sys.stdin.read()\\n"
        "s.stop(None)\\n"
    )

    def start_remote_server():
        # A server in another process (so that no handler of this process
        # keeps it alive); killed when this process exits.
        import atexit, subprocess
        proc = subprocess.Popen([sys.executable, "-c", REMOTE_SERVER],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        atexit.register(proc.kill)
        return int(proc.stdout.readline())
    """
)

CASES = {
    "idle_channel": """
        channel = grpc.insecure_channel("127.0.0.1:1")
    """,
    "connected_channel": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        assert channel.unary_unary("/t.Exit/Echo")(b"x", timeout=10) == b"x"
        server.stop(None).wait(10)
    """,
    "many_channels": """
        server, port = start_server()
        channels = [grpc.insecure_channel("127.0.0.1:%d" % port) for _ in range(50)]
        for ch in channels:
            assert ch.unary_unary("/t.Exit/Echo")(b"x", timeout=10) == b"x"
    """,
    "running_server": """
        server, port = start_server()
    """,
    "running_server_and_channel": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        assert channel.unary_unary("/t.Exit/Echo")(b"x", timeout=10) == b"x"
    """,
    "unstarted_server": """
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        server = grpc.server(pool, handlers=[HANDLER])
        server.add_insecure_port("127.0.0.1:0")
    """,
    "client_blocked_in_a_daemon_thread": """
        port = start_remote_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        started = threading.Event()

        def client():
            started.set()
            channel.unary_unary("/t.Exit/Hold")(b"x", timeout=60)

        threading.Thread(target=client, daemon=True).start()
        started.wait(10)
        time.sleep(0.3)
    """,
    "client_stream_blocked_in_a_daemon_thread": """
        port = start_remote_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        started = threading.Event()

        def client():
            started.set()
            channel.stream_unary("/t.Exit/Drain")(blocked_requests(), timeout=60)

        threading.Thread(target=client, daemon=True).start()
        started.wait(10)
        time.sleep(0.3)
    """,
    "client_blocked_in_a_daemon_thread_with_a_local_server": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        started = threading.Event()

        def client():
            started.set()
            try:
                channel.unary_unary("/t.Exit/Hold")(b"x", timeout=60)
            except grpc.RpcError:
                pass  # the server stops at exit

        threading.Thread(target=client, daemon=True).start()
        started.wait(10)
        time.sleep(0.2)
    """,
    "server_handler_blocked_sending": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        call = channel.unary_stream("/t.Exit/Flood")(b"", timeout=60)
        assert len(next(call)) == 1 << 20
        time.sleep(0.3)  # the handler fills the window and blocks
    """,
    "server_handler_blocked_receiving": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        future = channel.stream_unary("/t.Exit/Drain").future(blocked_requests(), timeout=60)
        time.sleep(0.3)
        assert future.running()
    """,
    "server_handler_blocked_on_a_remote_client": """
        # The server's client is another process that stays connected.
        import subprocess
        server, port = start_server()
        client = subprocess.Popen([sys.executable, "-c", (
            "import grpc, sys\\n"
            "ch = grpc.insecure_channel('127.0.0.1:%d')\\n"
            "print('calling', flush=True)\\n"
            "try:\\n"
            "    ch.unary_unary('/t.Exit/Hold')(b'x', timeout=30)\\n"
            "except grpc.RpcError as e:\\n"
            "    print(e.code(), flush=True)\\n") % port],
            stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "calling"
        time.sleep(0.5)
        import atexit
        atexit.register(lambda: client.kill())
    """,
    "pending_done_callbacks": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        futures = []
        for i in range(5):
            future = channel.unary_unary("/t.Exit/Hold").future(b"x", timeout=60)
            future.add_done_callback(lambda f: f.code())
            futures.append(future)
        call = channel.unary_stream("/t.Exit/Flood")(b"", timeout=60)
        call.add_done_callback(lambda c: c.code())
        call.add_callback(lambda: None)
        time.sleep(0.3)
    """,
    "pending_done_callbacks_no_deadline": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        future = channel.unary_unary("/t.Exit/Hold").future(b"x")
        future.add_done_callback(lambda f: f.exception())
        stream = channel.stream_unary("/t.Exit/Drain").future(blocked_requests())
        stream.add_done_callback(lambda f: f.exception())
        time.sleep(0.3)
    """,
    "futures_to_a_server_in_another_process_in_flight": """
        port = start_remote_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        futures = [channel.unary_unary("/t.Exit/Hold").future(b"x", timeout=60)
                   for _ in range(3)]
        for future in futures:
            future.add_done_callback(lambda f: None)
        time.sleep(0.3)
    """,
    "connectivity_subscription": """
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        channel = grpc.insecure_channel("127.0.0.1:%d" % listener.getsockname()[1])
        channel.subscribe(lambda state: None, try_to_connect=True)
        ready = grpc.channel_ready_future(channel)
        ready.add_done_callback(lambda f: None)
        time.sleep(0.3)
    """,
    "stop_with_grace_under_way": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        future = channel.unary_unary("/t.Exit/Hold").future(b"x", timeout=60)
        time.sleep(0.2)
        server.stop(30)
        time.sleep(0.1)
    """,
    "sys_exit_with_calls_in_flight": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        call = channel.stream_stream("/t.Exit/Bidi")(blocked_requests(), timeout=60)
        assert next(call) == b"one"
        print("leaving", flush=True)
        sys.exit(0)
    """,
    "closed_channel_and_stopped_server": """
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        assert channel.unary_unary("/t.Exit/Echo")(b"x", timeout=10) == b"x"
        channel.close()
        server.stop(None).wait(10)
    """,
}

# Where grpcio 1.85 does not exit promptly (it hangs until its threads end).
GRPCIO_HANGS = {
    "server_handler_blocked_on_a_remote_client",
    "server_handler_blocked_sending",
    "server_handler_blocked_receiving",
    "pending_done_callbacks",
    "pending_done_callbacks_no_deadline",
    "stop_with_grace_under_way",
    "sys_exit_with_calls_in_flight",
    "client_blocked_in_a_daemon_thread_with_a_local_server",
}

def run_child(body):
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    code = PRELUDE + "\n" + textwrap.dedent(body)
    if "sys.exit(0)" not in body:
        code += '\nprint("leaving", flush=True)\n'
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=EXIT_BOUND, stdin=subprocess.DEVNULL, cwd=TESTS_DIR,
                              env=env)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        pytest.fail(f"the child did not exit within {EXIT_BOUND}s (hang)\n"
                    f"stdout:\n{out}\nstderr:\n{err}")
    return proc, time.monotonic() - start


@pytest.mark.parametrize("case", sorted(CASES))
def test_exit_is_prompt_and_clean(case):
    if case in GRPCIO_HANGS and not IS_GRPCGO:
        pytest.skip("grpcgo's promise; grpcio 1.85 does not exit promptly here")
    proc, elapsed = run_child(CASES[case])
    detail = f"exit status {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, detail
    assert proc.stdout.splitlines()[-1:] == ["leaving"], detail
    assert "Traceback" not in proc.stderr, detail
    assert "Fatal Python error" not in proc.stderr, detail
    assert "panic" not in proc.stderr, detail
    print(f"{case}: {elapsed:.2f} s")


# -- what exit keeps: threads Python waits for, and the main thread's atexit --------


def outcome(body):
    """Runs body in a child; returns its stdout lines (exit must be clean)."""
    proc, _ = run_child(body)
    detail = f"exit status {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, detail
    assert "Traceback" not in proc.stderr, detail
    assert "Fatal Python error" not in proc.stderr, detail
    return proc.stdout.splitlines()


def test_calls_of_non_daemon_threads_and_executor_tasks_complete_after_main_ends():
    # grpcio lets them all finish; grpcgo cancelled them (0 of 10, 0 of 20).
    lines = outcome("""
        port = start_remote_server()
        executor = concurrent.futures.ThreadPoolExecutor(2)
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        results = []
        slow = channel.unary_unary("/t.Exit/Slow")
        ticks = channel.unary_stream("/t.Exit/Ticks")

        def call(i):
            try:
                assert slow(b"0.05", timeout=20) == b"0.05"
                assert list(ticks(b"3", timeout=20)) == [b"tick"] * 3
                results.append("ok")
            except Exception as e:
                results.append(repr(e))

        def thread_calls():
            for i in range(10):
                call(i)

        for i in range(20):
            executor.submit(call, i)
        threading.Thread(target=thread_calls).start()
        import atexit
        atexit.register(lambda: print("results", len(results), set(results), flush=True))
    """)
    assert lines[-1:] == ["results 30 {'ok'}"], lines


def test_a_server_run_from_a_non_daemon_thread_keeps_serving_after_main_ends():
    if not IS_GRPCGO:
        pytest.skip("grpcgo's promise; grpcio 1.85's executor refuses its calls")
    lines = outcome("""
        import subprocess
        ready = threading.Event()
        port = []

        client_started = threading.Event()

        def serve():
            server, p = start_server()
            port.append(p)
            ready.set()
            client_started.wait(10)
            client.wait(30)  # serves until its client is done
            server.stop(None).wait(10)

        CLIENT = (
            "import grpc, sys, time\\n"
            "ch = grpc.insecure_channel('127.0.0.1:%d')\\n"
            "hold = ch.unary_unary('/t.Exit/Hold').future(b'h', timeout=1)\\n"
            "print('calling', flush=True)\\n"
            "sys.stdin.readline()\\n"  # the server's main thread has ended
            "out = []\\n"
            "for i in range(5):\\n"
            "    out.append(ch.unary_unary('/t.Exit/Echo')(b'x', timeout=10))\\n"
            "print(out, hold.code(), flush=True)\\n")
        thread = threading.Thread(target=serve)
        client = None
        thread.start()
        ready.wait(10)
        client = subprocess.Popen([sys.executable, "-c", CLIENT % port[0]],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        client_started.set()
        assert client.stdout.readline().strip() == "calling"
        import atexit
        def after():
            print(client.stdout.readline().strip(), flush=True)
        atexit.register(after)
        def at_threading_exit():
            client.stdin.write("go\\n")
            client.stdin.flush()
        threading._register_atexit(at_threading_exit)
    """)
    # Hold runs until its client's deadline: a deadline, not a cancellation.
    assert lines[-1] == "[b'x', b'x', b'x', b'x', b'x'] StatusCode.DEADLINE_EXCEEDED", lines


def test_no_hang_when_a_channel_comes_before_the_first_executor():
    # grpc's exit hook registered before concurrent.futures' ran after it:
    # the executor joined a worker blocked in a handler, forever.
    if not IS_GRPCGO:
        pytest.skip("grpcgo's promise; grpcio 1.85 does not exit promptly here")
    assert "concurrent.futures.thread" not in PRELUDE
    lines = outcome("""
        assert "concurrent.futures.thread" not in sys.modules
        channel = grpc.insecure_channel("127.0.0.1:1")
        server, port = start_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        future = channel.stream_unary("/t.Exit/Drain").future(blocked_requests())
        time.sleep(0.3)
        assert future.running()
        print("leaving", flush=True)
    """)
    assert lines[-1:] == ["leaving"]


def test_rpcs_from_an_atexit_handler_registered_before_grpc_loaded():
    lines = outcome("""
        import atexit
        port = start_remote_server()  # its kill is registered first: runs last

        def last_words():
            channel = grpc.insecure_channel("127.0.0.1:%d" % port)
            print("unary", channel.unary_unary("/t.Exit/Slow")(b"0.01", timeout=10), flush=True)
            print("stream", list(channel.unary_stream("/t.Exit/Ticks")(b"2", timeout=10)), flush=True)
            future = channel.unary_unary("/t.Exit/Slow").future(b"0.01", timeout=10)
            print("future", future.result(), flush=True)

        atexit.register(last_words)
        # grpc loads after the handler was registered.
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        assert channel.unary_unary("/t.Exit/Slow")(b"0", timeout=10) == b"0"
    """)
    assert lines[-3:] == ["unary b'0.01'", "stream [b'tick', b'tick']", "future b'0.01'"], lines


def test_no_thread_is_ended_inside_the_engine_at_finalization():
    # Daemon threads busy with calls through finalization: each comes back
    # from Go many times a millisecond. CPython ends a thread that waits for
    # the GIL once finalization started (pthread_exit); inside Go that
    # crashed the process (2 runs in 25 with streaming clients).
    if not IS_GRPCGO:
        pytest.skip("about grpcgo's engine")
    body = """
        port = start_remote_server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        ticks = channel.unary_stream("/t.Exit/Ticks")
        slow = channel.unary_unary("/t.Exit/Slow")

        def stream():
            while True:
                for _ in ticks(b"100000"):
                    pass

        def unary():
            while True:
                slow(b"0")

        for target in [stream] * 6 + [unary] * 2:
            threading.Thread(target=target, daemon=True).start()

        class Lingers:
            # Runs Python code for a while once finalization started (the
            # collection that frees this cycle): the main thread then hands
            # the GIL to threads that wait for it, and CPython ends each
            # one. A thread ended in plain Python code is harmless; the
            # engine counts those ended with Go frames on their stack.
            def __del__(self, monotonic=time.monotonic, write=os.write,
                        ended_in_go=grpc._runtime.hot().ended_in_go):
                end = monotonic() + 0.2
                while monotonic() < end:
                    pass
                write(1, b"threads ended inside the engine: %d\\n" % ended_in_go())

        import gc
        time.sleep(0.3)
        gc.disable()  # only finalization collects the cycle
        lingers = Lingers()
        lingers.cycle = lingers
        del lingers
    """
    for run in range(5):
        proc, _ = run_child(body)
        detail = f"run {run}: exit status {proc.returncode}\nstderr:\n{proc.stderr[-3000:]}"
        assert proc.returncode == 0, detail
        # Every busy thread parked in the engine before CPython could end
        # it there.
        assert proc.stdout.splitlines()[-2:] == [
            "leaving", "threads ended inside the engine: 0"], detail
        assert "Fatal Python error" not in proc.stderr, detail
        assert "fatal error" not in proc.stderr, detail
