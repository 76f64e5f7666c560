"""Channel and server options, end to end over loopback sockets.

grpcio's channel arguments as grpc.insecure_channel and grpc.server take
them: message size limits (-1 unlimited), keepalive and ping settings,
connection age and idleness, max_concurrent_streams, user agents,
default_authority, retries (enable_retries and a service_config retry
policy), load balancing (lb_policy_name, service_config), so_reuseport,
and what happens to options grpcio does not know. (test_status.py covers
the message size limits themselves.) Expected behaviour is grpcio 1.85's,
checked by running this file against grpcio (GRPCGO_TEST_ALLOW_GRPCIO=1 in
a venv holding grpcio).

Every RPC has a timeout; every wait is bounded.
"""

import asyncio
import concurrent.futures
import contextlib
import json
import queue
import threading
import time

import grpc
import pytest

import h2proxy

RPC_TIMEOUT = 10  # seconds, for every RPC that should end by itself
WAIT = 10  # seconds, for every event that should happen
MiB = 1 << 20

SERVICE = "grpcgo.testing.Options"


def method(name):
    return f"/{SERVICE}/{name}"


class _Service:
    def __init__(self, name="server"):
        self.name = name
        self.lock = threading.Lock()
        self.seen = {}
        self.attempts = 0
        self.events = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def metadata(self, request, context):
        self.seen["metadata"] = tuple(context.invocation_metadata())
        return b"ok"

    def big_header(self, request, context):
        context.send_initial_metadata((("x-big", "v" * int(request)),))
        return b"ok"

    def who(self, request, context):
        return self.name.encode()

    def flaky(self, request, context):
        """Fails UNAVAILABLE twice, then succeeds (counting attempts)."""
        with self.lock:
            self.attempts += 1
            attempt = self.attempts
        if attempt % 3:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return b"attempt %d" % attempt

    def length(self, request, context):
        return b"%d" % len(request)

    def sized(self, request, context):
        return bytes(int(request))

    def hold(self, request, context):
        self.event("hold_started").set()
        deadline = time.monotonic() + WAIT
        while (context.is_active() and not self.event("release").is_set()
               and time.monotonic() < deadline):
            time.sleep(0.005)
        self.seen["hold"] = "active" if context.is_active() else "ended"
        self.event("hold_ended").set()
        return request

    def ticks(self, request, context):
        """A tick every 10 ms for the seconds the request names."""
        deadline = time.monotonic() + float(request)
        while context.is_active() and time.monotonic() < deadline:
            yield b"t"
            time.sleep(0.01)

    def handler(self):
        uu = grpc.unary_unary_rpc_method_handler
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Metadata": uu(self.metadata),
            "BigHeader": uu(self.big_header),
            "Who": uu(self.who),
            "Flaky": uu(self.flaky),
            "Length": uu(self.length),
            "Sized": uu(self.sized),
            "Hold": uu(self.hold),
            "Ticks": grpc.unary_stream_rpc_method_handler(self.ticks),
        })


class _Server:
    def __init__(self, service, options=None, port=0):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        self.server = grpc.server(self.pool, handlers=[service.handler()], options=options)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        assert self.port > 0
        self.server.start()

    def close(self):
        self.server.stop(None).wait(WAIT)
        self.pool.shutdown(wait=False)


@contextlib.contextmanager
def serving(service=None, options=None, port=0):
    service = service or _Service()
    server = _Server(service, options, port)
    try:
        yield server.port
    finally:
        service.event("release").set()
        server.close()


@pytest.fixture(scope="module")
def served():
    service = _Service()
    with serving(service) as port:
        yield service, port


def _user_agent(metadata):
    values = [v for k, v in metadata if k == "user-agent"]
    assert len(values) == 1, metadata
    return values[0]


# -- message size limits ---------------------------------------------------------------


def test_server_unlimited_message_sizes():
    big = 6 * MiB
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with serving(options=options) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            assert ch.unary_unary(method("Length"))(bytes(big), timeout=RPC_TIMEOUT) == \
                b"%d" % big
            assert len(ch.unary_unary(method("Sized"))(b"%d" % big, timeout=RPC_TIMEOUT)) == big


# -- metadata size limits ---------------------------------------------------------------
# grpcio: grpc.max_metadata_size (soft, default 8 KiB) and
# grpc.absolute_max_metadata_size (hard, default 16 KiB) bound the header
# blocks a server or a channel receives; over the hard one is
# RESOURCE_EXHAUSTED. (Between the two, grpcio refuses at random.)

