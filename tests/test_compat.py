"""What code written for grpcio expects beyond the public API (issue 13):
the private and legacy names libraries and tests import, the servicer
context's _state, non-blocking streaming handlers, done-callbacks that have
run when a result is returned, contextvars, TLS session resumption, and
smaller differences. Expectations are grpcio 1.85's observed behaviour.
"""

import concurrent.futures
import contextvars
import gc
import logging
import threading
import time

import pytest

import grpc

import certs
from certs import serving, unary

LOCAL = "127.0.0.1:0"
TIMEOUT = 10  # seconds: every call here is bounded


def _server(handlers, workers=4, **kwargs):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    server = grpc.server(pool, handlers=handlers, **kwargs)
    port = server.add_insecure_port(LOCAL)
    server.start()
    return server, port, pool


class _Generic(grpc.GenericRpcHandler):
    """Serves every method with the handler that method_handler(method) gives."""

    def __init__(self, method_handler):
        self._method_handler = method_handler

    def service(self, details):
        return self._method_handler(details.method)


# -- 1. names grpcio ships --------------------------------------------------------
def test_private_and_legacy_modules_import():
    import grpc._common
    import grpc._grpcio_metadata
    import grpc._simple_stubs
    import grpc._typing
    import grpc.beta.implementations
    import grpc.beta.interfaces
    import grpc.beta.utilities
    import grpc.experimental.gevent
    import grpc.experimental.session_cache
    from grpc.framework.common import cardinality, style
    from grpc.framework.foundation import abandonment, callable_util, future
    from grpc.framework.foundation import logging_pool, stream, stream_util
    from grpc.framework.interfaces.base import base, utilities
    from grpc.framework.interfaces.face import face, utilities as face_utilities

    assert grpc._grpcio_metadata.__version__ == grpc.__version__
    assert grpc._common.fully_qualified_method("pkg.Svc", "M") == "/pkg.Svc/M"
    assert grpc._common.encode("é") == "é".encode() and grpc._common.decode(b"x") == "x"
    assert grpc.experimental.unary_unary is grpc._simple_stubs.unary_unary
    assert grpc._typing.MetadataType is not None
    assert cardinality.Cardinality.UNARY_STREAM.value == "request-unary/response-streaming"
    assert style.Service.INLINE.value == "inline"
    assert issubclass(abandonment.Abandoned, Exception)
    assert issubclass(face.ExpirationError, face.AbortionError)
    assert face.Call.__abstractmethods__ >= {"code", "details", "cancel"}
    assert base.Outcome.Kind.COMPLETED.value == "completed"
    assert utilities.completion(None, 0, "m").message == "m"
    impl = face_utilities.unary_stream_inline(len)
    assert impl.cardinality is cardinality.Cardinality.UNARY_STREAM
    assert impl.unary_stream_inline is len and impl.unary_unary_inline is None
    assert issubclass(future.TimeoutError, Exception)
    assert grpc.beta.interfaces.ChannelConnectivity.FATAL_FAILURE is grpc.ChannelConnectivity.SHUTDOWN

    outcome = callable_util.call_logging_exceptions(lambda: 1 / 0, "boom")
    assert outcome.kind is callable_util.Outcome.Kind.RAISED
    assert isinstance(outcome.exception, ZeroDivisionError)
    assert callable_util.with_exceptions_logged(lambda x: x + 1, "m")(1).return_value == 2

    with logging_pool.pool(2) as pool:
        assert pool.submit(lambda: 7).result(timeout=TIMEOUT) == 7
        assert list(pool.map(abs, [-1, -2])) == [1, 2]

    sink = stream_util.IterableConsumer()
    switching = stream_util.ThreadSwitchingConsumer(
        stream_util.TransformingConsumer(lambda v: v * 2, sink),
        concurrent.futures.ThreadPoolExecutor(1),
    )
    for value in range(5):
        switching.consume(value)
    switching.consume_and_terminate(5)
    assert list(sink) == [0, 2, 4, 6, 8, 10]


