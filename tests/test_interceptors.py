"""Client and server interceptors, end to end over loopback sockets.

grpc.intercept_channel with the four client interceptor kinds: the
ClientCallDetails they see, what they change (method, timeout, metadata,
wait_for_ready, compression) reaching the call, the order they run in,
TypeError for a non-interceptor, and exceptions raised inside them.
Server side: grpc.ServerInterceptor chains short-circuiting with a handler
that aborts, interceptors that raise, grpc.experimental.
wrap_server_method_handler, grpc.ServiceRpcHandler and
grpc.HandlerCallDetails. (test_server.py covers the basic server chain.)
Expected behaviour is grpcio 1.85's, checked by running this file against
grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import collections
import concurrent.futures
import contextlib
import socket
import threading
import time

import grpc
import grpc.experimental
import pytest

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen
MiB = 1 << 20

SERVICE = "grpcgo.testing.Intercept"


def method(name):
    return f"/{SERVICE}/{name}"


class _Service:
    def __init__(self):
        self.seen = {}

    def _record(self, context):
        self.seen["metadata"] = tuple(context.invocation_metadata())
        self.seen["time_remaining"] = context.time_remaining()

    def echo(self, request, context):
        self._record(context)
        return request

    def other(self, request, context):
        self._record(context)
        return b"other:" + request

    def hold(self, request, context):
        self._record(context)
        deadline = time.monotonic() + WAIT
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.005)
        return request

    def length(self, request, context):
        return b"%d" % len(request)

    def ticks(self, request, context):
        self._record(context)
        for i in range(3):
            yield request + b"%d" % i

    def join(self, request_iterator, context):
        self._record(context)
        return b",".join(request_iterator)

    def bidi(self, request_iterator, context):
        self._record(context)
        for request in request_iterator:
            yield request

    def handlers(self):
        uu = grpc.unary_unary_rpc_method_handler
        return {
            "Echo": uu(self.echo),
            "Other": uu(self.other),
            "Hold": uu(self.hold),
            "Length": uu(self.length),
            "Ticks": grpc.unary_stream_rpc_method_handler(self.ticks),
            "Join": grpc.stream_unary_rpc_method_handler(self.join),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
        }

    def handler(self):
        return grpc.method_handlers_generic_handler(SERVICE, self.handlers())


@contextlib.contextmanager
def serving(handlers, interceptors=None, options=None):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(pool, handlers=handlers, interceptors=interceptors, options=options)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def served():
    service = _Service()
    with serving([service.handler()]) as port:
        yield service, port


@pytest.fixture
def service(served):
    served[0].seen.clear()
    return served[0]


@pytest.fixture
def base(served):
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield channel


def _x(metadata):
    """The x- entries, sorted by key (values of one key keep their order;
    the order of distinct keys is test_fuzz.py's business)."""
    entries = [(k, v) for k, v in metadata or () if k.startswith("x-")]
    return sorted(entries, key=lambda entry: entry[0])


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                     "compression")),
    grpc.ClientCallDetails,
):
    """The way grpcio's examples build new ClientCallDetails."""


def _replace(details, **changes):
    fields = {name: getattr(details, name) for name in _Details._fields}
    fields.update(changes)
    return _Details(**fields)


