"""What our client puts in a request's HTTP/2 headers, as grpcio 1.85 does.

A raw HTTP/2 server (tests/h2peer.py) records the headers of each call it
is sent. Checked against grpcio by running this file in a venv holding
grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1). Response headers are checked in
test_compression.py (which encoding a response names).
"""

import grpc

from h2peer import RawServer

TIMEOUT = 10


def _one_call(**kwargs):
    with RawServer("status", status=0) as peer:
        with grpc.insecure_channel("127.0.0.1:%d" % peer.port) as ch:
            ch.unary_unary("/t.Raw/Call")(b"x", timeout=TIMEOUT, **kwargs)
        assert len(peer.requests) == 1
        return peer.requests[0]


def test_content_type_is_plain_grpc():
    # grpcio sends "application/grpc"; grpc-go with a codec of its own names
    # the codec ("application/grpc+proto"), which a strict peer may refuse.
    headers = dict(_one_call())
    assert headers["content-type"] == "application/grpc"
    assert headers["te"] == "trailers"
    assert headers[":method"] == "POST"
    assert headers["user-agent"].startswith("grpc-python/")


def test_user_metadata_keeps_its_order_after_the_reserved_headers():
    headers = _one_call(metadata=(("x-b", "2"), ("x-a", "1"), ("x-b", "3")))
    names = [k for k, _ in headers]
    mine = [(k, v) for k, v in headers if k.startswith("x-")]
    assert mine == [("x-b", "2"), ("x-a", "1"), ("x-b", "3")]
    assert names.index("x-b") > names.index("content-type")


# What a server or proxy that reads them sees: the user agent, the
# compressions the client accepts and the timeout's units, as grpcio 1.85.1
# sends them (observed side by side against this raw server).

def _platform():
    # C core's name for the platform in its part of the agent.
    import sys
    return {"linux": "linux", "darwin": "osx", "win32": "windows"}.get(sys.platform, "posix")


def test_user_agent_is_grpcios():
    from grpc import _grpcio_metadata

    library = "grpc-python/%s grpc-c/58.0.0 (%s; chttp2)" % (_grpcio_metadata.__version__, _platform())
    assert dict(_one_call())["user-agent"] == library
    for options, want in (
            ([("grpc.primary_user_agent", "prim/1")], "prim/1 " + library),
            ([("grpc.secondary_user_agent", "sec/2")], library + " sec/2"),
            ([("grpc.primary_user_agent", "prim/1"), ("grpc.secondary_user_agent", "sec/2")],
             "prim/1 " + library + " sec/2")):
        with RawServer("status", status=0) as peer:
            with grpc.insecure_channel("127.0.0.1:%d" % peer.port, options=options) as ch:
                ch.unary_unary("/t.Raw/Call")(b"x", timeout=TIMEOUT)
            assert dict(peer.requests[0])["user-agent"] == want


def test_accept_encoding_is_grpcios():
    # grpc-go's own list is "gzip,deflate".
    assert dict(_one_call())["grpc-accept-encoding"] == "identity, deflate, gzip"
    with RawServer("status", status=0) as peer:
        with grpc.insecure_channel("127.0.0.1:%d" % peer.port, compression=grpc.Compression.Gzip) as ch:
            ch.unary_unary("/t.Raw/Call")(b"x", timeout=TIMEOUT)
        headers = dict(peer.requests[0])
    assert headers["grpc-encoding"] == "gzip"
    assert headers["grpc-accept-encoding"] == "identity, deflate, gzip"


def _sent_timeout(timeout):
    with RawServer("status", status=0) as peer:
        with grpc.insecure_channel("127.0.0.1:%d" % peer.port) as ch:
            ch.unary_unary("/t.Raw/Call")(b"x", timeout=timeout)
        return dict(peer.requests[0])["grpc-timeout"]


def test_timeout_units_are_grpcios():
    # C core's units: the coarsest that loses nothing at its resolution
    # (grpc-go writes the finest that holds the value: "999020u" for 1 s,
    # "3600000m" for an hour). Time passes before the headers leave, so
    # the short ones are checked by their form.
    sent = _sent_timeout(0.5)  # below 1 s: milliseconds
    assert sent.endswith("m") and 0 < int(sent[:-1]) <= 500, sent
    sent = _sent_timeout(5)  # below 10 s: tens of milliseconds, or whole seconds
    assert sent == "5S" or (sent.endswith("0m") and 4000 < int(sent[:-1]) <= 5000), sent
    assert _sent_timeout(3600) == "1H"
    assert _sent_timeout(3 * 86400) == "72H"
    assert _sent_timeout(1e9) == "27000H"  # C core's largest
    sent = _sent_timeout(90 * 60)
    assert sent == "90M", sent


def test_aio_user_agent_is_grpcios():
    # grpcio's aio channel names grpc-python-asyncio/ where the sync one
    # names grpc-python/.
    import asyncio

    import grpc.aio
    from grpc import _grpcio_metadata

    async def call(port):
        async with grpc.aio.insecure_channel(
                "127.0.0.1:%d" % port, options=[("grpc.primary_user_agent", "prim/1")]) as ch:
            await ch.unary_unary("/t.Raw/Call")(b"x", timeout=TIMEOUT)

    with RawServer("status", status=0) as peer:
        asyncio.run(call(peer.port))
        agent = dict(peer.requests[0])["user-agent"]
    assert agent == "prim/1 grpc-python-asyncio/%s grpc-c/58.0.0 (%s; chttp2)" % (
        _grpcio_metadata.__version__, _platform())
