"""How incoming calls wake a sync server's pool threads (docs/ARCHITECTURE.md,
"Servers"): a thread that finished a call lingers for the next one, and at
most one lingering thread is on its way at a time; once it has taken a call
it wakes the next if calls are still queued. So a burst of calls that
arrives while Python is busy wakes one thread, not one per call, and a
handler that blocks never keeps a queued call from the other threads.

Every wait is bounded.
"""

import concurrent.futures
import contextvars
import ctypes
import os
import shutil
import subprocess
import threading
import time
import weakref

import grpc
import grpc._server
import pytest

from serving import generic_server

WAIT = 20
SERVICE = "grpcgo.testing.Dispatch"
N = 12

# A C function called through PyDLL keeps the GIL: while it sleeps, no
# Python thread runs, and calls can only queue.
_libc = ctypes.PyDLL(None)
_libc.usleep.argtypes = (ctypes.c_uint,)


def hold_gil(seconds):
    _libc.usleep(int(seconds * 1e6))


@pytest.fixture
def lingering(monkeypatch):
    # Pool threads linger through the test (20 ms otherwise).
    monkeypatch.setattr(grpc._server, "_LINGER", 30.0)


def _dispatch(server):
    return server._hot.server_wakeups(server._handle)


def _serve(handler, workers=N):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    server = grpc.server(pool, handlers=[grpc.method_handlers_generic_handler(
        SERVICE, {"Call": grpc.unary_unary_rpc_method_handler(handler)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, pool, port


def _all_linger(server):
    """Waits until N pool threads linger."""
    deadline = time.monotonic() + WAIT
    while _dispatch(server)[0] < N:
        assert time.monotonic() < deadline, _dispatch(server)
        time.sleep(0.005)


def _warm(call, server, barrier):
    # N calls at once, each waiting for the others: N pool threads exist,
    # and all of them linger once the calls are done.
    futures = [call.future(b"warm", timeout=WAIT) for _ in range(N)]
    assert [f.result(timeout=WAIT) for f in futures] == [b"warm"] * N
    _all_linger(server)


def test_a_burst_of_calls_wakes_one_lingering_thread_not_one_each(lingering):
    barrier = threading.Barrier(N)

    def handler(request, context):
        if request == b"warm":
            barrier.wait(WAIT)
        return request

    server, pool, port = _serve(handler)
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            call = ch.unary_unary("/%s/Call" % SERVICE)
            _warm(call, server, barrier)
            _, woken = _dispatch(server)
            futures = [call.future(b"%d" % i, timeout=WAIT) for i in range(N)]
            hold_gil(0.3)  # the N calls queue meanwhile, N threads linger
            assert [f.result(timeout=WAIT) for f in futures] == [b"%d" % i for i in range(N)]
            # One thread woken for the burst, and the next only once it took
            # a call with more queued: a thread that holds the GIL takes
            # the queued calls before it lingers, so few more are woken.
            # (One per call, N, before.)
            assert _dispatch(server)[1] - woken <= N // 2, _dispatch(server)
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def test_a_blocked_handler_never_keeps_queued_calls_from_other_threads(lingering):
    # The burst's handlers each wait for all N to run at once: the thread
    # woken for the burst wakes the next as soon as it takes a call, and
    # so on, so every queued call starts although each handler blocks.
    warm = threading.Barrier(N)
    burst = threading.Barrier(N)

    def handler(request, context):
        (warm if request == b"warm" else burst).wait(WAIT)
        return request

    server, pool, port = _serve(handler)
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            call = ch.unary_unary("/%s/Call" % SERVICE)
            _warm(call, server, warm)
            futures = [call.future(b"%d" % i, timeout=WAIT) for i in range(N)]
            hold_gil(0.3)
            assert [f.result(timeout=WAIT) for f in futures] == [b"%d" % i for i in range(N)]
            assert not burst.broken
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def test_calls_queued_behind_the_one_thread_on_its_way_all_get_a_thread(lingering):
    # One pool thread lingers; a burst of N calls queues while the GIL is
    # held, so the first call wakes it and the others wake nobody (it is on
    # its way). Once it took its call, no other thread lingers: the
    # dispatcher must start a pool task for each call still queued, or the
    # burst's handlers, each waiting for all N to run, never meet.
    warm = threading.Barrier(1)
    burst = threading.Barrier(N)

    def handler(request, context):
        (warm if request == b"warm" else burst).wait(WAIT)
        return request

    server, pool, port = _serve(handler, workers=N + 4)
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            call = ch.unary_unary("/%s/Call" % SERVICE)
            assert call(b"warm", timeout=WAIT) == b"warm"
            deadline = time.monotonic() + WAIT
            while _dispatch(server)[0] < 1:
                assert time.monotonic() < deadline, _dispatch(server)
                time.sleep(0.005)
            assert _dispatch(server)[0] == 1
            futures = [call.future(b"%d" % i, timeout=WAIT) for i in range(N)]
            hold_gil(0.3)
            assert [f.result(timeout=WAIT) for f in futures] == [b"%d" % i for i in range(N)]
            assert not burst.broken
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.mark.parametrize("release_first", [True, False])
def test_a_finished_call_is_freed_before_its_thread_lingers(lingering, monkeypatch, release_first):
    # What a call held (here an object the handler set in the call's
    # contextvars.Context) is freed once its response is out, before the
    # pool thread lingers for the next call: not on that call's way to its
    # handler. GRPCGO_SERVER_RELEASE_FIRST=0 (_RELEASE_FIRST False) keeps it
    # until the next call comes, as before.
    monkeypatch.setattr(grpc._server, "_RELEASE_FIRST", release_first)
    held = contextvars.ContextVar("held")
    refs = []

    class Held:
        pass

    def handler(request, context):
        obj = Held()
        refs.append(weakref.ref(obj))
        held.set(obj)
        return request

    server, pool, port = _serve(handler, workers=2)
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            call = ch.unary_unary("/%s/Call" % SERVICE)
            for i in range(3):
                assert call(b"%d" % i, timeout=WAIT) == b"%d" % i
                deadline = time.monotonic() + WAIT
                if release_first:
                    # Freed while its thread lingers (30 s): not by a timeout.
                    while refs[-1]() is not None:
                        assert time.monotonic() < deadline, "still held while lingering"
                        time.sleep(0.002)
                    continue
                while _dispatch(server)[0] < 1:  # the thread lingers (30 s)
                    assert time.monotonic() < deadline, _dispatch(server)
                    time.sleep(0.002)
                assert refs[-1]() is not None
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


_RACE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dispatch_race.c")
_PYEXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyext")


@pytest.fixture(scope="module")
def dispatch_race(tmp_path_factory):
    """tests/dispatch_race.c built against pyext/dispatch.h, with
    ThreadSanitizer when the compiler has it."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    out = str(tmp_path_factory.mktemp("dispatch") / "dispatch_race")
    base = [cc, "-O2", "-pthread", "-I", _PYEXT, _RACE_SOURCE, "-o", out]
    for flags in (["-fsanitize=thread"], []):
        built = subprocess.run(base + flags, capture_output=True, text=True, timeout=120)
        if built.returncode == 0:
            return out
    pytest.fail("dispatch_race.c did not build:\n" + built.stderr)


@pytest.mark.parametrize("mode", ["race", "stop"])
def test_the_dispatcher_under_racing_posts_withdrawals_and_stops(dispatch_race, mode):
    # race: posts race lingers that time out within microseconds, so a post
    # often claims a worker as it withdraws (it must then take that post,
    # not leave it behind), and every call is taken. stop: a stop at a
    # random instant, while posts keep workers coming back to linger, sends
    # every one of them back, with no post left over and none on its way.
    # ThreadSanitizer's reports fail it too.
    run = subprocess.run([dispatch_race, mode], capture_output=True, text=True, timeout=150,
                         env=dict(os.environ, TSAN_OPTIONS="halt_on_error=1"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING: ThreadSanitizer" not in run.stderr, run.stderr