ROOMY = [("grpc.max_metadata_size", 65536), ("grpc.absolute_max_metadata_size", 65536)]
BIG = (("x-big", "v" * 20000),)


def _exhausted(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, info.value


def test_metadata_size_options_raise_the_limits():
    with serving(options=ROOMY) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=ROOMY) as ch:
            assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT,
                                                      metadata=BIG) == b"ok"
            _, call = ch.unary_unary(method("BigHeader")).with_call(b"20000",
                                                                    timeout=RPC_TIMEOUT)
            assert len(dict(call.initial_metadata())["x-big"]) == 20000
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            _exhausted(lambda: ch.unary_unary(method("BigHeader"))(b"20000",
                                                                   timeout=RPC_TIMEOUT))
    with serving() as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=ROOMY) as ch:
            _exhausted(lambda: ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT,
                                                                  metadata=BIG))


def test_metadata_limits_below_any_response_refuse_every_response():
    tight = [("grpc.max_metadata_size", 40), ("grpc.absolute_max_metadata_size", 40)]
    with serving() as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=tight) as ch:
            _exhausted(lambda: ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT))
            _exhausted(lambda: list(ch.unary_stream(method("Ticks"))(b"0.05",
                                                                     timeout=RPC_TIMEOUT)))


# -- user agents and authority --------------------------------------------------------------


def test_primary_user_agent_reaches_the_server(served):
    service, port = served
    options = [("grpc.primary_user_agent", "grpcgo-test/1.0")]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT) == b"ok"
    agent = _user_agent(service.seen["metadata"])
    assert agent.startswith("grpcgo-test/1.0 ")
    # The library's own part follows.
    assert len(agent) > len("grpcgo-test/1.0 ")


def test_primary_user_agent_as_bytes(served):
    service, port = served
    options = [(b"grpc.primary_user_agent", b"bytes-agent/2")]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT) == b"ok"
    assert _user_agent(service.seen["metadata"]).startswith("bytes-agent/2 ")


def test_secondary_user_agent_goes_last(served):
    service, port = served
    options = [("grpc.secondary_user_agent", "suffix/3")]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT) == b"ok"
    agent = _user_agent(service.seen["metadata"])
    assert agent.endswith(" suffix/3")


def test_user_agent_is_primary_library_secondary(served):
    # grpcio's own unit tests (_metadata_test) check this shape, with
    # grpc._channel._USER_AGENT ("grpc-python/<version>") after the primary.
    from grpc import _channel
    service, port = served
    options = [("grpc.primary_user_agent", "primary-agent"),
               ("grpc.secondary_user_agent", "secondary-agent")]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT) == b"ok"
    agent = _user_agent(service.seen["metadata"])
    assert _channel._USER_AGENT == f"grpc-python/{grpc.__version__}"
    assert agent.startswith("primary-agent " + _channel._USER_AGENT + " "), agent
    assert agent.endswith(" secondary-agent"), agent


def test_default_user_agent(served):
    service, port = served
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT) == b"ok"
    assert _user_agent(service.seen["metadata"])


def test_default_authority_is_accepted(served):
    # grpcio shows the handler no :authority (invocation_metadata holds no
    # pseudo-headers); the option must not break the call.
    service, port = served
    options = [("grpc.default_authority", "grpcgo.example:443")]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Metadata"))(b"", timeout=RPC_TIMEOUT) == b"ok"
    assert [k for k, _ in service.seen["metadata"] if k.startswith(":")] == []


# -- retries ------------------------------------------------------------------------------

RETRY_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": SERVICE}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.01s",
            "maxBackoff": "0.1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


@pytest.mark.parametrize("extra", [[], [("grpc.enable_retries", 1)]])
def test_service_config_retry_policy(extra):
    service = _Service()
    with serving(service) as port:
        options = [("grpc.service_config", RETRY_CONFIG)] + extra
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            assert ch.unary_unary(method("Flaky"))(b"", timeout=RPC_TIMEOUT) == b"attempt 3"
            assert service.attempts == 3
            future = ch.unary_unary(method("Flaky")).future(b"", timeout=RPC_TIMEOUT)
            assert future.result(timeout=WAIT) == b"attempt 6"