class _All(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
           grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Every kind, each doing self.intercept(continuation, details, request)."""

    def intercept(self, continuation, details, request):
        return continuation(details, request)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return self.intercept(continuation, client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return self.intercept(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return self.intercept(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return self.intercept(continuation, client_call_details, request_iterator)


class _Recording(_All):
    def __init__(self, name=None, log=None):
        self.name = name
        self.log = log if log is not None else []
        self.details = []

    def intercept(self, continuation, details, request):
        self.details.append(details)
        self.log.append((self.name, "before"))
        outcome = continuation(details, request)
        self.log.append((self.name, "after"))
        return outcome


class _Changing(_All):
    def __init__(self, **changes):
        self.changes = changes

    def intercept(self, continuation, details, request):
        changes = dict(self.changes)
        if "metadata" in changes:
            changes["metadata"] = tuple(details.metadata or ()) + tuple(changes["metadata"])
        return continuation(_replace(details, **changes), request)


def _all_shapes(ch, metadata=None, timeout=RPC_TIMEOUT):
    """One call of each shape; returns the four results."""
    return (
        ch.unary_unary(method("Echo"))(b"u", timeout=timeout, metadata=metadata),
        list(ch.unary_stream(method("Ticks"))(b"t", timeout=timeout, metadata=metadata)),
        ch.stream_unary(method("Join"))(iter([b"a", b"b"]), timeout=timeout,
                                        metadata=metadata),
        list(ch.stream_stream(method("Bidi"))(iter([b"c", b"d"]), timeout=timeout,
                                              metadata=metadata)),
    )


EXPECTED = (b"u", [b"t0", b"t1", b"t2"], b"a,b", [b"c", b"d"])


# -- the four kinds and ClientCallDetails ------------------------------------------


def test_every_kind_sees_client_call_details(base):
    rec = _Recording()
    ch = grpc.intercept_channel(base, rec)
    md = (("x-one", "1"),)
    assert _all_shapes(ch, metadata=md) == EXPECTED
    assert [d.method for d in rec.details] == [
        method("Echo"), method("Ticks"), method("Join"), method("Bidi")]
    for details in rec.details:
        assert isinstance(details, grpc.ClientCallDetails)
        assert details.timeout == RPC_TIMEOUT
        assert tuple(details.metadata) == md
        assert details.credentials is None
        assert details.wait_for_ready is None
        assert details.compression is None


def test_details_carry_every_argument(base):
    rec = _Recording()
    ch = grpc.intercept_channel(base, rec)
    ch.unary_unary(method("Echo"))(b"x", timeout=7, metadata=(("x-a", "b"),),
                                   wait_for_ready=True, compression=grpc.Compression.Gzip)
    ch.unary_unary(method("Echo"))(b"x")
    first, second = rec.details
    assert first.method == method("Echo")
    assert first.timeout == 7
    assert tuple(first.metadata) == (("x-a", "b"),)
    assert first.wait_for_ready is True
    assert first.compression is grpc.Compression.Gzip
    assert second.timeout is None
    assert second.metadata is None
    assert second.wait_for_ready is None
    assert second.compression is None


def test_unary_shapes_with_call_and_future(base):
    rec = _Recording()
    ch = grpc.intercept_channel(base, rec)
    response, call = ch.unary_unary(method("Echo")).with_call(b"w", timeout=RPC_TIMEOUT)
    assert response == b"w"
    assert call.code() is grpc.StatusCode.OK
    future = ch.unary_unary(method("Echo")).future(b"f", timeout=RPC_TIMEOUT)
    assert future.result(timeout=WAIT) == b"f"
    response, call = ch.stream_unary(method("Join")).with_call(iter([b"s"]),
                                                              timeout=RPC_TIMEOUT)
    assert response == b"s"
    assert call.code() is grpc.StatusCode.OK
    future = ch.stream_unary(method("Join")).future(iter([b"g"]), timeout=RPC_TIMEOUT)
    assert future.result(timeout=WAIT) == b"g"
    assert len(rec.details) == 4


def test_an_interceptor_of_one_kind_leaves_the_other_kinds_alone(base):
    log = []

    class OnlyUnaryUnary(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            log.append(client_call_details.method)
            return continuation(client_call_details, request)

    ch = grpc.intercept_channel(base, OnlyUnaryUnary())
    assert _all_shapes(ch) == EXPECTED
    assert log == [method("Echo")]


# -- changing the call ----------------------------------------------------------------


def test_changed_method_reaches_the_server(base):
    ch = grpc.intercept_channel(base, _Changing(method=method("Other")))
    assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT) == b"other:x"
    ch = grpc.intercept_channel(base, _Changing(method=method("Ticks")))
    # The method is changed; the shape stays the caller's.
    assert list(ch.unary_stream(method("NoSuch"))(b"m", timeout=RPC_TIMEOUT)) == [
        b"m0", b"m1", b"m2"]


def test_changed_metadata_reaches_the_server(base, service):
    ch = grpc.intercept_channel(base, _Changing(metadata=(("x-added", "yes"),
                                                          ("x-added-bin", b"\x00\xff"))))
    for call in (
        lambda md: ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT, metadata=md),
        lambda md: list(ch.unary_stream(method("Ticks"))(b"", timeout=RPC_TIMEOUT,
                                                          metadata=md)),
        lambda md: ch.stream_unary(method("Join"))(iter([b""]), timeout=RPC_TIMEOUT,
                                                   metadata=md),
        lambda md: list(ch.stream_stream(method("Bidi"))(iter([b""]), timeout=RPC_TIMEOUT,
                                                         metadata=md)),
    ):
        service.seen.clear()
        call((("x-caller", "c"),))
        assert _x(service.seen["metadata"]) == _x([
            ("x-caller", "c"), ("x-added", "yes"), ("x-added-bin", b"\x00\xff")])
    # Metadata added to a call that had none.
    service.seen.clear()
    ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)
    assert _x(service.seen["metadata"]) == _x([("x-added", "yes"),
                                               ("x-added-bin", b"\x00\xff")])


def test_changed_timeout_reaches_the_call(base, service):
    # Hold waits for the call to end: only the changed 0.3 s timeout, not
    # the caller's RPC_TIMEOUT, lets the handler see at most 0.4 s left.
    ch = grpc.intercept_channel(base, _Changing(timeout=0.3))
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Hold"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert service.seen["time_remaining"] <= 0.4
    # And a timeout added to a call that had none (far from both ends, so
    # only a hang or a wrong timeout breaks it).
    ch = grpc.intercept_channel(base, _Changing(timeout=100))
    ch.unary_unary(method("Echo"))(b"")
    assert 50 < service.seen["time_remaining"] <= 100.1


def test_changed_wait_for_ready_reaches_the_call():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with grpc.insecure_channel(f"127.0.0.1:{free}") as base:
        plain = base.unary_unary(method("Echo"))
        with pytest.raises(grpc.RpcError) as info:
            plain(b"", timeout=0.5)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        # wait_for_ready=True set by the interceptor: the call waits for a
        # server until its deadline instead of failing fast.
        ch = grpc.intercept_channel(base, _Changing(wait_for_ready=True))
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"", timeout=0.5)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        ch = grpc.intercept_channel(base, _Changing(wait_for_ready=False))
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"", timeout=0.5, wait_for_ready=True)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE


class _CountingProxy:
    """A TCP proxy on loopback counting the bytes it forwards upstream."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.up = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False),
                             daemon=True).start()

    def _pump(self, src, dst, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    with self.lock:
                        self.up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


def test_changed_compression_reaches_the_call(served):
    proxy = _CountingProxy(served[1])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as base:
            payload = bytes(MiB)  # highly compressible
            assert base.unary_unary(method("Length"))(b"", timeout=RPC_TIMEOUT) == b"0"
            before = proxy.up
            assert base.unary_unary(method("Length"))(payload, timeout=RPC_TIMEOUT) == b"%d" % MiB
            plain = proxy.up - before
            ch = grpc.intercept_channel(base, _Changing(compression=grpc.Compression.Gzip))
            before = proxy.up
            assert ch.unary_unary(method("Length"))(payload, timeout=RPC_TIMEOUT) == b"%d" % MiB
            compressed = proxy.up - before
        assert plain > MiB
        assert compressed < MiB // 8
    finally:
        proxy.close()


def test_details_without_every_attribute_fall_back_on_the_call(base, service):
    class OnlyMethod:
        def __init__(self, method):
            self.method = method

    class Narrow(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            return continuation(OnlyMethod(method("Other")), request)

    ch = grpc.intercept_channel(base, Narrow())
    assert ch.unary_unary(method("Echo"))(b"n", timeout=100,
                                          metadata=(("x-kept", "k"),)) == b"other:n"
    assert _x(service.seen["metadata"]) == [("x-kept", "k")]
    assert 50 < service.seen["time_remaining"] <= 100.1


def test_changed_requests_and_responses(base):
    class Shout(_All):
        def intercept_unary_unary(self, continuation, details, request):
            return continuation(details, request.upper())

        def intercept_unary_stream(self, continuation, details, request):
            responses = continuation(details, request)
            return (r.upper() for r in responses)

        def intercept_stream_unary(self, continuation, details, request_iterator):
            return continuation(details, (r.upper() for r in request_iterator))

        def intercept_stream_stream(self, continuation, details, request_iterator):
            responses = continuation(details, (r + b"!" for r in request_iterator))
            return (r.upper() for r in responses)

    ch = grpc.intercept_channel(base, Shout())
    assert ch.unary_unary(method("Echo"))(b"u", timeout=RPC_TIMEOUT) == b"U"
    assert list(ch.unary_stream(method("Ticks"))(b"t", timeout=RPC_TIMEOUT)) == [
        b"T0", b"T1", b"T2"]
    assert ch.stream_unary(method("Join"))(iter([b"a", b"b"]), timeout=RPC_TIMEOUT) == b"A,B"
    assert list(ch.stream_stream(method("Bidi"))(iter([b"c"]), timeout=RPC_TIMEOUT)) == [
        b"C!"]


class _Answer(grpc.Call, grpc.Future):
    """An outcome made up by an interceptor: a finished call with a value."""

    def __init__(self, value):
        self._value = value

    def result(self, timeout=None):
        return self._value

    def exception(self, timeout=None):
        return None

    def traceback(self, timeout=None):
        return None

    def add_done_callback(self, fn):
        fn(self)

    def cancel(self):
        return False

    def cancelled(self):
        return False

    def running(self):
        return False

    def done(self):
        return True

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def add_callback(self, callback):
        return False

    def initial_metadata(self):
        return ()

    def trailing_metadata(self):
        return (("x-cached", "yes"),)

    def code(self):
        return grpc.StatusCode.OK

    def details(self):
        return ""


def test_answering_without_calling_the_continuation(base, service):
    class Cached(grpc.UnaryUnaryClientInterceptor):
        """Answers requests it has seen from its cache, never calling the
        continuation for them."""

        def __init__(self):
            self.cache = {}
            self.continued = 0

        def intercept_unary_unary(self, continuation, client_call_details, request):
            if request in self.cache:
                return _Answer(self.cache[request])
            self.continued += 1
            outcome = continuation(client_call_details, request)
            self.cache[request] = outcome.result()
            return outcome

    cached = Cached()
    ch = grpc.intercept_channel(base, cached)
    echo = ch.unary_unary(method("Echo"))
    assert echo(b"r", timeout=RPC_TIMEOUT) == b"r"
    assert cached.continued == 1 and "metadata" in service.seen
    service.seen.clear()
    # Every way of calling: the cached answer, and no call reached the server.
    assert echo(b"r", timeout=RPC_TIMEOUT) == b"r"
    response, call = echo.with_call(b"r", timeout=RPC_TIMEOUT)
    assert response == b"r"
    assert call.code() is grpc.StatusCode.OK
    assert call.trailing_metadata() == (("x-cached", "yes"),)
    assert echo.future(b"r", timeout=RPC_TIMEOUT).result(timeout=WAIT) == b"r"
    assert cached.continued == 1
    assert service.seen == {}


def test_retrying_by_calling_the_continuation_again(base, service):
    class Retry(grpc.UnaryUnaryClientInterceptor):
        """Calls the continuation until it succeeds (at most 3 times)."""

        def __init__(self):
            self.attempts = 0

        def intercept_unary_unary(self, continuation, client_call_details, request):
            for _ in range(3):
                self.attempts += 1
                outcome = continuation(client_call_details, request)
                if outcome.code() is grpc.StatusCode.OK:
                    return outcome
                client_call_details = _replace(client_call_details, method=method("Echo"))
            return outcome

    retry = Retry()
    ch = grpc.intercept_channel(base, retry)
    assert ch.unary_unary("/no.such.Service/M")(b"r", timeout=RPC_TIMEOUT) == b"r"
    assert retry.attempts == 2


# -- order ------------------------------------------------------------------------------


def test_interceptors_run_in_the_order_given(base):
    log = []
    ch = grpc.intercept_channel(base, _Recording("a", log), _Recording("b", log),
                                _Recording("c", log))
    assert ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT) == b""
    assert log == [("a", "before"), ("b", "before"), ("c", "before"),
                   ("c", "after"), ("b", "after"), ("a", "after")]
    del log[:]
    assert list(ch.stream_stream(method("Bidi"))(iter([b"x"]), timeout=RPC_TIMEOUT)) == [b"x"]
    assert [entry for entry in log if entry[1] == "before"] == [
        ("a", "before"), ("b", "before"), ("c", "before")]


def test_nested_intercept_channel(base):
    log = []
    inner = grpc.intercept_channel(base, _Recording("inner", log))
    outer = grpc.intercept_channel(inner, _Recording("outer", log))
    assert outer.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT) == b""
    assert log == [("outer", "before"), ("inner", "before"), ("inner", "after"),
                   ("outer", "after")]


