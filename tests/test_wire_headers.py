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
