"""grpcgo's features against grpc-go peers (tests/gopeer), both ways.

test_gopeer.py covers the four call shapes, metadata, status and deadlines;
this file covers what else a grpcgo process does with a peer that is not
grpcgo, each where the peer can judge it:

* compression: our client's gzip requests reach grpc-go's handler (its
  x-report trailer names the request's grpc-encoding), our client reads
  grpc-go's gzip responses; the grpc-go client's "compression" case (run by
  test_gopeer.py) judges our server both ways.
* call credentials over TLS: grpc-go's handler sees the token and the
  plugin's metadata; the :authority and TLS server name grpc-go sees.
* connectivity: our channel follows a grpc-go server that stops and comes
  back on the same port.
* stop(grace) of our server under a grpc-go client's call.
* interceptors: our client's on calls to grpc-go; our server's on calls from
  the grpc-go client.

Everything runs on 127.0.0.1 and is bounded in time.
"""

import concurrent.futures
import contextlib
import queue
import subprocess
import threading
import time

import grpc
import pytest

import certs
import echo_service
from echo_service import msg

RPC_TIMEOUT = 20  # seconds, for every RPC that should end by itself
WAIT = 20  # seconds, for every event that should happen
GO_CLIENT_TIMEOUT = 120  # seconds, for one run of the Go client

C = grpc.ChannelConnectivity
REPORT = (("x-report", "1"),)
TEXT = "compressible " * 5000  # 65 kB that gzip shrinks