def test_each_interceptor_sees_the_previous_ones_changes(base, service):
    seen = []

    class Look(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            seen.append((client_call_details.method, client_call_details.timeout,
                         tuple(client_call_details.metadata or ())))
            return continuation(client_call_details, request)

    ch = grpc.intercept_channel(base, _Changing(metadata=(("x-first", "1"),), timeout=6),
                                Look(), _Changing(method=method("Other")), Look())
    assert ch.unary_unary(method("Echo"))(b"q", timeout=RPC_TIMEOUT) == b"other:q"
    assert seen == [(method("Echo"), 6, (("x-first", "1"),)),
                    (method("Other"), 6, (("x-first", "1"),))]


def test_intercept_channel_rejects_non_interceptors(base):
    message = ("interceptor must be grpc.UnaryUnaryClientInterceptor or "
               "grpc.UnaryStreamClientInterceptor or grpc.StreamUnaryClientInterceptor "
               "or grpc.StreamStreamClientInterceptor")
    for bad in (object(), None, 5, lambda *a: None, grpc.ServerInterceptor):
        with pytest.raises(TypeError) as info:
            grpc.intercept_channel(base, bad)
        assert str(info.value) == message
    with pytest.raises(TypeError):
        grpc.intercept_channel(base, _Recording(), object())
    # No interceptors: a channel that works.
    assert grpc.intercept_channel(base).unary_unary(method("Echo"))(
        b"z", timeout=RPC_TIMEOUT) == b"z"


def test_intercepted_channel_close_and_context_manager(served):
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as base:
        with grpc.intercept_channel(base, _Recording()) as ch:
            assert ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT) == b""
        # Leaving the intercepted channel's with-block closed the channel below.
        with pytest.raises(ValueError):
            base.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)


