"""context.add_callback without a thread per call (issue 13).

A handler that registers a callback to learn when its call ends (grpcio-
health-checking's non-blocking Watch does, to forget a watcher whose client
went away) must not cost a thread while the call stays open: the engine
queues the ended calls to the one thread through which it reaches Python
(grpcgo-events), which also serves call credentials, grpc-go's logs and
metrics. Expectations are grpcio 1.85's: a callback runs once the call ends,
however it ends.
"""

import concurrent.futures
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import grpc
from grpc import _logging, _runtime

LOCAL = "127.0.0.1:0"
TIMEOUT = 20
WATCHES = 200


def _os_threads():
    return len(os.listdir("/proc/self/task"))


def _until(predicate, bound=TIMEOUT):
    deadline = time.monotonic() + bound
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def _engine_threads():
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("grpcgo-"))


def test_health_watches_add_no_thread_per_watch():
    health = pytest.importorskip("grpc_health.v1.health")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()  # non-blocking Watch, grpcio's default
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(LOCAL)
    server.start()
    request = health_pb2.HealthCheckRequest()
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            first = stub.Watch(request, timeout=TIMEOUT)
            assert next(first).status == serving
            py_before, os_before = threading.active_count(), _os_threads()
            watches = [stub.Watch(request, timeout=TIMEOUT) for _ in range(WATCHES - 1)]
            assert all(next(w).status == serving for w in watches)
            watches.append(first)
            callbacks = servicer._send_response_callbacks[""]
            assert len(callbacks) == WATCHES
            # 200 open watches: not a Python thread more (the pool's two may
            # have started), and no OS thread per watch either.
            py_after, os_after = threading.active_count(), _os_threads()
            assert py_after - py_before <= 2, _engine_threads()
            assert os_after - os_before < WATCHES // 2, (os_before, os_after)
            assert stub.Check(request, timeout=TIMEOUT).status == serving
            for w in watches:
                w.cancel()
            # Every watch's callback ran: the servicer forgot its watchers.
            assert _until(lambda: len(callbacks) == 0), len(callbacks)
            from grpc import _events

            assert _until(lambda: _events.pending() == 0)
            assert stub.Check(request, timeout=TIMEOUT).status == serving
            assert threading.active_count() - py_before <= 2
    finally:
        server.stop(None)


def _watch_server(workers=2):
    """A server whose /w/Watch keeps the call open (non-blocking) and whose
    callbacks record their call's number and the thread they ran on."""
    ran = []

    def watch(request, context, send_response):
        send_response(request)
        context.add_callback(lambda: ran.append((request, threading.current_thread().name)))

    watch.experimental_non_blocking = True

    def unary(request, context):
        context.add_callback(lambda: ran.append((request, threading.current_thread().name)))
        return request

    handler = grpc.method_handlers_generic_handler("w", {
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
    })
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    server = grpc.server(pool, handlers=[handler])
    port = server.add_insecure_port(LOCAL)
    server.start()
    return server, port, ran


def test_callbacks_run_on_the_engine_thread_however_the_call_ends():
    server, port, ran = _watch_server()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            # A handler that returned: its callbacks ran when it finished.
            assert ch.unary_unary("/w/Unary")(b"u", timeout=TIMEOUT) == b"u"
            assert _until(lambda: (b"u", ) == tuple(r[0] for r in ran))
            cancelled = ch.unary_stream("/w/Watch")(b"c", timeout=TIMEOUT)
            expired = ch.unary_stream("/w/Watch")(b"d", timeout=0.5)
            assert next(cancelled) == b"c" and next(expired) == b"d"
            cancelled.cancel()
            assert _until(lambda: {r[0] for r in ran} == {b"u", b"c", b"d"}), ran
            # The open calls' callbacks ran on grpcgo-events, not a thread each.
            assert {name for req, name in ran if req != b"u"} == {"grpcgo-events"}
            still_open = ch.unary_stream("/w/Watch")(b"s", timeout=TIMEOUT)
            assert next(still_open) == b"s"
        # The server stops: the open call ends, and so its callback runs.
        server.stop(None).wait(TIMEOUT)
        assert _until(lambda: b"s" in {r[0] for r in ran}), ran
    finally:
        server.stop(None)


