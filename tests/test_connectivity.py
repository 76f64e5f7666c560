"""Channel connectivity, end to end over loopback sockets.

Channel.subscribe / unsubscribe with grpc.ChannelConnectivity states (the
callback hears the current state at once and every change after it),
try_to_connect, grpc.channel_ready_future (cancel, timeout, maturing when a
server appears later) and wait_for_ready per call. Expected behaviour is
grpcio 1.85's, checked by running this file against grpcio
(GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding grpcio).

Targets nobody serves are either a port nobody listens on (bound, then
closed) or a listening socket that accepts connections and never speaks
HTTP/2 (the channel stays CONNECTING).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import contextlib
import queue
import socket
import threading
import time

import grpc
import pytest

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen
QUIET = 0.3  # seconds in which nothing should happen

SERVICE = "grpcgo.testing.Connectivity"
ECHO = f"/{SERVICE}/Echo"
TICKS = f"/{SERVICE}/Ticks"
BIDI = f"/{SERVICE}/Bidi"

C = grpc.ChannelConnectivity


def _ticks(request, context):
    for i in range(3):
        yield b"%d" % i


def _bidi(request_iterator, context):
    for request in request_iterator:
        yield request


HANDLER = grpc.method_handlers_generic_handler(SERVICE, {
    "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
    "Ticks": grpc.unary_stream_rpc_method_handler(_ticks),
    "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
})


class _Server:
    def __init__(self, port=0):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
        self.server = grpc.server(self.pool, handlers=[HANDLER])
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        assert self.port > 0
        self.server.start()

    def stop(self):
        self.server.stop(None).wait(WAIT)
        self.pool.shutdown(wait=False)


@contextlib.contextmanager
def serving(port=0):
    server = _Server(port)
    try:
        yield server
    finally:
        server.stop()


def free_port():
    """A port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_listener():
    """A listening socket that accepts and never answers; yields it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s


class Recorder:
    """A connectivity callback that records the states it hears."""

    def __init__(self):
        self.states = queue.Queue()
        self.seen = []
        self.threads = []

    def __call__(self, connectivity):
        self.threads.append(threading.current_thread())
        self.states.put(connectivity)

    def next(self, timeout=WAIT):
        state = self.states.get(timeout=timeout)
        self.seen.append(state)
        return state

    def wait_for(self, wanted, timeout=WAIT):
        """Reads states until wanted arrives; returns every state read."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                state = self.next(max(left, 0.001))
            except queue.Empty:
                pytest.fail(f"no {wanted} within {timeout}s; heard {self.seen}")
            if state is wanted:
                return list(self.seen)

    def quiet(self, duration=QUIET):
        """Asserts that no state arrives for duration seconds."""
        try:
            state = self.states.get(timeout=duration)
        except queue.Empty:
            return
        pytest.fail(f"unexpected state {state} after {self.seen}")


def _no_repeats(states):
    return all(a is not b for a, b in zip(states, states[1:]))


# -- subscribe ---------------------------------------------------------------------------