def test_enable_retries_zero_turns_retries_off():
    service = _Service()
    with serving(service) as port:
        options = [("grpc.service_config", RETRY_CONFIG), ("grpc.enable_retries", 0)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method("Flaky"))(b"", timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            assert info.value.details() == "try again"
            assert service.attempts == 1


def test_no_retries_without_a_policy():
    service = _Service()
    with serving(service) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method("Flaky"))(b"", timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            assert service.attempts == 1


def test_retry_policy_gives_up_after_max_attempts():
    config = json.loads(RETRY_CONFIG)
    config["methodConfig"][0]["retryPolicy"]["maxAttempts"] = 2
    service = _Service()
    with serving(service) as port:
        options = [("grpc.service_config", json.dumps(config))]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method("Flaky"))(b"", timeout=RPC_TIMEOUT)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            # the last attempt's status as the server sent it (grpc-go words
            # it "max retries exhausted: failed after 2 attempts: ...")
            assert info.value.details() == "try again"
            assert service.attempts == 2


def test_aio_retry_policy_gives_up_with_the_last_attempts_status():
    config = json.loads(RETRY_CONFIG)
    config["methodConfig"][0]["retryPolicy"]["maxAttempts"] = 2
    service = _Service()

    async def call(port):
        options = [("grpc.service_config", json.dumps(config))]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ch.unary_unary(method("Flaky"))(b"", timeout=RPC_TIMEOUT)
        return info.value

    with serving(service) as port:
        error = asyncio.run(call(port))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == "try again"
    assert service.attempts == 2


# -- load balancing -----------------------------------------------------------------------


@contextlib.contextmanager
def two_backends():
    a, b = _Service("a"), _Service("b")
    with serving(a) as port_a, serving(b) as port_b:
        yield f"ipv4:127.0.0.1:{port_a},127.0.0.1:{port_b}"


def _whos(ch, n=20):
    return [ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) for _ in range(n)]


@pytest.mark.parametrize("options", [
    [("grpc.lb_policy_name", "round_robin")],
    [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))],
])
def test_round_robin_uses_every_backend(options):
    with two_backends() as target, grpc.insecure_channel(target, options=options) as ch:
        assert grpc.channel_ready_future(ch).result(timeout=WAIT) is None
        # Round robin may need a moment to have both subchannels ready.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if set(_whos(ch)) == {b"a", b"b"}:
                break
            time.sleep(0.05)
        else:
            pytest.fail("round_robin never used both backends")


@pytest.mark.parametrize("options", [None, [("grpc.lb_policy_name", "pick_first")]])
def test_pick_first_uses_one_backend(options):
    with two_backends() as target, grpc.insecure_channel(target, options=options) as ch:
        assert set(_whos(ch)) == {b"a"}


def test_unknown_lb_policy_name_falls_back(served):
    # grpcio ignores a policy it does not know and picks the first address.
    with two_backends() as target:
        with grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "no_such")]) as ch:
            assert set(_whos(ch, 5)) == {b"a"}


# -- so_reuseport -----------------------------------------------------------------------


def test_so_reuseport():
    with serving() as port:
        # grpcio's default: a second server may bind the same port.
        for options in (None, [("grpc.so_reuseport", 1)]):
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            server = grpc.server(pool, options=options)
            try:
                assert server.add_insecure_port(f"127.0.0.1:{port}") == port
            finally:
                server.stop(None).wait(WAIT)
                pool.shutdown(wait=False)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        server = grpc.server(pool, options=[("grpc.so_reuseport", 0)])
        try:
            with pytest.raises(RuntimeError):
                server.add_insecure_port(f"127.0.0.1:{port}")
        finally:
            server.stop(None).wait(WAIT)
            pool.shutdown(wait=False)


# -- connections: streams, age, idleness, keepalive -------------------------------------


def test_max_concurrent_streams_queues_calls():
    service = _Service()
    with serving(service, options=[("grpc.max_concurrent_streams", 1)]) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            first = ch.unary_unary(method("Hold")).future(b"first", timeout=RPC_TIMEOUT)
            assert service.event("hold_started").wait(WAIT)
            second = ch.unary_unary(method("Who")).future(b"", timeout=RPC_TIMEOUT)
            time.sleep(0.3)
            # The second call waits for a stream; it does not fail.
            assert second.done() is False
            service.event("release").set()
            assert first.result(timeout=WAIT) == b"first"
            assert second.result(timeout=WAIT) == b"server"


def test_max_connection_idle_closes_idle_connections():
    with serving(options=[("grpc.max_connection_idle_ms", 200)]) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            states = queue.Queue()
            ch.subscribe(states.put)
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"
            seen = []
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                seen.append(states.get(timeout=WAIT))
                if grpc.ChannelConnectivity.READY in seen and \
                        seen[-1] is grpc.ChannelConnectivity.IDLE:
                    break
            assert seen[-1] is grpc.ChannelConnectivity.IDLE, seen
            ch.unsubscribe(states.put)
            # A new call reconnects.
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"


