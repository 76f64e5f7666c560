"""Client futures and call objects, end to end over loopback sockets.

``.future()`` on unary-request and stream-request unary calls, the
Call + iterator + Future object of streaming calls, and the client-side
RpcContext (is_active, time_remaining, cancel, add_callback), including
what the server sees when the client cancels. test_client.py covers the
basic unary future (result, error, FutureTimeoutError, cancel); this file
covers the rest. Expected behaviour is grpcio 1.85's, checked by running
this file against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding
grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import queue
import threading
import time
import types

import grpc
import pytest

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen

SERVICE = "grpcgo.testing.Futures"


def method(name):
    return f"/{SERVICE}/{name}"


class _Service:
    """Raw-bytes handlers. The "Hold" family blocks until the test releases
    it or the call ends, and records what its context saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}
        self.seen = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def reset(self):
        with self.lock:
            self.events = {}
            self.seen = {}

    def _hold(self, context):
        context.add_callback(self.event("callback").set)
        self.event("started").set()
        deadline = time.monotonic() + WAIT
        while (context.is_active() and not self.event("release").is_set()
               and time.monotonic() < deadline):
            time.sleep(0.005)
        self.seen["active_at_end"] = context.is_active()
        self.event("ended").set()

    def echo(self, request, context):
        return request

    def hold(self, request, context):
        self._hold(context)
        return request

    def hold_stream(self, request, context):
        yield b"first"
        self._hold(context)
        yield b"last"

    def hold_stream_unary(self, request_iterator, context):
        got = [next(request_iterator)]
        self._hold(context)
        return b",".join(got)

    def hold_bidi(self, request_iterator, context):
        yield next(request_iterator)
        self._hold(context)

    def join(self, request_iterator, context):
        return b",".join(request_iterator)

    def bidi(self, request_iterator, context):
        for request in request_iterator:
            yield request

    def fail(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "gone")

    def fail_stream_unary(self, request_iterator, context):
        for _ in request_iterator:
            pass
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    def count(self, request, context):
        for i in range(int(request)):
            yield b"%d" % i

    def handler(self):
        uu = grpc.unary_unary_rpc_method_handler
        us = grpc.unary_stream_rpc_method_handler
        su = grpc.stream_unary_rpc_method_handler
        ss = grpc.stream_stream_rpc_method_handler
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Echo": uu(self.echo),
            "Hold": uu(self.hold),
            "HoldStream": us(self.hold_stream),
            "HoldStreamUnary": su(self.hold_stream_unary),
            "HoldBidi": ss(self.hold_bidi),
            "Join": su(self.join),
            "Bidi": ss(self.bidi),
            "Fail": uu(self.fail),
            "FailStreamUnary": su(self.fail_stream_unary),
            "Count": us(self.count),
        })


@pytest.fixture(scope="module")
def served():
    service = _Service()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
    server = grpc.server(pool, handlers=[service.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        yield types.SimpleNamespace(service=service, port=port)
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.fixture
def service(served):
    served.service.reset()
    yield served.service
    served.service.event("release").set()


@pytest.fixture
def ch(served, service):
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        yield channel


def _requests_until(event, first=(b"a",), then=(b"b",)):
    """A request iterator: yields first, waits (bounded) for event, yields then."""
    yield from first
    event.wait(WAIT)
    yield from then


def _assert_cancelled_future(future):
    assert future.cancelled() is True
    assert future.done() is True
    assert future.running() is False
    assert future.is_active() is False
    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=WAIT)
    with pytest.raises(grpc.FutureCancelledError):
        future.exception(timeout=WAIT)
    with pytest.raises(grpc.FutureCancelledError):
        future.traceback(timeout=WAIT)
    assert future.code() is grpc.StatusCode.CANCELLED
    assert future.details() == "Locally cancelled by application!"
    assert future.cancel() is False


# -- unary-request futures -------------------------------------------------------------


def test_unary_future_error_is_the_future_itself(ch):
    # grpcio: the RpcError a failed future raises and returns is the future.
    future = ch.unary_unary(method("Fail")).future(b"", timeout=RPC_TIMEOUT)
    error = future.exception(timeout=WAIT)
    assert error is future
    with pytest.raises(grpc.RpcError) as info:
        future.result(timeout=WAIT)
    assert info.value is future
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "gone"


def test_unary_future_traceback(ch):
    future = ch.unary_unary(method("Fail")).future(b"", timeout=RPC_TIMEOUT)
    traceback = future.traceback(timeout=WAIT)
    assert traceback is not None
    assert hasattr(traceback, "tb_frame")
    ok = ch.unary_unary(method("Echo")).future(b"x", timeout=RPC_TIMEOUT)
    assert ok.result(timeout=WAIT) == b"x"
    assert ok.traceback(timeout=WAIT) is None


@pytest.mark.parametrize("accessor", ["exception", "traceback"])
def test_unary_future_accessors_time_out(ch, service, accessor):
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.FutureTimeoutError):
        getattr(future, accessor)(timeout=0.05)
    assert future.running() is True
    assert future.done() is False
    service.event("release").set()
    assert future.result(timeout=WAIT) == b"x"