def test_gevent_says_it_does_not_work_here():
    from grpc.experimental import gevent

    with pytest.raises(NotImplementedError, match="gevent"):
        gevent.init_gevent()


def test_beta_stubs_and_servers():
    from grpc.beta import implementations, interfaces
    from grpc.framework.common import cardinality
    from grpc.framework.interfaces.face import face, utilities

    def unary_event(request, response_callback, context):
        context.terminal_metadata(((b"k", b"v"),))
        response_callback(request + context.protocol_context().peer()[:4].encode())

    def stream_event(response_consumer, context):
        class Requests:
            def consume(self, value):
                response_consumer.consume(value.upper())

            def terminate(self):
                response_consumer.terminate()

            def consume_and_terminate(self, value):
                self.consume(value)
                self.terminate()

        return Requests()

    implementations_by_method = {
        ("g", "UU"): utilities.unary_unary_event(unary_event),
        ("g", "US"): utilities.unary_stream_inline(lambda request, context: iter([request] * 3)),
        ("g", "SU"): utilities.stream_unary_inline(lambda requests, context: b"".join(requests)),
        ("g", "SS"): utilities.stream_stream_event(stream_event),
    }
    server = implementations.server(implementations_by_method)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = implementations.insecure_channel("127.0.0.1", port)
        stub = implementations.dynamic_stub(channel, "g", {
            "UU": cardinality.Cardinality.UNARY_UNARY,
            "US": cardinality.Cardinality.UNARY_STREAM,
            "SU": cardinality.Cardinality.STREAM_UNARY,
            "SS": cardinality.Cardinality.STREAM_STREAM,
        })
        response, call = stub.UU(b"x", TIMEOUT, with_call=True)
        assert response == b"xipv4" and call.code() is interfaces.StatusCode.OK
        assert (b"k", b"v") in [(m.key, m.value) for m in call.terminal_metadata()]
        assert list(stub.US(b"y", TIMEOUT)) == [b"y"] * 3
        assert stub.SU.future(iter([b"a", b"b"]), TIMEOUT).result() == b"ab"
        assert list(stub.SS(iter([b"c", b"d"]), TIMEOUT)) == [b"C", b"D"]
        generic = implementations.generic_stub(channel)
        with pytest.raises(face.LocalError) as info:
            generic.blocking_unary_unary("g", "Nope", b"", TIMEOUT)
        assert info.value.code is interfaces.StatusCode.UNIMPLEMENTED
        with pytest.raises(face.ExpirationError):
            generic.blocking_unary_unary("g", "UU", b"", 0.000001)
    finally:
        server.stop(None).wait(TIMEOUT)


def test_beta_channel_ready_future():
    from grpc.beta import implementations, utilities

    server, port, pool = _server(())
    try:
        channel = implementations.insecure_channel("127.0.0.1", port)
        assert utilities.channel_ready_future(channel).result(timeout=TIMEOUT) is None
    finally:
        server.stop(None)


# -- TLS session resumption -------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


def test_ssl_session_cache_resumes_sessions(pki):
    from grpc.experimental import session_cache

    server_creds = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])
    channel_creds = grpc.ssl_channel_credentials(pki.ca.cert)
    cache = session_cache.ssl_session_cache_lru(1)
    options = (("grpc.ssl_session_cache", cache),)

    def reused(port, opts):
        unary(f"localhost:{port}", channel_creds, opts)
        return rec.last.auth_context["ssl_session_reused"]

    with serving(("localhost:0", server_creds)) as (rec, [port]):
        # The first connection has nothing to resume; the next resumes it
        # (the server says so in its auth context). Without the cache, none.
        assert reused(port, options) == [b"false"]
        assert reused(port, options) == [b"true"]
        assert reused(port, ()) == [b"false"]
        other_creds = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])
        with serving(("localhost:0", other_creds)) as (rec2, [port2]):
            # Another server (other ticket keys) with the same name: a full
            # handshake, whose session then replaces the one cached.
            unary(f"localhost:{port2}", channel_creds, options)
            assert rec2.last.auth_context["ssl_session_reused"] == [b"false"]
            unary(f"localhost:{port2}", channel_creds, options)
            assert rec2.last.auth_context["ssl_session_reused"] == [b"true"]
        assert reused(port, options) == [b"false"]