# -- exceptions ---------------------------------------------------------------------------


class Boom(Exception):
    pass


class _Raising(_All):
    def intercept(self, continuation, details, request):
        raise Boom("interceptor failed")


def test_interceptor_raising_in_blocking_unary_calls_raises(base):
    ch = grpc.intercept_channel(base, _Raising())
    with pytest.raises(Boom):
        ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)
    with pytest.raises(Boom):
        ch.unary_unary(method("Echo")).with_call(b"", timeout=RPC_TIMEOUT)
    with pytest.raises(Boom):
        ch.stream_unary(method("Join"))(iter([b""]), timeout=RPC_TIMEOUT)
    with pytest.raises(Boom):
        ch.stream_unary(method("Join")).with_call(iter([b""]), timeout=RPC_TIMEOUT)


def test_interceptor_raising_in_futures_and_streams_fails_the_call_object(base):
    # grpcio hands back a failed call object; the exception comes out of
    # result() or the iteration.
    ch = grpc.intercept_channel(base, _Raising())
    for future in (ch.unary_unary(method("Echo")).future(b"", timeout=RPC_TIMEOUT),
                   ch.stream_unary(method("Join")).future(iter([b""]), timeout=RPC_TIMEOUT)):
        assert future.done() is True
        assert isinstance(future.exception(), Boom)
        with pytest.raises(Boom):
            future.result()
        assert future.traceback() is not None
    for call in (ch.unary_stream(method("Ticks"))(b"", timeout=RPC_TIMEOUT),
                 ch.stream_stream(method("Bidi"))(iter([b""]), timeout=RPC_TIMEOUT)):
        with pytest.raises(Boom):
            next(call)