def test_unary_future_cancel_takes_effect_at_once(ch, service):
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    assert future.running() is True
    assert future.cancelled() is False
    assert future.cancel() is True
    # grpcio: the future is cancelled and done as soon as cancel() returns.
    _assert_cancelled_future(future)


def test_unary_future_cancel_runs_done_callbacks(ch, service):
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    fired = queue.Queue()
    future.add_done_callback(lambda f: fired.put(f))
    assert service.event("started").wait(WAIT)
    assert fired.empty()
    assert future.cancel() is True
    assert fired.get(timeout=WAIT) is future
    assert future.cancelled() is True


def test_unary_future_cancel_after_done_is_false(ch):
    future = ch.unary_unary(method("Echo")).future(b"x", timeout=RPC_TIMEOUT)
    assert future.result(timeout=WAIT) == b"x"
    assert future.cancel() is False
    assert future.cancelled() is False
    assert future.result(timeout=WAIT) == b"x"


def test_done_callback_runs_at_once_when_already_done(ch):
    # No callback was added while the call ran: a late one still runs at
    # once, in the calling thread, before add_done_callback returns.
    for name, request in (("Echo", b"x"), ("Fail", b"")):
        future = ch.unary_unary(method(name)).future(request, timeout=RPC_TIMEOUT)
        future.exception(timeout=WAIT)
        ran = []
        future.add_done_callback(lambda f: ran.append((threading.current_thread(), f)))
        assert ran == [(threading.current_thread(), future)], name


def test_several_done_callbacks_each_run_once(ch, service):
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    fired = queue.Queue()
    for i in range(3):
        future.add_done_callback(lambda f, i=i: fired.put(i))
    service.event("release").set()
    assert future.result(timeout=WAIT) == b"x"
    got = sorted(fired.get(timeout=WAIT) for _ in range(3))
    assert got == [0, 1, 2]
    time.sleep(0.1)
    assert fired.empty()


def test_done_callback_exception_does_not_break_the_call(ch, service):
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    fired = queue.Queue()

    def bad(f):
        raise RuntimeError("callback failure")

    future.add_done_callback(bad)
    future.add_done_callback(fired.put)
    service.event("release").set()
    assert future.result(timeout=WAIT) == b"x"
    assert fired.get(timeout=WAIT) is future


def test_unary_future_with_metadata_and_with_call_object(ch):
    response, call = ch.unary_unary(method("Echo")).with_call(b"w", timeout=RPC_TIMEOUT)
    assert response == b"w"
    # with_call's Call is also a finished grpc.Future.
    assert isinstance(call, grpc.Future)
    assert call.result() == b"w"
    assert call.done() is True
    assert call.running() is False
    assert call.cancelled() is False
    assert call.exception() is None
    assert call.traceback() is None
    assert call.is_active() is False
    assert call.cancel() is False
    assert call.add_callback(lambda: None) is False
    ran = []
    call.add_done_callback(lambda c: ran.append(c))
    assert ran == [call]


# -- stream-request unary futures ------------------------------------------------------


def test_stream_unary_future_result(ch):
    release = threading.Event()
    future = ch.stream_unary(method("Join")).future(
        _requests_until(release), timeout=RPC_TIMEOUT)
    assert isinstance(future, grpc.Future)
    assert isinstance(future, grpc.Call)
    with pytest.raises(grpc.FutureTimeoutError):
        future.result(timeout=0.05)
    with pytest.raises(grpc.FutureTimeoutError):
        future.exception(timeout=0.05)
    with pytest.raises(grpc.FutureTimeoutError):
        future.traceback(timeout=0.05)
    assert future.running() is True
    assert future.done() is False
    assert future.is_active() is True
    assert 0 < future.time_remaining() <= RPC_TIMEOUT
    fired = queue.Queue()
    future.add_done_callback(lambda f: fired.put(("done", f)))
    assert future.add_callback(lambda: fired.put("rpc")) is True
    release.set()
    assert future.result(timeout=WAIT) == b"a,b"
    assert future.exception(timeout=WAIT) is None
    assert future.traceback(timeout=WAIT) is None
    assert future.code() is grpc.StatusCode.OK
    got = [fired.get(timeout=WAIT), fired.get(timeout=WAIT)]
    assert "rpc" in got and ("done", future) in got
    assert future.done() is True
    assert future.running() is False
    assert future.is_active() is False
    assert future.add_callback(lambda: None) is False
    ran = []
    future.add_done_callback(ran.append)
    assert ran == [future]