class _Plugin(grpc.AuthMetadataPlugin):
    def __call__(self, context, callback):
        callback((("who", "plugin"),), None)


def test_callback_and_log_handler_may_make_calls_with_call_credentials():
    # Code grpcgo-events runs (a callback, a logging handler) may make a call
    # whose metadata plugin needs the engine's credentials thread meanwhile.
    got = []

    def echo(request, context):
        return dict(context.invocation_metadata()).get("who", "").encode()

    def watch(request, context, send_response):
        send_response(request)
        context.add_callback(lambda: got.append(("callback", call(b""))))

    watch.experimental_non_blocking = True
    handler = grpc.method_handlers_generic_handler("w", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
    })
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_secure_port(LOCAL, grpc.local_server_credentials(
        grpc.LocalConnectionType.LOCAL_TCP))
    server.start()
    creds = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.metadata_call_credentials(_Plugin()))
    channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
    echo_call = channel.unary_unary("/w/Echo")

    def call(request):
        try:
            return echo_call(request, timeout=5)
        except grpc.RpcError as error:
            return error.code()

    class Shipper(logging.Handler):  # a handler that ships records over gRPC
        def emit(self, record):
            if not got or got[-1][0] != "log":
                got.append(("log", call(b"")))

    shipper = Shipper()
    go_logger = logging.getLogger("grpc.go")
    level = go_logger.level
    go_logger.addHandler(shipper)
    try:
        assert call(b"") == b"plugin"
        watching = channel.unary_stream("/w/Watch")(b"w", timeout=TIMEOUT)
        assert next(watching) == b"w"
        watching.cancel()  # the callback runs on grpcgo-events
        assert _until(lambda: ("callback", b"plugin") in got), got
        # grpc-go's INFO records (a channel made logs some), delivered by
        # grpcgo-events to the shipper, which makes its call from there.
        hot = _runtime.hot()
        go_logger.setLevel(logging.INFO)
        hot.log_setup(0, 0, [])  # as GRPC_VERBOSITY=INFO would
        grpc.insecure_channel("127.0.0.1:1").close()
        assert _until(lambda: ("log", b"plugin") in got), got
    finally:
        hot = _runtime.hot()
        hot.log_setup(*_logging.settings())
        go_logger.removeHandler(shipper)
        go_logger.setLevel(level)
        channel.close()
        server.stop(None)


SCRIPT = textwrap.dedent("""
    import atexit, concurrent.futures, os, signal, sys, threading, time

    ran = []
    # Registered before grpc loads, so it runs after grpc's atexit hook.
    atexit.register(lambda: print("ran", len(ran), flush=True))

    import grpc

    def watch(request, context, send_response):
        send_response(request)
        context.add_callback(lambda: ran.append(request))

    watch.experimental_non_blocking = True
    handler = grpc.method_handlers_generic_handler(
        "w", {"Watch": grpc.unary_stream_rpc_method_handler(watch)})
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    streams = [channel.unary_stream("/w/Watch")(b"%d" % i, timeout=60) for i in range(50)]
    assert all(next(s) == b"%d" % i for i, s in enumerate(streams))
    print("open", flush=True)
    if sys.argv[1] == "sigint":
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        server.wait_for_termination()
""")


@pytest.mark.parametrize("how", ["exit", "sigint"])
def test_exit_with_pending_callbacks_is_clean(how):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "open" in proc.stdout, proc.stderr
    if how == "exit":
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
    else:
        assert "KeyboardInterrupt" in proc.stderr
        assert proc.stderr.count("Traceback") == 1, proc.stderr
    # Stopping the server at exit ended the 50 calls: their callbacks ran.
    assert "ran 50" in proc.stdout, (proc.stdout, proc.stderr)
