"""Bad input and a fuzz run, end to end over loopback sockets.

A seeded fuzz run throws random metadata (valid and invalid keys and
values, -bin bytes, reserved headers, wrong types) and random payloads
(0 B .. 1 MiB of random bytes) at the client and, through the handler's
own metadata, statuses and responses, at the server. The process must
survive, and every call must end with the outcome grpcio gives: a result,
a status, or TypeError/ValueError for wrong types; never a hang or a crash.

Then the bad-input cases of issue 3 that test_status.py does not cover:
metadata grpcio rejects or passes through, metadata order, oversize
metadata, invalid server-side metadata, non-bytes messages on every
shape, bad call arguments and targets. Expected behaviour is grpcio 1.85's,
checked by running this file against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in
a venv holding grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import glob
import os
import random
import string
import threading

import grpc
import pytest

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen
MiB = 1 << 20
SEED = 20250301
ITERATIONS = 300

SERVICE = "grpcgo.testing.Fuzz"

IS_GRPCGO = bool(
    glob.glob(os.path.join(os.path.dirname(os.path.abspath(grpc.__file__)), "_engine*.so"))
)


def method(name):
    return f"/{SERVICE}/{name}"


class _Service:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = {}  # call id -> invocation metadata
        self.plans = {}  # call id -> what the handler should do
        self.last = None

    def _record(self, context):
        metadata = tuple(context.invocation_metadata())
        call_id = dict(metadata).get("x-call-id")
        with self.lock:
            self.last = metadata
            if call_id is not None:
                self.seen[call_id] = metadata
        return call_id

    def echo(self, request, context):
        self._record(context)
        return request

    def echo_stream(self, request, context):
        self._record(context)
        yield request
        yield request[::-1]

    def join(self, request_iterator, context):
        self._record(context)
        return b"".join(request_iterator)

    def bidi(self, request_iterator, context):
        self._record(context)
        for request in request_iterator:
            yield request

    def planned(self, request, context):
        """Does what the plan registered under the call's x-call-id says."""
        plan = self.plans[self._record(context)]
        if plan["initial"]:
            context.send_initial_metadata(plan["initial"])
        context.set_trailing_metadata(plan["trailing"])
        for response in plan["responses"]:
            yield response
        if plan["code"] is not grpc.StatusCode.OK:
            context.abort(plan["code"], plan["details"])

    # -- bad handlers -------------------------------------------------------------
    def send_initial(self, request, context):
        context.send_initial_metadata(self.plans[request])
        return b"ok"

    def set_trailing(self, request, context):
        context.set_trailing_metadata(self.plans[request])
        return b"ok"

    def metadata_order(self, request, context):
        self._record(context)
        context.send_initial_metadata((("x-z", "1"), ("x-a", "2"), ("x-m", "3"), ("x-a", "4")))
        context.set_trailing_metadata((("x-z", "1"), ("x-b-bin", b"\x00"), ("x-a", "2")))
        return request

    def yield_none(self, request, context):
        yield b"a"
        yield None
        yield b"never"

    def not_an_iterator(self, request, context):
        return 5

    def handler(self):
        uu = grpc.unary_unary_rpc_method_handler
        us = grpc.unary_stream_rpc_method_handler
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Echo": uu(self.echo),
            "EchoStream": us(self.echo_stream),
            "Join": grpc.stream_unary_rpc_method_handler(self.join),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Planned": us(self.planned),
            "SendInitial": uu(self.send_initial),
            "SetTrailing": uu(self.set_trailing),
            "MetadataOrder": uu(self.metadata_order),
            "YieldNone": us(self.yield_none),
            "NotAnIterator": us(self.not_an_iterator),
            "ReturnStr": uu(lambda request, context: "text"),
            "YieldStr": us(lambda request, context: iter([b"a", "text"])),
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
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield service, ch, port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.fixture
def ch(served):
    return served[1]


@pytest.fixture
def service(served):
    return served[0]


def _x(metadata):
    """The x- entries as plain tuples, in order."""
    return [(k, v) for k, v in metadata or () if k.startswith("x-")]


def _by_key(entries):
    """Entries grouped by key, values in order (order across keys aside)."""
    out = {}
    for k, v in entries:
        out.setdefault(k, []).append(v)
    return out


