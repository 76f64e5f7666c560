"""End-to-end tests against real grpc-go peers (tests/gopeer).

* grpcgo's client (grpcio's API) against the grpc-go Echo server;
* the grpc-go client cases against grpcgo's server running the same service
  in Python (tests/echo_service.py), one test per case.

The service and its "status:"/"sleep:"/metadata-echo conventions are
described in tests/echo_service.py. Everything is bounded in time.
"""

import concurrent.futures
import queue
import subprocess

import grpc
import pytest

import echo_service
from echo_service import msg

RPC_TIMEOUT = 20  # seconds, for every RPC that should succeed
GO_CLIENT_TIMEOUT = 120  # seconds, for one run of the Go client

BIN = bytes(range(256)) + b"\x00\x00\xff\xfe\r\n"
REQUEST_METADATA = (
    ("x-echo-text", "hello world"),
    ("x-echo-multi", "first"),
    ("x-echo-multi", "second"),
    ("x-echo-data-bin", BIN),
    ("x-echo-one-bin", b"\x00"),
    ("x-other", "not echoed"),
)


def x_keys(metadata):
    """Metadata keys starting with x-, each with its values in order.

    The order of different keys is not kept (grpc-go holds metadata in a
    map); the order of one key's values is.
    """
    out = {}
    for k, v in metadata or ():
        if k.startswith("x-"):
            out.setdefault(k, []).append(v)
    return out


def expected_echo(sent):
    initial, trailing = echo_service.echo_metadata(sent)
    return x_keys(initial), x_keys(trailing)


@pytest.fixture
def channel(go_echo_port):
    with grpc.insecure_channel(f"127.0.0.1:{go_echo_port}") as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return echo_service.EchoStub(channel)


# ---- Python client, grpc-go server ----------------------------------------


@pytest.mark.parametrize("text", ["hello", "", "héllo ✓ 世界", "x" * (1 << 20)],
                         ids=["ascii", "empty", "unicode", "1MiB"])
def test_unary(stub, text):
    assert stub.UnaryEcho(msg(text), timeout=RPC_TIMEOUT).value == text


def test_unary_with_call(stub):
    response, call = stub.UnaryEcho.with_call(msg("hi"), timeout=RPC_TIMEOUT)
    assert response.value == "hi"
    assert call.code() is grpc.StatusCode.OK
    assert x_keys(call.initial_metadata()) == {}
    assert x_keys(call.trailing_metadata()) == {}


def test_unary_future(stub):
    future = stub.UnaryEcho.future(msg("later"), timeout=RPC_TIMEOUT)
    assert future.result(timeout=RPC_TIMEOUT).value == "later"
    assert future.code() is grpc.StatusCode.OK


def test_unary_concurrent(stub):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        texts = [f"c-{i}" for i in range(32)]
        results = list(pool.map(
            lambda t: stub.UnaryEcho(msg(t), timeout=RPC_TIMEOUT).value, texts))
    assert results == texts


@pytest.mark.parametrize("count", [0, 3, 200])
def test_server_stream(stub, count):
    call = stub.ServerStream(msg(f"{count}:abc"), timeout=RPC_TIMEOUT)
    assert [r.value for r in call] == [f"abc-{i}" for i in range(count)]
    assert call.code() is grpc.StatusCode.OK


@pytest.mark.parametrize("count", [0, 3, 200])
def test_client_stream(stub, count):
    texts = [f"m{i}" for i in range(count)]
    response = stub.ClientStream(iter([msg(t) for t in texts]), timeout=RPC_TIMEOUT)
    assert response.value == ",".join(texts)


def test_client_stream_with_call(stub):
    response, call = stub.ClientStream.with_call(
        iter([msg("a"), msg("b")]), timeout=RPC_TIMEOUT)
    assert response.value == "a,b"
    assert call.code() is grpc.StatusCode.OK


class Feeder:
    """A request iterator fed one message at a time from the test thread."""

    _END = object()

    def __init__(self):
        self._q = queue.Queue()

    def send(self, text):
        self._q.put(msg(text))

    def close(self):
        self._q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = self._q.get(timeout=RPC_TIMEOUT)
        except queue.Empty:
            raise StopIteration from None  # never hang: give up sending
        if item is self._END:
            raise StopIteration
        return item


def test_bidi_ping_pong(stub):
    # Each answer must arrive before the next request exists, so neither side
    # may wait for the end of the other's stream.
    feeder = Feeder()
    call = stub.BidiStream(feeder, timeout=RPC_TIMEOUT)
    try:
        for i in range(20):
            feeder.send(f"ping-{i}")
            assert next(call).value == f"ping-{i}"
    finally:
        feeder.close()
    with pytest.raises(StopIteration):
        next(call)
    assert call.code() is grpc.StatusCode.OK


def test_bidi_no_requests(stub):
    call = stub.BidiStream(iter(()), timeout=RPC_TIMEOUT)
    assert list(call) == []
    assert call.code() is grpc.StatusCode.OK