def report(call):
    """What grpc-go's handler saw, from its x-report-* trailers."""
    out = {}
    for key, value in call.trailing_metadata() or ():
        if key.startswith("x-report-"):
            out.setdefault(key[len("x-report-"):], []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


# -- compression: our client -> grpc-go's server --------------------------------------


def test_our_compressed_requests_reach_grpc_go(go_echo_port):
    target = f"127.0.0.1:{go_echo_port}"
    with grpc.insecure_channel(target) as ch:
        stub = echo_service.EchoStub(ch)
        response, call = stub.UnaryEcho.with_call(
            msg(TEXT), metadata=REPORT, timeout=RPC_TIMEOUT, compression=grpc.Compression.Gzip)
        assert response.value == TEXT
        assert report(call)["request-encoding"] == "gzip"
        response, call = stub.UnaryEcho.with_call(msg(TEXT), metadata=REPORT,
                                                  timeout=RPC_TIMEOUT)
        assert response.value == TEXT
        assert report(call)["request-encoding"] in ("", "identity")
    # The channel's default, on a stream too.
    with grpc.insecure_channel(target, compression=grpc.Compression.Gzip) as ch:
        stub = echo_service.EchoStub(ch)
        _, call = stub.UnaryEcho.with_call(msg(TEXT), metadata=REPORT, timeout=RPC_TIMEOUT)
        assert report(call)["request-encoding"] == "gzip"
        call = stub.BidiStream(iter([msg(TEXT), msg("b")]), metadata=REPORT,
                               timeout=RPC_TIMEOUT)
        assert [r.value for r in call] == [TEXT, "b"]
        assert report(call)["request-encoding"] == "gzip"
        # NoCompression for one call counts as unset (grpcio: a falsy
        # value adds no compression metadata): the channel's gzip stays.
        _, call = stub.UnaryEcho.with_call(msg(TEXT), metadata=REPORT, timeout=RPC_TIMEOUT,
                                           compression=grpc.Compression.NoCompression)
        assert report(call)["request-encoding"] == "gzip"


def test_our_client_reads_grpc_go_s_compressed_responses(go_echo_port):
    # grpc-go compresses when asked (its own client checks that, in
    # tests/gopeer/echo's compression case); ours must decompress.
    ask = (("x-compress-response", "gzip"),)
    with grpc.insecure_channel(f"127.0.0.1:{go_echo_port}") as ch:
        stub = echo_service.EchoStub(ch)
        assert stub.UnaryEcho(msg(TEXT), metadata=ask, timeout=RPC_TIMEOUT).value == TEXT
        got = [r.value for r in stub.ServerStream(msg("3:" + TEXT), metadata=ask,
                                                  timeout=RPC_TIMEOUT)]
        assert got == [f"{TEXT}-{i}" for i in range(3)]
        future = stub.UnaryEcho.future(msg(TEXT), metadata=ask, timeout=RPC_TIMEOUT)
        assert future.result(timeout=WAIT).value == TEXT


# -- TLS: call credentials, :authority, server name -----------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def go_tls_port(go_echo_server, pki, tmp_path):
    """A grpc-go Echo server with TLS (pki.server: localhost, 127.0.0.1)."""
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(pki.server.cert)
    key.write_bytes(pki.server.key)
    return go_echo_server("--tls_cert", str(cert), "--tls_key", str(key)).port


class _Plugin(grpc.AuthMetadataPlugin):
    def __call__(self, context, callback):
        callback((("x-echo-from-plugin", context.method_name),), None)


def test_call_credentials_reach_grpc_go(go_tls_port, pki):
    tls = grpc.ssl_channel_credentials(pki.ca.cert)
    with grpc.secure_channel(f"127.0.0.1:{go_tls_port}", tls) as ch:
        stub = echo_service.EchoStub(ch)
        # Per call: a token and a plugin's metadata.
        creds = grpc.composite_call_credentials(
            grpc.access_token_call_credentials("call-token"),
            grpc.metadata_call_credentials(_Plugin()))
        response, call = stub.UnaryEcho.with_call(msg("c"), metadata=REPORT,
                                                  timeout=RPC_TIMEOUT, credentials=creds)
        assert response.value == "c"
        assert report(call)["authorization"] == "Bearer call-token"
        assert ("x-echo-from-plugin", "UnaryEcho") in tuple(call.initial_metadata())
        call = stub.ServerStream(msg("2:s"), metadata=REPORT, timeout=RPC_TIMEOUT,
                                 credentials=creds)
        assert [r.value for r in call] == ["s-0", "s-1"]
        assert report(call)["authorization"] == "Bearer call-token"
        # None given: none sent.
        _, call = stub.UnaryEcho.with_call(msg("c"), metadata=REPORT, timeout=RPC_TIMEOUT)
        assert "authorization" not in report(call)
    # On the channel: every call carries them.
    creds = grpc.composite_channel_credentials(
        tls, grpc.access_token_call_credentials("channel-token"))
    with grpc.secure_channel(f"127.0.0.1:{go_tls_port}", creds) as ch:
        stub = echo_service.EchoStub(ch)
        _, call = stub.UnaryEcho.with_call(msg("c"), metadata=REPORT, timeout=RPC_TIMEOUT)
        assert report(call)["authorization"] == "Bearer channel-token"
        call = stub.BidiStream(iter([msg("b")]), metadata=REPORT, timeout=RPC_TIMEOUT)
        assert [r.value for r in call] == ["b"]
        assert report(call)["authorization"] == "Bearer channel-token"


def test_authority_and_server_name_grpc_go_sees(go_tls_port, pki):
    tls = grpc.ssl_channel_credentials(pki.ca.cert)

    def seen(target, options=()):
        with grpc.secure_channel(target, tls, options=list(options)) as ch:
            _, call = echo_service.EchoStub(ch).UnaryEcho.with_call(
                msg("a"), metadata=REPORT, timeout=RPC_TIMEOUT)
            got = report(call)
            return got["authority"], got["server-name"]

    port = go_tls_port
    # By default the target names both (no SNI for an IP address).
    assert seen(f"127.0.0.1:{port}") == (f"127.0.0.1:{port}", "")
    assert seen(f"localhost:{port}") == (f"localhost:{port}", "localhost")
    # grpcio's rule: the override names the certificate (and SNI), the
    # default authority is the :authority; they may differ.
    assert seen(f"127.0.0.1:{port}", [("grpc.default_authority", "other.example"),
                                       ("grpc.ssl_target_name_override", "localhost")]) \
        == ("other.example", "localhost")
    assert seen(f"127.0.0.1:{port}", [("grpc.ssl_target_name_override", "localhost")]) \
        == ("localhost", "localhost")


# -- connectivity: our channel, a grpc-go server that goes and comes back -------------


def _wait_state(states, wanted, seen):
    deadline = time.monotonic() + WAIT
    while True:
        try:
            state = states.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            pytest.fail(f"no state in {wanted} within {WAIT} s; heard {seen}")
        seen.append(state)
        if state in wanted:
            return state


def test_connectivity_follows_a_grpc_go_server(go_echo_server):
    server = go_echo_server()
    port = server.port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = echo_service.EchoStub(ch)
        states, seen = queue.Queue(), []
        ch.subscribe(states.put, try_to_connect=True)
        try:
            _wait_state(states, {C.READY}, seen)
            assert stub.UnaryEcho(msg("up"), timeout=RPC_TIMEOUT).value == "up"
            # grpc-go stops (GOAWAY, then the connection closes): the
            # channel leaves READY and calls fail fast.
            server.stop()
            _wait_state(states, {C.IDLE, C.TRANSIENT_FAILURE, C.CONNECTING}, seen)
            with pytest.raises(grpc.RpcError) as info:
                stub.UnaryEcho(msg("down"), timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            # A call that waits for ready outlives the outage: it is issued
            # while nothing listens and ends OK once grpc-go is back.
            waiting = stub.UnaryEcho.future(msg("back"), timeout=RPC_TIMEOUT * 2,
                                            wait_for_ready=True)
            assert not waiting.done()
            go_echo_server("--port", str(port))
            assert waiting.result(timeout=WAIT).value == "back"
            _wait_state(states, {C.READY}, seen)
            grpc.channel_ready_future(ch).result(timeout=WAIT)
        finally:
            ch.unsubscribe(states.put)
    assert seen[0] in (C.IDLE, C.CONNECTING), seen


# -- the grpc-go client against our server: stop(grace), interceptors -----------------


def run_go_client(gopeer_bin, port, case):
    cmd = [gopeer_bin.client, "--target", f"127.0.0.1:{port}", "--case", case,
           "--timeout", "60s"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc, case):
    try:
        out, _ = proc.communicate(timeout=GO_CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"Go client case {case!r} ran over {GO_CLIENT_TIMEOUT}s:\n{out}")
    assert proc.returncode == 0 and f"PASS {case}" in out, out
    return out


@contextlib.contextmanager
def python_server(handlers, interceptors=None):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(pool, handlers=handlers, interceptors=interceptors)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        yield server, port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


class _Holding:
    """UnaryEcho that holds each call until released (or it ends), noting
    how each ended."""

    def __init__(self):
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.ended = []

    def unary(self, request, context):
        self.arrived.set()
        deadline = time.monotonic() + WAIT
        while context.is_active() and not self.release.is_set() \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        self.ended.append((request.value, "active" if context.is_active() else "cancelled"))
        return request

    def handler(self):
        return grpc.method_handlers_generic_handler(echo_service.SERVICE, {
            "UnaryEcho": grpc.unary_unary_rpc_method_handler(
                self.unary, request_deserializer=echo_service.DESERIALIZE,
                response_serializer=echo_service.SERIALIZE)})


def test_grpc_go_client_s_call_finishes_within_the_grace(gopeer_bin):
    holding = _Holding()
    with python_server([holding.handler()]) as (server, port):
        proc = run_go_client(gopeer_bin, port, "stop_in_grace")
        try:
            assert holding.arrived.wait(WAIT), "the Go client's call never arrived"
            # Stopped while the call is held; released after: the handler
            # finishes inside the grace, and the Go client's next call
            # (made after that) is refused.
            stopped = server.stop(60)
            holding.release.set()
            finish(proc, "stop_in_grace")
        finally:
            holding.release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert stopped.wait(WAIT)
    assert holding.ended == [("in grace", "active")]


def test_grpc_go_client_s_call_is_cancelled_after_the_grace(gopeer_bin):
    holding = _Holding()
    with python_server([holding.handler()]) as (server, port):
        proc = run_go_client(gopeer_bin, port, "stop_after_grace")
        try:
            assert holding.arrived.wait(WAIT), "the Go client's call never arrived"
            # Never released: only the grace running out ends it (else
            # the handler gives up after WAIT and the call ends OK).
            stopped = server.stop(0.3)
            finish(proc, "stop_after_grace")
            assert stopped.wait(WAIT)
        finally:
            holding.release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert holding.ended == [("hold", "cancelled")]


def _aborting(handler, details):
    """A handler of handler's shape that ends the call PERMISSION_DENIED."""
    def abort(request_or_iterator, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, details)

    def abort_stream(request_or_iterator, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, details)
        yield  # a generator, as a streaming handler is

    kw = dict(request_deserializer=handler.request_deserializer,
              response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort_stream, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort, **kw)
    return grpc.stream_stream_rpc_method_handler(abort_stream, **kw)


class _Reject(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        for key, value in handler_call_details.invocation_metadata:
            if key == "x-reject":
                return _aborting(handler, value)
        return handler


class _Log(grpc.ServerInterceptor):
    def __init__(self):
        self.log = []

    def intercept_service(self, continuation, handler_call_details):
        rejected = any(k == "x-reject" for k, _ in handler_call_details.invocation_metadata)
        self.log.append((handler_call_details.method.rsplit("/", 1)[1], rejected))
        return continuation(handler_call_details)


def test_grpc_go_client_through_our_server_interceptors(gopeer_bin):
    log = _Log()
    with python_server([echo_service.generic_handler()], [log, _Reject()]) as (_, port):
        finish(run_go_client(gopeer_bin, port, "interceptor"), "interceptor")
    assert log.log == [("UnaryEcho", True), ("ServerStream", True), ("ClientStream", True),
                       ("UnaryEcho", False), ("ServerStream", False)]


class _Upper(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds x-echo-intercepted, upper-cases requests (but directives),
    notes each unary outcome's code."""

    def __init__(self):
        self.codes = []

    @staticmethod
    def _details(details):
        metadata = tuple(details.metadata or ()) + (("x-echo-intercepted", "yes"),)
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        details.wait_for_ready, details.compression)

    def _note(self, outcome):
        outcome.add_done_callback(lambda f: self.codes.append(f.code()))
        return outcome

    def intercept_unary_unary(self, continuation, details, request):
        return self._note(continuation(self._details(details), _up(request)))

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), _up(request))

    def intercept_stream_unary(self, continuation, details, requests):
        return self._note(continuation(self._details(details), map(_up, requests)))

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), map(_up, requests))


