"""The server side of grpcio's API, end to end over loopback sockets.

grpc.server and its configuration, life cycle, handler factories, the thread
pool contract, grpc.ServicerContext, maximum_concurrent_rpcs and server
interceptors. Expected behaviour is grpcio 1.85's, checked by running this
file against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in a venv holding grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import concurrent.futures
import contextlib
import os
import queue
import re
import socket
import stat
import threading
import time

import grpc
import pytest

import echo_service
from echo_service import msg

RPC_TIMEOUT = 10  # seconds, for every RPC that should succeed
WAIT = 10  # seconds, for every event that should happen

SERVICE = "grpcgo.testing.Server"


def method(name):
    return f"/{SERVICE}/{name}"


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


@contextlib.contextmanager
def serving(handlers=(), interceptors=None, options=None, maximum_concurrent_rpcs=None,
            max_workers=8, thread_name_prefix="userpool", address="127.0.0.1:0", pool=None):
    """A started grpc.server on loopback; yields (server, port). With pool,
    the server uses it and the pool is shut down (waiting) at the end."""
    own_pool = pool is None
    if own_pool:
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=thread_name_prefix
        )
    server = grpc.server(
        pool,
        handlers=handlers,
        interceptors=interceptors,
        options=options,
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    port = server.add_insecure_port(address)
    assert port > 0
    server.start()
    try:
        yield server, port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=not own_pool)


@contextlib.contextmanager
def channel_to(port, host="127.0.0.1"):
    with grpc.insecure_channel(f"{host}:{port}") as ch:
        yield ch


def generic(handlers, service=SERVICE):
    return grpc.method_handlers_generic_handler(service, handlers)


# -- grpc.server and its configuration ---------------------------------------------


def test_server_with_every_keyword():
    seen = []

    class Recorder(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            seen.append(handler_call_details.method)
            return continuation(handler_call_details)

    with serving(
        handlers=[echo_service.generic_handler()],
        interceptors=[Recorder()],
        options=[("grpc.max_receive_message_length", 1 << 20), ("grpc.so_reuseport", 0),
                 ("grpc.unknown_option_is_ignored", 1)],
        maximum_concurrent_rpcs=10,
    ) as (server, port):
        assert isinstance(server, grpc.Server)
        with channel_to(port) as ch:
            stub = echo_service.EchoStub(ch)
            assert stub.UnaryEcho(msg("k"), timeout=RPC_TIMEOUT) == msg("k")
    assert seen == [echo_service.UNARY]


def test_the_four_handler_factories():
    def unary_unary(request, context):
        return b"uu:" + request

    def unary_stream(request, context):
        for i in range(3):
            yield b"us:%s:%d" % (request, i)

    def stream_unary(request_iterator, context):
        return b"su:" + b"+".join(request_iterator)

    def stream_stream(request_iterator, context):
        for request in request_iterator:
            yield b"ss:" + request

    handlers = {
        "UU": grpc.unary_unary_rpc_method_handler(unary_unary),
        "US": grpc.unary_stream_rpc_method_handler(unary_stream),
        "SU": grpc.stream_unary_rpc_method_handler(stream_unary),
        "SS": grpc.stream_stream_rpc_method_handler(stream_stream),
    }
    uu = handlers["UU"]
    assert isinstance(uu, grpc.RpcMethodHandler)
    assert (uu.request_streaming, uu.response_streaming) == (False, False)
    assert uu.unary_unary is unary_unary
    assert (handlers["US"].request_streaming, handlers["US"].response_streaming) == (False, True)
    assert (handlers["SU"].request_streaming, handlers["SU"].response_streaming) == (True, False)
    assert (handlers["SS"].request_streaming, handlers["SS"].response_streaming) == (True, True)
    handler = generic(handlers)
    assert isinstance(handler, grpc.GenericRpcHandler)

    with serving(handlers=[handler]) as (_, port), channel_to(port) as ch:
        assert ch.unary_unary(method("UU"))(b"a", timeout=RPC_TIMEOUT) == b"uu:a"
        assert list(ch.unary_stream(method("US"))(b"b", timeout=RPC_TIMEOUT)) == [
            b"us:b:0", b"us:b:1", b"us:b:2"]
        assert ch.stream_unary(method("SU"))(iter([b"c", b"d"]), timeout=RPC_TIMEOUT) == b"su:c+d"
        assert list(ch.stream_stream(method("SS"))(iter([b"e", b"f"]), timeout=RPC_TIMEOUT)) == [
            b"ss:e", b"ss:f"]


def test_handler_serializers_are_used():
    handler = generic({
        "Up": grpc.unary_unary_rpc_method_handler(
            lambda request, context: request.upper(),
            request_deserializer=lambda data: data.decode(),
            response_serializer=lambda text: text.encode(),
        ),
    })
    with serving(handlers=[handler]) as (_, port), channel_to(port) as ch:
        call = ch.unary_unary(method("Up"), request_serializer=str.encode,
                              response_deserializer=bytes.decode)
        assert call("hello", timeout=RPC_TIMEOUT) == "HELLO"


def test_add_generic_rpc_handlers():
    first = generic({"A": grpc.unary_unary_rpc_method_handler(lambda r, c: b"first-a")})
    second = generic({
        "A": grpc.unary_unary_rpc_method_handler(lambda r, c: b"second-a"),
        "B": grpc.unary_unary_rpc_method_handler(lambda r, c: b"second-b"),
    })
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool)
    server.add_generic_rpc_handlers((first,))
    server.add_generic_rpc_handlers((second,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with channel_to(port) as ch:
            # Generic handlers are asked in the order they were added.
            assert ch.unary_unary(method("A"))(b"", timeout=RPC_TIMEOUT) == b"first-a"
            assert ch.unary_unary(method("B"))(b"", timeout=RPC_TIMEOUT) == b"second-b"
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def test_add_generic_rpc_handlers_rejects_non_handlers():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    server = grpc.server(pool)
    with pytest.raises(AttributeError):
        server.add_generic_rpc_handlers((object(),))
    pool.shutdown(wait=False)


def test_registered_method_handlers_win_over_generic():
    generic_handler = generic({
        "Both": grpc.unary_unary_rpc_method_handler(lambda r, c: b"generic"),
        "GenericOnly": grpc.unary_unary_rpc_method_handler(lambda r, c: b"generic-only"),
    })
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[generic_handler])
    server.add_registered_method_handlers(SERVICE, {
        "Both": grpc.unary_unary_rpc_method_handler(lambda r, c: b"registered"),
        "RegisteredOnly": grpc.unary_unary_rpc_method_handler(lambda r, c: b"registered-only"),
    })
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with channel_to(port) as ch:
            def call(name):
                return ch.unary_unary(method(name), _registered_method=True)(
                    b"", timeout=RPC_TIMEOUT)

            assert call("Both") == b"registered"
            assert call("GenericOnly") == b"generic-only"
            assert call("RegisteredOnly") == b"registered-only"
            with pytest.raises(grpc.RpcError) as info:
                call("Neither")
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


# -- ports ------------------------------------------------------------------------


def test_add_insecure_port_zero_returns_the_chosen_port():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool, handlers=[echo_service.generic_handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    assert isinstance(port, int)
    assert 0 < port < 65536
    # The port is really bound: a plain socket cannot take it.
    with socket.socket() as s:
        with pytest.raises(OSError):
            s.bind(("127.0.0.1", port))
    server.start()
    try:
        with channel_to(port) as ch:
            assert echo_service.EchoStub(ch).UnaryEcho(msg("p"), timeout=RPC_TIMEOUT) == msg("p")
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


def test_add_insecure_port_explicit_port_returns_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool)
    try:
        assert server.add_insecure_port(f"127.0.0.1:{free}") == free
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.mark.parametrize("listen", [False, True])
def test_add_insecure_port_already_bound_raises_runtime_error(listen):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # no SO_REUSEPORT
        if listen:
            s.listen()
        taken = s.getsockname()[1]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        server = grpc.server(pool)
        try:
            with pytest.raises(RuntimeError):
                server.add_insecure_port(f"127.0.0.1:{taken}")
        finally:
            server.stop(None).wait(WAIT)
            pool.shutdown(wait=False)


@pytest.mark.parametrize("form", ["unix:{}", "unix://{}"])
def test_unix_port_takes_over_a_socket_file_left_there(tmp_path, form):
    # A server killed (or ended by Ctrl-C under grpcio) leaves its socket file;
    # the next one binds the path as C-core does, removing the socket first.
    path = str(tmp_path / "left.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
    assert stat.S_ISSOCK(os.stat(path).st_mode)  # it outlives the closed socket
    with serving(handlers=[echo_service.generic_handler()], address=form.format(path)) as (
        server,
        port,
    ):
        assert port == 1
        with grpc.insecure_channel("unix:" + path) as ch:
            assert echo_service.EchoStub(ch).UnaryEcho(msg("u"), timeout=RPC_TIMEOUT) == msg("u")


def test_peer_of_a_unix_socket_client_is_unix_colon(tmp_path):
    # A client's unix socket has no name: grpcio's context.peer() is "unix:"
    # (Go names it "@", which is no abstract socket).
    seen = []

    def peer(request, context):
        seen.append(context.peer())
        return request

    path = str(tmp_path / "s.sock")
    handlers = [generic({"Peer": grpc.unary_unary_rpc_method_handler(peer)})]
    with serving(handlers=handlers, address="unix:" + path), \
            grpc.insecure_channel("unix:" + path) as ch:
        assert ch.unary_unary(method("Peer"))(b"p", timeout=RPC_TIMEOUT) == b"p"
    assert seen == ["unix:"]


def test_unix_port_on_a_file_that_is_no_socket_raises_and_leaves_it(tmp_path):
    path = tmp_path / "plain"
    path.write_text("keep me")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool)
    try:
        with pytest.raises(RuntimeError, match="Failed to bind to address unix:"):
            server.add_insecure_port(f"unix:{path}")
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)
    assert path.read_text() == "keep me"


# -- life cycle --------------------------------------------------------------------


def test_stop_returns_an_event_that_gets_set():
    with serving(handlers=[echo_service.generic_handler()]) as (server, port):
        with channel_to(port) as ch:
            assert echo_service.EchoStub(ch).UnaryEcho(msg("s"), timeout=RPC_TIMEOUT) == msg("s")
        event = server.stop(1.0)
        assert isinstance(event, threading.Event)
        assert event.wait(WAIT)
        with channel_to(port) as ch:
            with pytest.raises(grpc.RpcError) as info:
                echo_service.EchoStub(ch).UnaryEcho(msg("after"), timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_stop_with_grace_lets_running_calls_finish():
    recorder = _Recorder()
    with serving(handlers=[recorder.handler()]) as (server, port), channel_to(port) as ch:
        future = ch.unary_unary(method("Hold")).future(b"held", timeout=RPC_TIMEOUT)
        assert recorder.event("hold_started").wait(WAIT)
        event = server.stop(5)
        time.sleep(0.1)
        assert not event.is_set()
        recorder.event("hold_release").set()
        assert future.result(timeout=WAIT) == b"held"
        assert event.wait(WAIT)


def test_a_call_that_outlives_the_grace_ends_with_grpcios_status():
    recorder = _Recorder()
    with serving(handlers=[recorder.handler()]) as (server, port), channel_to(port) as ch:
        future = ch.unary_unary(method("Hold")).future(b"held", timeout=RPC_TIMEOUT)
        assert recorder.event("hold_started").wait(WAIT)
        event = server.stop(0.2)
        error = future.exception(timeout=WAIT)
        recorder.event("hold_release").set()
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error.details() == "Cancelling all calls"
        assert event.wait(WAIT)


def test_stop_without_grace_cancels_running_calls():
    recorder = _Recorder()
    with serving(handlers=[recorder.handler()]) as (server, port), channel_to(port) as ch:
        call = ch.unary_stream(method("Ticks"))(b"", timeout=RPC_TIMEOUT)
        assert next(call) == b"tick"
        event = server.stop(None)
        with pytest.raises(grpc.RpcError) as info:
            for _ in call:
                pass
        # As grpcio's server ends them: a status on the stream, not the
        # connection closed under it ("Stream removed" at a grpcio client).
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == "Cancelling all calls"
        assert event.wait(WAIT)
        # The handler saw its call end.
        assert recorder.event("ticks_ended").wait(WAIT)


def test_wait_for_termination():
    with serving(handlers=[echo_service.generic_handler()]) as (server, _):
        assert server.wait_for_termination(timeout=0.1) is True
        threading.Timer(0.2, server.stop, args=(None,)).start()
        assert server.wait_for_termination(timeout=WAIT) is False
        assert server.wait_for_termination(timeout=0.1) is False


def test_start_twice_and_start_after_stop():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    server = grpc.server(pool)
    server.add_insecure_port("127.0.0.1:0")
    server.start()
    with pytest.raises(ValueError):
        server.start()
    assert server.stop(None).wait(WAIT)
    pool.shutdown(wait=False)


# -- the user's thread pool --------------------------------------------------------


def test_handlers_run_in_the_users_thread_pool():
    names = queue.Queue()

    def here():
        names.put(threading.current_thread().name)

    def uu(request, context):
        here()
        return request

    def us(request, context):
        here()
        yield request

    def su(request_iterator, context):
        here()
        return b"".join(request_iterator)

    def ss(request_iterator, context):
        here()
        for request in request_iterator:
            yield request

    handler = generic({
        "UU": grpc.unary_unary_rpc_method_handler(uu),
        "US": grpc.unary_stream_rpc_method_handler(us),
        "SU": grpc.stream_unary_rpc_method_handler(su),
        "SS": grpc.stream_stream_rpc_method_handler(ss),
    })
    with serving(handlers=[handler], thread_name_prefix="userpool") as (_, port), \
            channel_to(port) as ch:
        ch.unary_unary(method("UU"))(b"x", timeout=RPC_TIMEOUT)
        list(ch.unary_stream(method("US"))(b"x", timeout=RPC_TIMEOUT))
        ch.stream_unary(method("SU"))(iter([b"x"]), timeout=RPC_TIMEOUT)
        list(ch.stream_stream(method("SS"))(iter([b"x"]), timeout=RPC_TIMEOUT))
    got = [names.get(timeout=WAIT) for _ in range(4)]
    for name in got:
        assert name.startswith("userpool"), got


def test_pool_size_bounds_concurrency():
    running = []
    peak = []
    lock = threading.Lock()

    def handler(request, context):
        with lock:
            running.append(1)
            peak.append(len(running))
        time.sleep(0.2)
        with lock:
            running.pop()
        return request

    h = generic({"Slow": grpc.unary_unary_rpc_method_handler(handler)})
    with serving(handlers=[h], max_workers=2) as (_, port), channel_to(port) as ch:
        call = ch.unary_unary(method("Slow"))
        futures = [call.future(b"%d" % i, timeout=RPC_TIMEOUT) for i in range(6)]
        assert [f.result(timeout=WAIT) for f in futures] == [b"%d" % i for i in range(6)]
    assert max(peak) <= 2


_ECHO = generic({"E": grpc.unary_unary_rpc_method_handler(lambda request, context: request)})


def _counting_submits(pool):
    """Counts the tasks submitted to pool (an instance attribute shadows the
    method, so the pool's type stays ThreadPoolExecutor)."""
    count = [0]
    submit = pool.submit

    def counted(*args, **kwargs):
        count[0] += 1
        return submit(*args, **kwargs)

    pool.submit = counted
    return count


def test_back_to_back_calls_go_straight_to_a_lingering_pool_thread():
    # A pool thread that finished a call takes the next one directly, with
    # no dispatcher hop and no new task: 40 sequential calls need far fewer
    # than 40 submits (the slack allows for a slow machine).
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="linger")
    submits = _counting_submits(pool)
    names = set()

    def echo(request, context):
        names.add(threading.current_thread().name)
        return request

    handler = generic({"E": grpc.unary_unary_rpc_method_handler(echo)})
    with serving(handlers=[handler], pool=pool) as (_, port), channel_to(port) as ch:
        call = ch.unary_unary(method("E"))
        for i in range(40):
            assert call(b"%d" % i, timeout=RPC_TIMEOUT) == b"%d" % i
    assert submits[0] <= 20, submits[0]
    assert names and all(n.startswith("linger") for n in names), names


