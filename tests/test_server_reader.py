"""A unary request reaches its handler however its DATA frames come.

A raw HTTP/2 client (h2peer.py) sends the request late, cut into frames
anywhere (its 5-byte prefix too), with or without the half-close, or resets
the call before it; the sync and asyncio servers, and a server whose
unary-request calls start on the connection's reader, which hands a call
over only once its request is in (GRPCGO_SERVER_READER=1, off by default;
docs/ARCHITECTURE.md, "Servers"), all answer as grpcio does.
"""

import asyncio
import concurrent.futures
import contextlib
import os
import struct
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc import aio

import h2peer
from h2peer import DATA, END_HEADERS, END_STREAM, HEADERS, RST_STREAM, frame
from serving import generic_server

WAIT = 20
METHOD = "/t.Reader/Echo"


def _echo(request, context):
    _echo.calls.append(request)
    return request


async def _aio_echo(request, context):
    return _echo(request, context)


def sync_server():
    return generic_server("t.Reader", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})


@contextlib.contextmanager
def aio_server():
    """An asyncio server on a loop of its own thread."""
    loop = asyncio.new_event_loop()
    started = concurrent.futures.Future()

    async def main():
        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "t.Reader", {"Echo": grpc.unary_unary_rpc_method_handler(_aio_echo)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stop = asyncio.Event()
        started.set_result((port, stop))
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    port, stop = started.result(WAIT)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT)
        loop.close()


_READER_SERVER = """
import concurrent.futures, sys, grpc
def echo(request, context):
    return request
handler = grpc.method_handlers_generic_handler(
    "t.Reader", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
server.stop(None).wait(20)
"""


@contextlib.contextmanager
def reader_server():
    """A sync server in a child process started with GRPCGO_SERVER_READER=1
    (the engine reads its environment when it loads)."""
    env = dict(os.environ, GRPCGO_SERVER_READER="1")
    child = subprocess.Popen([sys.executable, "-c", _READER_SERVER], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield int(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(WAIT)


SERVERS = {"sync": sync_server, "aio": aio_server, "reader": reader_server}


@pytest.fixture(params=sorted(SERVERS))
def port(request):
    _echo.calls = None if request.param == "reader" else []
    with SERVERS[request.param]() as port:
        # A first call tells the engine the method takes one request.
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            assert channel.unary_unary(METHOD)(b"first", timeout=WAIT) == b"first"
        yield port


def open_call(port, stream=1):
    sock = h2peer.raw_client(port)
    sock.settimeout(WAIT)
    block = h2peer.encode_headers(h2peer.request_headers(port, METHOD))
    sock.sendall(frame(HEADERS, END_HEADERS, stream, block))
    return sock


def response_of(sock, stream=1):
    """The response's message bytes and grpc-status of stream."""
    decoder = h2peer.hpack.Decoder()
    body, code = b"", None

    def until(kind, flags, sid, payload):
        nonlocal body, code
        if sid != stream:
            return False
        if kind == DATA:
            body += payload
        elif kind == HEADERS:
            for name, value in decoder.decode(payload):
                if name in (b"grpc-status", "grpc-status"):
                    code = int(value)
            return code is not None
        return kind == RST_STREAM

    h2peer.read_frames(sock, until)
    return body[5:], code


def grpc_message(payload):
    return b"\0" + struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize("cuts", [(), (1,), (1, 4), (2, 5, 40)])
@pytest.mark.parametrize("half_close", [True, False])
def test_a_request_cut_into_frames_reaches_the_handler(port, cuts, half_close):
    payload = bytes(range(100))
    msg = grpc_message(payload)
    sock = open_call(port)
    with sock:
        edges = [0, *cuts, len(msg)]
        for i, (a, b) in enumerate(zip(edges, edges[1:])):
            last = i == len(edges) - 2
            sock.sendall(frame(DATA, END_STREAM if last and half_close else 0, 1, msg[a:b]))
        assert response_of(sock) == (payload, 0)
    assert _echo.calls is None or _echo.calls[-1] == payload


def test_a_request_that_comes_late_reaches_the_handler(port):
    sock = open_call(port)
    with sock:
        time.sleep(0.3)  # the request comes well after the call
        assert _echo.calls in (None, [b"first"])
        sock.sendall(frame(DATA, 0, 1, grpc_message(b"late")[:3]))
        time.sleep(0.1)
        sock.sendall(frame(DATA, END_STREAM, 1, grpc_message(b"late")[3:]))
        assert response_of(sock) == (b"late", 0)


def test_a_call_reset_before_its_request_never_reaches_the_handler(port):
    sock = open_call(port)
    with sock:
        sock.sendall(frame(DATA, 0, 1, grpc_message(b"never")[:4]))
        sock.sendall(frame(RST_STREAM, 0, 1, b"\0\0\0\x08"))
        block = h2peer.encode_headers(h2peer.request_headers(port, METHOD))
        # The connection still serves: a second call on it is answered.
        sock.sendall(frame(HEADERS, END_HEADERS, 3, block)
                     + frame(DATA, END_STREAM, 3, grpc_message(b"next")))
        assert response_of(sock, 3) == (b"next", 0)
    if _echo.calls is None:
        return  # in a child process
    assert b"never" not in _echo.calls
    from grpc import _introspect  # grpcgo's: the call was counted out
    deadline = time.monotonic() + WAIT
    while _introspect.live().server_calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _introspect.live().server_calls == 0