def _up(request):
    text = request.value
    return msg(text if text.startswith("status:") else text.upper())


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def test_our_client_interceptors_on_calls_to_grpc_go(go_echo_port):
    upper = _Upper()
    with grpc.insecure_channel(f"127.0.0.1:{go_echo_port}") as base:
        stub = echo_service.EchoStub(grpc.intercept_channel(base, upper))
        response, call = stub.UnaryEcho.with_call(msg("a"), timeout=RPC_TIMEOUT)
        assert response.value == "A"
        assert ("x-echo-intercepted", "yes") in tuple(call.initial_metadata())
        assert [r.value for r in stub.ServerStream(msg("2:b"), timeout=RPC_TIMEOUT)] \
            == ["B-0", "B-1"]
        assert stub.ClientStream(iter([msg("c"), msg("d")]), timeout=RPC_TIMEOUT).value \
            == "C,D"
        call = stub.BidiStream(iter([msg("e"), msg("f")]), timeout=RPC_TIMEOUT)
        assert [r.value for r in call] == ["E", "F"]
        assert ("x-trailer-intercepted", "yes") in tuple(call.trailing_metadata())
        # grpc-go's status reaches the interceptor's outcome.
        with pytest.raises(grpc.RpcError) as info:
            stub.UnaryEcho(msg("status:NOT_FOUND:x"), timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "x"
    assert upper.codes == [grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND]