def test_stream_unary_future_error(ch):
    future = ch.stream_unary(method("FailStreamUnary")).future(
        iter([b"a", b"b"]), timeout=RPC_TIMEOUT)
    error = future.exception(timeout=WAIT)
    assert error is future
    assert isinstance(error, grpc.RpcError)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "no"
    with pytest.raises(grpc.RpcError) as info:
        future.result(timeout=WAIT)
    assert info.value is future
    assert future.traceback(timeout=WAIT) is not None
    assert future.cancelled() is False


def test_stream_unary_future_cancel(ch, service):
    release = threading.Event()
    try:
        future = ch.stream_unary(method("HoldStreamUnary")).future(
            _requests_until(release), timeout=RPC_TIMEOUT)
        assert service.event("started").wait(WAIT)
        fired = queue.Queue()
        future.add_done_callback(fired.put)
        assert future.cancel() is True
        _assert_cancelled_future(future)
        assert fired.get(timeout=WAIT) is future
        # The server saw the cancellation.
        assert service.event("ended").wait(WAIT)
        assert service.seen["active_at_end"] is False
        assert service.event("callback").wait(WAIT)
    finally:
        release.set()


def test_stream_unary_future_deadline(ch, service):
    release = threading.Event()
    try:
        future = ch.stream_unary(method("Join")).future(_requests_until(release), timeout=0.2)
        error = future.exception(timeout=WAIT)
        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert future.cancelled() is False
        assert future.time_remaining() == pytest.approx(0, abs=0.01)
    finally:
        release.set()


# -- streaming calls as futures ----------------------------------------------------------


def test_response_stream_is_a_future(ch, service):
    call = ch.unary_stream(method("HoldStream"))(b"", timeout=RPC_TIMEOUT)
    assert isinstance(call, grpc.Future)
    assert isinstance(call, grpc.Call)
    assert next(call) == b"first"
    for accessor in ("result", "exception", "traceback"):
        with pytest.raises(grpc.FutureTimeoutError):
            getattr(call, accessor)(timeout=0.05)
    assert call.running() is True
    assert call.done() is False
    assert call.cancelled() is False
    fired = queue.Queue()
    call.add_done_callback(lambda c: fired.put(c))
    service.event("release").set()
    assert list(call) == [b"last"]
    assert fired.get(timeout=WAIT) is call
    # A finished response stream: result() is None, no exception.
    assert call.result(timeout=WAIT) is None
    assert call.exception(timeout=WAIT) is None
    assert call.traceback(timeout=WAIT) is None
    assert call.done() is True
    assert call.running() is False


def test_finished_stream_runs_late_done_callback_at_once(ch):
    call = ch.stream_stream(method("Bidi"))(iter([b"a", b"b"]), timeout=RPC_TIMEOUT)
    assert list(call) == [b"a", b"b"]
    assert call.code() is grpc.StatusCode.OK
    ran = []
    call.add_done_callback(lambda c: ran.append((threading.current_thread(), c)))
    assert ran == [(threading.current_thread(), call)]
    assert call.add_callback(lambda: None) is False


def test_failed_stream_is_its_own_exception(ch):
    call = ch.unary_stream(method("Count"))(b"not a number", timeout=RPC_TIMEOUT)
    error = call.exception(timeout=WAIT)
    assert error is call
    assert call.code() is grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.RpcError) as info:
        call.result(timeout=WAIT)
    assert info.value is call
    assert call.traceback(timeout=WAIT) is not None
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value is call