def test_rpc_errors_come_through_the_continuation(base):
    outcomes = []

    class Look(_All):
        def intercept(self, continuation, details, request):
            outcome = continuation(details, request)
            outcomes.append(outcome)
            return outcome

    ch = grpc.intercept_channel(base, Look())
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary("/no.such.Service/M")(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    # The continuation returned the failed call (an RpcError and a Call),
    # not raised it.
    assert isinstance(outcomes[-1], grpc.RpcError)
    assert isinstance(outcomes[-1], grpc.Call)
    assert outcomes[-1].code() is grpc.StatusCode.UNIMPLEMENTED
    future = ch.unary_unary("/no.such.Service/M").future(b"", timeout=RPC_TIMEOUT)
    assert future.exception(timeout=WAIT).code() is grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream("/no.such.Service/M")(b"", timeout=RPC_TIMEOUT))
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary("/no.such.Service/M")(iter([b""]), timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_local_failures_inside_the_continuation(base):
    def bad_serializer(request):
        raise Boom("cannot serialize")

    ch = grpc.intercept_channel(base, _Recording())
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), request_serializer=bad_serializer)(
            b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert info.value.details() == "Exception serializing request!"
    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("Ticks"), request_serializer=bad_serializer)(
            b"", timeout=RPC_TIMEOUT))
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert info.value.details() == "Exception serializing request!"
    # A serializer returning something other than bytes: TypeError, as
    # without interceptors.
    with pytest.raises(TypeError):
        ch.unary_unary(method("Echo"), request_serializer=lambda r: "text")(
            b"", timeout=RPC_TIMEOUT)
    with pytest.raises(TypeError):
        list(ch.unary_stream(method("Ticks"), request_serializer=lambda r: "text")(
            b"", timeout=RPC_TIMEOUT))
    # Calls on a closed channel still raise ValueError.
    base.close()
    with pytest.raises(ValueError):
        ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)