def test_concurrent_calls_mostly_go_straight_to_lingering_pool_threads():
    # Eight callers at once: threads that finish a call linger, and a post
    # whose call another thread took first does not send them back to the
    # pool, so most calls need no new task (the slack allows for a slow
    # machine; without lingering every call is a task).
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
    submits = _counting_submits(pool)
    calls = 8 * 100
    with serving(handlers=[_ECHO], pool=pool) as (_, port), channel_to(port) as ch:
        call = ch.unary_unary(method("E"))

        def caller():
            for _ in range(calls // 8):
                assert call(b"x", timeout=RPC_TIMEOUT) == b"x"

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 3)
        assert not any(t.is_alive() for t in threads)
    assert submits[0] <= calls // 4, submits[0]


def test_other_executors_get_one_task_per_call():
    # Lingering is only for ThreadPoolExecutor: any other executor sees
    # every call as a task of its own, as grpcio gives it.
    class Inline(concurrent.futures.Executor):
        def __init__(self):
            self.tasks = 0
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

        def submit(self, fn, *args, **kwargs):
            self.tasks += 1
            return self._pool.submit(fn, *args, **kwargs)

        def shutdown(self, wait=True, **kwargs):
            self._pool.shutdown(wait=wait)

    pool = Inline()
    with serving(handlers=[_ECHO], pool=pool) as (_, port), channel_to(port) as ch:
        for i in range(10):
            assert ch.unary_unary(method("E"))(b"x", timeout=RPC_TIMEOUT) == b"x"
    assert pool.tasks == 10