def test_subscribe_hears_idle_at_once_and_does_not_connect():
    with silent_listener() as listener:
        port = listener.getsockname()[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            rec = Recorder()
            ch.subscribe(rec)
            assert rec.next() is C.IDLE
            rec.quiet()
            # Without try_to_connect nobody dialled.
            listener.settimeout(QUIET)
            with pytest.raises(socket.timeout):
                listener.accept()
            ch.unsubscribe(rec)


def test_subscribe_with_try_to_connect_goes_idle_connecting_ready():
    with serving() as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        rec = Recorder()
        ch.subscribe(rec, try_to_connect=True)
        states = rec.wait_for(C.READY)
        # The current state first, then the changes, in order.
        assert states[0] is C.IDLE
        assert _no_repeats(states)
        assert [s for s in states if s not in (C.IDLE, C.CONNECTING, C.READY)] == []
        assert states.index(C.READY) == len(states) - 1
        rec.quiet()
        # The callbacks ran on a thread of grpc's, not in subscribe().
        assert threading.current_thread() not in rec.threads
        ch.unsubscribe(rec)


def test_connecting_is_reported_while_the_handshake_hangs():
    with silent_listener() as listener:
        port = listener.getsockname()[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            rec = Recorder()
            ch.subscribe(rec, try_to_connect=True)
            assert rec.next() is C.IDLE
            assert rec.next() is C.CONNECTING
            rec.quiet()
            listener.settimeout(WAIT)
            conn, _ = listener.accept()
            conn.close()
            assert rec.wait_for(C.TRANSIENT_FAILURE)[-2:] == [C.CONNECTING,
                                                             C.TRANSIENT_FAILURE]
            ch.unsubscribe(rec)


def test_nobody_listening_gives_transient_failure():
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as ch:
        rec = Recorder()
        ch.subscribe(rec, try_to_connect=True)
        states = rec.wait_for(C.TRANSIENT_FAILURE)
        assert states[0] is C.IDLE
        assert C.READY not in states
        ch.unsubscribe(rec)


def test_a_later_subscriber_hears_the_current_state_at_once():
    with serving() as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        first = Recorder()
        ch.subscribe(first, try_to_connect=True)
        first.wait_for(C.READY)
        second = Recorder()
        ch.subscribe(second)
        assert second.next() is C.READY
        second.quiet()
        ch.unsubscribe(first)
        ch.unsubscribe(second)


def test_a_second_subscriber_on_an_idle_channel_hears_idle_first():
    with serving() as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        first = Recorder()
        ch.subscribe(first)
        assert first.next() is C.IDLE
        second = Recorder()
        ch.subscribe(second, try_to_connect=True)
        states = second.wait_for(C.READY)
        assert states[0] is C.IDLE
        assert first.wait_for(C.READY)[0] is C.IDLE
        ch.unsubscribe(first)
        ch.unsubscribe(second)


def test_server_going_away_then_a_call_gives_idle_then_transient_failure():
    server = _Server()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            rec = Recorder()
            ch.subscribe(rec, try_to_connect=True)
            rec.wait_for(C.READY)
            server.stop()
            # grpcio: the connection went away; the channel idles until
            # something asks it to connect again.
            assert rec.next() is C.IDLE
            rec.quiet()
            idle_at = len(rec.seen)
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(ECHO)(b"x", timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            states = rec.wait_for(C.TRANSIENT_FAILURE)
            assert C.READY not in states[idle_at:]
            ch.unsubscribe(rec)
    finally:
        server.stop()


def test_unsubscribe_stops_the_callbacks():
    with silent_listener() as listener:
        port = listener.getsockname()[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            gone = Recorder()
            kept = Recorder()
            ch.subscribe(gone)
            ch.subscribe(kept)
            assert gone.next() is C.IDLE
            assert kept.next() is C.IDLE
            ch.unsubscribe(gone)
            connector = Recorder()
            ch.subscribe(connector, try_to_connect=True)
            assert kept.wait_for(C.CONNECTING)
            gone.quiet()
            # Unsubscribing something never subscribed is no error.
            ch.unsubscribe(lambda state: None)
            ch.unsubscribe(gone)
            ch.unsubscribe(kept)
            ch.unsubscribe(connector)


def test_a_raising_callback_does_not_stop_the_others():
    with serving() as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        heard = Recorder()

        def bad(state):
            heard(state)
            raise RuntimeError("connectivity callback failure")

        ch.subscribe(bad)
        rec = Recorder()
        ch.subscribe(rec, try_to_connect=True)
        rec.wait_for(C.READY)
        # The raising callback ran, for the first state and every one
        # after: its exception stopped neither it nor the others.
        assert heard.next() is C.IDLE
        assert heard.wait_for(C.READY)
        # The channel still works.
        assert ch.unary_unary(ECHO)(b"ok", timeout=RPC_TIMEOUT) == b"ok"
        ch.unsubscribe(bad)
        ch.unsubscribe(rec)


def test_a_call_connects_an_idle_channel():
    with serving() as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        rec = Recorder()
        ch.subscribe(rec)
        assert rec.next() is C.IDLE
        assert ch.unary_unary(ECHO)(b"x", timeout=RPC_TIMEOUT) == b"x"
        assert rec.wait_for(C.READY)[0] is C.IDLE
        ch.unsubscribe(rec)


def test_subscribe_on_an_intercepted_channel():
    class Nop(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            return continuation(client_call_details, request)

    with serving() as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as base:
        ch = grpc.intercept_channel(base, Nop())
        rec = Recorder()
        ch.subscribe(rec, try_to_connect=True)
        rec.wait_for(C.READY)
        ch.unsubscribe(rec)
        assert grpc.channel_ready_future(ch).result(timeout=WAIT) is None


# -- channel_ready_future ---------------------------------------------------------------


def test_channel_ready_future_cancel_runs_done_callbacks():
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as ch:
        ready = grpc.channel_ready_future(ch)
        assert isinstance(ready, grpc.Future)
        fired = queue.Queue()
        ready.add_done_callback(fired.put)
        with pytest.raises(grpc.FutureTimeoutError):
            ready.result(timeout=0.2)
        with pytest.raises(grpc.FutureTimeoutError):
            ready.exception(timeout=0.05)
        with pytest.raises(grpc.FutureTimeoutError):
            ready.traceback(timeout=0.05)
        assert ready.running() is True
        assert ready.done() is False
        assert fired.empty()
        assert ready.cancel() is True
        assert fired.get(timeout=WAIT) is ready
        assert ready.cancelled() is True
        assert ready.done() is True
        assert ready.running() is False
        for accessor in ("result", "exception", "traceback"):
            with pytest.raises(grpc.FutureCancelledError):
                getattr(ready, accessor)(timeout=WAIT)
        # A late done callback runs at once.
        late = []
        ready.add_done_callback(late.append)
        assert late == [ready]


def test_channel_ready_future_against_a_silent_listener_times_out():
    with silent_listener() as listener:
        port = listener.getsockname()[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            ready = grpc.channel_ready_future(ch)
            with pytest.raises(grpc.FutureTimeoutError):
                ready.result(timeout=0.5)
            assert ready.cancel() is True
            with pytest.raises(grpc.FutureCancelledError):
                ready.result(timeout=WAIT)


def test_channel_ready_future_matures_when_a_server_starts_later():
    port = free_port()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        ready = grpc.channel_ready_future(ch)
        fired = queue.Queue()
        ready.add_done_callback(fired.put)
        with pytest.raises(grpc.FutureTimeoutError):
            ready.result(timeout=0.3)
        with serving(port):
            assert ready.result(timeout=WAIT) is None
            assert fired.get(timeout=WAIT) is ready
            assert ready.done() is True
            assert ready.cancelled() is False
            assert ready.exception(timeout=WAIT) is None
            assert ready.traceback(timeout=WAIT) is None
            # Cancelling a matured future fails.
            assert ready.cancel() is False
            assert ready.cancelled() is False
            assert ch.unary_unary(ECHO)(b"x", timeout=RPC_TIMEOUT) == b"x"


# -- wait_for_ready ---------------------------------------------------------------------


def test_default_fails_fast_with_unavailable():
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as ch:
        for wait_for_ready in (None, False):
            # UNAVAILABLE, not DEADLINE_EXCEEDED: the call did not wait for
            # its deadline (how long it takes: `make bench`, fail_fast_ms).
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(ECHO)(b"x", timeout=30, wait_for_ready=wait_for_ready)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as info:
            list(ch.unary_stream(TICKS)(b"", timeout=30))
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as info:
            list(ch.stream_stream(BIDI)(iter([b"a"]), timeout=30))
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_wait_for_ready_without_a_server_hits_the_deadline():
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(ECHO)(b"x", timeout=0.5, wait_for_ready=True)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as info:
            list(ch.unary_stream(TICKS)(b"", timeout=0.5, wait_for_ready=True))
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_wait_for_ready_waits_for_a_server_that_starts_later():
    port = free_port()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        unary = ch.unary_unary(ECHO).future(b"w", timeout=RPC_TIMEOUT, wait_for_ready=True)
        stream = ch.unary_stream(TICKS)(b"", timeout=RPC_TIMEOUT, wait_for_ready=True)
        bidi = ch.stream_stream(BIDI)(iter([b"b"]), timeout=RPC_TIMEOUT, wait_for_ready=True)
        results = queue.Queue()
        blocking = threading.Thread(target=lambda: results.put(
            ch.unary_unary(ECHO)(b"blocking", timeout=RPC_TIMEOUT, wait_for_ready=True)))
        blocking.start()
        time.sleep(0.5)
        # Still waiting: no server yet, and the channel failed to connect.
        assert unary.running() is True
        assert stream.is_active() is True
        assert results.empty()
        with serving(port):
            assert unary.result(timeout=WAIT) == b"w"
            assert list(stream) == [b"0", b"1", b"2"]
            assert list(bidi) == [b"b"]
            assert results.get(timeout=WAIT) == b"blocking"
            blocking.join(WAIT)
