"""Fault injection with raw HTTP/2 (h2peer.py): peers that break the rules.

Server side, what grpc-go (and x/net's framer) leave unbounded is bounded the
way current grpc-go and grpcio servers send abusive peers away, with GOAWAY
(ENHANCE_YOUR_CALM): an endless header block of empty CONTINUATION frames
(CVE-2023-45288), and rapid reset (CVE-2023-44487). grpcgo's options
"grpcgo.http2.max_continuation_frames" and "grpcgo.http2.max_resets_per_second"
tune both (0: no bound). Client side, illegal SETTINGS from a server end the
connection at once, with a status that says which value.
"""

import concurrent.futures
import glob
import os
import socket

import grpc
import pytest

import h2peer
from h2peer import CONTINUATION, END_HEADERS, END_STREAM, GOAWAY, HEADERS, RST_STREAM, frame

BOUND = 20

IS_GRPCGO = bool(
    glob.glob(os.path.join(os.path.dirname(os.path.abspath(grpc.__file__)), "_engine*.so"))
)


def serve(options=()):
    handler = grpc.method_handlers_generic_handler("t.Raw", {
        "Call": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
    })
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[handler], options=list(options))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def server_port(request):
    server, port = serve(getattr(request, "param", ()))
    yield port
    server.stop(None).wait(10)


def goaway_of(frames):
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big"), payload[8:]
    return None


def still_serves(port):
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        return channel.unary_unary("/t.Raw/Call")(b"ok", timeout=BOUND) == b"ok"


def send_quietly(sock, data):
    try:
        sock.sendall(data)
        return True
    except OSError:  # the server closed the connection
        return False


def grpcgo_promise():
    if not IS_GRPCGO:
        pytest.skip("grpcgo's promise: grpcio 1.85.1 sends no GOAWAY here (measured)")


def test_an_endless_header_block_gets_goaway(server_port):
    grpcgo_promise()
    sock = h2peer.raw_client(server_port)
    sock.settimeout(5)
    block = h2peer.encode_headers(h2peer.request_headers(server_port))
    send_quietly(sock, frame(HEADERS, 0, 1, block))  # no END_HEADERS
    empty = frame(CONTINUATION, 0, 1) * 500
    for _ in range(20):  # 10,000 empty frames
        if not send_quietly(sock, empty):
            break
    frames = h2peer.read_frames(sock, lambda kind, *rest: kind == GOAWAY)
    sock.close()
    away = goaway_of(frames)
    assert away is not None, "no GOAWAY: the connection was kept open"
    assert away[0] == h2peer.ENHANCE_YOUR_CALM
    assert b"CONTINUATION" in away[1]
    assert still_serves(server_port)


def rapid_reset(port, streams):
    sock = h2peer.raw_client(port)
    sock.settimeout(5)
    block = h2peer.encode_headers(h2peer.request_headers(port))
    burst = b"".join(frame(HEADERS, END_HEADERS, sid, block) + frame(RST_STREAM, 0, sid, b"\0\0\0\x08")
                     for sid in range(1, 2 * streams, 2))
    send_quietly(sock, burst)
    # A PING, so that a server that keeps the connection answers something.
    send_quietly(sock, frame(h2peer.PING, 0, 0, b"12345678"))
    frames = h2peer.read_frames(
        sock, lambda kind, flags, *rest: kind == GOAWAY or (kind == h2peer.PING and flags & 1))
    sock.close()
    return frames


# The default bound is 10,000 resets a second; a lower one keeps the test
# quick and sure on a loaded machine.
@pytest.mark.parametrize("server_port", [[("grpcgo.http2.max_resets_per_second", 1000)]],
                         indirect=True)
def test_rapid_reset_gets_goaway(server_port):
    grpcgo_promise()
    away = goaway_of(rapid_reset(server_port, 5000))
    assert away is not None, "no GOAWAY after 5000 streams opened and reset at once"
    assert away[0] == h2peer.ENHANCE_YOUR_CALM
    assert b"RST_STREAM" in away[1]
    assert still_serves(server_port)


@pytest.mark.parametrize("server_port", [[("grpcgo.http2.max_resets_per_second", 0)]],
                         indirect=True)
def test_the_reset_bound_is_an_option(server_port):
    if not IS_GRPCGO:
        pytest.skip("grpcgo's own option")
    frames = rapid_reset(server_port, 5000)
    assert goaway_of(frames) is None
    assert any(kind == h2peer.PING for kind, *_ in frames)


def test_illegal_settings_from_a_server_fail_calls_at_once():
    with h2peer.RawServer("bad_settings") as peer:
        with grpc.insecure_channel("127.0.0.1:%d" % peer.port) as channel:
            with pytest.raises(grpc.RpcError) as failure:
                channel.unary_unary("/t.Raw/Call")(b"x", timeout=BOUND)
    # Not DEADLINE_EXCEEDED: the call did not wait for the server to close.
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
    if IS_GRPCGO:
        assert "MAX_FRAME_SIZE 1" in failure.value.details()