def test_max_connection_age_ends_long_streams():
    options = [("grpc.max_connection_age_ms", 200), ("grpc.max_connection_age_grace_ms", 200)]
    with serving(options=options) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            # Left alone the stream would end OK after 8 s: UNAVAILABLE
            # shows the connection's age cut it.
            call = ch.unary_stream(method("Ticks"))(b"8", timeout=RPC_TIMEOUT)
            count = 0
            with pytest.raises(grpc.RpcError) as info:
                for _ in call:
                    count += 1
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            assert count > 0
            # The channel connects again.
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"


def test_keepalive_options_are_accepted():
    server_options = [
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_timeout_ms", 500),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 50),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 50),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.max_connection_idle_ms", 60000),
        ("grpc.max_connection_age_ms", 60000),
        ("grpc.max_connection_age_grace_ms", 5000),
    ]
    channel_options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with serving(options=server_options) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=channel_options) as ch:
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"
            # A stream outliving several keepalive periods runs to its end.
            assert len(list(ch.unary_stream(method("Ticks"))(b"0.6", timeout=RPC_TIMEOUT))) > 10
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"


# grpc-go pings no more often than every 10 s from a client and every 1 s
# from a server, whatever the options say: the two tests below wait that
# long. The proxy shows the PING frames; freezing it makes the other side a
# dead peer that never answers them.


def test_server_keepalive_pings_and_drops_a_dead_client():
    service = _Service()
    options = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 500)]
    with serving(service, options=options) as port, h2proxy.FrameProxy(port) as proxy:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as ch:
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"
            # Idle: the server pings, the client answers, the channel lives.
            assert proxy.pinged["server"].wait(WAIT), "the server never pinged"
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"
            held = ch.unary_unary(method("Hold")).future(b"", timeout=60)
            assert service.event("hold_started").wait(WAIT)
            # The client goes silent: the server's next ping goes unanswered
            # and the server drops the connection, ending the held call.
            proxy.freeze()
            assert proxy.pinged["server"].wait(WAIT), "no ping to the silent client"
            assert service.event("hold_ended").wait(WAIT)
            assert service.seen["hold"] == "ended"
            assert proxy.closed["server"].wait(WAIT), "the server kept the connection"
            held.cancel()


def test_client_keepalive_pings_and_detects_a_dead_server():
    service = _Service()
    options = [("grpc.keepalive_time_ms", 10000), ("grpc.keepalive_timeout_ms", 1000)]
    server_options = [("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
                      ("grpc.keepalive_permit_without_calls", 1)]
    with serving(service, options=server_options) as port, \
            h2proxy.FrameProxy(port) as proxy:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}", options=options) as ch:
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"
            held = ch.unary_unary(method("Hold")).future(b"", timeout=60)
            assert service.event("hold_started").wait(WAIT)
            # The server goes silent; the client pings after 10 s without
            # reads, hears nothing for 1 s and fails the call: UNAVAILABLE,
            # long before its 60 s deadline.
            proxy.freeze()
            error = held.exception(timeout=30)
            assert proxy.pings["client"] >= 1, "the client never pinged"
            assert error is not None and error.code() is grpc.StatusCode.UNAVAILABLE, error
            assert proxy.closed["client"].wait(WAIT), "the client kept the connection"


# -- options grpcio does not know, and odd values --------------------------------------


def test_unknown_options_are_ignored(served):
    service, port = served
    options = [
        ("grpc.no_such_option", 1),
        ("grpcgo.custom", "value"),
        ("a.float", 1.5),
        ("grpc.max_receive_message_length", "not a number"),
        (b"grpc.bytes_key", b"bytes value"),
        ("grpc.ssl_target_name_override", "ignored.example"),
        ("grpc.enable_http_proxy", 0),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
        assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"
    with serving(options=options) as other:
        with grpc.insecure_channel(f"127.0.0.1:{other}") as ch:
            assert ch.unary_unary(method("Who"))(b"", timeout=RPC_TIMEOUT) == b"server"


@pytest.mark.parametrize("value", [object(), None, [1], {"a": 1}])
def test_option_values_of_other_types_are_type_errors(value):
    # grpcio: "Expected int, bytes, or behavior, got <class '...'>".
    with pytest.raises(TypeError):
        grpc.insecure_channel("127.0.0.1:1", options=[("grpc.no_such_option", value)])
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        with pytest.raises(TypeError):
            grpc.server(pool, options=[("grpc.no_such_option", value)])
    finally:
        pool.shutdown(wait=False)
