"""Status codes and details, end to end over loopback sockets.

What the client sees when a handler raises, when (de)serializers fail, when
methods are unknown, deadlines expire, messages are too large, iterators
raise; and binary metadata. Expected behaviour is grpcio 1.85's, checked by
running this file against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv
holding grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import contextlib
import threading
import time

import grpc
import pytest

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen

SERVICE = "grpcgo.testing.Status"
MiB = 1 << 20
ALL_BYTES = bytes(range(256))


def method(name):
    return f"/{SERVICE}/{name}"


class Boom(Exception):
    pass


def _boom(*args):
    raise Boom("boom")


class _Service:
    def __init__(self):
        self.events = {}
        self.seen = {}

    def event(self, name):
        return self.events.setdefault(name, threading.Event())

    # -- handlers --
    def raise_unary(self, request, context):
        raise Boom("boom")

    def raise_stream_unary(self, request_iterator, context):
        for _ in request_iterator:
            pass
        raise Boom("boom")

    def raise_unary_stream_at_once(self, request, context):
        raise Boom("boom")  # not a generator: raises when called

    def set_code_then_raise(self, request, context):
        context.set_code(grpc.StatusCode.NOT_FOUND)
        raise Boom("boom")

    def set_code_details_then_raise(self, request, context):
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("custom details")
        raise Boom("boom")

    def wait_for_inactive(self, request, context):
        deadline = time.monotonic() + WAIT
        self.seen["active_at_start"] = context.is_active()
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.seen["active_at_end"] = context.is_active()
        self.event("inactive").set()
        return request

    def echo(self, request, context):
        return request

    def echo_stream(self, request_iterator, context):
        for request in request_iterator:
            yield request

    def join(self, request_iterator, context):
        return b"".join(request_iterator)

    def count_stream(self, request, context):
        for i in range(3):
            yield b"%d" % i

    def return_none(self, request, context):
        return None

    def return_none_stream_unary(self, request_iterator, context):
        for _ in request_iterator:
            pass
        return None

    def iterate_then_raise(self, request, context):
        yield b"one"
        yield b"two"
        raise Boom("boom")

    def sized(self, request, context):
        """Answers a response of the size the request names."""
        return b"r" * int(request or b"0")

    def sized_stream(self, request, context):
        yield b"small"
        yield b"r" * int(request)

    def length(self, request, context):
        return b"%d" % len(request)

    def metadata(self, request, context):
        self.seen["metadata"] = tuple(context.invocation_metadata())
        context.send_initial_metadata((("x-init-bin", ALL_BYTES), ("x-init", "text"),
                                       ("x-empty-bin", b"")))
        context.set_trailing_metadata((("x-trail-bin", ALL_BYTES[::-1]),
                                       ("x-trail-zero-bin", b"\x00")))
        if request == b"fail":
            context.abort(grpc.StatusCode.ABORTED, "with binary trailers")
        return request

    def handler(self):
        def uu(fn, **kw):
            return grpc.unary_unary_rpc_method_handler(fn, **kw)

        def us(fn, **kw):
            return grpc.unary_stream_rpc_method_handler(fn, **kw)

        def su(fn, **kw):
            return grpc.stream_unary_rpc_method_handler(fn, **kw)

        def ss(fn, **kw):
            return grpc.stream_stream_rpc_method_handler(fn, **kw)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "RaiseUnary": uu(self.raise_unary),
            "RaiseStreamUnary": su(self.raise_stream_unary),
            "RaiseUnaryStreamAtOnce": us(self.raise_unary_stream_at_once),
            "SetCodeThenRaise": uu(self.set_code_then_raise),
            "SetCodeDetailsThenRaise": uu(self.set_code_details_then_raise),
            "WaitForInactive": uu(self.wait_for_inactive),
            "Echo": uu(self.echo),
            "EchoStream": ss(self.echo_stream),
            "Join": su(self.join),
            "CountStream": us(self.count_stream),
            "BadRequestUnary": uu(self.echo, request_deserializer=_boom),
            "BadRequestStream": ss(self.echo_stream, request_deserializer=_boom),
            "BadRequestStreamUnary": su(self.join, request_deserializer=_boom),
            "BadResponseUnary": uu(self.echo, response_serializer=_boom),
            "BadResponseStream": us(self.count_stream, response_serializer=_boom),
            "BadResponseStreamUnary": su(self.join, response_serializer=_boom),
            "ReturnNone": uu(self.return_none),
            "ReturnNoneSerialized": uu(self.return_none, response_serializer=bytes),
            "ReturnNoneStreamUnary": su(self.return_none_stream_unary),
            "IterateThenRaise": us(self.iterate_then_raise),
            "Sized": uu(self.sized),
            "SizedStream": us(self.sized_stream),
            "Length": uu(self.length),
            "Metadata": uu(self.metadata),
        })


@contextlib.contextmanager
def serving(service, options=None):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(pool, handlers=[service.handler()], options=options)
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
    with serving(service) as port:
        yield service, port


@pytest.fixture
def ch(served):
    service, port = served
    service.events.clear()
    service.seen.clear()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel


@pytest.fixture
def service(served):
    return served[0]


def assert_status(error, code, details=None):
    assert isinstance(error, grpc.RpcError)
    assert isinstance(error, grpc.Call)
    assert error.code() is code, (error.code(), error.details())
    if details is not None:
        assert error.details() == details


# -- handler exceptions ---------------------------------------------------------------


def test_handler_exception_is_unknown_with_its_text(ch):
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("RaiseUnary"))(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.UNKNOWN, "Exception calling application: boom")

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("RaiseStreamUnary"))(iter([b"a", b"b"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.UNKNOWN, "Exception calling application: boom")

    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("RaiseUnaryStreamAtOnce"))(b"", timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.UNKNOWN, "Exception calling application: boom")


def test_set_code_before_raising_wins(ch):
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("SetCodeThenRaise"))(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.NOT_FOUND, "Exception calling application: boom")

    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("SetCodeDetailsThenRaise"))(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.NOT_FOUND, "custom details")


def test_response_iterator_raising_midway(ch):
    call = ch.unary_stream(method("IterateThenRaise"))(b"", timeout=RPC_TIMEOUT)
    got = []
    with pytest.raises(grpc.RpcError) as info:
        for response in call:
            got.append(response)
    assert got == [b"one", b"two"]
    assert_status(info.value, grpc.StatusCode.UNKNOWN, "Exception iterating responses: boom")
    assert call.code() is grpc.StatusCode.UNKNOWN


# -- unknown methods -------------------------------------------------------------------


def test_unknown_method_is_unimplemented(ch):
    for name in (method("NoSuchMethod"), "/no.such.Service/Method"):
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(name)(b"", timeout=RPC_TIMEOUT)
        assert_status(info.value, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")

        with pytest.raises(grpc.RpcError) as info:
            list(ch.unary_stream(name)(b"", timeout=RPC_TIMEOUT))
        assert_status(info.value, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")

        with pytest.raises(grpc.RpcError) as info:
            ch.stream_unary(name)(iter([b"a"]), timeout=RPC_TIMEOUT)
        assert_status(info.value, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")

        with pytest.raises(grpc.RpcError) as info:
            list(ch.stream_stream(name)(iter([b"a"]), timeout=RPC_TIMEOUT))
        assert_status(info.value, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


# -- deadlines -------------------------------------------------------------------------


def test_expired_deadline(ch, service):
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("WaitForInactive"))(b"", timeout=0.3)
    assert_status(info.value, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    # The handler saw its call end.
    assert service.event("inactive").wait(WAIT)
    assert service.seen["active_at_start"] is True
    assert service.seen["active_at_end"] is False


def test_expired_deadline_future(ch, service):
    future = ch.unary_unary(method("WaitForInactive")).future(b"", timeout=0.3)
    error = future.exception(timeout=WAIT)
    assert_status(error, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert service.event("inactive").wait(WAIT)


# -- client (de)serializers ------------------------------------------------------------


def test_request_serializer_raising_is_internal(ch):
    def ser(_):
        raise Boom("cannot serialize")

    details = "Exception serializing request!"
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), request_serializer=ser)(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), request_serializer=ser).with_call(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    # grpcio's .future() raises the error itself rather than returning it.
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), request_serializer=ser).future(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("CountStream"), request_serializer=ser)(
            b"", timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("Join"), request_serializer=ser)(iter([b"a"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        list(ch.stream_stream(method("EchoStream"), request_serializer=ser)(
            iter([b"a"]), timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)


def test_request_serializer_returning_none_is_internal(ch):
    # grpcio takes None from a serializer as a serialization failure.
    def ser(_):
        return None

    details = "Exception serializing request!"
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), request_serializer=ser)(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), request_serializer=ser).future(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)
    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("CountStream"), request_serializer=ser)(
            b"", timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)
    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("Join"), request_serializer=ser)(iter([b"a"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)


@pytest.mark.parametrize("bad", ["text", 5])
def test_request_serializer_returning_non_bytes(ch, bad):
    # grpcio 1.85 does not turn this into a status: the unary and
    # unary-stream calls raise TypeError ("Argument 'message' has incorrect
    # type (expected bytes, got str)") in the caller.
    def ser(_):
        return bad

    with pytest.raises(TypeError):
        ch.unary_unary(method("Echo"), request_serializer=ser)(b"", timeout=RPC_TIMEOUT)
    with pytest.raises(TypeError):
        ch.unary_unary(method("Echo"), request_serializer=ser).with_call(b"", timeout=RPC_TIMEOUT)
    with pytest.raises(TypeError):
        ch.unary_unary(method("Echo"), request_serializer=ser).future(b"", timeout=RPC_TIMEOUT)
    with pytest.raises(TypeError):
        ch.unary_stream(method("CountStream"), request_serializer=ser)(b"", timeout=RPC_TIMEOUT)


def test_response_deserializer_raising_is_internal(ch):
    details = "Exception deserializing response!"
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"), response_deserializer=_boom)(b"", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    future = ch.unary_unary(method("Echo"), response_deserializer=_boom).future(
        b"", timeout=RPC_TIMEOUT)
    assert_status(future.exception(timeout=WAIT), grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("CountStream"), response_deserializer=_boom)(
            b"", timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("Join"), response_deserializer=_boom)(
            iter([b"a"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        list(ch.stream_stream(method("EchoStream"), response_deserializer=_boom)(
            iter([b"a"]), timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)


def test_request_iterator_raising_is_unknown(ch):
    def requests():
        yield b"a"
        raise Boom("request iterator failed")

    details = "Exception iterating requests!"
    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("Join"))(requests(), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.UNKNOWN, details)

    call = ch.stream_stream(method("EchoStream"))(requests(), timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert_status(info.value, grpc.StatusCode.UNKNOWN, details)
    assert call.code() is grpc.StatusCode.UNKNOWN


# -- server (de)serializers and bad responses -----------------------------------------


def test_server_request_deserializer_raising_is_internal(ch):
    details = "Exception deserializing request!"
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("BadRequestUnary"))(b"x", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        list(ch.stream_stream(method("BadRequestStream"))(iter([b"x"]), timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("BadRequestStreamUnary"))(iter([b"x"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)


def test_server_response_serializer_raising_is_internal(ch):
    details = "Failed to serialize response!"
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("BadResponseUnary"))(b"x", timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("BadResponseStream"))(b"x", timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("BadResponseStreamUnary"))(iter([b"x"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)


def test_unary_handler_returning_none_is_internal(ch):
    # grpcio: the response None cannot be serialized.
    details = "Failed to serialize response!"
    for name in ("ReturnNone", "ReturnNoneSerialized"):
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method(name))(b"", timeout=RPC_TIMEOUT)
        assert_status(info.value, grpc.StatusCode.INTERNAL, details)

    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("ReturnNoneStreamUnary"))(iter([b"x"]), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.INTERNAL, details)


# -- message size limits ---------------------------------------------------------------


def test_default_receive_limit_on_the_server(ch):
    # 4 MiB is grpcio's default receive limit; just under it passes.
    under = b"q" * (4 * MiB - 64)
    assert ch.unary_unary(method("Length"))(under, timeout=RPC_TIMEOUT) == b"%d" % len(under)
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Length"))(b"q" * (4 * MiB + 1), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # grpcio: "SERVER: Received message larger than max (4194305 vs. 4194304)"
    assert "larger than max (4194305 vs. 4194304)" in info.value.details()

    with pytest.raises(grpc.RpcError) as info:
        list(ch.stream_stream(method("EchoStream"))(iter([b"q" * (5 * MiB)]), timeout=RPC_TIMEOUT))
    assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_default_receive_limit_on_the_client(ch):
    size = 4 * MiB - 64
    assert len(ch.unary_unary(method("Sized"))(b"%d" % size, timeout=RPC_TIMEOUT)) == size
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Sized"))(b"%d" % (4 * MiB + 1), timeout=RPC_TIMEOUT)
    assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # grpcio: "Stream removed (CLIENT: Received message larger than max (4194305 vs. 4194304))"
    assert "larger than max (4194305 vs. 4194304)" in info.value.details()

    call = ch.unary_stream(method("SizedStream"))(b"%d" % (5 * MiB), timeout=RPC_TIMEOUT)
    assert next(call) == b"small"
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_channel_max_receive_message_length(served):
    _, port = served
    options = [("grpc.max_receive_message_length", 1024)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Sized"))(b"1024", timeout=RPC_TIMEOUT) == b"r" * 1024
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Sized"))(b"1025", timeout=RPC_TIMEOUT)
        assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_channel_max_send_message_length(served):
    _, port = served
    options = [("grpc.max_send_message_length", 1024)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Length"))(b"s" * 1024, timeout=RPC_TIMEOUT) == b"1024"
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Length"))(b"s" * 1025, timeout=RPC_TIMEOUT)
        assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)
        # grpcio: "CLIENT: Sent message larger than max (1025 vs. 1024)"
        assert "larger than max (1025 vs. 1024)" in info.value.details()

        with pytest.raises(grpc.RpcError) as info:
            ch.stream_unary(method("Join"))(iter([b"s", b"s" * 2048]), timeout=RPC_TIMEOUT)
        assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_raised_and_unlimited_limits(served):
    _, port = served
    service = _Service()
    big = 6 * MiB
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with serving(service, options=[("grpc.max_receive_message_length", 8 * MiB)]) as big_port:
        with grpc.insecure_channel(f"127.0.0.1:{big_port}", options=options) as ch:
            assert ch.unary_unary(method("Length"))(b"b" * big, timeout=RPC_TIMEOUT) == b"%d" % big
            assert len(ch.unary_unary(method("Sized"))(b"%d" % big, timeout=RPC_TIMEOUT)) == big


def test_server_max_receive_message_length():
    service = _Service()
    with serving(service, options=[("grpc.max_receive_message_length", 1024)]) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert ch.unary_unary(method("Length"))(b"s" * 1024, timeout=RPC_TIMEOUT) == b"1024"
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method("Length"))(b"s" * 1025, timeout=RPC_TIMEOUT)
            assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_server_max_send_message_length():
    service = _Service()
    with serving(service, options=[("grpc.max_send_message_length", 1024)]) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert ch.unary_unary(method("Sized"))(b"1024", timeout=RPC_TIMEOUT) == b"r" * 1024
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method("Sized"))(b"1025", timeout=RPC_TIMEOUT)
            assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)

            call = ch.unary_stream(method("SizedStream"))(b"2048", timeout=RPC_TIMEOUT)
            assert next(call) == b"small"
            with pytest.raises(grpc.RpcError) as info:
                next(call)
            assert_status(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED)


# -- binary metadata ---------------------------------------------------------------------


def _x(metadata):
    out = {}
    for k, v in metadata or ():
        if k.startswith("x-"):
            out.setdefault(k, []).append(v)
    return out


def test_binary_metadata_both_ways(ch, service):
    sent = (("x-all-bin", ALL_BYTES), ("x-nul-bin", b"\x00" * 7), ("x-text", "plain"),
            ("x-multi-bin", b"\xff"), ("x-multi-bin", b"\x00"))
    response, call = ch.unary_unary(method("Metadata")).with_call(
        b"ok", timeout=RPC_TIMEOUT, metadata=sent)
    assert response == b"ok"
    assert _x(service.seen["metadata"]) == {
        "x-all-bin": [ALL_BYTES], "x-nul-bin": [b"\x00" * 7], "x-text": ["plain"],
        "x-multi-bin": [b"\xff", b"\x00"]}
    assert _x(call.initial_metadata()) == {
        "x-init-bin": [ALL_BYTES], "x-init": ["text"], "x-empty-bin": [b""]}
    assert _x(call.trailing_metadata()) == {
        "x-trail-bin": [ALL_BYTES[::-1]], "x-trail-zero-bin": [b"\x00"]}


def test_binary_metadata_on_an_error(ch):
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Metadata"))(
            b"fail", timeout=RPC_TIMEOUT, metadata=(("x-all-bin", ALL_BYTES),))
    assert_status(info.value, grpc.StatusCode.ABORTED, "with binary trailers")
    assert _x(info.value.initial_metadata())["x-init-bin"] == [ALL_BYTES]
    assert _x(info.value.trailing_metadata()) == {
        "x-trail-bin": [ALL_BYTES[::-1]], "x-trail-zero-bin": [b"\x00"]}