def test_option_values_with_int_are_accepted():
    class Pointer:
        def __int__(self):
            return 12345

    server, port, pool = _server((_Generic(lambda m: grpc.unary_unary_rpc_method_handler(
        lambda request, context: request)),))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=(("grpc.x_pointer", Pointer()),)) as ch:
            assert ch.unary_unary("/s/M")(b"ok", timeout=TIMEOUT) == b"ok"
        with pytest.raises(TypeError):
            grpc.insecure_channel(f"127.0.0.1:{port}", options=(("grpc.x", object()),))
    finally:
        server.stop(None)


# -- the servicer context's _state ------------------------------------------------
def _echo_server_with(behavior_for, workers=4, **kwargs):
    return _server((_Generic(behavior_for),), workers=workers, **kwargs)


def test_servicer_context_state_fields():
    seen = {}
    release = threading.Event()

    def unary(request, context):
        seen["open"] = (context._state.client, context._state.code, context._state.details)
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("nothing here")
        context.set_trailing_metadata((("k", "v"),))
        st = context._state
        seen["set"] = (st.code, st.details, st.trailing_metadata, st.aborted, st.statused)
        return request

    def hang(request, context):
        seen["hang_active"] = context._state.client
        release.wait(TIMEOUT)  # the client has cancelled
        deadline = time.monotonic() + TIMEOUT
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the cancellation reaches the server
        seen["cancelled"] = context._state.client
        return request

    server, port, pool = _echo_server_with(lambda m: grpc.unary_unary_rpc_method_handler(
        hang if m == "/s/Hang" else unary))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary("/s/M")(b"x", timeout=TIMEOUT)
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            future = ch.unary_unary("/s/Hang").future(b"x", timeout=TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            while "hang_active" not in seen and time.monotonic() < deadline:
                time.sleep(0.01)
            future.cancel()
            release.set()
            deadline = time.monotonic() + TIMEOUT
            while "cancelled" not in seen and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        release.set()
        server.stop(None)
    # grpcio's words: the request arrived whole ("closed"), then the client
    # cancelled ("cancelled"); details are bytes.
    assert seen["open"] == ("closed", None, None)
    assert seen["set"] == (grpc.StatusCode.NOT_FOUND, b"nothing here", (("k", "v"),), False, False)
    assert seen["hang_active"] == "closed"
    assert seen["cancelled"] == "cancelled"


def test_abort_and_set_code_with_an_int_give_unknown():
    def handler(request, context):
        context.set_trailing_metadata((("why", "int"),))
        if request == b"abort":
            context.abort(5, "int abort")
        context.set_code(7)
        context.set_details("int code")
        return request

    server, port, pool = _echo_server_with(lambda m: grpc.unary_unary_rpc_method_handler(handler))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            for request, details in ((b"abort", "int abort"), (b"set", "int code")):
                with pytest.raises(grpc.RpcError) as info:
                    ch.unary_unary("/s/M")(request, timeout=TIMEOUT)
                assert info.value.code() is grpc.StatusCode.UNKNOWN
                assert info.value.details() == details
                assert dict(info.value.trailing_metadata())["why"] == "int"
    finally:
        server.stop(None)


# -- 2. non-blocking streaming handlers --------------------------------------------
class _Watchers:
    """A health-service-like Watch: each watcher is kept with its sender, and
    the handler returns at once (experimental_non_blocking)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.senders = {}  # request -> its send_response
        self.closed = []
        self.threads = set()

    def watch(self, request, context, send_response):
        self.threads.add(threading.get_ident())
        send_response(b"SERVING:" + request)
        with self.lock:
            self.senders[request] = send_response
        context.add_callback(lambda: self.closed.append(request))

    watch.experimental_non_blocking = True

    def publish(self, message):
        with self.lock:
            senders = list(self.senders.values())
        for send in senders:
            send(message)


def test_non_blocking_streams_hold_no_pool_thread():
    watchers = _Watchers()
    watch = watchers.watch

    def method_handler(method):
        if method == "/h/Watch":
            return grpc.unary_stream_rpc_method_handler(watch)
        return grpc.unary_unary_rpc_method_handler(lambda request, context: b"SERVING")

    server, port, pool = _server((_Generic(method_handler),), workers=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            streams = [ch.unary_stream("/h/Watch")(b"%d" % i, timeout=TIMEOUT) for i in range(4)]
            for i, stream in enumerate(streams):
                assert next(stream) == b"SERVING:%d" % i
            # Four open watches and two pool threads: Check still answers.
            assert ch.unary_unary("/h/Check")(b"", timeout=TIMEOUT) == b"SERVING"
            watchers.publish(b"NOT_SERVING")
            assert [next(s) for s in streams] == [b"NOT_SERVING"] * 4
            watchers.senders[b"0"](None)  # ends that watch with status OK
            assert list(streams[0]) == [] and streams[0].code() is grpc.StatusCode.OK
            streams[1].cancel()
            deadline = time.monotonic() + TIMEOUT
            while b"1" not in watchers.closed and time.monotonic() < deadline:
                time.sleep(0.01)
            assert b"1" in watchers.closed
            assert ch.unary_unary("/h/Check")(b"", timeout=TIMEOUT) == b"SERVING"
    finally:
        server.stop(None)


def test_health_watches_hold_no_server_thread():
    # grpcio-health-checking's Watch is non-blocking: with 2 pool threads
    # and 3 open watches, Check still answers and every watcher hears a change.
    health = pytest.importorskip("grpc_health.v1.health")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(LOCAL)
    server.start()
    serving, not_serving = (health_pb2.HealthCheckResponse.SERVING,
                            health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            watches = [stub.Watch(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
                       for _ in range(3)]
            assert [next(w).status for w in watches] == [serving] * 3
            assert stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == serving
            servicer.set("", not_serving)
            assert [next(w).status for w in watches] == [not_serving] * 3
            for w in watches:
                w.cancel()
            assert stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == not_serving
    finally:
        server.stop(None)


def test_experimental_thread_pool_runs_the_handler_there():
    own_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="own")

    def handler(request, context):
        return threading.current_thread().name.encode()

    handler.experimental_thread_pool = own_pool
    server, port, pool = _echo_server_with(lambda m: grpc.unary_unary_rpc_method_handler(handler))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert ch.unary_unary("/s/M")(b"", timeout=TIMEOUT).startswith(b"own")
    finally:
        server.stop(None)
        own_pool.shutdown(wait=False)


# -- 3. done-callbacks have run when the result is returned --------------------------
def test_done_callbacks_have_run_when_result_returns_and_iteration_ends():
    def method_handler(method):
        if method == "/s/Stream":
            return grpc.unary_stream_rpc_method_handler(lambda r, c: iter([r, r]))
        return grpc.unary_unary_rpc_method_handler(lambda r, c: r)

    server, port, pool = _server((_Generic(method_handler),))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            for _ in range(5):
                ran = []

                def slow(call, ran=ran):
                    time.sleep(0.05)
                    ran.append(call.code())

                future = ch.unary_unary("/s/M").future(b"x", timeout=TIMEOUT)
                future.add_done_callback(slow)
                assert future.result() == b"x"
                assert ran == [grpc.StatusCode.OK]

                ran = []
                stream = ch.unary_stream("/s/Stream")(b"y", timeout=TIMEOUT)
                stream.add_done_callback(lambda call: slow(call, ran))
                assert list(stream) == [b"y", b"y"]
                assert ran == [grpc.StatusCode.OK]

                ran = []
                future = ch.stream_unary("/s/M").future(iter([b"z"]), timeout=TIMEOUT)
                future.add_done_callback(lambda call: slow(call, ran))
                future.add_done_callback(lambda call: ran.append(call.result()))  # re-entrant
                assert future.result() == b"z"
                assert ran == [grpc.StatusCode.OK, b"z"]
    finally:
        server.stop(None)


# -- 4. contextvars -----------------------------------------------------------------
_VAR = contextvars.ContextVar("grpcgo_test_var", default="unset")


def test_each_server_rpc_runs_in_a_fresh_context():
    seen = []

    class Interceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            seen.append(("interceptor", _VAR.get()))
            _VAR.set("from interceptor")
            return continuation(details)

    def handler(request, context):
        seen.append(("handler", _VAR.get()))
        _VAR.set("leaked?")
        return request

    server, port, pool = _server((_Generic(lambda m: grpc.unary_unary_rpc_method_handler(handler)),),
                                 workers=1, interceptors=(Interceptor(),))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            for _ in range(3):
                ch.unary_unary("/s/M")(b"", timeout=TIMEOUT)
    finally:
        server.stop(None)
    assert seen == [("interceptor", "unset"), ("handler", "from interceptor")] * 3


def test_metadata_plugin_runs_in_a_copy_of_its_creation_context():
    seen = []

    def plugin(context, callback):
        seen.append(_VAR.get())
        _VAR.set("changed by the plugin")
        callback((("x-var", _VAR.get()),), None)

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2), handlers=(_Generic(
        lambda m: grpc.unary_unary_rpc_method_handler(
            lambda r, c: dict(c.invocation_metadata())["x-var"].encode())),))
    port = server.add_secure_port(
        LOCAL, grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP))
    server.start()
    token = _VAR.set("at creation")
    try:
        credentials = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
            grpc.metadata_call_credentials(plugin))
    finally:
        _VAR.reset(token)
    try:
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as ch:
            for _ in range(2):
                assert ch.unary_unary("/s/M")(b"", timeout=TIMEOUT) == b"changed by the plugin"
    finally:
        server.stop(None)
    assert seen == ["at creation", "at creation"]
    assert _VAR.get() == "unset"


# -- 6. smaller differences -----------------------------------------------------------
def test_registered_handlers_after_start_warn_and_are_ignored(caplog):
    server, port, pool = _server(())
    try:
        with caplog.at_level(logging.WARNING):
            server.add_registered_method_handlers(
                "s", {"M": grpc.unary_unary_rpc_method_handler(lambda r, c: r)})
        # grpcio's text, which grpcio's own _server_test looks for
        assert "Cannot register method handlers once server has started" in caplog.text
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary("/s/M")(b"", timeout=TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
            assert "Method not found" in str(info.value)
    finally:
        server.stop(None)


def test_deleting_a_server_stops_it_and_ends_wait_for_termination():
    server, port, pool = _server(())
    ended = threading.Event()

    def wait(server):
        server.wait_for_termination()
        ended.set()

    threading.Thread(target=wait, args=(server,), daemon=True).start()
    assert not ended.wait(0.2)
    server.__del__()  # as grpcio's own test does; the collector calls it too
    assert ended.wait(TIMEOUT)


def test_debug_error_string_is_empty_on_success():
    server, port, pool = _echo_server_with(lambda m: grpc.unary_unary_rpc_method_handler(
        lambda r, c: r))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            _, call = ch.unary_unary("/s/M").with_call(b"", timeout=TIMEOUT)
            assert call.debug_error_string() == ""
            future = ch.unary_unary("/s/M").future(b"", timeout=TIMEOUT)
            future.result()
            assert future.debug_error_string() == ""
    finally:
        server.stop(None)


def test_ok_without_a_response_on_a_unary_call_is_none():
    # The server streams no response and ends OK; a unary client gets None.
    server, port, pool = _echo_server_with(lambda m: grpc.unary_stream_rpc_method_handler(
        lambda r, c: iter(())))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            multi = ch.unary_unary("/s/M", response_deserializer=bytes.upper)
            assert multi(b"", timeout=TIMEOUT) is None
            response, call = multi.with_call(b"", timeout=TIMEOUT)
            assert response is None and call.code() is grpc.StatusCode.OK
            assert multi.future(b"", timeout=TIMEOUT).result() is None
            assert ch.stream_unary("/s/M")(iter([b""]), timeout=TIMEOUT) is None
    finally:
        server.stop(None)


@pytest.mark.parametrize("address", ["[::1]:0", "127.0.0.1:0"])
def test_localhost_reaches_ipv6_and_ipv4_loopback(address):
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2), handlers=(_Generic(
        lambda m: grpc.unary_unary_rpc_method_handler(lambda r, c: r)),))
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        pytest.skip("no %s loopback here" % address)
    server.start()
    try:
        with grpc.insecure_channel(f"localhost:{port}") as ch:
            assert ch.unary_unary("/s/M")(b"hi", timeout=TIMEOUT) == b"hi"
    finally:
        server.stop(None)


def test_localhost_with_tls_and_a_target_name_override(pki):
    # The server's certificate names foo.test.example only: TLS checks the
    # override, which must neither clash with the authority (the target's)
    # nor lose to "localhost", as in grpcio.
    server_creds = grpc.ssl_server_credentials([(pki.override.key, pki.override.cert)])
    with serving(("[::1]:0", server_creds)) as (rec, [port]):
        options = (("grpc.ssl_target_name_override", "foo.test.example"),)
        assert unary(f"localhost:{port}", grpc.ssl_channel_credentials(pki.ca.cert), options,
                     request=b"tls") == b"tls"


def test_server_named_only_by_its_common_name(tmp_path):
    # A certificate without SANs that names the server in its CN: grpcio
    # accepts it (crypto/x509 alone would not); a CN naming another host,
    # or an IP target, still fails on the name.
    maker = certs._Maker(tmp_path)
    ca = maker.ca("ca", "grpcgo CN test CA")
    cn_only = maker.leaf("cn_only", "ca", "localhost")
    other = maker.leaf("other", "ca", "elsewhere.example")
    creds = grpc.ssl_channel_credentials(ca.cert)
    for pair, target, ok in ((cn_only, "localhost", True), (other, "localhost", False),
                             (cn_only, "127.0.0.1", False)):
        server_creds = grpc.ssl_server_credentials([(pair.key, pair.cert)])
        with serving(("127.0.0.1:0", server_creds)) as (rec, [port]):
            if ok:
                assert unary(f"{target}:{port}", creds, request=b"cn") == b"cn"
            else:
                with pytest.raises(grpc.RpcError) as info:
                    unary(f"{target}:{port}", creds)
                assert info.value.code() is grpc.StatusCode.UNAVAILABLE
                assert "certificate" in info.value.details()
    # The override names the CN too, as in grpcio.
    with serving(("127.0.0.1:0", grpc.ssl_server_credentials([(other.key, other.cert)]))) as (
            rec, [port]):
        options = (("grpc.ssl_target_name_override", "elsewhere.example"),)
        assert unary(f"127.0.0.1:{port}", creds, options, request=b"o") == b"o"


def test_method_paths_without_a_leading_slash_reach_generic_handlers():
    seen = []

    def method_handler(method):
        seen.append(method)
        return grpc.unary_unary_rpc_method_handler(lambda r, c: r)

    server, port, pool = _server((_Generic(method_handler),))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            for method in ("Method", "svc/Method", "/Method", "/svc/Method"):
                assert ch.unary_unary(method)(method.encode(), timeout=TIMEOUT) == method.encode()
    finally:
        server.stop(None)
    assert seen == ["Method", "svc/Method", "/Method", "/svc/Method"]  # as sent, as in grpcio


def test_user_agent_token_is_the_one_sent():
    from grpc import _channel

    seen = []

    def handler(request, context):
        seen.append(dict(context.invocation_metadata())["user-agent"])
        return request

    server, port, pool = _echo_server_with(lambda m: grpc.unary_unary_rpc_method_handler(handler))
    options = (("grpc.primary_user_agent", "primary-agent"),
               ("grpc.secondary_user_agent", "secondary-agent"))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options) as ch:
            ch.unary_unary("/s/M")(b"", timeout=TIMEOUT)
    finally:
        server.stop(None)
    assert seen[0].startswith("primary-agent " + _channel._USER_AGENT)
    assert seen[0].endswith("secondary-agent")