# -- server interceptors -------------------------------------------------------------


def _deny(code, details):
    def behaviour(request_or_iterator, context):
        context.abort(code, details)

    return behaviour


class _Auth(grpc.ServerInterceptor):
    """Lets calls with x-token: secret through; answers others with a
    handler that aborts UNAUTHENTICATED."""

    def __init__(self, log):
        self.log = log
        self.deny = grpc.unary_unary_rpc_method_handler(
            _deny(grpc.StatusCode.UNAUTHENTICATED, "no token"))

    def intercept_service(self, continuation, handler_call_details):
        self.log.append(("auth", handler_call_details.method))
        if ("x-token", "secret") in tuple(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        return self.deny


class _Log(grpc.ServerInterceptor):
    def __init__(self, name, log):
        self.name = name
        self.log = log

    def intercept_service(self, continuation, handler_call_details):
        self.log.append((self.name, handler_call_details.method))
        return continuation(handler_call_details)


def test_server_interceptor_short_circuits_with_an_aborting_handler():
    log = []
    service = _Service()
    interceptors = [_Log("first", log), _Auth(log), _Log("last", log)]
    with serving([service.handler()], interceptors=interceptors) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        for metadata in (None, (("x-token", "wrong"),)):
            for call in (
                lambda: ch.unary_unary(method("Echo"))(b"u", timeout=RPC_TIMEOUT,
                                                      metadata=metadata),
                lambda: list(ch.unary_stream(method("Ticks"))(b"t", timeout=RPC_TIMEOUT,
                                                               metadata=metadata)),
                lambda: ch.stream_unary(method("Join"))(iter([b"a"]), timeout=RPC_TIMEOUT,
                                                        metadata=metadata),
                lambda: list(ch.stream_stream(method("Bidi"))(iter([b"c"]),
                                                              timeout=RPC_TIMEOUT,
                                                              metadata=metadata)),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
                assert info.value.details() == "no token"
        # The chain stopped at the interceptor that answered.
        assert ("last", method("Echo")) not in log
        assert service.seen == {}
        del log[:]
        ok = (("x-token", "secret"),)
        assert _all_shapes(ch, metadata=ok) == EXPECTED
        assert log[:3] == [("first", method("Echo")), ("auth", method("Echo")),
                           ("last", method("Echo"))]
        assert len(log) == 12


def test_server_interceptor_raising_is_unknown():
    class Raising(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            raise Boom("interceptor failed")

    service = _Service()
    with serving([service.handler()], interceptors=[Raising()]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNKNOWN
        assert info.value.details() == "Error in service handler!"
        with pytest.raises(grpc.RpcError) as info:
            list(ch.stream_stream(method("Bidi"))(iter([b""]), timeout=RPC_TIMEOUT))
        assert info.value.code() is grpc.StatusCode.UNKNOWN
        assert info.value.details() == "Error in service handler!"
        assert service.seen == {}


def test_generic_handler_raising_is_unknown():
    class Raising(grpc.GenericRpcHandler):
        def service(self, handler_call_details):
            raise Boom("lookup failed")

    with serving([Raising()]) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNKNOWN
        assert info.value.details() == "Error in service handler!"


def test_server_interceptors_see_handler_call_details():
    seen = []

    class Look(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            seen.append(handler_call_details)
            return continuation(handler_call_details)

    service = _Service()
    with serving([service.handler()], interceptors=[Look()]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        md = (("x-text", "t"), ("x-data-bin", b"\x01\x02"))
        ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT, metadata=md)
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/no.such.Service/M")(b"", timeout=RPC_TIMEOUT, metadata=md)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert [d.method for d in seen] == [method("Echo"), "/no.such.Service/M"]
    for details in seen:
        assert isinstance(details, grpc.HandlerCallDetails)
        assert isinstance(details.method, str)
        assert isinstance(details.invocation_metadata, tuple)
        assert _x(details.invocation_metadata) == _x(md)
        for entry in details.invocation_metadata:
            assert entry.key == entry[0] and entry.value == entry[1]


def test_wrap_server_method_handler_in_an_interceptor():
    calls = []

    def wrapper(behaviour):
        def wrapped(request_or_iterator, context):
            calls.append(context.invocation_metadata() is not None)
            return behaviour(request_or_iterator, context)

        return wrapped

    class Wrap(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            return grpc.experimental.wrap_server_method_handler(
                wrapper, continuation(handler_call_details))

    service = _Service()
    with serving([service.handler()], interceptors=[Wrap()]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert _all_shapes(ch) == EXPECTED
        assert calls == [True] * 4
        # No handler: wrap_server_method_handler gives None -> UNIMPLEMENTED.
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/no.such.Service/M")(b"", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert len(calls) == 4


def test_wrap_server_method_handler_changes_responses():
    def upper_unary(behaviour):
        return lambda request, context: behaviour(request, context).upper()

    def upper_stream(behaviour):
        def wrapped(request_or_iterator, context):
            for response in behaviour(request_or_iterator, context):
                yield response.upper()

        return wrapped

    service = _Service()
    handlers = service.handlers()
    wrapped = {
        "Echo": grpc.experimental.wrap_server_method_handler(upper_unary, handlers["Echo"]),
        "Ticks": grpc.experimental.wrap_server_method_handler(upper_stream, handlers["Ticks"]),
        "Join": grpc.experimental.wrap_server_method_handler(upper_unary, handlers["Join"]),
        "Bidi": grpc.experimental.wrap_server_method_handler(upper_stream, handlers["Bidi"]),
    }
    with serving([grpc.method_handlers_generic_handler(SERVICE, wrapped)]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert _all_shapes(ch) == (b"U", [b"T0", b"T1", b"T2"], b"A,B", [b"C", b"D"])


def test_service_rpc_handler_subclass():
    details_seen = []

    class Custom(grpc.ServiceRpcHandler):
        def service_name(self):
            return "grpcgo.testing.Custom"

        def service(self, handler_call_details):
            details_seen.append(handler_call_details)
            if handler_call_details.method == "/grpcgo.testing.Custom/Hello":
                return grpc.unary_unary_rpc_method_handler(
                    lambda request, context: b"hello " + request)
            return None

    handler = Custom()
    assert isinstance(handler, grpc.GenericRpcHandler)
    assert handler.service_name() == "grpcgo.testing.Custom"
    service = _Service()
    # The method handlers generic handler is a ServiceRpcHandler too.
    generic = service.handler()
    assert isinstance(generic, grpc.ServiceRpcHandler)
    assert generic.service_name() == SERVICE
    with serving([handler, generic]) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert ch.unary_unary("/grpcgo.testing.Custom/Hello")(
            b"you", timeout=RPC_TIMEOUT, metadata=(("x-k", "v"),)) == b"hello you"
        # Not ours: the next generic handler answers.
        assert ch.unary_unary(method("Echo"))(b"e", timeout=RPC_TIMEOUT) == b"e"
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/grpcgo.testing.Custom/Nope")(b"", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == "Method not found!"
    first = details_seen[0]
    assert isinstance(first, grpc.HandlerCallDetails)
    assert first.method == "/grpcgo.testing.Custom/Hello"
    assert _x(first.invocation_metadata) == [("x-k", "v")]


def test_registered_method_handlers_go_through_interceptors():
    log = []
    service = _Service()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, interceptors=[_Log("only", log)])
    server.add_registered_method_handlers(SERVICE, service.handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert ch.unary_unary(method("Echo"))(b"r", timeout=RPC_TIMEOUT) == b"r"
        assert log == [("only", method("Echo"))]
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def test_server_with_a_non_interceptor_fails_its_calls():
    # grpcio accepts anything as an interceptor when building the server;
    # the calls then fail with UNKNOWN.
    with serving([_Service().handler()], interceptors=[object()]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNKNOWN
        assert info.value.details() == "Error in service handler!"