def test_metadata_unary(stub):
    response, call = stub.UnaryEcho.with_call(
        msg("md"), metadata=REQUEST_METADATA, timeout=RPC_TIMEOUT)
    assert response.value == "md"
    initial, trailing = expected_echo(REQUEST_METADATA)
    assert x_keys(call.initial_metadata()) == initial
    assert x_keys(call.trailing_metadata()) == trailing
    # -bin values come back as bytes, others as str.
    assert dict(call.initial_metadata())["x-echo-data-bin"] == BIN
    assert isinstance(dict(call.initial_metadata())["x-echo-text"], str)


def test_metadata_server_stream(stub):
    call = stub.ServerStream(msg("2:md"), metadata=REQUEST_METADATA,
                             timeout=RPC_TIMEOUT)
    initial, trailing = expected_echo(REQUEST_METADATA)
    # Initial metadata is available before any message is read.
    assert x_keys(call.initial_metadata()) == initial
    assert [r.value for r in call] == ["md-0", "md-1"]
    assert x_keys(call.trailing_metadata()) == trailing


def test_metadata_client_stream(stub):
    response, call = stub.ClientStream.with_call(
        iter([msg("m"), msg("d")]), metadata=REQUEST_METADATA, timeout=RPC_TIMEOUT)
    assert response.value == "m,d"
    initial, trailing = expected_echo(REQUEST_METADATA)
    assert x_keys(call.initial_metadata()) == initial
    assert x_keys(call.trailing_metadata()) == trailing


def test_metadata_bidi(stub):
    feeder = Feeder()
    call = stub.BidiStream(feeder, metadata=REQUEST_METADATA, timeout=RPC_TIMEOUT)
    initial, trailing = expected_echo(REQUEST_METADATA)
    try:
        # The server sends initial metadata before any response is asked for.
        assert x_keys(call.initial_metadata()) == initial
        feeder.send("x")
        assert next(call).value == "x"
    finally:
        feeder.close()
    assert list(call) == []
    assert x_keys(call.trailing_metadata()) == trailing


def test_metadata_not_echoed_without_echo_keys(stub):
    _, call = stub.UnaryEcho.with_call(
        msg("plain"), metadata=(("x-other", "v"),), timeout=RPC_TIMEOUT)
    assert x_keys(call.initial_metadata()) == {}
    assert x_keys(call.trailing_metadata()) == {}


STATUS_CASES = [
    ("status:5:not here", grpc.StatusCode.NOT_FOUND, "not here"),
    ("status:INVALID_ARGUMENT:bad: value", grpc.StatusCode.INVALID_ARGUMENT, "bad: value"),
    ("status:9:héllo ✓ 100% done\nnext line", grpc.StatusCode.FAILED_PRECONDITION,
     "héllo ✓ 100% done\nnext line"),
    ("status:16:who are you", grpc.StatusCode.UNAUTHENTICATED, "who are you"),
    ("status:resource_exhausted:lower-case name", grpc.StatusCode.RESOURCE_EXHAUSTED,
     "lower-case name"),
]


@pytest.mark.parametrize("text,code,details", STATUS_CASES,
                         ids=[c[1].name for c in STATUS_CASES])
def test_status_unary(stub, text, code, details):
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho(msg(text), timeout=RPC_TIMEOUT)
    assert info.value.code() is code
    assert info.value.details() == details


