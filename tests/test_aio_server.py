"""grpc.aio's server: handlers of every kind, the async ServicerContext,
status semantics, cancellation both ways, interceptors, stop/grace, loops
(default, uvloop, several in threads), against grpcgo's sync client (run
off the loop) and grpc-go's client (tests/gopeer).

Every test runs its own loop with asyncio.run and bounds its waits."""

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import os
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import pytest
from grpc import aio

import aio_echo_service
import echo_service
from echo_service import msg

SERVICE = "t.S"
WAIT = 20  # seconds: a bound that only a hang reaches


def _method(name):
    return f"/{SERVICE}/{name}"


@contextlib.asynccontextmanager
async def serving(handlers, **kwargs):
    """An aio server on 127.0.0.1 serving {name: handler} as t.S; yields
    (server, port) and stops it without grace."""
    server = aio.server(**kwargs)
    if handlers:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield server, port
    finally:
        await asyncio.wait_for(server.stop(None), WAIT)


def blocking(fn, *args, **kwargs):
    """Runs a blocking client call off the loop."""
    call = functools.partial(fn, *args, **kwargs)
    return asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, call), WAIT)


def rpc(port, name, kind, request, timeout=WAIT, metadata=None, with_call=False):
    """One call with grpcgo's sync client: (response(s), call) or raises."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        method = _method(name)
        if kind == "uu":
            return channel.unary_unary(method).with_call(request, timeout=timeout, metadata=metadata)
        if kind == "us":
            return list(channel.unary_stream(method)(request, timeout=timeout, metadata=metadata)), None
        if kind == "su":
            return channel.stream_unary(method).with_call(iter(request), timeout=timeout,
                                                          metadata=metadata)
        return list(channel.stream_stream(method)(iter(request), timeout=timeout, metadata=metadata)), None


def rpc_error(port, name, kind, request, **kw):
    with pytest.raises(grpc.RpcError) as info:
        rpc(port, name, kind, request, **kw)
    return info.value


uu = grpc.unary_unary_rpc_method_handler
us = grpc.unary_stream_rpc_method_handler
su = grpc.stream_unary_rpc_method_handler
ss = grpc.stream_stream_rpc_method_handler


# ---- the four shapes, each kind of handler ----------------------------------


async def _co_unary(request, context):
    return b"u:" + request


async def _agen_server_stream(request, context):
    for i in range(3):
        yield b"%s-%d" % (request, i)


async def _co_server_stream(request, context):
    for i in range(3):
        await context.write(b"%s-%d" % (request, i))


async def _co_client_stream(requests, context):
    return b",".join([r async for r in requests])


async def _agen_bidi(requests, context):
    async for r in requests:
        yield b"e:" + r


async def _co_bidi(requests, context):
    while True:
        r = await context.read()
        if r is aio.EOF:
            return
        await context.write(b"w:" + r)


def test_four_shapes_async_handlers():
    async def main():
        handlers = {"u": uu(_co_unary), "s": us(_agen_server_stream), "s2": us(_co_server_stream),
                    "c": su(_co_client_stream), "b": ss(_agen_bidi), "b2": ss(_co_bidi)}
        async with serving(handlers) as (_, port):
            response, call = await blocking(rpc, port, "u", "uu", b"x")
            assert response == b"u:x" and call.code() is grpc.StatusCode.OK
            assert (await blocking(rpc, port, "s", "us", b"y"))[0] == [b"y-0", b"y-1", b"y-2"]
            assert (await blocking(rpc, port, "s2", "us", b"z"))[0] == [b"z-0", b"z-1", b"z-2"]
            assert (await blocking(rpc, port, "c", "su", [b"a", b"b", b"c"]))[0] == b"a,b,c"
            assert (await blocking(rpc, port, "b", "ss", [b"1", b"2"]))[0] == [b"e:1", b"e:2"]
            assert (await blocking(rpc, port, "b2", "ss", [b"1", b"2"]))[0] == [b"w:1", b"w:2"]
            # No requests at all, and many.
            assert (await blocking(rpc, port, "c", "su", []))[0] == b""
            many = [b"%d" % i for i in range(500)]
            assert (await blocking(rpc, port, "b", "ss", many))[0] == [b"e:" + m for m in many]

    asyncio.run(main())


def test_plain_handlers_run_in_the_migration_pool():
    threads = []

    def unary(request, context):
        threads.append(threading.current_thread().name)
        return b"p:" + request

    def server_stream(request, context):
        threads.append(threading.current_thread().name)
        for i in range(3):
            yield b"%d" % i

    def client_stream(requests, context):
        threads.append(threading.current_thread().name)
        return b"+".join(requests)

    def bidi(requests, context):
        for r in requests:
            yield r.upper()

    async def main():
        loop_thread = threading.current_thread().name
        pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="migration")
        handlers = {"u": uu(unary), "s": us(server_stream), "c": su(client_stream), "b": ss(bidi)}
        async with serving(handlers, migration_thread_pool=pool) as (_, port):
            assert (await blocking(rpc, port, "u", "uu", b"a"))[0] == b"p:a"
            assert (await blocking(rpc, port, "s", "us", b""))[0] == [b"0", b"1", b"2"]
            assert (await blocking(rpc, port, "c", "su", [b"x", b"y"]))[0] == b"x+y"
            assert (await blocking(rpc, port, "b", "ss", [b"q", b"r"]))[0] == [b"Q", b"R"]
        pool.shutdown()
        assert threads and all(t.startswith("migration") for t in threads), threads
        assert loop_thread not in threads

    asyncio.run(main())


def test_plain_handler_without_a_pool_uses_the_loop_executor():
    def unary(request, context):
        return threading.current_thread() is threading.main_thread() and b"main" or b"pool"

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            assert (await blocking(rpc, port, "u", "uu", b""))[0] == b"pool"

    asyncio.run(main())


def test_plain_handler_context_aborts_and_sends_metadata_on_the_loop():
    def unary(request, context):
        context.send_initial_metadata((("x-h", "1"),))
        context.set_trailing_metadata((("x-t", "2"),))
        if request == b"abort":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "nope")
        return b"ok"

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            response, call = await blocking(rpc, port, "u", "uu", b"fine")
            assert response == b"ok"
            assert ("x-h", "1") in tuple(call.initial_metadata())
            assert ("x-t", "2") in tuple(call.trailing_metadata())
            error = await blocking(rpc_error, port, "u", "uu", b"abort")
            assert error.code() is grpc.StatusCode.PERMISSION_DENIED
            assert error.details() == "nope"

    asyncio.run(main())


# ---- status semantics -------------------------------------------------------


def test_exception_is_unknown_with_grpcio_aio_wording():
    async def boom(request, context):
        raise ValueError("boom")

    async def boom_with_code(request, context):
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_trailing_metadata((("x-k", "v"),))
        raise RuntimeError("r")

    async def agen_boom(request, context):
        yield b"1"
        raise KeyError("k")

    def plain_boom(request, context):
        raise TypeError("t")

    async def main():
        handlers = {"a": uu(boom), "b": uu(boom_with_code), "c": us(agen_boom), "d": uu(plain_boom)}
        async with serving(handlers) as (_, port):
            error = await blocking(rpc_error, port, "a", "uu", b"")
            assert error.code() is grpc.StatusCode.UNKNOWN
            assert error.details() == "Unexpected <class 'ValueError'>: boom"
            error = await blocking(rpc_error, port, "b", "uu", b"")
            assert error.code() is grpc.StatusCode.NOT_FOUND
            assert error.details() == "Unexpected <class 'RuntimeError'>: r"
            assert ("x-k", "v") in tuple(error.trailing_metadata())
            error = await blocking(rpc_error, port, "c", "us", b"")
            assert error.code() is grpc.StatusCode.UNKNOWN
            assert error.details() == "Unexpected <class 'KeyError'>: 'k'"
            error = await blocking(rpc_error, port, "d", "uu", b"")
            assert error.details() == "Unexpected <class 'TypeError'>: t"

    asyncio.run(main())


def test_abort_raises_abort_error_in_the_handler_and_ends_the_call():
    seen = {}

    async def abort(request, context):
        context.set_trailing_metadata((("x-t", "1"),))
        try:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "pre")
        except aio.AbortError as error:
            seen["error"] = error
            seen["done"] = context.done()
            try:
                await context.abort(grpc.StatusCode.INTERNAL, "again")
            except aio.UsageError as usage:
                seen["twice"] = str(usage)
            raise

    async def suppressed(request, context):
        try:
            await context.abort(grpc.StatusCode.INTERNAL, "kept")
        except aio.AbortError:
            pass
        return b"ignored"

    async def with_status(request, context):
        await context.abort_with_status(_Status(grpc.StatusCode.DATA_LOSS, "lost", (("x-s", "2"),)))

    async def ok_abort(request, context):
        await context.abort(grpc.StatusCode.OK, "ok?")

    async def main():
        handlers = {"a": uu(abort), "s": uu(suppressed), "w": uu(with_status), "o": uu(ok_abort)}
        async with serving(handlers) as (_, port):
            error = await blocking(rpc_error, port, "a", "uu", b"")
            assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and error.details() == "pre"
            assert ("x-t", "1") in tuple(error.trailing_metadata())
            assert isinstance(seen["error"], aio.AbortError) and seen["done"]
            assert seen["twice"] == "Abort already called!"
            error = await blocking(rpc_error, port, "s", "uu", b"")
            assert error.code() is grpc.StatusCode.INTERNAL and error.details() == "kept"
            error = await blocking(rpc_error, port, "w", "uu", b"")
            assert error.code() is grpc.StatusCode.DATA_LOSS and error.details() == "lost"
            assert ("x-s", "2") in tuple(error.trailing_metadata())
            error = await blocking(rpc_error, port, "o", "uu", b"")
            assert error.code() is grpc.StatusCode.UNKNOWN

    asyncio.run(main())


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def test_set_code_details_and_trailing_metadata():
    async def unary(request, context):
        assert context.code() is None and context.details() == ""
        assert context.trailing_metadata() == ()
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("nf")
        context.set_trailing_metadata((("x-a", "1"), ("x-b-bin", b"\x00\x01")))
        assert context.code() is grpc.StatusCode.NOT_FOUND and context.details() == "nf"
        return b"discarded"

    async def stream(request, context):
        yield b"1"
        context.set_code(grpc.StatusCode.ABORTED)
        context.set_details("after one")

    async def ok_details(request, context):
        context.set_details("fine")
        context.set_trailing_metadata((("x-z", "z"),))
        return b"r"

    async def main():
        handlers = {"u": uu(unary), "s": us(stream), "k": uu(ok_details)}
        async with serving(handlers) as (_, port):
            error = await blocking(rpc_error, port, "u", "uu", b"")
            assert error.code() is grpc.StatusCode.NOT_FOUND and error.details() == "nf"
            trailing = tuple(error.trailing_metadata())
            assert ("x-a", "1") in trailing and ("x-b-bin", b"\x00\x01") in trailing

            def partial_stream():
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    call = channel.unary_stream(_method("s"))(b"", timeout=WAIT)
                    got = []
                    with pytest.raises(grpc.RpcError):
                        for r in call:
                            got.append(r)
                    return got, call.code(), call.details()

            assert await blocking(partial_stream) == ([b"1"], grpc.StatusCode.ABORTED, "after one")
            response, call = await blocking(rpc, port, "k", "uu", b"")
            # (grpc-go sends no details with OK, as for the sync server.)
            assert response == b"r" and call.code() is grpc.StatusCode.OK
            assert ("x-z", "z") in tuple(call.trailing_metadata())

    asyncio.run(main())


def test_invalid_metadata_is_internal():
    seen = {}

    async def bad_initial(request, context):
        try:
            await context.send_initial_metadata((("BAD KEY", "v"),))
        except aio.InternalError as error:
            seen["initial"] = error
        return b"x"

    async def bad_trailing(request, context):
        context.set_trailing_metadata((("BAD", "v"),))
        return b"x"

    async def main():
        async with serving({"i": uu(bad_initial), "t": uu(bad_trailing)}) as (_, port):
            for name in "it":
                error = await blocking(rpc_error, port, name, "uu", b"")
                assert error.code() is grpc.StatusCode.INTERNAL, name
                assert error.details() == "Invalid metadata"
        assert "initial" in seen

    asyncio.run(main())


def test_unimplemented_and_bad_responses():
    async def returns_none(request, context):
        return None

    async def returns_str(request, context):
        return "text"

    async def returns_int(request, context):
        return 5

    async def main():
        handlers = {"n": uu(returns_none), "s": uu(returns_str), "i": uu(returns_int)}
        async with serving(handlers) as (_, port):
            error = await blocking(rpc_error, port, "missing", "uu", b"")
            assert error.code() is grpc.StatusCode.UNIMPLEMENTED
            assert error.details() == "Method not found!"
            error = await blocking(rpc_error, port, "missing", "ss", [b"a"])
            assert error.code() is grpc.StatusCode.UNIMPLEMENTED
            assert (await blocking(rpc, port, "n", "uu", b""))[0] == b""
            assert (await blocking(rpc, port, "s", "uu", b""))[0] == b"text"
            error = await blocking(rpc_error, port, "i", "uu", b"")
            assert error.code() is grpc.StatusCode.UNKNOWN
            assert error.details().startswith("Unexpected <class 'TypeError'>")

    asyncio.run(main())


def test_bad_request_bytes_are_unknown():
    def deserializer(data):
        raise ValueError("cannot parse")

    async def unary(request, context):
        return b"never"

    async def main():
        async with serving({"u": uu(unary, request_deserializer=deserializer)}) as (_, port):
            error = await blocking(rpc_error, port, "u", "uu", b"x")
            assert error.code() is grpc.StatusCode.UNKNOWN
            assert error.details() == "Unexpected <class 'ValueError'>: cannot parse"

    asyncio.run(main())


# ---- TLS ----------------------------------------------------------------------


def test_secure_port_with_mutual_tls(tmp_path):
    import certs

    pki = certs.make_pki(tmp_path)
    seen = {}

    async def unary(request, context):
        seen["key"] = context.peer_identity_key()
        seen["identities"] = context.peer_identities()
        seen["security"] = context.auth_context()["transport_security_type"]
        return request

    def client(port):
        creds = grpc.ssl_channel_credentials(pki.ca.cert, pki.client.key, pki.client.cert)
        with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
            return channel.unary_unary(_method("u"))(b"tls", timeout=WAIT)

    async def main():
        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"u": uu(unary)}),))
        creds = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)], pki.ca.cert, True)
        port = server.add_secure_port("127.0.0.1:0", creds)
        with pytest.raises(TypeError):
            server.add_secure_port("127.0.0.1:0", object())
        await server.start()
        try:
            assert await blocking(client, port) == b"tls"
        finally:
            await server.stop(None)

    asyncio.run(main())
    assert seen == {"key": "x509_common_name", "identities": [b"grpcgo-client"], "security": [b"ssl"]}


# ---- the context ------------------------------------------------------------


def test_context_accessors():
    seen = {}

    async def unary(request, context):
        seen["metadata"] = tuple(context.invocation_metadata())
        seen["peer"] = context.peer()
        seen["time_remaining"] = context.time_remaining()
        seen["auth"] = context.auth_context()
        seen["identities"] = context.peer_identities()
        seen["identity_key"] = context.peer_identity_key()
        seen["cancelled"] = context.cancelled()
        seen["done"] = context.done()
        context.disable_next_message_compression()
        return b"ok"

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            await blocking(lambda: rpc(port, "u", "uu", b"", timeout=WAIT, metadata=(("x-m", "v"),)))
            assert ("x-m", "v") in seen["metadata"]
            assert seen["peer"].startswith("ipv4:127.0.0.1:")
            assert 0 < seen["time_remaining"] <= WAIT
            assert seen["auth"]["transport_security_type"] == [b"insecure"]
            assert seen["identities"] is None and seen["identity_key"] is None
            assert seen["cancelled"] is False and seen["done"] is False
            await blocking(lambda: rpc(port, "u", "uu", b"", timeout=None))
            assert seen["time_remaining"] is None

    asyncio.run(main())


def test_abort_not_awaited_warns_as_grpcios_and_the_handler_goes_on():
    # A common slip (grpc's examples/python/debug server has it): the
    # coroutine is dropped, RuntimeWarning names it as grpcio's does (its
    # context class is cygrpc's _ServicerContext), and the handler's reply
    # goes out.
    async def unary(request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "never sent")
        return b"reply"

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            return await blocking(lambda: rpc(port, "u", "uu", b"")[0])

    with pytest.warns(RuntimeWarning, match=r"coroutine '_ServicerContext\.abort' was never awaited"):
        assert asyncio.run(main()) == b"reply"


def test_initial_metadata_once_and_compression_before_it():
    seen = {}

    async def unary(request, context):
        context.set_compression(grpc.Compression.Gzip)
        await context.send_initial_metadata((("x-i", "1"),))
        try:
            await context.send_initial_metadata((("x-i", "2"),))
        except aio.UsageError as error:
            seen["twice"] = str(error)
        try:
            context.set_compression(grpc.Compression.Gzip)
        except RuntimeError as error:
            seen["late"] = str(error)
        return request

    async def stream(request, context):
        await context.write(b"first")
        try:
            await context.send_initial_metadata((("x-i", "3"),))
        except aio.UsageError as error:
            seen["after_write"] = str(error)
        yield b"second"

    async def main():
        async with serving({"u": uu(unary), "s": us(stream)}) as (_, port):
            response, call = await blocking(rpc, port, "u", "uu", b"z" * 10000)
            assert response == b"z" * 10000
            assert ("x-i", "1") in tuple(call.initial_metadata())
            assert (await blocking(rpc, port, "s", "us", b""))[0] == [b"first", b"second"]
        assert seen["twice"] == "Send initial metadata failed: already sent"
        assert seen["late"] == "Compression setting must be specified before sending initial metadata"
        assert seen["after_write"] == "Send initial metadata failed: already sent"

    asyncio.run(main())


def test_done_callbacks_get_the_context():
    called = []

    async def unary(request, context):
        context.add_done_callback(lambda ctx: called.append((ctx is context, ctx.done())))
        return b""

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            await blocking(rpc, port, "u", "uu", b"")
            for _ in range(100):
                if called:
                    break
                await asyncio.sleep(0.01)
        assert called == [(True, True)]

    asyncio.run(main())


def test_read_mixed_with_the_request_iterator_and_read_after_a_timeout():
    async def mixed(requests, context):
        first = await context.read()
        rest = [r async for r in requests]
        assert await context.read() is aio.EOF
        return first + b"|" + b",".join(rest)

    async def patient(requests, context):
        # A read that times out does not lose the request it was waiting for.
        timeouts = 0
        got = []
        while True:
            try:
                r = await asyncio.wait_for(context.read(), 0.01)
            except asyncio.TimeoutError:
                timeouts += 1
                continue
            if r is aio.EOF:
                break
            got.append(r)
        return b",".join(got) + b";%d" % min(timeouts, 1)

    def slow_requests():
        for r in (b"a", b"b"):
            time.sleep(0.1)
            yield r

    async def unary_read(request, context):
        return b"eof" if await context.read() is aio.EOF else b"more"

    async def main():
        async with serving({"m": su(mixed), "p": su(patient), "r": uu(unary_read)}) as (_, port):
            assert (await blocking(rpc, port, "m", "su", [b"1", b"2", b"3"]))[0] == b"1|2,3"
            assert (await blocking(rpc, port, "p", "su", slow_requests()))[0] == b"a,b;1"
            assert (await blocking(rpc, port, "r", "uu", b""))[0] == b"eof"

    asyncio.run(main())


def test_write_in_a_unary_response_handler_is_an_error_at_the_client():
    async def unary(request, context):
        await context.write(b"extra")
        return b"last"

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            error = await blocking(rpc_error, port, "u", "uu", b"")
            assert error.code() is grpc.StatusCode.INTERNAL

    asyncio.run(main())


def test_responses_written_before_a_status_arrive_first_and_in_order():
    # Responses are handed to the engine in batches; every status waits
    # for the ones written before it.
    async def many(request, context):
        for i in range(1000):
            await context.write(b"%d" % i)

    async def then_raise(request, context):
        for i in range(100):
            yield b"%d" % i
        raise KeyError("after 100")

    async def then_abort(request, context):
        for i in range(70):
            await context.write(b"%d" % i)
        await context.abort(grpc.StatusCode.DATA_LOSS, "after 70")

    def plain(request, context):
        for i in range(150):
            yield b"%d" % i

    def partial(port, name):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream(_method(name))(b"", timeout=WAIT)
            got = []
            try:
                for r in call:
                    got.append(r)
            except grpc.RpcError:
                pass
            return got, call.code(), call.details()

    async def main():
        handlers = {"m": us(many), "r": us(then_raise), "a": us(then_abort), "p": us(plain)}
        async with serving(handlers) as (_, port):
            got, code, _ = await blocking(partial, port, "m")
            assert got == [b"%d" % i for i in range(1000)] and code is grpc.StatusCode.OK
            got, code, details = await blocking(partial, port, "r")
            assert got == [b"%d" % i for i in range(100)]
            assert code is grpc.StatusCode.UNKNOWN and "after 100" in details
            got, code, details = await blocking(partial, port, "a")
            assert got == [b"%d" % i for i in range(70)]
            assert (code, details) == (grpc.StatusCode.DATA_LOSS, "after 70")
            got, code, _ = await blocking(partial, port, "p")
            assert got == [b"%d" % i for i in range(150)] and code is grpc.StatusCode.OK

    asyncio.run(main())


def test_a_response_written_after_a_full_queue_is_not_held_back():
    # 300 x 64 KiB fill the engine's queue (the client reads slowly at
    # first), so a batch is still being queued when "last" is written; it
    # must reach the client while the handler waits, not when it returns.
    async def big_then_wait(request, context):
        for _ in range(300):
            await context.write(b"x" * 65536)
        await context.write(b"x" * 65536)
        await asyncio.sleep(0)  # that batch meets the full queue: still being queued
        await context.write(b"last")  # behind it
        await asyncio.sleep(WAIT * 2)  # cancelled when the client cancels

    def client(port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream(_method("b"))(b"", timeout=WAIT)
            time.sleep(0.3)
            count = 0
            for response in call:
                count += 1
                if response == b"last":
                    call.cancel()
                    break
            return count

    async def main():
        async with serving({"b": us(big_then_wait)}) as (_, port):
            assert await blocking(client, port) == 302

    asyncio.run(main())


def test_a_response_answering_a_request_that_was_waited_for_leaves_at_once():
    # The first write after a read that waited is handed to the engine at
    # once (no flush scheduled for the next turn of the loop); the writes
    # after it in the same turn are batched, and every response arrives in
    # order. (White box: context._replies.out holds the responses not handed over.)
    held = []

    async def echo_three(request_iterator, context):
        while True:
            request = await context.read()
            if request is aio.EOF:
                return
            await context.write(request + b".0")
            held.append(len(context._replies.out))
            await context.write(request + b".1")
            await context.write(request + b".2")
            held.append(len(context._replies.out))

    async def main():
        async with serving({"e": ss(echo_three)}) as (_, port):
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(_method("e"))(timeout=WAIT)
                for i in range(4):
                    await call.write(b"%d" % i)
                    got = [await call.read() for _ in range(3)]
                    assert got == [b"%d.%d" % (i, k) for k in range(3)]
                await call.done_writing()
                assert await call.read() is aio.EOF
                assert await call.code() is grpc.StatusCode.OK
        # From the second request on, the handler's read waited (the client
        # sends only once it has the three responses before).
        assert held[2:] == [0, 2] * 3

    asyncio.run(main())


@pytest.mark.timeout(60)  # without the fix the loop spins: only this timeout ends it
def test_a_batch_that_completed_before_its_callback_ran_does_not_spin_the_loop():
    # A batch waiting for room in the engine completes in one turn of the
    # loop; its callback runs in the next, but the handler's task may run
    # first (it was ready before the completion queue was drained). The
    # next full batch then awaits a future that is already done, which
    # does not yield: _flush must take the outcome itself, not spin.
    # (White box: the handler watches the batch through context._replies.sending,
    # which makes that order certain on asyncio's default loop; the task
    # polls with sleep(0) so it is always ready before the drain.)
    big = b"x" * 65536
    reading = threading.Event()
    written = []

    async def fill_then_write_a_batch(request, context):
        count = 0
        while (context._replies is None or context._replies.sending is None) and count < 4096:
            for _ in range(63):
                await context.write(big)
            count += 63
            await asyncio.sleep(0)  # the batch is handed over: it waits for room
        written.append(count)
        reading.set()  # the client reads from now on
        while not context._replies.sending.done():
            await asyncio.sleep(0)
        for i in range(64):  # the 64th flushes while the batch's callback has not run
            await context.write(b"%d" % i)

    def client(port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream(_method("f"))(b"", timeout=WAIT)
            assert reading.wait(WAIT)
            responses = list(call)
            return len(responses), responses[-64:], call.code()

    async def main():
        async with serving({"f": us(fill_then_write_a_batch)}) as (_, port):
            count, last, code = await blocking(client, port)
            assert written and written[0] < 4096  # the engine's queue did fill
            assert code is grpc.StatusCode.OK
            assert count == written[0] + 64 and last == [b"%d" % i for i in range(64)]

    asyncio.run(main())


# ---- cancellation both ways -------------------------------------------------


def _until(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def test_client_cancel_cancels_the_handler_task():
    events = {}

    async def hang(request, context):
        context.add_done_callback(lambda ctx: events.setdefault("callback", ctx.cancelled()))
        events["started"] = True
        try:
            await asyncio.sleep(WAIT * 2)
        except asyncio.CancelledError:
            events["cancelled_error"] = True
            events["cancelled"] = context.cancelled()
            events["done"] = context.done()
            raise

    async def paused(request, context):
        events["gen_started"] = True
        try:
            while True:
                yield b"x" * 100000  # fills the queue, then pauses at yield
        finally:
            events["gen_closed"] = True

    def client(port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            future = channel.unary_unary(_method("h")).future(b"", timeout=WAIT)
            _until(lambda: "started" in events)
            future.cancel()
            stream = channel.unary_stream(_method("p"))(b"", timeout=WAIT)
            next(stream)
            stream.cancel()
        _until(lambda: "callback" in events and "gen_closed" in events)

    async def main():
        async with serving({"h": uu(hang), "p": us(paused)}) as (_, port):
            await blocking(client, port)
        assert events["cancelled_error"] and events["cancelled"] and events["done"]
        assert events["callback"] is True
        assert events["gen_closed"]

    asyncio.run(main())


def test_deadline_cancels_the_handler_task():
    events = {}

    async def hang(requests, context):
        try:
            async for _ in requests:
                pass
            await asyncio.sleep(WAIT * 2)
        except asyncio.CancelledError:
            events["cancelled"] = context.cancelled()
            raise

    def forever():
        yield b"a"
        time.sleep(WAIT * 2)

    async def main():
        async with serving({"h": su(hang)}) as (_, port):
            error = await blocking(rpc_error, port, "h", "su", [b"a"], timeout=0.3)
            assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            for _ in range(1000):
                if "cancelled" in events:
                    break
                await asyncio.sleep(0.01)
        assert events["cancelled"] is True

    asyncio.run(main())


def test_a_task_cancelled_before_it_ran_still_ends_its_call():
    # stop() or the guard at the loop's end may cancel a call's task before
    # its first step: it never enters the server's code, yet its call is
    # ended (CANCELLED, not left to the client's deadline) and forgotten.
    ran = []

    async def echo(request, context):
        ran.append(request)
        return request

    async def main():
        async with serving({"e": uu(echo)}) as (server, port):
            accept = server._acceptor.set_result  # the server's _accept

            def accept_then_cancel(_):
                accept(_)
                for rpc in list(server._rpcs.values()):
                    server._cancel(rpc)

            server._acceptor.set_result = accept_then_cancel
            error = await blocking(rpc_error, port, "e", "uu", b"x", timeout=10)
            assert error.code() is grpc.StatusCode.CANCELLED
            assert not server._rpcs
        assert ran == []

    asyncio.run(main())


def test_handler_finishing_early_ends_the_client_stream():
    async def first_only(requests, context):
        async for r in requests:
            context.set_code(grpc.StatusCode.OUT_OF_RANGE)
            context.set_details("enough after " + r.decode())
            return b"unused"

    async def bidi_early(requests, context):
        await context.write(b"bye")

    def endless():
        i = 0
        while True:
            i += 1
            yield b"%d" % i
            time.sleep(0.001)

    def bidi(port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(_method("b"))(endless(), timeout=WAIT)
            return list(call), call.code()

    async def main():
        async with serving({"c": su(first_only), "b": ss(bidi_early)}) as (_, port):
            error = await blocking(rpc_error, port, "c", "su", endless())
            assert error.code() is grpc.StatusCode.OUT_OF_RANGE
            assert error.details() == "enough after 1"
            assert await blocking(bidi, port) == ([b"bye"], grpc.StatusCode.OK)

    asyncio.run(main())


# ---- interceptors -----------------------------------------------------------

_request_id = contextvars.ContextVar("request_id", default=None)


class _Recording(aio.ServerInterceptor):
    def __init__(self, name, log):
        self.name, self.log = name, log

    async def intercept_service(self, continuation, details):
        self.log.append((self.name, details.method))
        if self.name == "first":
            assert _request_id.get() is None  # each call starts from an empty context
            _request_id.set("rid-" + details.method)
        if details.method.endswith("/deny"):
            return None
        handler = await continuation(details)
        if self.name == "second" and details.method.endswith("/wrap"):
            inner = handler.unary_unary

            async def wrapped(request, context):
                return b"wrapped(" + await inner(request, context) + b")"

            return uu(wrapped)
        return handler


def test_server_interceptors_in_order_with_contextvars():
    log = []

    async def unary(request, context):
        return (_request_id.get() or "none").encode()

    async def main():
        interceptors = [_Recording("first", log), _Recording("second", log)]
        handlers = {"u": uu(unary), "wrap": uu(unary), "deny": uu(unary)}
        async with serving(handlers, interceptors=interceptors) as (_, port):
            assert (await blocking(rpc, port, "u", "uu", b""))[0] == b"rid-/t.S/u"
            assert (await blocking(rpc, port, "wrap", "uu", b""))[0] == b"wrapped(rid-/t.S/wrap)"
            error = await blocking(rpc_error, port, "deny", "uu", b"")
            assert error.code() is grpc.StatusCode.UNIMPLEMENTED
        assert log[:2] == [("first", "/t.S/u"), ("second", "/t.S/u")]
        assert ("second", "/t.S/deny") not in log

    asyncio.run(main())


def test_interceptors_must_be_server_interceptors():
    class NotOne:
        async def intercept_service(self, continuation, details):
            return await continuation(details)

    with pytest.raises(ValueError):
        aio.server(interceptors=[NotOne()])


# ---- server life cycle ------------------------------------------------------


def test_registered_method_handlers_and_generated_servicers():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "helloworld"))
    try:
        import helloworld_pb2
        import helloworld_pb2_grpc
    finally:
        sys.path.pop(0)

    class Greeter(helloworld_pb2_grpc.GreeterServicer):
        async def SayHello(self, request, context):
            return helloworld_pb2.HelloReply(message="Hello, " + request.name)

    async def registered(request, context):
        return b"registered"

    async def generic(request, context):
        return b"generic"

    async def main():
        server = aio.server()
        helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
        server.add_registered_method_handlers(SERVICE, {"r": uu(registered)})
        # The registered handler wins over a generic one for the same method.
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"r": uu(generic), "g": uu(generic)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        def client():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = helloworld_pb2_grpc.GreeterStub(channel)
                return stub.SayHello(helloworld_pb2.HelloRequest(name="aio"), timeout=WAIT).message

        assert await blocking(client) == "Hello, aio"
        assert (await blocking(rpc, port, "r", "uu", b""))[0] == b"registered"
        assert (await blocking(rpc, port, "g", "uu", b""))[0] == b"generic"
        await server.stop(None)

    asyncio.run(main())


def test_stop_with_grace_lets_calls_finish_and_refuses_new_ones():
    events = {}
    release = None

    async def slow(request, context):
        events.setdefault("started", asyncio.get_running_loop().time())
        await release.wait()
        return b"finished"

    async def fast(request, context):
        return b"fast"

    async def main():
        nonlocal release
        release = asyncio.Event()
        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"slow": uu(slow), "fast": uu(fast)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        in_flight = asyncio.ensure_future(blocking(rpc, port, "slow", "uu", b""))
        while "started" not in events:
            await asyncio.sleep(0.005)
        stopping = asyncio.ensure_future(server.stop(WAIT))
        await asyncio.sleep(0.1)
        assert not stopping.done()
        error = await blocking(rpc_error, port, "fast", "uu", b"", timeout=5)
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        release.set()
        assert (await in_flight)[0] == b"finished"
        await asyncio.wait_for(stopping, WAIT)
        assert await server.wait_for_termination(0) is False

    asyncio.run(main())


def test_stop_cancels_calls_after_grace_and_waits_for_handlers():
    events = []

    async def stubborn(request, context):
        try:
            await asyncio.sleep(WAIT * 2)
        except asyncio.CancelledError:
            events.append("cancelled")
            await asyncio.sleep(0.2)  # cleanup after cancellation; stop waits for it
            events.append("cleaned")
            raise

    async def main():
        for grace in (None, 0.2):
            events.clear()
            server = aio.server()
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                SERVICE, {"s": uu(stubborn)}),))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            call = asyncio.ensure_future(blocking(rpc_error, port, "s", "uu", b""))
            await asyncio.sleep(0.2)
            await asyncio.wait_for(server.stop(grace), WAIT)
            assert events == ["cancelled", "cleaned"], grace
            error = await call
            # grpcio's server ends them so: a status on the stream, not the
            # connection closed under it.
            assert error.code() is grpc.StatusCode.UNAVAILABLE, grace
            assert error.details() == "Cancelling all calls", grace
            await server.stop(None)  # idempotent

    asyncio.run(main())


def test_wait_for_termination_and_stop_from_a_handler():
    async def shutdown(request, context):
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(server.stop(1)))
        return b"bye"

    server = None

    async def main():
        nonlocal server
        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"x": uu(shutdown)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        assert await server.wait_for_termination(timeout=0.05) is True
        waiting = asyncio.ensure_future(server.wait_for_termination())
        assert (await blocking(rpc, port, "x", "uu", b""))[0] == b"bye"
        assert await asyncio.wait_for(waiting, WAIT) is False

    asyncio.run(main())


def test_start_twice_and_start_after_stop():
    async def main():
        server = aio.server()
        server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await server.start()  # running: nothing to do, as grpcio
        await server.stop(None)
        with pytest.raises(aio.UsageError):
            await server.start()
        with pytest.raises(ValueError):
            aio.server(maximum_concurrent_rpcs=0)

    asyncio.run(main())


def test_maximum_concurrent_rpcs():
    release = None

    async def hold(request, context):
        await release.wait()
        return b"done"

    async def main():
        nonlocal release
        release = asyncio.Event()
        async with serving({"h": uu(hold)}, maximum_concurrent_rpcs=1) as (_, port):
            first = asyncio.ensure_future(blocking(rpc, port, "h", "uu", b""))
            await asyncio.sleep(0.2)
            error = await blocking(rpc_error, port, "h", "uu", b"")
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            release.set()
            assert (await first)[0] == b"done"

    asyncio.run(main())


def test_server_compression_option():
    async def unary(request, context):
        return request

    async def main():
        async with serving({"u": uu(unary)}, compression=grpc.Compression.Gzip) as (_, port):
            assert (await blocking(rpc, port, "u", "uu", b"c" * 5000))[0] == b"c" * 5000

    asyncio.run(main())


def test_many_concurrent_calls():
    async def unary(request, context):
        await asyncio.sleep(0)
        return request

    def client(port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(_method("u"))
            futures = [call.future(b"%d" % i, timeout=WAIT) for i in range(300)]
            return [f.result() for f in futures]

    async def main():
        async with serving({"u": uu(unary)}) as (_, port):
            assert await blocking(client, port) == [b"%d" % i for i in range(300)]

    asyncio.run(main())


# ---- loops ------------------------------------------------------------------


def test_uvloop():
    import uvloop

    async def main():
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        async with serving({"u": uu(_co_unary), "b": ss(_co_bidi)}) as (_, port):
            assert (await blocking(rpc, port, "u", "uu", b"v"))[0] == b"u:v"
            assert (await blocking(rpc, port, "b", "ss", [b"1", b"2"]))[0] == [b"w:1", b"w:2"]

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_servers_on_several_loops_in_threads_and_a_sync_client():
    ports, ready, stop = {}, threading.Barrier(4), threading.Event()
    errors = []

    def run(n):
        async def unary(request, context):
            return b"%d:" % n + request

        async def main():
            async with serving({"u": uu(unary)}) as (_, port):
                ports[n] = port
                ready.wait(WAIT)
                while not stop.is_set():
                    await asyncio.sleep(0.01)

        try:
            asyncio.run(main())
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        ready.wait(WAIT)
        for n in range(3):
            assert rpc(ports[n], "u", "uu", b"x")[0] == b"%d:x" % n
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT)
    assert not errors


def test_a_second_asyncio_run():
    async def main(tag):
        async with serving({"u": uu(_co_unary)}) as (_, port):
            return (await blocking(rpc, port, "u", "uu", tag))[0]

    assert asyncio.run(main(b"1")) == b"u:1"
    assert asyncio.run(main(b"2")) == b"u:2"


# ---- the process ------------------------------------------------------------

_SCRIPT = textwrap.dedent("""
    import asyncio, os, sys, signal
    import grpc
    from grpc import aio

    async def unary(request, context):
        return request

    async def main():
        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "t.S", {"u": grpc.unary_unary_rpc_method_handler(unary)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            r = await asyncio.get_running_loop().run_in_executor(
                None, lambda: ch.unary_unary("/t.S/u")(b"ping", timeout=10))
        print("READY", r.decode(), flush=True)
        if sys.argv[1] == "wait":
            await server.wait_for_termination()
        # "return": main ends with the server still running

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        sys.exit(3)
    print("EXITED", flush=True)
""")


def _unbuffered_line(stream):
    """One line of a pipe, read a byte at a time: a buffered readline may
    take the lines after it too, which communicate() (reading the pipe's
    descriptor) then never sees."""
    data = b""
    while not data.endswith(b"\n"):
        byte = os.read(stream.fileno(), 1)
        if not byte:
            break
        data += byte
    return data.decode()


@pytest.mark.parametrize("how", ["ctrl-c", "return"])
def test_process_ends_cleanly_with_a_live_server(how, tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), "wait" if how == "ctrl-c" else "return"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _unbuffered_line(proc.stdout)
        assert line.strip() == "READY ping", proc.stderr.read()
        if how == "ctrl-c":
            proc.send_signal(2)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if how == "ctrl-c":
        assert proc.returncode == 3 and "INTERRUPTED" in out, err
    else:
        assert proc.returncode == 0 and "EXITED" in out, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


# ---- grpc-go's client against the aio server --------------------------------


@pytest.fixture(scope="module")
def aio_echo_port():
    """The aio Echo service (tests/aio_echo_service.py) on a loop in a thread."""
    started = threading.Event()
    box = {}

    def run():
        async def main():
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = stop = asyncio.Event()
            server = aio.server()
            server.add_generic_rpc_handlers((aio_echo_service.generic_handler(),))
            box["port"] = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            started.set()
            await stop.wait()
            await server.stop(None)

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(WAIT)
    yield box["port"]
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(WAIT)


GO_CASES = ["unary", "server_stream", "client_stream", "bidi", "metadata", "status", "deadline",
            "unimplemented"]


@pytest.mark.parametrize("case", GO_CASES)
def test_go_client_against_the_aio_server(gopeer_bin, aio_echo_port, case):
    proc = subprocess.run([gopeer_bin.client, "--target", f"127.0.0.1:{aio_echo_port}",
                           "--case", case, "--timeout", "60s"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}"
    assert f"PASS {case}" in proc.stdout


def test_aio_echo_service_with_grpcgo_sync_client(aio_echo_port):
    with grpc.insecure_channel(f"127.0.0.1:{aio_echo_port}") as channel:
        stub = echo_service.EchoStub(channel)
        assert stub.UnaryEcho(msg("hi"), timeout=WAIT).value == "hi"
        assert [r.value for r in stub.ServerStream(msg("2:p"), timeout=WAIT)] == ["p-0", "p-1"]
        assert stub.ClientStream(iter([msg("a"), msg("b")]), timeout=WAIT).value == "a,b"
        assert [r.value for r in stub.BidiStream(iter([msg("x"), msg("y")]), timeout=WAIT)] \
            == ["x", "y"]


# ---- grpcio-health-checking's aio HealthServicer ----------------------------


def test_grpcio_health_checking_aio_servicer_check_and_watch():
    # The companion package from PyPI, unmodified (make companions installs
    # it); called with grpc.aio's client.
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    async def main():
        servicer = health.aio.HealthServicer()
        server = aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                await servicer.set("svc", serving)
                response = await stub.Check(health_pb2.HealthCheckRequest(service="svc"), timeout=WAIT)
                assert response.status == serving
                with pytest.raises(aio.AioRpcError) as info:
                    await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=WAIT)
                assert info.value.code() is grpc.StatusCode.NOT_FOUND

                watch = stub.Watch(health_pb2.HealthCheckRequest(service="svc"), timeout=WAIT)
                assert (await watch.read()).status == serving
                await servicer.set("svc", not_serving)
                assert (await watch.read()).status == not_serving
                await servicer.enter_graceful_shutdown()
                await servicer.set("svc", serving)  # ignored once shutting down
                unknown = stub.Watch(health_pb2.HealthCheckRequest(service="later"), timeout=WAIT)
                assert (await unknown.read()).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
                unknown.cancel()
                watch.cancel()
                assert watch.cancelled()
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_aio_client_against_aio_server_four_shapes():
    async def main():
        handlers = {"u": uu(_co_unary), "s": us(_agen_server_stream), "c": su(_co_client_stream),
                    "b": ss(_co_bidi)}
        async with serving(handlers) as (_, port):
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                assert await channel.unary_unary(_method("u"))(b"a", timeout=WAIT) == b"u:a"
                got = [r async for r in channel.unary_stream(_method("s"))(b"s", timeout=WAIT)]
                assert got == [b"s-0", b"s-1", b"s-2"]

                async def requests():
                    for r in (b"x", b"y"):
                        yield r

                assert await channel.stream_unary(_method("c"))(requests(), timeout=WAIT) == b"x,y"
                call = channel.stream_stream(_method("b"))(timeout=WAIT)
                for r in (b"1", b"2"):
                    await call.write(r)
                    assert await call.read() == b"w:" + r
                await call.done_writing()
                assert await call.read() is aio.EOF
                assert await call.code() is grpc.StatusCode.OK
                # Many concurrent unary calls on one channel, one loop at both ends.
                unary = channel.unary_unary(_method("u"))
                results = await asyncio.gather(*(unary(b"%d" % i, timeout=WAIT) for i in range(200)))
                assert results == [b"u:%d" % i for i in range(200)]

    asyncio.run(main())


@pytest.mark.parametrize("style", ["write", "yield"])
def test_handler_cancelled_twice_still_sends_what_it_wrote(style):
    """A streaming handler's task is cancelled while the responses it wrote
    wait for room in the engine's send queue, then cancelled again while it
    flushes them: the client still gets every response, then CANCELLED.
    asyncio.run() ending a server's loop cancels the handlers' tasks, and
    the server's guard cancels them too, in an order the loop decides
    (Python 3.13 with uvloop: the second cancel came during the flush);
    the second cancel used to cancel the batch being queued and drop it
    (the client got 1,799-1,923 of 2,000 there)."""
    count = 200
    payload = b"r" * 65536  # 12.5 MiB: the send queue stays full a while

    async def cancel_twice_then_wait():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        task.cancel()  # the handler ends at the await below; _serve flushes...
        loop.call_soon(loop.call_soon, task.cancel)  # ... and this comes while it waits
        await asyncio.sleep(WAIT)

    async def by_write(request, context):
        for i in range(count):
            await context.write(b"%d " % i + payload)
        await cancel_twice_then_wait()

    async def by_yield(request, context):
        for i in range(count):
            yield b"%d " % i + payload
        await cancel_twice_then_wait()

    async def main():
        handler = by_write if style == "write" else by_yield
        async with serving({"S": grpc.unary_stream_rpc_method_handler(handler)}) as (_, port):
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_stream(_method("S"))(b"")
                await asyncio.sleep(0.2)  # both cancels come before the client reads
                got = []
                with pytest.raises(aio.AioRpcError) as caught:
                    while (message := await asyncio.wait_for(call.read(), WAIT)) is not aio.EOF:
                        got.append(int(message.split(b" ", 1)[0]))
                assert got == list(range(count))
                assert caught.value.code() == grpc.StatusCode.CANCELLED

    asyncio.run(main())
