"""The binding on its own: pyext/ (grpc._hot) driven directly.

The other tests reach the binding through grpc's public API, which never
hands it a wrong capsule, drops a call it has not finished, or sends a
message it then mutates. These call grpc._hot's functions themselves and
check the rules docs/ARCHITECTURE.md ("The hot module") sets:

* ownership: each capsule holds one handle (grpc._introspect counts them);
  dropping one releases it and ends what its object still has under way (a
  channel closes, a call or stream is cancelled, a server stops, an
  unfinished server call ends UNKNOWN); finished server calls' handles are
  released in batches; a capsule of the wrong kind is a TypeError naming
  both kinds, and error paths leak no handle;
* loans: an exact bytes of 64 KiB or more is lent to grpc-go and its
  reference comes back when grpc-go is done, also from a cancelled stream;
  anything else (a bytearray) is copied, so changing it after the send
  changes nothing on the wire;
* wait records: a blocking unary call's response comes back through the
  record at every size around its limits (512 B inline, 16 KiB copied, a
  handle beyond, and a handle whenever there is metadata), on the main
  thread and others; a signal handler that raises ends the wait and
  cancels the call;
* argument parsing: bad input to each function is a TypeError, ValueError,
  OverflowError or RuntimeError that says what is wrong, never a crash,
  and the engine works afterwards.

The server side is grpcgo's public grpc.server where the test is about the
client half, and the other way round. Every wait is bounded.
"""

import concurrent.futures
import contextlib
import gc
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import grpc._introspect as gi
import grpc._runtime
import pytest

H = grpc._runtime.hot()

WAIT = 10  # seconds, for every event that should happen
SERVICE = "grpcgo.testing.Binding"
LOAN_MIN = 64 * 1024  # pyext/hot_lend.go: exact bytes this big are lent
INLINE_MAX = 512  # pyext/hot_wait.go: responses this small stay in the record
COPY_MAX = 16 * 1024  # ... this small are copied into it


def method(name):
    return f"/{SERVICE}/{name}"


def live():
    return gi.live()


def eventually(condition, what, timeout=WAIT):
    """Waits (bounded) until condition() holds, collecting garbage between."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        gc.collect()
        time.sleep(0.01)


class _Service:
    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}
        self.ended = {}
        self.received = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def echo(self, request, context):
        return request

    def sized(self, request, context):
        return b"r" * int(request)

    def trailing(self, request, context):
        context.set_trailing_metadata((("x-t", "1"),))
        return request

    def hold(self, request, context):
        key = request.decode()
        self.event(key + ":started").set()
        deadline = time.monotonic() + WAIT
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.ended[key] = "cancelled" if not context.is_active() else "timeout"
        self.event(key + ":ended").set()
        return request

    def sink(self, request_iterator, context):
        """Reads nothing until released; then records each request's digest."""
        key = dict(context.invocation_metadata()).get("x-key", "")
        self.event(key + ":started").set()
        self.event(key + ":release").wait(WAIT)
        self.received[key] = [hashlib.sha256(r).hexdigest() for r in request_iterator]
        self.event(key + ":ended").set()
        return b"%d" % len(self.received[key])

    def handler(self):
        uu = grpc.unary_unary_rpc_method_handler
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Echo": uu(self.echo),
            "Sized": uu(self.sized),
            "Trailing": uu(self.trailing),
            "Hold": uu(self.hold),
            "Sink": grpc.stream_unary_rpc_method_handler(self.sink),
            "HoldStream": grpc.stream_stream_rpc_method_handler(
                lambda it, ctx: iter([self.hold(next(it), ctx)])),
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


@pytest.fixture
def channel(served):
    """A raw channel capsule to the test server (in this process)."""
    ch = H.channel_new(f"127.0.0.1:{served[1]}", b"[]", None)
    yield ch
    H.channel_close(ch)


REMOTE = r"""
import sys
from concurrent import futures
import grpc
sized = lambda request, context: b"r" * int(request)
def trailing(request, context):
    context.set_trailing_metadata((("x-t", "1"),))
    return request
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[
    grpc.method_handlers_generic_handler("SERVICE", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
        "Sized": grpc.unary_unary_rpc_method_handler(sized),
        "Trailing": grpc.unary_unary_rpc_method_handler(trailing)})])
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
server.stop(None)
""".replace("SERVICE", SERVICE)


