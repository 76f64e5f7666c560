"""The client side of grpcio's API, end to end over loopback sockets.

One grpc.server (tests/echo_service.py plus a few raw-bytes methods) listens
on 127.0.0.1, on [::1] (when the machine has an IPv6 loopback) and on a unix
socket; grpc.insecure_channel reaches it through every target syntax grpcio
accepts. Expected behaviour is grpcio 1.85's, checked by running this file
against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import os
import queue
import shutil
import socket
import tempfile
import threading
import time

import grpc
import pytest

import echo_service
from echo_service import msg

RPC_TIMEOUT = 10  # seconds, for every RPC that should succeed
WAIT = 10  # seconds, for every event that should happen

RAW_SERVICE = "grpcgo.testing.Raw"
RAW_UNARY = f"/{RAW_SERVICE}/Unary"
RAW_TICKS = f"/{RAW_SERVICE}/Ticks"

REQUEST_METADATA = (
    ("x-echo-text", "hello"),
    ("x-echo-data-bin", b"\x00\x01\xfe\xff"),
    ("x-other", "not echoed"),
)


def x_keys(metadata):
    """Metadata keys starting with x-, each with its values in order."""
    out = {}
    for k, v in metadata or ():
        if k.startswith("x-"):
            out.setdefault(k, []).append(v)
    return out


EXPECTED_INITIAL = {"x-echo-text": ["hello"], "x-echo-data-bin": [b"\x00\x01\xfe\xff"]}
EXPECTED_TRAILING = {
    "x-trailer-text": ["hello"],
    "x-trailer-data-bin": [b"\x00\x01\xfe\xff"],
}


def _ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _ipv6_loopback()


def _raw_unary(request, context):
    return request


def _raw_ticks(request, context):
    """Sends "tick-<i>" every 20 ms while the call is on (bounded: 30 s)."""
    deadline = time.monotonic() + 30
    i = 0
    while context.is_active() and time.monotonic() < deadline:
        yield b"tick-%d" % i
        i += 1
        time.sleep(0.02)


def _raw_handler():
    return grpc.method_handlers_generic_handler(
        RAW_SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_raw_unary),
            "Ticks": grpc.unary_stream_rpc_method_handler(_raw_ticks),
        },
    )


class _Server:
    def __init__(self, port, unix_path, ipv6):
        self.port = port
        self.unix_path = unix_path
        self.ipv6 = ipv6


@pytest.fixture(scope="module")
def server():
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=16)
    srv = grpc.server(executor, handlers=(echo_service.generic_handler(), _raw_handler()))
    port = srv.add_insecure_port("127.0.0.1:0")
    assert port > 0
    ipv6 = False
    if HAS_IPV6:
        assert srv.add_insecure_port(f"[::1]:{port}") == port
        ipv6 = True
    tmpdir = tempfile.mkdtemp(prefix="grpcgo-", dir="/tmp")
    unix_path = os.path.join(tmpdir, "echo.sock")
    unix_port = srv.add_insecure_port(f"unix:{unix_path}")
    srv.start()
    try:
        server = _Server(port, unix_path, ipv6)
        server.unix_port = unix_port
        yield server
    finally:
        srv.stop(None).wait(WAIT)
        executor.shutdown(wait=False)
        shutil.rmtree(tmpdir, ignore_errors=True)


TARGETS = ["ip", "localhost", "dns", "ipv4", "ipv6", "unix"]


def _target(server, kind):
    if kind == "ip":
        return f"127.0.0.1:{server.port}"
    if kind == "localhost":
        return f"localhost:{server.port}"
    if kind == "dns":
        return f"dns:///localhost:{server.port}"
    if kind == "ipv4":
        return f"ipv4:127.0.0.1:{server.port}"
    if kind == "ipv6":
        if not server.ipv6:
            pytest.skip("no IPv6 loopback on this machine")
        return f"ipv6:[::1]:{server.port}"
    if kind == "unix":
        return f"unix:{server.unix_path}"
    raise AssertionError(kind)


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return echo_service.EchoStub(channel)


# -- targets x shapes -----------------------------------------------------------


@pytest.mark.parametrize("kind", TARGETS)
def test_all_shapes_on_every_target(server, kind):
    with grpc.insecure_channel(_target(server, kind)) as ch:
        stub = echo_service.EchoStub(ch)

        assert stub.UnaryEcho(msg(kind), timeout=RPC_TIMEOUT) == msg(kind)

        response, call = stub.UnaryEcho.with_call(
            msg("w"), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA
        )
        assert response == msg("w")
        assert call.code() is grpc.StatusCode.OK
        assert x_keys(call.initial_metadata()) == EXPECTED_INITIAL
        assert x_keys(call.trailing_metadata()) == EXPECTED_TRAILING

        got = list(stub.ServerStream(msg("3:t"), timeout=RPC_TIMEOUT))
        assert got == [msg("t-0"), msg("t-1"), msg("t-2")]

        requests = [msg("a"), msg("b"), msg("c")]
        assert stub.ClientStream(iter(requests), timeout=RPC_TIMEOUT) == msg("a,b,c")

        response, call = stub.ClientStream.with_call(
            iter(requests), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA
        )
        assert response == msg("a,b,c")
        assert call.code() is grpc.StatusCode.OK
        assert x_keys(call.initial_metadata()) == EXPECTED_INITIAL
        assert x_keys(call.trailing_metadata()) == EXPECTED_TRAILING

        got = list(stub.BidiStream(iter(requests), timeout=RPC_TIMEOUT))
        assert got == requests


def test_unix_address_port_is_one(server):
    # grpcio returns 1 for a unix: address (there is no port to choose).
    assert server.unix_port == 1


def test_raw_bytes_without_serializers(channel):
    call = channel.unary_unary(RAW_UNARY)
    payload = bytes(range(256)) * 3
    assert call(payload, timeout=RPC_TIMEOUT) == payload
    assert call(b"", timeout=RPC_TIMEOUT) == b""


def test_method_names_as_bytes(channel):
    call = channel.unary_unary(RAW_UNARY.encode())
    assert call(b"abc", timeout=RPC_TIMEOUT) == b"abc"


# -- timeout and metadata -------------------------------------------------------


def test_timeout_expires_unary(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho(msg("sleep:5000"), timeout=0.2)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_timeout_expires_streams(stub):
    call = stub.ServerStream(msg("sleep:5000"), timeout=0.2)
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert call.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    with pytest.raises(grpc.RpcError) as info:
        stub.ClientStream(iter([msg("sleep:5000")]), timeout=0.2)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    with pytest.raises(grpc.RpcError) as info:
        list(stub.BidiStream(iter([msg("sleep:5000")]), timeout=0.2))
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_generous_timeout_is_not_hit(stub):
    assert stub.UnaryEcho(msg("sleep:50"), timeout=RPC_TIMEOUT) == msg("sleep:50")


def test_metadata_on_every_shape(stub):
    response, call = stub.UnaryEcho.with_call(
        msg("m"), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA
    )
    assert x_keys(call.initial_metadata()) == EXPECTED_INITIAL
    assert x_keys(call.trailing_metadata()) == EXPECTED_TRAILING

    call = stub.ServerStream(msg("2:m"), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA)
    assert x_keys(call.initial_metadata()) == EXPECTED_INITIAL
    assert list(call) == [msg("m-0"), msg("m-1")]
    assert x_keys(call.trailing_metadata()) == EXPECTED_TRAILING
    assert call.code() is grpc.StatusCode.OK

    call = stub.BidiStream(iter([msg("x")]), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA)
    assert list(call) == [msg("x")]
    assert x_keys(call.initial_metadata()) == EXPECTED_INITIAL
    assert x_keys(call.trailing_metadata()) == EXPECTED_TRAILING

    future = stub.ClientStream.future(
        iter([msg("x")]), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA
    )
    assert future.result(timeout=WAIT) == msg("x")
    assert x_keys(future.initial_metadata()) == EXPECTED_INITIAL
    assert x_keys(future.trailing_metadata()) == EXPECTED_TRAILING


def test_metadata_values_of_one_key_keep_their_order(stub):
    md = (("x-echo-multi", "1"), ("x-echo-multi", "2"), ("x-echo-multi", "3"))
    _, call = stub.UnaryEcho.with_call(msg("o"), timeout=RPC_TIMEOUT, metadata=md)
    assert x_keys(call.initial_metadata()) == {"x-echo-multi": ["1", "2", "3"]}
    assert x_keys(call.trailing_metadata()) == {"x-trailer-multi": ["1", "2", "3"]}


# -- response and request iterators -----------------------------------------------


def test_response_iterator_is_a_call(stub):
    call = stub.ServerStream(msg("4:r"), timeout=RPC_TIMEOUT)
    assert isinstance(call, grpc.Call)
    assert isinstance(call, grpc.Future)
    assert iter(call) is call
    assert next(call) == msg("r-0")
    assert call.next() == msg("r-1")
    assert [m.value for m in call] == ["r-2", "r-3"]
    with pytest.raises(StopIteration):
        next(call)
    assert call.code() is grpc.StatusCode.OK
    assert call.is_active() is False
    assert call.done() is True


def test_long_response_stream(stub):
    n = 2000
    got = [m.value for m in stub.ServerStream(msg(f"{n}:z"), timeout=RPC_TIMEOUT)]
    assert got == [f"z-{i}" for i in range(n)]


def test_request_iterator_is_a_generator(stub):
    def gen():
        for i in range(100):
            yield msg(str(i))

    expected = ",".join(str(i) for i in range(100))
    assert stub.ClientStream(gen(), timeout=RPC_TIMEOUT) == msg(expected)
    assert [m.value for m in stub.BidiStream(gen(), timeout=RPC_TIMEOUT)] == [
        str(i) for i in range(100)
    ]


def test_request_iterator_consumed_concurrently_with_responses(stub):
    """Ping-pong: the request generator waits for each response before it
    yields the next request. This deadlocks unless requests are consumed on
    their own while the application receives responses."""
    answers = queue.Queue()
    rounds = 20

    def requests():
        yield msg("ping-0")
        for i in range(1, rounds):
            previous = answers.get(timeout=WAIT)  # raises queue.Empty, never hangs
            assert previous == f"ping-{i - 1}"
            yield msg(f"ping-{i}")

    call = stub.BidiStream(requests(), timeout=RPC_TIMEOUT)
    got = []
    for response in call:
        got.append(response.value)
        answers.put(response.value)
        if len(got) == rounds:
            break
    assert got == [f"ping-{i}" for i in range(rounds)]
    # The generator ends after the last ping; the stream then finishes.
    assert list(call) == []
    assert call.code() is grpc.StatusCode.OK


def test_request_iterator_that_blocks_does_not_block_the_caller(stub):
    release = threading.Event()

    def requests():
        yield msg("first")
        release.wait(WAIT)

    call = stub.BidiStream(requests(), timeout=RPC_TIMEOUT)
    assert next(call) == msg("first")  # returned while the generator is blocked
    release.set()
    assert list(call) == []
    assert call.code() is grpc.StatusCode.OK


# -- errors are Calls -----------------------------------------------------------


def _assert_error_call(error, code, details):
    assert isinstance(error, grpc.RpcError)
    assert isinstance(error, grpc.Call)
    assert error.code() is code
    assert error.details() == details
    assert x_keys(error.initial_metadata()) == EXPECTED_INITIAL
    assert x_keys(error.trailing_metadata()) == EXPECTED_TRAILING
    assert isinstance(error.debug_error_string(), str)


def test_unary_error_is_a_call(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho(
            msg("status:NOT_FOUND:no such thing: really"),
            timeout=RPC_TIMEOUT,
            metadata=REQUEST_METADATA,
        )
    _assert_error_call(info.value, grpc.StatusCode.NOT_FOUND, "no such thing: really")

    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho.with_call(
            msg("status:PERMISSION_DENIED:nope"), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA
        )
    _assert_error_call(info.value, grpc.StatusCode.PERMISSION_DENIED, "nope")


def test_stream_errors_are_calls(stub):
    call = stub.ServerStream(
        msg("2:e|status:ABORTED:after two"), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA
    )
    assert next(call) == msg("e-0")
    assert next(call) == msg("e-1")
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    _assert_error_call(info.value, grpc.StatusCode.ABORTED, "after two")
    assert call.code() is grpc.StatusCode.ABORTED
    assert call.details() == "after two"

    with pytest.raises(grpc.RpcError) as info:
        stub.ClientStream(
            iter([msg("ok"), msg("status:OUT_OF_RANGE:too far")]),
            timeout=RPC_TIMEOUT,
            metadata=REQUEST_METADATA,
        )
    _assert_error_call(info.value, grpc.StatusCode.OUT_OF_RANGE, "too far")

    with pytest.raises(grpc.RpcError) as info:
        list(
            stub.BidiStream(
                iter([msg("status:FAILED_PRECONDITION:bidi")]),
                timeout=RPC_TIMEOUT,
                metadata=REQUEST_METADATA,
            )
        )
    _assert_error_call(info.value, grpc.StatusCode.FAILED_PRECONDITION, "bidi")


def test_unavailable_server(server):
    # A port nobody listens on: bind a socket, close it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with grpc.insecure_channel(f"127.0.0.1:{free}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(RAW_UNARY)(b"x", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert isinstance(info.value, grpc.Call)


# -- Channel.close() and the context manager --------------------------------------


def test_close_rejects_later_calls_of_every_shape(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = echo_service.EchoStub(ch)
    assert stub.UnaryEcho(msg("before"), timeout=RPC_TIMEOUT) == msg("before")
    ch.close()
    with pytest.raises(ValueError):
        stub.UnaryEcho(msg("x"), timeout=RPC_TIMEOUT)
    with pytest.raises(ValueError):
        stub.UnaryEcho.with_call(msg("x"), timeout=RPC_TIMEOUT)
    with pytest.raises(ValueError):
        stub.UnaryEcho.future(msg("x"), timeout=RPC_TIMEOUT)
    with pytest.raises(ValueError):
        stub.ServerStream(msg("1:x"), timeout=RPC_TIMEOUT)
    with pytest.raises(ValueError):
        stub.ClientStream(iter([msg("x")]), timeout=RPC_TIMEOUT)
    with pytest.raises(ValueError):
        stub.ClientStream.future(iter([msg("x")]), timeout=RPC_TIMEOUT)
    with pytest.raises(ValueError):
        stub.BidiStream(iter([msg("x")]), timeout=RPC_TIMEOUT)
    # Multi-callables can still be made; closing again is a no-op.
    echo_service.EchoStub(ch)
    ch.close()


def test_close_cancels_in_flight_streams(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    ticks = ch.unary_stream(RAW_TICKS)(b"", timeout=RPC_TIMEOUT)
    stub = echo_service.EchoStub(ch)
    release = threading.Event()

    def requests():
        yield msg("one")
        release.wait(WAIT)

    bidi = stub.BidiStream(requests(), timeout=RPC_TIMEOUT)
    assert next(ticks) == b"tick-0"
    assert next(bidi) == msg("one")

    ch.close()

    with pytest.raises(grpc.RpcError) as info:
        for _ in ticks:
            pass
    assert info.value.code() is grpc.StatusCode.CANCELLED
    assert ticks.code() is grpc.StatusCode.CANCELLED
    with pytest.raises(grpc.RpcError) as info:
        next(bidi)
    assert info.value.code() is grpc.StatusCode.CANCELLED
    release.set()


def test_close_from_another_thread_ends_a_blocked_iteration(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = echo_service.EchoStub(ch)
    call = stub.ServerStream(msg("sleep:8000"), timeout=RPC_TIMEOUT)
    timer = threading.Timer(0.3, ch.close)
    timer.start()
    try:
        with pytest.raises(grpc.RpcError) as info:
            next(call)  # blocks until close()
        assert info.value.code() is grpc.StatusCode.CANCELLED
    finally:
        timer.cancel()
        ch.close()


def test_with_statement(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        assert isinstance(ch, grpc.Channel)
        call = ch.unary_unary(RAW_UNARY)
        assert call(b"in", timeout=RPC_TIMEOUT) == b"in"
    with pytest.raises(ValueError):
        call(b"out", timeout=RPC_TIMEOUT)


# -- unary futures ----------------------------------------------------------------


def test_future_result(stub):
    future = stub.UnaryEcho.future(msg("f"), timeout=RPC_TIMEOUT, metadata=REQUEST_METADATA)
    assert isinstance(future, grpc.Future)
    assert isinstance(future, grpc.Call)
    assert future.result(timeout=WAIT) == msg("f")
    assert future.done() is True
    assert future.running() is False
    assert future.cancelled() is False
    assert future.exception(timeout=WAIT) is None
    assert future.traceback(timeout=WAIT) is None
    assert future.code() is grpc.StatusCode.OK
    assert x_keys(future.initial_metadata()) == EXPECTED_INITIAL
    assert x_keys(future.trailing_metadata()) == EXPECTED_TRAILING


def test_future_error(stub):
    future = stub.UnaryEcho.future(msg("status:NOT_FOUND:gone"), timeout=RPC_TIMEOUT)
    error = future.exception(timeout=WAIT)
    assert isinstance(error, grpc.RpcError)
    assert isinstance(error, grpc.Call)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "gone"
    with pytest.raises(grpc.RpcError) as info:
        future.result(timeout=WAIT)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert future.done() is True
    assert future.code() is grpc.StatusCode.NOT_FOUND
    assert future.details() == "gone"
    assert future.traceback(timeout=WAIT) is not None


def test_future_result_timeout_then_result(stub):
    future = stub.UnaryEcho.future(msg("sleep:500"), timeout=RPC_TIMEOUT)
    assert future.done() is False
    assert future.running() is True
    with pytest.raises(grpc.FutureTimeoutError):
        future.result(timeout=0.01)
    assert future.result(timeout=WAIT) == msg("sleep:500")


def test_future_done_callbacks(stub):
    fired = queue.Queue()
    future = stub.UnaryEcho.future(msg("sleep:200"), timeout=RPC_TIMEOUT)
    future.add_done_callback(lambda f: fired.put(("before", f)))
    assert fired.get(timeout=WAIT) == ("before", future)
    assert future.done() is True
    assert future.result(timeout=WAIT) == msg("sleep:200")
    # A callback added after the end runs at once, in this thread.
    seen = []
    future.add_done_callback(lambda f: seen.append((threading.current_thread(), f)))
    assert seen == [(threading.current_thread(), future)]


def test_future_cancel(stub):
    future = stub.UnaryEcho.future(msg("sleep:5000"), timeout=RPC_TIMEOUT)
    assert future.cancel() is True
    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=WAIT)
    assert future.cancelled() is True
    assert future.done() is True
    assert future.code() is grpc.StatusCode.CANCELLED
    assert future.cancel() is False


def test_cancel_a_response_stream(channel):
    call = channel.unary_stream(RAW_TICKS)(b"", timeout=RPC_TIMEOUT)
    assert next(call) == b"tick-0"
    assert call.cancel() is True
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert info.value.code() is grpc.StatusCode.CANCELLED
    assert info.value.details() == "Locally cancelled by application!"
    assert call.code() is grpc.StatusCode.CANCELLED
    assert call.details() == "Locally cancelled by application!"
    assert call.cancelled() is True
    assert call.done() is True
    assert call.is_active() is False
    assert call.cancel() is False


def test_call_callbacks_run_when_a_stream_ends(channel):
    fired = queue.Queue()
    call = channel.unary_stream(RAW_TICKS)(b"", timeout=RPC_TIMEOUT)
    assert call.add_callback(lambda: fired.put("rpc")) is True
    call.add_done_callback(lambda c: fired.put(("done", c)))
    assert next(call) == b"tick-0"
    call.cancel()
    got = [fired.get(timeout=WAIT), fired.get(timeout=WAIT)]
    assert "rpc" in got and ("done", call) in got


# -- channel_ready_future ---------------------------------------------------------


def test_channel_ready_future(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        ready = grpc.channel_ready_future(ch)
        assert ready.result(timeout=WAIT) is None
        assert ready.done() is True


def test_channel_ready_future_times_out_without_a_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with grpc.insecure_channel(f"127.0.0.1:{free}") as ch:
        ready = grpc.channel_ready_future(ch)
        with pytest.raises(grpc.FutureTimeoutError):
            ready.result(timeout=0.3)
        assert ready.done() is False
        assert ready.cancel() is True
        assert ready.cancelled() is True