def test_the_pools_own_tasks_still_run_while_threads_linger():
    # One worker: after a call it may linger; a task the application submits
    # to the same pool must still run (the thread goes back to its pool), and
    # calls keep being served.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    with serving(handlers=[_ECHO], pool=pool) as (_, port), channel_to(port) as ch:
        call = ch.unary_unary(method("E"))
        for i in range(5):
            assert call(b"a", timeout=RPC_TIMEOUT) == b"a"
            assert pool.submit(lambda: i).result(timeout=WAIT) == i
            assert call(b"b", timeout=RPC_TIMEOUT) == b"b"


def test_stop_releases_lingering_pool_threads():
    # After stop, every pool thread is back in its pool: shutdown(wait=True)
    # returns, and the pool takes new tasks until then.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[_ECHO])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with channel_to(port) as ch:
        futures = [ch.unary_unary(method("E")).future(b"x", timeout=RPC_TIMEOUT) for _ in range(8)]
        assert all(f.result(timeout=WAIT) == b"x" for f in futures)
    assert server.stop(None).wait(WAIT)
    done = threading.Event()
    threading.Thread(target=lambda: (pool.shutdown(wait=True), done.set()), daemon=True).start()
    assert done.wait(WAIT)


# -- ServicerContext -----------------------------------------------------------------