@pytest.fixture(scope="module")
def remote_port():
    """The same Echo, Sized and Trailing in another process, so the handles
    counted here are the client's alone (a finished server call's handle
    waits in C for a batched release)."""
    proc = subprocess.Popen([sys.executable, "-c", REMOTE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), line
        yield int(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)


@pytest.fixture
def remote(remote_port):
    """A raw channel capsule to the server in the other process."""
    ch = H.channel_new(f"127.0.0.1:{remote_port}", b"[]", None)
    yield ch
    H.channel_close(ch)


def unary(ch, name, request, timeout=WAIT, metadata=None, response_only=False):
    return H.unary(ch, method(name), request, float(timeout), metadata, 0, -1, None,
                   response_only)


def stream(ch, name, client_streams, server_streams, first=None, metadata=None):
    return H.stream_start(ch, method(name), float(WAIT), metadata, 0, -1, None,
                          server_streams, client_streams, first, not client_streams)


# -- ownership of handles ----------------------------------------------------------------


def settled_live(timeout=5.0):
    """live() once its counts stop moving: handles of earlier tests' objects
    (finished server calls released in batches, a stream's hold freed by the
    flusher) may still go away in the background."""
    deadline = time.monotonic() + timeout
    gc.collect()
    last = live()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        gc.collect()
        now = live()
        if (now.handles, now.channels) == (last.handles, last.channels):
            return now
        last = now
    return last


def test_each_capsule_holds_one_handle_and_dropping_it_closes_the_channel():
    before = settled_live()
    ch = H.channel_new("127.0.0.1:1", b"[]", None)
    now = live()
    assert (now.handles - before.handles, now.channels - before.channels) == (1, 1)
    # Closing keeps the handle (the capsule still refers to it)...
    H.channel_close(ch)
    eventually(lambda: live().channels == before.channels, "the closed channel still counted")
    assert live().handles == before.handles + 1
    # ... dropping the capsule releases it.
    del ch
    eventually(lambda: live().handles == before.handles, "the handle was not released")
    # A channel dropped without closing is closed.
    ch = H.channel_new("127.0.0.1:1", b"[]", None)
    assert live().channels == before.channels + 1
    del ch
    eventually(lambda: (live().channels, live().handles) == (before.channels, before.handles),
               "the dropped channel was not closed")


def test_dropping_an_unfinished_unary_call_cancels_it(served, channel):
    service, _ = served
    call = H.unary_start(channel, method("Hold"), b"drop-unary", float(WAIT), None, 0, -1)
    assert service.event("drop-unary:started").wait(WAIT)
    del call
    assert service.event("drop-unary:ended").wait(WAIT)
    assert service.ended["drop-unary"] == "cancelled"


def test_dropping_an_unfinished_stream_cancels_it(served, channel):
    service, _ = served
    s = stream(channel, "HoldStream", client_streams=True, server_streams=True)
    assert H.stream_send(s, b"drop-stream")
    assert service.event("drop-stream:started").wait(WAIT)
    del s
    assert service.event("drop-stream:ended").wait(WAIT)
    assert service.ended["drop-stream"] == "cancelled"


def test_dropping_a_server_stops_it():
    server = H.server_new(b"[]", 0)
    port = H.server_add_port(server, "127.0.0.1:0")
    H.server_start(server)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=WAIT)
        gc.collect()
        before = live()
        del server
        before = before._replace(servers=before.servers - 1, handles=before.handles - 1)
        eventually(lambda: (live().servers, live().handles) == (before.servers, before.handles),
                   "the dropped server still counted")
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"", timeout=WAIT)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def _take(server):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        event = H.server_take(server)
        if event:
            return event
        time.sleep(0.005)
    pytest.fail("no call reached the raw server")


@contextlib.contextmanager
def raw_server():
    server = H.server_new(b"[]", 0)
    port = H.server_add_port(server, "127.0.0.1:0")
    H.server_start(server)
    try:
        yield server, port
    finally:
        H.server_stop(server, 0.0)