# -- the fuzz run ----------------------------------------------------------------------

KEY_CHARS = string.ascii_lowercase + string.digits + "-_."
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F))


class _Gen:
    """Random metadata entries, each with the outcome grpcio gives a call
    carrying it: "ok" (the handler sees it), "dropped" (sent, not shown),
    "internal" (the call fails INTERNAL "Invalid metadata") or "type"
    (TypeError in the caller)."""

    def __init__(self, rng):
        self.rng = rng

    def key(self, suffix=""):
        n = self.rng.randint(1, 24)
        return "x-" + "".join(self.rng.choice(KEY_CHARS) for _ in range(n)) + suffix

    def value(self):
        n = self.rng.choice((0, 1, 5, 40, 300))
        return "".join(self.rng.choice(VALUE_CHARS) for _ in range(n))

    def valid(self):
        if self.rng.random() < 0.4:
            return (self.key("-bin"), self.rng.randbytes(self.rng.choice((0, 1, 16, 200)))), "ok"
        if self.rng.random() < 0.1:
            return (self.key(), self.value().encode()), "ok_as_str"
        return (self.key(), self.value()), "ok"

    def bad(self):
        kind = self.rng.randrange(9)
        if kind == 0:  # uppercase or other characters keys may not hold
            bad = self.rng.choice("ABCZ @/:!\u00e9\t")
            key = self.key()
            at = self.rng.randint(2, len(key))
            return (key[:at] + bad + key[at:], "v"), "internal"
        if kind == 1:
            return ("", "v"), "internal"
        if kind == 2:
            return (":" + self.key(), "v"), "internal"
        if kind == 3:  # control characters or non-ASCII in a text value
            bad = self.rng.choice("\x00\x01\n\r\x7f\u00e9\u2603")
            value = self.value()
            at = self.rng.randint(0, len(value))
            return (self.key(), value[:at] + bad + value[at:]), "internal"
        if kind == 4:  # text for a binary key
            return (self.key("-bin"), self.value()), "type"
        if kind == 5:
            return (self.rng.randint(0, 99), "v"), "type"
        if kind == 6:
            return (self.key(), self.rng.randint(0, 99)), "type"
        if kind == 7:  # reserved or not x-: the call works, nothing to compare
            key = self.rng.choice(("grpc-" + self.key()[2:], "te", "content-type",
                                   "user-agent", "grpc-timeout", "grpc-message"))
            return (key, "1S" if key == "grpc-timeout" else "v"), "dropped"
        return (self.key(), ""), "ok"

    def payload(self):
        r = self.rng.random()
        if r < 0.1:
            return b""
        if r < 0.7:
            return self.rng.randbytes(self.rng.randint(1, 1024))
        if r < 0.92:
            return self.rng.randbytes(self.rng.randint(1025, 64 << 10))
        return self.rng.randbytes(self.rng.randint(64 << 10, MiB))


