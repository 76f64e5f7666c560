"""How a blocking unary call's result comes back, and what the engine keeps.

A blocking `__call__` whose call ended OK, with a response of up to 16 KiB
and no metadata, gets its response's bytes handed over in C with no
further call into Go (responses up to 512 bytes inline, larger ones in a
malloc'ed copy); any other outcome takes the full result. The sizes below
sit on each side of those edges, and the metadata cases check that nothing
the full result carries is lost when the call cannot take the short way.

Server calls that finished release their handles in batches; the handle
count shows that they are released, not kept.
"""

import gc
import os
import time
from concurrent import futures

import grpc
import grpc._introspect as gi
import pytest

WAIT = 20
SERVICE = "grpcgo.testing.Results"
SIZES = [0, 1, 511, 512, 513, 16383, 16384, 16385, 70000]


def _echo(request, context):
    return request


def _echo_with_metadata(request, context):
    # request: b"i" (initial), b"t" (trailing) or b"it", then the payload
    flags, payload = request[:2], request[2:]
    if b"i" in flags:
        context.send_initial_metadata((("initial-key", "i"),))
    if b"t" in flags:
        context.set_trailing_metadata((("trailing-key", "t"), ("trailing-bin", b"\x00\x01")))
    return payload


@pytest.fixture(scope="module")
def channel():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Meta": grpc.unary_unary_rpc_method_handler(_echo_with_metadata),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        yield ch
    server.stop(None)


def _call(channel, name, **kw):
    return channel.unary_unary("/%s/%s" % (SERVICE, name), **kw)


@pytest.mark.parametrize("size", SIZES)
def test_response_of_every_size(channel, size):
    payload = os.urandom(size)
    response = _call(channel, "Echo")(payload, timeout=WAIT)
    assert type(response) is bytes
    assert response == payload


@pytest.mark.parametrize("size", [5, 600, 20000])
def test_response_deserializer_sees_the_bytes(channel, size):
    payload = os.urandom(size)
    seen = []

    def deserializer(data):
        seen.append(data)
        return ("parsed", len(data))

    assert _call(channel, "Echo", response_deserializer=deserializer)(payload, timeout=WAIT) == (
        "parsed", size)
    assert seen == [payload]


@pytest.mark.parametrize("flags", [b"i_", b"t_", b"it"])
def test_metadata_is_kept(channel, flags):
    meta = _call(channel, "Meta")
    assert meta(flags + b"pay", timeout=WAIT) == b"pay"
    response, call = meta.with_call(flags + b"pay", timeout=WAIT)
    assert response == b"pay"
    if b"i" in flags:
        assert ("initial-key", "i") in call.initial_metadata()
    if b"t" in flags:
        assert ("trailing-key", "t") in call.trailing_metadata()
        assert ("trailing-bin", b"\x00\x01") in call.trailing_metadata()


def _boom(data):
    raise ValueError("cannot parse")


def test_failed_deserialization_keeps_the_metadata(channel):
    # The response is there, but only the full result has the metadata that
    # the error must carry.
    meta = _call(channel, "Meta", response_deserializer=_boom)
    with pytest.raises(grpc.RpcError) as info:
        meta(b"itpay", timeout=WAIT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert info.value.details() == "Exception deserializing response!"
    assert ("initial-key", "i") in info.value.initial_metadata()
    assert ("trailing-key", "t") in info.value.trailing_metadata()


def test_failed_deserialization_without_metadata(channel):
    with pytest.raises(grpc.RpcError) as info:
        _call(channel, "Echo", response_deserializer=_boom)(b"pay", timeout=WAIT)
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert info.value.details() == "Exception deserializing response!"
    assert info.value.initial_metadata() == ()
    assert info.value.trailing_metadata() == ()


def test_errors_come_back_whole(channel):
    with pytest.raises(grpc.RpcError) as info:
        _call(channel, "Missing")(b"x", timeout=WAIT)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def _handles_settle(limit):
    """The handle count once it stops falling (the collector runs capsule
    destructors), waiting up to WAIT seconds for it to reach limit."""
    deadline = time.monotonic() + WAIT
    while True:
        gc.collect()
        handles = gi.live().handles
        if handles <= limit or time.monotonic() > deadline:
            return handles
        time.sleep(0.05)


def test_finished_calls_release_their_handles(channel):
    echo = _call(channel, "Echo")
    echo(b"warm", timeout=WAIT)
    before = _handles_settle(0)
    for _ in range(500):
        assert echo(b"x", timeout=WAIT) == b"x"
        echo.with_call(b"y", timeout=WAIT)
        echo.future(b"z", timeout=WAIT).result()
    # Server calls wait in batches of 32 before their handles go; nothing
    # else may stay.
    after = _handles_settle(before + 32)
    assert after <= before + 32, (before, after)