def test_dropping_an_unfinished_server_call_ends_it_unknown():
    with raw_server() as (server, port), grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        future = ch.unary_unary(method("Echo")).future(b"x", timeout=WAIT)
        event = _take(server)
        assert event[1] == method("Echo")
        del event
        error = future.exception(timeout=WAIT)
        assert error.code() is grpc.StatusCode.UNKNOWN
        assert error.details() == "the handler ended without finishing the call"


def test_finished_server_calls_release_their_handles_in_batches():
    with raw_server() as (server, port), grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        gc.collect()
        base = live().handles
        for i in range(100):
            future = ch.unary_unary(method("Echo")).future(b"%d" % i, timeout=WAIT)
            call = _take(server)[0]
            H.call_finish(call, 0, "", None, b"%d" % i)
            del call
            assert future.result(timeout=WAIT) == b"%d" % i
            del future
        gc.collect()
        # Up to 31 finished calls' handles wait in C: 100 calls leave fewer
        # than 32 behind. (No lower bound: handles that earlier tests left
        # waiting in C, counted in base, may be released meanwhile.)
        assert live().handles - base < 32, (base, live().handles)


KINDS = {
    "grpcgo.Channel": lambda c: H.channel_state(c, False),
    "grpcgo.UnaryCall": lambda c: H.unary_wait(c, 0.0),
    "grpcgo.Stream": lambda c: H.stream_close_send(c),
    "grpcgo.Server": lambda c: H.server_stop(c, 0.0),
    "grpcgo.ServerCall": lambda c: H.call_active(c),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_capsule_of_another_kind_is_a_type_error(kind):
    ch = H.channel_new("127.0.0.1:1", b"[]", None)
    creds = H.creds_access_token("t")
    before = live().handles
    for wrong in (ch, creds, "a string", None, 5):
        if kind == "grpcgo.Channel" and wrong is ch:
            continue
        with pytest.raises(TypeError) as info:
            KINDS[kind](wrong)
        assert f"expected a {kind} handle, got" in str(info.value)
    # The capsules passed wrongly are unharmed, and nothing leaked.
    assert H.channel_state(ch, False) in range(5)
    assert live().handles == before
    H.channel_close(ch)


# -- loans ---------------------------------------------------------------------------------


def test_a_lent_message_comes_back(channel):
    payload = os.urandom(LOAN_MIN * 4)
    base = sys.getrefcount(payload)
    assert unary(channel, "Echo", payload)[:3] == (0, "", payload)
    eventually(lambda: sys.getrefcount(payload) == base, "the unary loan never came back")
    s = stream(channel, "HoldStream", client_streams=True, server_streams=True)
    assert H.stream_send(s, b"loan-stream")
    for _ in range(3):
        assert H.stream_send(s, payload)
    H.stream_cancel(s)
    del s
    eventually(lambda: sys.getrefcount(payload) == base,
               "the loans of a cancelled stream never came back", timeout=30)


def test_a_loan_queued_behind_a_full_window_comes_back(served, channel):
    # The server reads nothing: 4 MiB fill the stream's window, the rest
    # waits in the engine's queue when the stream is cancelled.
    service, _ = served
    payload = os.urandom(1 << 20)
    base = sys.getrefcount(payload)
    s = stream(channel, "Sink", client_streams=True, server_streams=False,
               metadata=(("x-key", "queued"),))
    assert service.event("queued:started").wait(WAIT)
    for _ in range(6):
        assert H.stream_send(s, payload)
    assert sys.getrefcount(payload) > base  # some are still out
    H.stream_cancel(s)
    service.event("queued:release").set()
    del s
    eventually(lambda: sys.getrefcount(payload) == base,
               "loans queued on a cancelled stream never came back", timeout=30)


def test_a_bytearray_is_copied_not_lent(served, channel):
    service, _ = served
    filler = os.urandom(1 << 20)
    message = bytearray(os.urandom(1 << 20))
    sent = hashlib.sha256(message).hexdigest()
    s = stream(channel, "Sink", client_streams=True, server_streams=False,
               metadata=(("x-key", "copied"),))
    assert service.event("copied:started").wait(WAIT)
    for _ in range(6):  # past the 4 MiB window: the message waits in the engine
        assert H.stream_send(s, filler)
    assert H.stream_send(s, message)
    message[:] = b"\x00" * len(message)  # changed after the send
    H.stream_close_send(s)
    service.event("copied:release").set()
    assert service.event("copied:ended").wait(WAIT)
    assert service.received["copied"][-1] == sent
    assert H.stream_status(s, float(WAIT))[0] == 0


# -- wait records (blocking unary calls) -------------------------------------------------


SIZES = [0, 1, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1, COPY_MAX - 1, COPY_MAX,
         COPY_MAX + 1, 1 << 20]


def _blocking_calls(ch):
    results = []
    for size in SIZES:
        quick = unary(ch, "Sized", b"%d" % size, response_only=True)
        full = unary(ch, "Sized", b"%d" % size)
        results.append((size, quick, full))
    return results


def _check_sizes(results):
    for size, quick, full in results:
        want = b"r" * size
        # Through the record as bytes up to 16 KiB; else the whole result.
        if size <= COPY_MAX:
            assert quick == want, size
        else:
            assert isinstance(quick, tuple) and quick[0] == 0 and quick[2] == want, size
        code, details, response, initial, trailing = full
        assert (code, response, initial, trailing) == (0, want, (), ()), size


def test_blocking_unary_responses_of_every_size_on_the_main_thread(remote):
    assert threading.current_thread() is threading.main_thread()
    gc.collect()
    before = live()
    _check_sizes(_blocking_calls(remote))
    gc.collect()
    # No ended call kept its handle or its count.
    assert (live().handles, live().client_calls) == (before.handles, before.client_calls)


def test_blocking_unary_responses_of_every_size_on_other_threads(remote):
    gc.collect()
    before = live()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for results in pool.map(lambda _: _blocking_calls(remote), range(4)):
            _check_sizes(results)
    gc.collect()
    assert (live().handles, live().client_calls) == (before.handles, before.client_calls)


def test_metadata_takes_the_full_result(remote):
    result = unary(remote, "Trailing", b"t", response_only=True)
    assert isinstance(result, tuple)
    code, details, response, initial, trailing = result
    assert (code, response, tuple(trailing)) == (0, b"t", (("x-t", "1"),))


class _Alarm(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_a_raising_signal_handler_ends_the_wait_and_cancels_the_call(served, channel):
    service, _ = served

    def on_alarm(signum, frame):
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        # Armed once the call is in the handler (a thread watches for it).
        def arm():
            if service.event("alarm:started").wait(WAIT):
                signal.setitimer(signal.ITIMER_REAL, 0.2)

        threading.Thread(target=arm, daemon=True).start()
        with pytest.raises(_Alarm):
            unary(channel, "Hold", b"alarm", timeout=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert service.event("alarm:ended").wait(WAIT)
    assert service.ended["alarm"] == "cancelled"
    # The channel goes on.
    assert unary(channel, "Echo", b"after", response_only=True) == b"after"


# -- argument parsing: bad input ---------------------------------------------------------


def _bad_inputs(ch, server, started):
    stream_capsule = stream(ch, "Echo", client_streams=False, server_streams=False, first=b"")
    return [
        # (what, call, exception, message fragment)
        ("target not str", lambda: H.channel_new(5, b"[]"), TypeError, ""),
        ("options not JSON", lambda: H.channel_new("t:1", b"{"), ValueError,
         "options must be a sequence of (key, value) pairs"),
        ("options not a list", lambda: H.channel_new("t:1", b'{"a": 1}'), ValueError,
         "options must be a sequence of (key, value) pairs"),
        ("NUL in target", lambda: H.channel_new("a\x00b:1", b"[]"), ValueError,
         "cannot create a channel"),
        ("credentials not a capsule", lambda: H.channel_new("t:1", b"[]", "c"), TypeError,
         "expected a grpcgo.Credentials handle, got str"),
        ("too few arguments", lambda: H.unary(ch), TypeError, "arguments"),
        ("request str", lambda: H.unary(ch, "/a/b", "s", 1.0, None, 0, -1), TypeError,
         "bytes-like object is required"),
        ("timeout str", lambda: H.unary(ch, "/a/b", b"", "1", None, 0, -1), TypeError, ""),
        ("metadata int", lambda: H.unary(ch, "/a/b", b"", 1.0, 5, 0, -1), TypeError,
         "metadata must be a sequence of (key, value) pairs"),
        ("metadata entry short", lambda: H.unary(ch, "/a/b", b"", 1.0, (("k",),), 0, -1),
         ValueError, ""),
        ("metadata value int", lambda: H.unary(ch, "/a/b", b"", 1.0, (("k", 5),), 0, -1),
         TypeError, "Expected str"),
        ("binary value str", lambda: H.unary(ch, "/a/b", b"", 1.0, (("k-bin", "v"),), 0, -1),
         TypeError, 'Binary metadata key="k-bin" expected bytes'),
        ("call credentials not a capsule",
         lambda: H.unary(ch, "/a/b", b"", 1.0, None, 0, -1, "c"), TypeError,
         "expected a grpcgo.Credentials handle, got str"),
        ("stream_start too few", lambda: H.stream_start(ch, "/a/b"), TypeError, "arguments"),
        ("stream_send str", lambda: H.stream_send(stream_capsule, "s"), TypeError,
         "bytes-like object is required"),
        ("stream_recv max str", lambda: H.stream_recv(stream_capsule, "n", 1.0), TypeError, ""),
        ("server options not JSON", lambda: H.server_new(b"nope", 0), ValueError,
         "options must be a sequence of (key, value) pairs"),
        ("server limit too big", lambda: H.server_new(b"[]", 2 ** 70), OverflowError, ""),
        ("address unusable", lambda: H.server_add_port(server, "not an address"),
         RuntimeError, "Failed to bind to address not an address"),
        ("port added after start", lambda: H.server_add_port(started, "127.0.0.1:0"),
         RuntimeError, "cannot add a port to a server that has started"),
        ("call_finish on a channel", lambda: H.call_finish(ch, 0, "", None, None), TypeError,
         "expected a grpcgo.ServerCall handle, got PyCapsule"),
        ("root certificates int", lambda: H.creds_ssl_channel(5, None, None), TypeError,
         "root_certificates must be bytes or None, not int"),
        ("access token int", lambda: H.creds_access_token(5), TypeError, "expected str"),
        ("plugin id too big", lambda: H.creds_plugin(2 ** 70), OverflowError, ""),
        ("composite of strings", lambda: H.creds_composite_call(("x",)), TypeError,
         "expected a grpcgo.Credentials handle, got str"),
        ("composite not a sequence", lambda: H.creds_composite_call(5), TypeError,
         "expected a sequence"),
        ("completion queue int", lambda: H.cq_fd(5), TypeError,
         "expected a grpcgo.CompletionQueue, got int"),
    ]


def test_bad_input_is_a_clear_error_and_leaks_nothing(remote):
    channel = remote
    with raw_server() as (started, _):
        server = H.server_new(b"[]", 0)  # not started
        gc.collect()
        before = live().handles
        cases = _bad_inputs(channel, server, started)
        for what, call, exception, fragment in cases:
            with pytest.raises(exception) as info:
                call()
            assert fragment in str(info.value), (what, str(info.value))
        del cases, call, info  # with them the one stream capsule they made
        eventually(lambda: live().handles == before, "a failed call left a handle behind")
    # The engine is fine afterwards.
    assert unary(channel, "Echo", b"still", response_only=True) == b"still"


def test_invalid_metadata_is_a_status_not_an_exception(remote):
    # grpcio's rule: a key gRPC forbids ends the call INTERNAL before sending.
    for md in ((("Upper", "v"),), ((":path", "v"),), (("k y", "v"),)):
        code, details, response, initial, trailing = unary(remote, "Echo", b"", metadata=md)
        assert (code, details) == (13, "Invalid metadata"), md