def _client_call(ch, shape, payload, metadata):
    """Runs one call of shape; returns what it answered (a comparable value)."""
    if shape == "unary":
        return ch.unary_unary(method("Echo"))(payload, timeout=RPC_TIMEOUT, metadata=metadata)
    if shape == "future":
        return ch.unary_unary(method("Echo")).future(
            payload, timeout=RPC_TIMEOUT, metadata=metadata).result(timeout=WAIT)
    if shape == "server_stream":
        return list(ch.unary_stream(method("EchoStream"))(payload, timeout=RPC_TIMEOUT,
                                                           metadata=metadata))
    if shape == "client_stream":
        parts = [payload[:len(payload) // 3], payload[len(payload) // 3:]]
        return ch.stream_unary(method("Join"))(iter(parts), timeout=RPC_TIMEOUT,
                                               metadata=metadata)
    parts = [payload[:len(payload) // 2], payload[len(payload) // 2:]]
    return list(ch.stream_stream(method("Bidi"))(iter(parts), timeout=RPC_TIMEOUT,
                                                 metadata=metadata))


def _expected_answer(shape, payload):
    if shape in ("unary", "future", "client_stream"):
        return payload
    if shape == "server_stream":
        return [payload, payload[::-1]]
    return [payload[:len(payload) // 2], payload[len(payload) // 2:]]


SHAPES = ("unary", "future", "server_stream", "client_stream", "bidi")


def test_fuzz_client_metadata_and_payloads(served):
    service, ch, _ = served
    rng = random.Random(SEED)
    gen = _Gen(rng)
    outcomes = {}
    for i in range(ITERATIONS):
        shape = rng.choice(SHAPES)
        call_id = "c%d" % i
        entries = [(("x-call-id", call_id), "ok")]
        entries += [gen.valid() for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.35:
            entries.insert(rng.randint(1, len(entries)), gen.bad())
        metadata = tuple(entry for entry, _ in entries)
        kinds = {kind for _, kind in entries}
        payload = gen.payload()
        expected = "type" if "type" in kinds else "internal" if "internal" in kinds else "ok"
        where = f"iteration {i}: {shape}, metadata {metadata!r:.300}, {len(payload)} B"
        try:
            answer = _client_call(ch, shape, payload, metadata)
        except grpc.RpcError as error:
            assert expected == "internal", f"{where}: {error.code()} {error.details()!r}"
            assert error.code() is grpc.StatusCode.INTERNAL, where
            assert error.details() == "Invalid metadata", where
            outcome = "internal"
        except TypeError as error:
            assert expected == "type", f"{where}: TypeError {error}"
            outcome = "type"
        else:
            assert expected == "ok", f"{where}: succeeded"
            assert answer == _expected_answer(shape, payload), where
            # The handler saw every entry that is not reserved, values of
            # one key in order.
            want = [(k, v.decode() if kind == "ok_as_str" else v)
                    for (k, v), kind in entries if kind in ("ok", "ok_as_str")]
            got = _x(service.seen.pop(call_id))
            assert _by_key(got) == _by_key(want), where
            outcome = "ok"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # The run covered every outcome, and the channel still works.
    assert set(outcomes) == {"ok", "internal", "type"}, outcomes
    assert ch.unary_unary(method("Echo"))(b"still", timeout=RPC_TIMEOUT) == b"still"


def test_fuzz_concurrent_futures(served):
    service, ch, _ = served
    rng = random.Random(SEED + 1)
    gen = _Gen(rng)
    batch = []
    for i in range(100):
        metadata = tuple(entry for entry, _ in (gen.valid() for _ in range(rng.randint(0, 3))))
        payload = gen.payload()
        batch.append((payload, ch.unary_unary(method("Echo")).future(
            payload, timeout=RPC_TIMEOUT, metadata=metadata)))
    for payload, future in batch:
        assert future.result(timeout=WAIT) == payload


STATUS_CODES = [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK]


def test_fuzz_server_metadata_statuses_and_responses(served):
    service, ch, _ = served
    rng = random.Random(SEED + 2)
    gen = _Gen(rng)
    for i in range(ITERATIONS // 3):
        call_id = "s%d" % i
        details_chars = VALUE_CHARS + "\u00e9\u2603\n\t%"
        plan = {
            "initial": tuple(gen.valid()[0] for _ in range(rng.randint(0, 3))),
            "trailing": tuple(gen.valid()[0] for _ in range(rng.randint(0, 3))),
            "responses": [gen.payload() for _ in range(rng.choice((0, 1, 1, 2, 5)))],
            "code": rng.choice([grpc.StatusCode.OK] * 3 + STATUS_CODES),
            "details": "".join(rng.choice(details_chars) for _ in range(rng.randint(0, 60))),
        }
        service.plans[call_id] = plan
        where = f"iteration {i}: {plan!r:.300}"
        call = ch.unary_stream(method("Planned"))(b"", timeout=RPC_TIMEOUT,
                                                   metadata=(("x-call-id", call_id),))
        got = []
        try:
            for response in call:
                got.append(response)
        except grpc.RpcError as error:
            assert error.code() is plan["code"], where
            assert error.details() == plan["details"], where
        else:
            assert plan["code"] is grpc.StatusCode.OK, where
        assert got == plan["responses"], where
        assert call.code() is plan["code"], where

        def as_sent(entries):
            return _by_key((k, v.decode() if isinstance(v, bytes) and not k.endswith("-bin")
                            else v) for k, v in entries)

        if plan["initial"]:
            assert _by_key(_x(call.initial_metadata())) == as_sent(plan["initial"]), where
        assert _by_key(_x(call.trailing_metadata())) == as_sent(plan["trailing"]), where
        del service.plans[call_id]


# -- client metadata grpcio rejects, drops or passes ----------------------------------------


def _each_shape(ch, metadata):
    """Every shape with metadata; yields a thunk per shape."""
    yield lambda: ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT, metadata=metadata)
    yield lambda: ch.unary_unary(method("Echo")).with_call(b"x", timeout=RPC_TIMEOUT,
                                                          metadata=metadata)
    yield lambda: ch.unary_unary(method("Echo")).future(
        b"x", timeout=RPC_TIMEOUT, metadata=metadata).result(timeout=WAIT)
    yield lambda: list(ch.unary_stream(method("EchoStream"))(b"x", timeout=RPC_TIMEOUT,
                                                              metadata=metadata))
    yield lambda: ch.stream_unary(method("Join"))(iter([b"x"]), timeout=RPC_TIMEOUT,
                                                  metadata=metadata)
    yield lambda: list(ch.stream_stream(method("Bidi"))(iter([b"x"]), timeout=RPC_TIMEOUT,
                                                        metadata=metadata))


@pytest.mark.parametrize("entry", [
    ("Upper", "v"), ("sp ace", "v"), ("", "v"), (":path", "/x"), ("k\u00e9", "v"),
    ("k@", "v"), ("k/", "v"), ("k", "caf\u00e9"), ("k", "a\nb"), ("k", "a\x00b"),
    ("k", "\ttab"), ("k", "\x7f"), (None, "v"),
])
def test_invalid_metadata_is_internal(ch, entry):
    for call in _each_shape(ch, (entry,)):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() is grpc.StatusCode.INTERNAL
        assert info.value.details() == "Invalid metadata"
    assert ch.unary_unary(method("Echo"))(b"ok", timeout=RPC_TIMEOUT) == b"ok"


@pytest.mark.parametrize("entry", [("k-bin", "text"), (1, "v"), ("k", 1), ("k", 1.5)])
def test_metadata_of_wrong_types_is_a_type_error(ch, entry):
    for call in _each_shape(ch, (entry,)):
        with pytest.raises(TypeError):
            call()


@pytest.mark.parametrize("metadata", [(("k", "v", "w"),), (("k",),), ("kvw",), {"k": "v"},
                                      "k"])
def test_malformed_metadata_is_a_value_error(ch, metadata):
    for call in _each_shape(ch, metadata):
        with pytest.raises(ValueError):
            call()


def test_metadata_that_is_not_a_sequence_is_a_type_error(ch):
    with pytest.raises(TypeError):
        ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT, metadata=5)


def test_metadata_grpcio_accepts(ch, service):
    cases = [
        ((b"x-bytes-key", "v"), ("x-bytes-key", "v")),
        ((b"x-bytes-key-bin", b"\x01"), ("x-bytes-key-bin", b"\x01")),
        (("x-none-value", None), ("x-none-value", "")),
        (("x-bytes-value", b"text"), ("x-bytes-value", "text")),
        (("x-lead", " lead"), ("x-lead", " lead")),
        (("x-empty", ""), ("x-empty", "")),
        (["x-list", "pair"], ("x-list", "pair")),
    ]
    for sent, seen in cases:
        assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                              metadata=(sent,)) == b"x", sent
        assert _x(service.last) == [seen], sent


def test_reserved_headers_are_not_shown_to_the_handler(ch, service):
    for key, value in (("grpc-timeout", "1S"), ("grpc-encoding", "identity"),
                       ("grpc-accept-encoding", "gzip"), ("grpc-status", "0"),
                       ("grpc-message", "m"), ("grpc-previous-rpc-attempts", "1"),
                       ("te", "trailers"), ("content-type", "application/grpc"),
                       ("user-agent", "mine")):
        assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                              metadata=((key, value),)) == b"x", key
        assert (key, value) not in [tuple(m) for m in service.last], key


def test_handler_metadata_holds_only_the_user_agent_besides_the_callers(ch, service):
    assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                          metadata=(("x-mine", "1"),)) == b"x"
    assert sorted(k for k, _ in service.last) == ["user-agent", "x-mine"]


def test_grpc_keys_core_does_not_consume_reach_the_handler(ch, service):
    # grpcio 1.85.1 shows these; it hides grpc-timeout, -encoding,
    # -accept-encoding, -status, -message, -previous-rpc-attempts,
    # -tags-bin, -trace-bin and -internal-encoding-request.
    for key, value in (("grpc-foo", "v"), ("grpc-retry-pushback-ms", "1"),
                       ("grpc-lb-token", "t"), ("grpc-x-bin", b"\x01")):
        assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                              metadata=((key, value),)) == b"x", key
        assert (key, value) in [tuple(m) for m in service.last], key
    for key, value in (("grpc-tags-bin", b"\x00"), ("grpc-trace-bin", b"\x00"),
                       ("grpc-internal-encoding-request", "gzip")):
        assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                              metadata=((key, value),)) == b"x", key
        assert key not in [m[0] for m in service.last], key


# grpcio's server shows both; gRFC A41 has grpc-go refuse the first and drop
# the second (grpcgo's grpc-go change undoes that: patches/grpc_go_patch.py).
def test_other_headers_reach_the_handler(ch, service):
    for key, value in (("host", "example.com"), ("connection", "close")):
        assert ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                              metadata=((key, value),)) == b"x", key
        assert (key, value) in [tuple(m) for m in service.last], key