class _Recorder:
    """A service whose handlers record what they saw of their context."""

    def __init__(self):
        self.seen = {}
        self.events = {}

    def event(self, name):
        return self.events.setdefault(name, threading.Event())

    def handler(self):
        return generic({
            "Inspect": grpc.unary_unary_rpc_method_handler(self.inspect),
            "InitialTwice": grpc.unary_unary_rpc_method_handler(self.initial_twice),
            "InitialStream": grpc.unary_stream_rpc_method_handler(self.initial_stream),
            "Trailing": grpc.unary_unary_rpc_method_handler(self.trailing),
            "Abort": grpc.unary_unary_rpc_method_handler(self.abort),
            "AbortStream": grpc.unary_stream_rpc_method_handler(self.abort_stream),
            "SetCode": grpc.unary_unary_rpc_method_handler(self.set_code),
            "SetCodeStream": grpc.unary_stream_rpc_method_handler(self.set_code_stream),
            "Callback": grpc.unary_unary_rpc_method_handler(self.callback),
            "Cancel": grpc.unary_unary_rpc_method_handler(self.cancel),
            "CancelStream": grpc.unary_stream_rpc_method_handler(self.cancel_stream),
            "Hold": grpc.unary_unary_rpc_method_handler(self.hold),
            "Ticks": grpc.unary_stream_rpc_method_handler(self.ticks),
        })

    def inspect(self, request, context):
        self.seen["metadata"] = tuple(context.invocation_metadata())
        self.seen["peer"] = context.peer()
        self.seen["is_active"] = context.is_active()
        self.seen["time_remaining"] = context.time_remaining()
        return request

    def initial_twice(self, request, context):
        context.send_initial_metadata((("x-initial", "once"), ("x-initial-bin", b"\x00\xff")))
        try:
            context.send_initial_metadata((("x-initial", "twice"),))
        except ValueError as e:
            self.seen["second"] = e
        else:
            self.seen["second"] = None
        return request

    def initial_stream(self, request, context):
        context.send_initial_metadata((("x-initial", "stream"),))
        yield b"one"
        self.event("initial_stream_continue").wait(WAIT)
        yield b"two"

    def trailing(self, request, context):
        context.set_trailing_metadata((("x-trailing", "t"), ("x-trailing-bin", b"\x01\x02")))
        return request

    def abort(self, request, context):
        try:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "go away")
        except BaseException as e:  # noqa: B036 - we re-raise
            self.seen["abort_raised"] = e
            raise
        self.seen["after_abort"] = True
        return request

    def abort_stream(self, request, context):
        yield b"before"
        context.abort(grpc.StatusCode.DATA_LOSS, "lost it")
        yield b"never"

    def set_code(self, request, context):
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("not here")
        return request

    def set_code_stream(self, request, context):
        yield b"a"
        context.set_code(grpc.StatusCode.UNAVAILABLE)
        context.set_details("try later")

    def callback(self, request, context):
        done = self.event("callback")
        self.seen["add_callback"] = context.add_callback(done.set)
        self.seen["callback_early"] = done.is_set()
        return request

    def cancel(self, request, context):
        context.cancel()
        return request

    def cancel_stream(self, request, context):
        yield b"first"
        self.event("cancel_stream_go").wait(WAIT)
        context.cancel()
        self.event("cancel_stream_done").set()
        yield b"after-cancel"

    def ticks(self, request, context):
        deadline = time.monotonic() + WAIT
        while context.is_active() and time.monotonic() < deadline:
            yield b"tick"
            time.sleep(0.02)
        if not context.is_active():
            self.event("ticks_ended").set()

    def hold(self, request, context):
        self.event("hold_started").set()
        self.event("hold_release").wait(WAIT)
        return request