@pytest.mark.parametrize("shape", ["unary_stream", "stream_stream"])
def test_stream_cancel_takes_effect_at_once(ch, service, shape):
    release = threading.Event()
    try:
        if shape == "unary_stream":
            call = ch.unary_stream(method("HoldStream"))(b"", timeout=RPC_TIMEOUT)
            assert next(call) == b"first"
        else:
            call = ch.stream_stream(method("HoldBidi"))(
                _requests_until(release), timeout=RPC_TIMEOUT)
            assert next(call) == b"a"
        assert service.event("started").wait(WAIT)
        assert call.cancel() is True
        _assert_cancelled_future(call)
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        assert info.value.code() is grpc.StatusCode.CANCELLED
    finally:
        release.set()


# -- client RpcContext -------------------------------------------------------------------


def test_time_remaining(ch, service):
    # Bounds far from both ends: only a hang or a wrong deadline breaks them.
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=100)
    first = future.time_remaining()
    assert 50 < first <= 100
    time.sleep(0.1)
    assert future.time_remaining() < first
    call = ch.unary_stream(method("HoldStream"))(b"", timeout=100)
    assert 50 < call.time_remaining() <= 100
    no_deadline = ch.unary_unary(method("Hold")).future(b"x")
    assert no_deadline.time_remaining() is None
    stream_no_deadline = ch.stream_stream(method("Bidi"))(iter(()))
    assert stream_no_deadline.time_remaining() is None
    service.event("release").set()
    assert future.result(timeout=WAIT) == b"x"
    assert list(call) == [b"first", b"last"]
    assert no_deadline.result(timeout=WAIT) == b"x"
    assert list(stream_no_deadline) == []


def test_is_active_and_add_callback(ch, service):
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    assert future.is_active() is True
    fired = queue.Queue()
    assert future.add_callback(lambda: fired.put("one")) is True
    assert future.add_callback(lambda: fired.put("two")) is True
    assert fired.empty()
    service.event("release").set()
    assert future.result(timeout=WAIT) == b"x"
    assert sorted([fired.get(timeout=WAIT), fired.get(timeout=WAIT)]) == ["one", "two"]
    assert future.is_active() is False
    # After the end: refused, not run.
    ran = []
    assert future.add_callback(lambda: ran.append(1)) is False
    time.sleep(0.05)
    assert ran == []


def _start(ch, shape, release):
    """Starts a call of shape whose handler ends up blocked in _hold."""
    if shape == "unary_unary":
        return ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    if shape == "unary_stream":
        call = ch.unary_stream(method("HoldStream"))(b"", timeout=RPC_TIMEOUT)
        assert next(call) == b"first"
        return call
    if shape == "stream_unary":
        return ch.stream_unary(method("HoldStreamUnary")).future(
            _requests_until(release), timeout=RPC_TIMEOUT)
    call = ch.stream_stream(method("HoldBidi"))(_requests_until(release), timeout=RPC_TIMEOUT)
    assert next(call) == b"a"
    return call


@pytest.mark.parametrize("shape", ["unary_unary", "unary_stream", "stream_unary",
                                   "stream_stream"])
def test_client_cancel_reaches_the_server(ch, service, shape):
    release = threading.Event()
    try:
        call = _start(ch, shape, release)
        assert service.event("started").wait(WAIT)
        fired = queue.Queue()
        assert call.add_callback(lambda: fired.put("client")) is True
        assert call.cancel() is True
        assert call.is_active() is False
        assert fired.get(timeout=WAIT) == "client"
        # The handler's context went inactive and its callback fired.
        assert service.event("ended").wait(WAIT)
        assert service.seen["active_at_end"] is False
        assert service.event("callback").wait(WAIT)
        assert call.code() is grpc.StatusCode.CANCELLED
    finally:
        release.set()


def test_dropping_a_future_cancels_its_call(ch, service):
    # grpcio cancels the call of a future nobody refers to any more: the
    # handler sees its call end.
    future = ch.unary_unary(method("Hold")).future(b"x", timeout=RPC_TIMEOUT)
    assert service.event("started").wait(WAIT)
    del future
    assert service.event("ended").wait(WAIT)
    assert service.seen["active_at_end"] is False


def test_many_concurrent_futures(ch):
    futures = [ch.unary_unary(method("Echo")).future(b"%d" % i, timeout=RPC_TIMEOUT)
               for i in range(200)]
    assert [f.result(timeout=WAIT) for f in futures] == [b"%d" % i for i in range(200)]
    streams = [ch.stream_unary(method("Join")).future(iter([b"%d" % i, b"x"]),
                                                      timeout=RPC_TIMEOUT)
               for i in range(50)]
    assert [f.result(timeout=WAIT) for f in streams] == [b"%d,x" % i for i in range(50)]