def test_metadata_keeps_its_order(ch, service):
    sent = (("x-z", "1"), ("x-a", "2"), ("x-m-bin", b"3"), ("x-a", "4"), ("x-c", "5"))
    response, call = ch.unary_unary(method("MetadataOrder")).with_call(
        b"", timeout=RPC_TIMEOUT, metadata=sent)
    assert _x(service.last) == list(sent)
    assert _x(call.initial_metadata()) == [("x-z", "1"), ("x-a", "2"), ("x-m", "3"),
                                           ("x-a", "4")]
    assert _x(call.trailing_metadata()) == [("x-z", "1"), ("x-b-bin", b"\x00"), ("x-a", "2")]


def test_oversize_metadata_is_resource_exhausted(ch):
    for size in (20000, 100000):
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(method("Echo"))(b"x", timeout=RPC_TIMEOUT,
                                           metadata=(("x-big", "v" * size),))
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ch.unary_unary(method("Echo"))(b"ok", timeout=RPC_TIMEOUT) == b"ok"


# -- metadata from the server --------------------------------------------------------------


@pytest.mark.parametrize("handler", ["SendInitial", "SetTrailing"])
@pytest.mark.parametrize("metadata", [(("Bad", "v"),), (("x", "a\nb"),), (("x", "caf\u00e9"),)])
def test_invalid_server_metadata_is_internal(ch, service, handler, metadata):
    key = b"%s-%d" % (handler.encode(), hash(metadata) & 0xFFFF)
    service.plans[key] = metadata
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method(handler))(key, timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert info.value.details() == "Invalid metadata"


@pytest.mark.parametrize("handler", ["SendInitial", "SetTrailing"])
def test_server_metadata_grpcio_accepts(ch, service, handler):
    key = b"accept-" + handler.encode()
    service.plans[key] = ((b"x-bytes-key", "v"), ("x-none", None))
    # (A short deadline: a server that fails to send these would hang.)
    response, call = ch.unary_unary(method(handler)).with_call(key, timeout=2)
    assert response == b"ok"
    got = call.initial_metadata() if handler == "SendInitial" else call.trailing_metadata()
    assert sorted(_x(got)) == [("x-bytes-key", "v"), ("x-none", "")]


@pytest.mark.parametrize("handler", ["SendInitial", "SetTrailing"])
def test_oversize_server_metadata_is_resource_exhausted(ch, service, handler):
    key = b"big-" + handler.encode()
    service.plans[key] = (("x-big", "v" * 20000),)
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method(handler))(key, timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


# -- messages that are not bytes ------------------------------------------------------------


def test_requests_that_are_not_bytes(ch):
    # Without a serializer a request must be bytes: TypeError in the caller,
    # except None, which grpcio counts as a failed serialization.
    for request in ("text", bytearray(b"ba"), 5):
        with pytest.raises(TypeError):
            ch.unary_unary(method("Echo"))(request, timeout=RPC_TIMEOUT)
        with pytest.raises(TypeError):
            ch.unary_stream(method("EchoStream"))(request, timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"))(None, timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert info.value.details() == "Exception serializing request!"


def test_request_iterators_that_are_not_iterable(ch):
    with pytest.raises(grpc.RpcError) as info:
        ch.stream_unary(method("Join"))(5, timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.UNKNOWN
    assert info.value.details() == "Exception iterating requests!"
    with pytest.raises(grpc.RpcError) as info:
        list(ch.stream_stream(method("Bidi"))(None, timeout=RPC_TIMEOUT))
    assert info.value.code() is grpc.StatusCode.UNKNOWN
    assert info.value.details() == "Exception iterating requests!"


def test_response_stream_handler_returning_a_non_iterator(ch):
    with pytest.raises(grpc.RpcError) as info:
        list(ch.unary_stream(method("NotAnIterator"))(b"", timeout=RPC_TIMEOUT))
    assert info.value.code() is grpc.StatusCode.UNKNOWN
    assert info.value.details() == \
        "Exception iterating responses: 'int' object is not an iterator"


def test_response_stream_yielding_none_ends_the_stream(ch):
    # grpcio takes a None from the response iterator as its end.
    call = ch.unary_stream(method("YieldNone"))(b"", timeout=RPC_TIMEOUT)
    assert list(call) == [b"a"]
    assert call.code() is grpc.StatusCode.OK


# grpcio 1.85 leaves these calls hanging until their deadline (the handler's
# TypeError is only logged); the issue asks for a status instead.
status_not_hang = pytest.mark.skipif(
    not IS_GRPCGO, reason="grpcgo's promise; grpcio 1.85 hangs until the deadline")


@status_not_hang
def test_non_bytes_responses_end_the_call_before_its_deadline(ch):
    # INTERNAL, not DEADLINE_EXCEEDED: the call ended before its deadline.
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("ReturnStr"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    call = ch.unary_stream(method("YieldStr"))(b"", timeout=RPC_TIMEOUT)
    assert next(call) == b"a"
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() is grpc.StatusCode.INTERNAL


@status_not_hang
def test_non_bytes_requests_in_a_stream_end_the_call_before_its_deadline(ch):
    with pytest.raises(grpc.RpcError) as info:
        list(ch.stream_stream(method("Bidi"))(iter([b"a", 5]), timeout=RPC_TIMEOUT))
    assert info.value.code() is grpc.StatusCode.INTERNAL


# -- bad call arguments and targets --------------------------------------------------------


def test_timeout_of_the_wrong_type(ch):
    with pytest.raises(TypeError):
        ch.unary_unary(method("Echo"))(b"", timeout="5")


def test_negative_timeout_is_deadline_exceeded(ch):
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Echo"))(b"", timeout=-1)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_compression_as_a_plain_int(ch):
    # grpc.Compression is an IntEnum; grpcio takes its int values too.
    assert ch.unary_unary(method("Echo"))(b"c", timeout=RPC_TIMEOUT, compression=2) == b"c"


def test_unknown_method_name_shapes(ch):
    for name in ("grpcgo.testing.Fuzz/Echo", "/no/such/method", "/\u00e9/\u00e9"):
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(name)(b"", timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_unusable_targets_fail_on_the_call():
    for target in ("::::not a target", "127.0.0.1:notaport"):
        with grpc.insecure_channel(target) as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method("Echo"))(b"", timeout=2)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE, target
    with grpc.insecure_channel("") as ch:
        with pytest.raises(grpc.RpcError):
            ch.unary_unary(method("Echo"))(b"", timeout=2)


def test_unusable_server_address():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    server = grpc.server(pool)
    try:
        with pytest.raises(RuntimeError):
            server.add_insecure_port("not an address")
    finally:
        server.stop(None)
        pool.shutdown(wait=False)