@pytest.fixture(scope="module")
def recorder_server():
    recorder = _Recorder()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(pool, handlers=[recorder.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    ipv6 = HAS_IPV6 and server.add_insecure_port(f"[::1]:{port}") == port
    server.start()
    try:
        yield recorder, port, ipv6
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)


@pytest.fixture
def rec(recorder_server):
    recorder, port, _ = recorder_server
    recorder.seen.clear()
    recorder.events.clear()
    with channel_to(port) as ch:
        yield recorder, ch


def test_invocation_metadata(rec):
    recorder, ch = rec
    md = (("x-key", "value"), ("x-multi", "1"), ("x-multi", "2"), ("x-data-bin", b"\x00\xff"))
    ch.unary_unary(method("Inspect"))(b"", timeout=RPC_TIMEOUT, metadata=md)
    seen = recorder.seen["metadata"]
    for item in md:
        assert item in seen
    assert [v for k, v in seen if k == "x-multi"] == ["1", "2"]
    for key, value in seen:
        assert isinstance(key, str)
        assert isinstance(value, bytes if key.endswith("-bin") else str)
    assert all(k != ":authority" and not k.startswith(":") for k, _ in seen)


def test_invocation_metadata_items_are_metadatum_tuples(rec):
    recorder, ch = rec
    ch.unary_unary(method("Inspect"))(b"", timeout=RPC_TIMEOUT, metadata=(("x-a", "b"),))
    item = next(m for m in recorder.seen["metadata"] if m[0] == "x-a")
    assert item.key == "x-a" and item.value == "b"
    assert item == ("x-a", "b")


def test_peer_ipv4(rec):
    recorder, ch = rec
    ch.unary_unary(method("Inspect"))(b"", timeout=RPC_TIMEOUT)
    peer = recorder.seen["peer"]
    m = re.fullmatch(r"ipv4:127\.0\.0\.1:(\d+)", peer)
    assert m, peer
    assert 0 < int(m.group(1)) < 65536


def test_peer_is_each_calls_own_connection(recorder_server):
    # Calls alternating between two connections see two peers, each
    # always its own (the engine keeps the last address it formatted).
    recorder, port, _ = recorder_server
    seen = {0: set(), 1: set()}
    with channel_to(port) as a, grpc.insecure_channel(f"localhost:{port}") as b:
        for i in range(6):
            ch = (a, b)[i % 2]
            ch.unary_unary(method("Inspect"))(b"", timeout=RPC_TIMEOUT)
            seen[i % 2].add(recorder.seen["peer"])
    assert len(seen[0]) == 1 and len(seen[1]) == 1, seen
    assert seen[0] != seen[1], seen


def test_peer_ipv6(recorder_server):
    recorder, port, ipv6 = recorder_server
    if not ipv6:
        pytest.skip("no IPv6 loopback on this machine")
    with grpc.insecure_channel(f"ipv6:[::1]:{port}") as ch:
        ch.unary_unary(method("Inspect"))(b"", timeout=RPC_TIMEOUT)
    peer = recorder.seen["peer"]
    # grpcio percent-encodes the brackets of an IPv6 peer.
    m = re.fullmatch(r"ipv6:%5B::1%5D:(\d+)", peer)
    assert m, peer


def test_is_active_while_running(rec):
    recorder, ch = rec
    ch.unary_unary(method("Inspect"))(b"", timeout=RPC_TIMEOUT)
    assert recorder.seen["is_active"] is True


def test_time_remaining_without_deadline(rec):
    # The ServicerContext docstring says None; grpcio 1.85 returns the time
    # left to its infinite deadline, a float of about 9.2e18.
    recorder, ch = rec
    ch.unary_unary(method("Inspect"))(b"", timeout=None)
    remaining = recorder.seen["time_remaining"]
    assert isinstance(remaining, float)
    assert remaining > 1e9


def test_time_remaining_with_deadline(rec):
    recorder, ch = rec
    ch.unary_unary(method("Inspect"))(b"", timeout=5)
    remaining = recorder.seen["time_remaining"]
    assert isinstance(remaining, float)
    # grpc-go and C-core may round the deadline on the wire up a little.
    assert 0 < remaining <= 5.1


def test_send_initial_metadata(rec):
    recorder, ch = rec
    response, call = ch.unary_unary(method("InitialTwice")).with_call(b"r", timeout=RPC_TIMEOUT)
    assert response == b"r"
    initial = [m for m in call.initial_metadata() if m[0].startswith("x-")]
    assert sorted(initial) == [("x-initial", "once"), ("x-initial-bin", b"\x00\xff")]
    assert isinstance(recorder.seen["second"], ValueError)


def test_send_initial_metadata_reaches_the_client_before_the_end(rec):
    recorder, ch = rec
    call = ch.unary_stream(method("InitialStream"))(b"", timeout=RPC_TIMEOUT)
    # The handler is blocked after its first message; headers are already here.
    assert [m for m in call.initial_metadata() if m[0].startswith("x-")] == [
        ("x-initial", "stream")]
    assert next(call) == b"one"
    recorder.event("initial_stream_continue").set()
    assert list(call) == [b"two"]


def test_set_trailing_metadata(rec):
    _, ch = rec
    response, call = ch.unary_unary(method("Trailing")).with_call(b"t", timeout=RPC_TIMEOUT)
    assert response == b"t"
    trailing = [m for m in call.trailing_metadata() if m[0].startswith("x-")]
    assert sorted(trailing) == [("x-trailing", "t"), ("x-trailing-bin", b"\x01\x02")]


def test_abort(rec):
    recorder, ch = rec
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Abort"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == "go away"
    assert isinstance(recorder.seen["abort_raised"], Exception)
    assert "after_abort" not in recorder.seen


def test_abort_in_a_response_stream(rec):
    _, ch = rec
    call = ch.unary_stream(method("AbortStream"))(b"", timeout=RPC_TIMEOUT)
    assert next(call) == b"before"
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() is grpc.StatusCode.DATA_LOSS
    assert info.value.details() == "lost it"


def test_set_code_and_details(rec):
    _, ch = rec
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("SetCode"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "not here"

    call = ch.unary_stream(method("SetCodeStream"))(b"", timeout=RPC_TIMEOUT)
    assert next(call) == b"a"
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == "try later"


def test_add_callback_runs_when_the_rpc_ends(rec):
    recorder, ch = rec
    assert ch.unary_unary(method("Callback"))(b"c", timeout=RPC_TIMEOUT) == b"c"
    assert recorder.seen["add_callback"] is True
    assert recorder.seen["callback_early"] is False
    assert recorder.event("callback").wait(WAIT)


def test_cancel_unary(rec):
    recorder, ch = rec
    with pytest.raises(grpc.RpcError) as info:
        ch.unary_unary(method("Cancel"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() is grpc.StatusCode.CANCELLED


def test_cancel_stream(rec):
    recorder, ch = rec
    call = ch.unary_stream(method("CancelStream"))(b"", timeout=RPC_TIMEOUT)
    assert next(call) == b"first"
    recorder.event("cancel_stream_go").set()
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() is grpc.StatusCode.CANCELLED
    assert recorder.event("cancel_stream_done").wait(WAIT)


# -- maximum_concurrent_rpcs ---------------------------------------------------------


def test_maximum_concurrent_rpcs():
    recorder = _Recorder()
    with serving(handlers=[recorder.handler()], maximum_concurrent_rpcs=1,
                 max_workers=4) as (_, port), channel_to(port) as ch:
        hold = ch.unary_unary(method("Hold"))
        first = hold.future(b"first", timeout=RPC_TIMEOUT)
        try:
            assert recorder.event("hold_started").wait(WAIT)
            with pytest.raises(grpc.RpcError) as info:
                hold(b"second", timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert info.value.details() == "Concurrent RPC limit exceeded!"
        finally:
            recorder.event("hold_release").set()
        assert first.result(timeout=WAIT) == b"first"
        # Once the first call ended there is room again.
        recorder.events.clear()
        recorder.event("hold_release").set()
        assert hold(b"third", timeout=RPC_TIMEOUT) == b"third"


# -- interceptors ----------------------------------------------------------------------


class _Tagger(grpc.ServerInterceptor):
    def __init__(self, tag, log, replace=None):
        self.tag = tag
        self.log = log
        self.replace = replace

    def intercept_service(self, continuation, handler_call_details):
        self.log.append((self.tag, handler_call_details.method,
                         dict(handler_call_details.invocation_metadata).get("x-who")))
        if self.replace is not None and handler_call_details.method == method("Replaced"):
            return self.replace
        return continuation(handler_call_details)


def test_interceptors_run_in_order_and_can_replace_the_handler():
    log = []
    replacement = grpc.unary_unary_rpc_method_handler(lambda r, c: b"from-interceptor")
    handler = generic({
        "Plain": grpc.unary_unary_rpc_method_handler(lambda r, c: b"plain"),
        "Replaced": grpc.unary_unary_rpc_method_handler(lambda r, c: b"original"),
    })
    interceptors = [_Tagger("a", log), _Tagger("b", log, replacement), _Tagger("c", log)]
    with serving(handlers=[handler], interceptors=interceptors) as (_, port), \
            channel_to(port) as ch:
        md = (("x-who", "me"),)
        assert ch.unary_unary(method("Plain"))(b"", timeout=RPC_TIMEOUT, metadata=md) == b"plain"
        assert log == [("a", method("Plain"), "me"), ("b", method("Plain"), "me"),
                       ("c", method("Plain"), "me")]
        del log[:]
        assert ch.unary_unary(method("Replaced"))(b"", timeout=RPC_TIMEOUT,
                                                   metadata=md) == b"from-interceptor"
        # "b" answered without calling its continuation: "c" never ran.
        assert log == [("a", method("Replaced"), "me"), ("b", method("Replaced"), "me")]


def test_interceptor_returning_none_gives_unimplemented():
    class Deny(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            return None

    with serving(handlers=[echo_service.generic_handler()], interceptors=[Deny()]) as (_, port), \
            channel_to(port) as ch:
        with pytest.raises(grpc.RpcError) as info:
            echo_service.EchoStub(ch).UnaryEcho(msg("x"), timeout=RPC_TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_interceptor_wrapping_the_behaviour():
    class Wrap(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            inner = continuation(handler_call_details)

            def behaviour(request, context):
                return b"[" + inner.unary_unary(request, context) + b"]"

            return grpc.unary_unary_rpc_method_handler(behaviour)

    handler = generic({"Plain": grpc.unary_unary_rpc_method_handler(lambda r, c: r)})
    with serving(handlers=[handler], interceptors=[Wrap()]) as (_, port), channel_to(port) as ch:
        assert ch.unary_unary(method("Plain"))(b"w", timeout=RPC_TIMEOUT) == b"[w]"