def test_status_empty_details(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho(msg("status:INTERNAL:"), timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert not info.value.details()


def test_status_with_metadata(stub):
    sent = (("x-echo-k", "v"), ("x-echo-k-bin", b"\x00\x01\xff"))
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho.with_call(msg("status:NOT_FOUND:with metadata"),
                                 metadata=sent, timeout=RPC_TIMEOUT)
    err = info.value
    assert err.code() is grpc.StatusCode.NOT_FOUND
    assert err.details() == "with metadata"
    initial, trailing = expected_echo(sent)
    assert x_keys(err.initial_metadata()) == initial
    assert x_keys(err.trailing_metadata()) == trailing


def test_status_is_also_a_call(stub):
    # The RpcError raised by a unary call is also a grpc.Call.
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho(msg("status:ABORTED:x"), timeout=RPC_TIMEOUT)
    assert isinstance(info.value, grpc.Call)


def test_status_future(stub):
    future = stub.UnaryEcho.future(msg("status:ABORTED:in a future"),
                                   timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.RpcError) as info:
        future.result(timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.ABORTED
    assert future.code() is grpc.StatusCode.ABORTED
    assert future.details() == "in a future"
    exc = future.exception(timeout=RPC_TIMEOUT)
    assert isinstance(exc, grpc.RpcError)


def test_status_server_stream_after_messages(stub):
    call = stub.ServerStream(msg("2:s|status:ABORTED:after two"), timeout=RPC_TIMEOUT)
    got = []
    with pytest.raises(grpc.RpcError) as info:
        for r in call:
            got.append(r.value)
    assert got == ["s-0", "s-1"]
    assert info.value.code() is grpc.StatusCode.ABORTED
    assert info.value.details() == "after two"
    assert call.code() is grpc.StatusCode.ABORTED
    assert call.details() == "after two"


def test_status_client_stream(stub):
    requests = iter([msg("a"), msg("status:PERMISSION_DENIED:stop here"), msg("more")])
    with pytest.raises(grpc.RpcError) as info:
        stub.ClientStream(requests, timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == "stop here"


def test_status_bidi(stub):
    feeder = Feeder()
    call = stub.BidiStream(feeder, timeout=RPC_TIMEOUT)
    try:
        feeder.send("fine")
        assert next(call).value == "fine"
        feeder.send("status:DATA_LOSS:gone")
        with pytest.raises(grpc.RpcError) as info:
            next(call)
    finally:
        feeder.close()
    assert info.value.code() is grpc.StatusCode.DATA_LOSS
    assert info.value.details() == "gone"


# The server sleeps far longer than the deadline: DEADLINE_EXCEEDED (not OK
# after the sleep) shows the deadline ended the call; how promptly is
# measured by `make bench` (deadline_over_ms).
DEADLINE = 0.3


def test_deadline_unary(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryEcho(msg("sleep:5000"), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The server and channel are still fine afterwards.
    assert stub.UnaryEcho(msg("after"), timeout=RPC_TIMEOUT).value == "after"


def test_deadline_server_stream(stub):
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ServerStream(msg("sleep:5000"), timeout=DEADLINE))
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_deadline_client_stream(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.ClientStream(iter([msg("a"), msg("sleep:5000")]), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_deadline_bidi(stub):
    feeder = Feeder()
    call = stub.BidiStream(feeder, timeout=DEADLINE)
    try:
        feeder.send("sleep:5000")
        with pytest.raises(grpc.RpcError) as info:
            next(call)
    finally:
        feeder.close()
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_sleep_within_deadline(stub):
    assert stub.UnaryEcho(msg("sleep:50"), timeout=RPC_TIMEOUT).value == "sleep:50"


@pytest.mark.parametrize("method", [
    "/grpcgo.testing.Echo/NoSuchMethod",
    "/grpcgo.testing.NoSuchService/UnaryEcho",
])
def test_unimplemented_unary(channel, method):
    call = channel.unary_unary(method,
                               request_serializer=echo_service.SERIALIZE,
                               response_deserializer=echo_service.DESERIALIZE)
    with pytest.raises(grpc.RpcError) as info:
        call(msg("x"), timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_unimplemented_stream(channel):
    call = channel.stream_stream("/grpcgo.testing.Echo/NoSuchStream",
                                 request_serializer=echo_service.SERIALIZE,
                                 response_deserializer=echo_service.DESERIALIZE)
    with pytest.raises(grpc.RpcError) as info:
        list(call(iter([msg("x")]), timeout=RPC_TIMEOUT))
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_channel_ready(go_echo_port):
    with grpc.insecure_channel(f"127.0.0.1:{go_echo_port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=RPC_TIMEOUT)


# ---- grpc-go client, Python server ----------------------------------------

GO_CASES = ["unary", "server_stream", "client_stream", "bidi", "metadata",
            "status", "deadline", "unimplemented", "compression"]


def run_go_client(gopeer_bin, port, case):
    cmd = [gopeer_bin.client, "--target", f"127.0.0.1:{port}", "--case", case,
           "--timeout", "60s"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=GO_CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"Go client case {case!r} ran over {GO_CLIENT_TIMEOUT}s; "
                    f"output so far:\n{e.stdout or ''}{e.stderr or ''}")
    assert proc.returncode == 0, (
        f"Go client case {case!r} failed (exit {proc.returncode}):\n"
        f"{proc.stdout}{proc.stderr}")
    return proc.stdout


@pytest.mark.parametrize("case", GO_CASES)
def test_go_client(gopeer_bin, py_echo_port, case):
    out = run_go_client(gopeer_bin, py_echo_port, case)
    assert f"PASS {case}" in out


def test_go_client_sees_grpc_accept_encoding_in_response_headers(gopeer_bin, py_echo_port):
    # As from grpcio's server: "identity, deflate, gzip" in the headers.
    out = run_go_client(gopeer_bin, py_echo_port, "accept_encoding")
    assert "PASS accept_encoding" in out


def test_go_client_all_against_go_server(gopeer_bin, go_echo_port):
    # The Go client and server agree with each other: the peers themselves
    # are right, so a failure above is grpcgo's.
    out = run_go_client(gopeer_bin, go_echo_port, "all")
    for case in GO_CASES:
        assert f"PASS {case}" in out


def test_python_service_with_python_client(py_echo_port):
    # grpcgo at both ends, a quick check of the Python service itself.
    with grpc.insecure_channel(f"127.0.0.1:{py_echo_port}") as ch:
        stub = echo_service.EchoStub(ch)
        response, call = stub.UnaryEcho.with_call(
            msg("py"), metadata=REQUEST_METADATA, timeout=RPC_TIMEOUT)
        assert response.value == "py"
        initial, trailing = expected_echo(REQUEST_METADATA)
        assert x_keys(call.initial_metadata()) == initial
        assert x_keys(call.trailing_metadata()) == trailing
        assert [r.value for r in stub.ServerStream(msg("2:p"), timeout=RPC_TIMEOUT)] \
            == ["p-0", "p-1"]
