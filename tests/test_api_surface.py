"""The public contract of the installed `grpc` package: grpcio 1.85's names,
enums, signatures and the pure-Python pieces (handlers, channel_ready_future,
experimental helpers and simple stubs), checked without starting an RPC.
"""

import glob
import inspect
import logging
import os
import subprocess
import sys
import threading
import time
import warnings

import pytest

import grpc
import grpc.experimental
from grpc import _utilities

GRPCIO_ALL = {
    # The classic 50.
    "FutureTimeoutError", "FutureCancelledError", "Future",
    "ChannelConnectivity", "StatusCode", "RpcError", "RpcContext", "Call",
    "ChannelCredentials", "CallCredentials", "AuthMetadataContext",
    "AuthMetadataPluginCallback", "AuthMetadataPlugin", "ClientCallDetails",
    "ServerCertificateConfiguration", "ServerCredentials",
    "UnaryUnaryMultiCallable", "UnaryStreamMultiCallable",
    "StreamUnaryMultiCallable", "StreamStreamMultiCallable",
    "UnaryUnaryClientInterceptor", "UnaryStreamClientInterceptor",
    "StreamUnaryClientInterceptor", "StreamStreamClientInterceptor",
    "Channel", "ServicerContext", "RpcMethodHandler", "HandlerCallDetails",
    "GenericRpcHandler", "ServiceRpcHandler", "Server", "ServerInterceptor",
    "unary_unary_rpc_method_handler", "unary_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler", "stream_stream_rpc_method_handler",
    "method_handlers_generic_handler", "ssl_channel_credentials",
    "metadata_call_credentials", "access_token_call_credentials",
    "composite_call_credentials", "composite_channel_credentials",
    "ssl_server_credentials", "ssl_server_certificate_configuration",
    "dynamic_ssl_server_credentials", "channel_ready_future",
    "insecure_channel", "secure_channel", "intercept_channel", "server",
    # The 14 added since.
    "Status", "Compression", "LocalConnectionType",
    "compute_engine_channel_credentials", "local_channel_credentials",
    "local_server_credentials", "alts_channel_credentials",
    "alts_server_credentials", "xds_channel_credentials",
    "xds_server_credentials", "insecure_server_credentials",
    "protos", "services", "protos_and_services",
}  # fmt: skip


def _run_python(code):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# ---------------------------------------------------------------- the package


def test_grpc_is_grpcgo():
    here = os.path.dirname(os.path.abspath(grpc.__file__))
    assert glob.glob(os.path.join(here, "_engine*.so")), (
        f"grpc comes from {grpc.__file__}, not grpcgo (no _engine*.so next to "
        "it); was grpcio installed over it?"
    )


def test_all_is_grpcio_1_85():
    assert len(GRPCIO_ALL) == 64
    assert len(grpc.__all__) == len(set(grpc.__all__))
    assert set(grpc.__all__) == GRPCIO_ALL
    for name in grpc.__all__:
        assert hasattr(grpc, name), name


def test_version_and_logger():
    # grpcio 1.85.4's Python API (its code is 1.85.1's but for the version).
    assert grpc.__version__ == "1.85.4"
    assert not _utilities.first_version_is_lower(grpc.__version__, "1.85.1")
    handlers = logging.getLogger("grpc").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_import_is_cheap_and_loads_no_go():
    out = _run_python(
        "import sys, grpc\n"
        "maps = open('/proc/self/maps').read().splitlines()\n"
        "print([l for l in maps if '_engine' in l])\n"
        "print(sorted(m for m in ('grpc._channel', 'grpc._server',"
        " 'grpc._credentials', 'grpc._interceptor') if m in sys.modules))\n"
        "print(grpc.experimental.__name__, 'grpc.experimental' in sys.modules)\n"
    )
    assert out.splitlines() == ["[]", "[]", "grpc.experimental True"]


def test_aio_reachable_after_import():
    assert _run_python("import grpc; print(grpc.aio.__name__)").strip() == "grpc.aio"


# ---------------------------------------------------------------------- enums


def test_status_code_values():
    expected = [
        ("OK", 0, "ok"),
        ("CANCELLED", 1, "cancelled"),
        ("UNKNOWN", 2, "unknown"),
        ("INVALID_ARGUMENT", 3, "invalid argument"),
        ("DEADLINE_EXCEEDED", 4, "deadline exceeded"),
        ("NOT_FOUND", 5, "not found"),
        ("ALREADY_EXISTS", 6, "already exists"),
        ("PERMISSION_DENIED", 7, "permission denied"),
        ("RESOURCE_EXHAUSTED", 8, "resource exhausted"),
        ("FAILED_PRECONDITION", 9, "failed precondition"),
        ("ABORTED", 10, "aborted"),
        ("OUT_OF_RANGE", 11, "out of range"),
        ("UNIMPLEMENTED", 12, "unimplemented"),
        ("INTERNAL", 13, "internal"),
        ("UNAVAILABLE", 14, "unavailable"),
        ("DATA_LOSS", 15, "data loss"),
        ("UNAUTHENTICATED", 16, "unauthenticated"),
    ]
    assert [(c.name, *c.value) for c in grpc.StatusCode] == expected
    assert grpc.StatusCode.DEADLINE_EXCEEDED.value == (4, "deadline exceeded")


def test_channel_connectivity_values():
    assert [(c.name, c.value) for c in grpc.ChannelConnectivity] == [
        ("IDLE", (0, "idle")),
        ("CONNECTING", (1, "connecting")),
        ("READY", (2, "ready")),
        ("TRANSIENT_FAILURE", (3, "transient failure")),
        ("SHUTDOWN", (4, "shutdown")),
    ]


def test_compression_and_local_connection_type():
    assert [(c.name, int(c)) for c in grpc.Compression] == [
        ("NoCompression", 0),
        ("Deflate", 1),
        ("Gzip", 2),
    ]
    assert grpc.Compression.Gzip == 2
    assert [c.name for c in grpc.LocalConnectionType] == ["UDS", "LOCAL_TCP"]


# ----------------------------------------------------- classes and signatures


@pytest.mark.parametrize(
    "cls",
    [
        grpc.Future, grpc.RpcContext, grpc.Call, grpc.ServicerContext,
        grpc.Channel, grpc.Server, grpc.GenericRpcHandler,
        grpc.ServiceRpcHandler, grpc.ServerInterceptor,
        grpc.UnaryUnaryMultiCallable, grpc.UnaryStreamMultiCallable,
        grpc.StreamUnaryMultiCallable, grpc.StreamStreamMultiCallable,
        grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
    ],
)  # fmt: skip
def test_abstract_classes_are_abstract(cls):
    with pytest.raises(TypeError):
        cls()


def test_handler_call_details_is_a_runtime_protocol():
    # grpcio 1.85: any object with these attributes is a HandlerCallDetails.
    import types

    details = types.SimpleNamespace(method="/s/M", invocation_metadata=())
    assert isinstance(details, grpc.HandlerCallDetails)
    assert not isinstance(object(), grpc.HandlerCallDetails)


def test_credentials_classes_keep_wrapped_object():
    sentinel = object()
    assert grpc.ChannelCredentials(sentinel)._credentials is sentinel
    assert grpc.CallCredentials(sentinel)._credentials is sentinel
    assert grpc.ServerCredentials(sentinel)._credentials is sentinel
    config = grpc.ServerCertificateConfiguration(sentinel)
    assert config._certificate_configuration is sentinel


def _params(fn):
    return [
        (p.name, p.default if p.default is not inspect.Parameter.empty else "-")
        for p in inspect.signature(fn).parameters.values()
    ]


CALL_TAIL = [
    ("timeout", None),
    ("metadata", None),
    ("credentials", None),
    ("wait_for_ready", None),
    ("compression", None),
]


def test_multicallable_signatures():
    for cls, first, methods in [
        (grpc.UnaryUnaryMultiCallable, "request", ("__call__", "with_call", "future")),
        (grpc.UnaryStreamMultiCallable, "request", ("__call__",)),
        (grpc.StreamUnaryMultiCallable, "request_iterator", ("__call__", "with_call", "future")),
        (grpc.StreamStreamMultiCallable, "request_iterator", ("__call__",)),
    ]:  # fmt: skip
        for name in methods:
            assert _params(getattr(cls, name)) == [
                ("self", "-"),
                (first, "-"),
                *CALL_TAIL,
            ], (cls, name)


def test_channel_and_server_signatures():
    for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        assert _params(getattr(grpc.Channel, name)) == [
            ("self", "-"),
            ("method", "-"),
            ("request_serializer", None),
            ("response_deserializer", None),
            ("_registered_method", False),
        ]
    assert _params(grpc.Channel.subscribe)[-1] == ("try_to_connect", False)
    assert _params(grpc.Server.wait_for_termination)[-1] == ("timeout", None)
    assert _params(grpc.server) == [
        ("thread_pool", "-"),
        ("handlers", None),
        ("interceptors", None),
        ("options", None),
        ("maximum_concurrent_rpcs", None),
        ("compression", None),
        ("xds", False),
    ]
    assert _params(grpc.insecure_channel) == [
        ("target", "-"),
        ("options", None),
        ("compression", None),
    ]
    assert _params(grpc.secure_channel) == [
        ("target", "-"),
        ("credentials", "-"),
        ("options", None),
        ("compression", None),
    ]
    # grpcio-tools stubs call this on any Server; it must not be abstract.
    assert "add_registered_method_handlers" not in grpc.Server.__abstractmethods__


def test_servicer_context_has_grpcio_1_85_methods():
    for name in (
        "abort", "abort_with_status", "set_code", "set_details", "code",
        "details", "set_compression", "disable_next_message_compression",
        "send_initial_metadata", "set_trailing_metadata", "trailing_metadata",
        "invocation_metadata", "peer", "peer_identities", "peer_identity_key",
        "auth_context", "is_active", "time_remaining", "cancel", "add_callback",
    ):  # fmt: skip
        assert callable(getattr(grpc.ServicerContext, name)), name


# ------------------------------------------------------------------ utilities


@pytest.mark.parametrize(
    "v1, v2, lower",
    [
        ("1.85.1", "1.85.1", False),
        ("1.85.0", "1.85.1", True),
        ("1.85.1", "1.85.0", False),
        ("1.9.0", "1.10.0", True),  # numeric, not lexical
        ("1.10.0", "1.9.0", False),
        ("1.85.1", "2.0.0", True),
        ("2.0.0", "1.99.99", False),
        ("1.85.1", "1.85.1.dev0", True),  # fewer components is lower
        ("1.85.1.dev0", "1.85.1", False),
        ("1.85.x", "1.85.0", False),  # not an integer
        ("1.85.x", "1.86.0", True),  # decided before the bad part
    ],
)
def test_first_version_is_lower(v1, v2, lower):
    assert _utilities.first_version_is_lower(v1, v2) is lower


def _behavior(request, context):
    return request


FACTORIES = [
    (grpc.unary_unary_rpc_method_handler, False, False, "unary_unary"),
    (grpc.unary_stream_rpc_method_handler, False, True, "unary_stream"),
    (grpc.stream_unary_rpc_method_handler, True, False, "stream_unary"),
    (grpc.stream_stream_rpc_method_handler, True, True, "stream_stream"),
]


@pytest.mark.parametrize("factory, req_streaming, resp_streaming, field", FACTORIES)
def test_method_handler_factories(factory, req_streaming, resp_streaming, field):
    handler = factory(_behavior, request_deserializer=bytes.upper, response_serializer=bytes.lower)
    assert isinstance(handler, grpc.RpcMethodHandler)
    assert handler.request_streaming is req_streaming
    assert handler.response_streaming is resp_streaming
    assert handler.request_deserializer is bytes.upper
    assert handler.response_serializer is bytes.lower
    for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        assert getattr(handler, name) is (_behavior if name == field else None)
    replaced = handler._replace(request_deserializer=None)
    assert isinstance(replaced, grpc.RpcMethodHandler)
    assert replaced.request_deserializer is None
    assert getattr(replaced, field) is _behavior
    assert handler.request_deserializer is bytes.upper  # immutable


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method):
        self.method = method
        self.invocation_metadata = ()


def test_method_handlers_generic_handler():
    say = grpc.unary_unary_rpc_method_handler(_behavior)
    stream = grpc.unary_stream_rpc_method_handler(_behavior)
    handler = grpc.method_handlers_generic_handler(
        "helloworld.Greeter", {"SayHello": say, "SayHelloStream": stream}
    )
    assert isinstance(handler, grpc.GenericRpcHandler)
    assert isinstance(handler, grpc.ServiceRpcHandler)
    assert handler.service_name() == "helloworld.Greeter"
    assert handler.service(_Details("/helloworld.Greeter/SayHello")) is say
    assert handler.service(_Details("/helloworld.Greeter/SayHelloStream")) is stream
    assert handler.service(_Details("/helloworld.Greeter/Missing")) is None
    assert handler.service(_Details("/other.Service/SayHello")) is None
    assert handler.service(_Details("SayHello")) is None


@pytest.mark.parametrize("factory, req_streaming, resp_streaming, field", FACTORIES)
def test_wrap_server_method_handler(factory, req_streaming, resp_streaming, field):
    handler = factory(_behavior, bytes.upper, bytes.lower)
    seen = []

    def wrapper(behavior):
        def wrapped(request, context):
            seen.append(request)
            return behavior(request, context)

        return wrapped

    wrapped = grpc.experimental.wrap_server_method_handler(wrapper, handler)
    assert isinstance(wrapped, grpc.RpcMethodHandler)
    assert (wrapped.request_streaming, wrapped.response_streaming) == (
        req_streaming,
        resp_streaming,
    )
    assert wrapped.request_deserializer is bytes.upper
    assert wrapped.response_serializer is bytes.lower
    assert getattr(wrapped, field)("x", None) == "x"
    assert seen == ["x"]
    assert getattr(handler, field) is _behavior
    assert grpc.experimental.wrap_server_method_handler(wrapper, None) is None


# ---------------------------------------------------- argument validation


def test_ssl_server_credentials_value_errors():
    with pytest.raises(ValueError):
        grpc.ssl_server_credentials([])
    with pytest.raises(ValueError):
        grpc.ssl_server_credentials(())
    with pytest.raises(ValueError):
        grpc.ssl_server_credentials([(b"key", b"chain")], require_client_auth=True)
    with pytest.raises(ValueError):
        grpc.ssl_server_certificate_configuration([])


def test_secure_channel_rejects_insecure_credentials():
    # The contract of reference/api-surface.md. (grpcio 1.85 has this check,
    # but it compares the wrapped object with the wrapper and never fires.)
    creds = grpc.experimental.insecure_channel_credentials()
    assert isinstance(creds, grpc.ChannelCredentials)
    assert grpc.experimental.insecure_channel_credentials() is creds
    with pytest.raises(ValueError):
        grpc.secure_channel("localhost:1", creds)


def test_protos_need_grpcio_tools():
    try:
        import grpc_tools.protoc  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("grpcio-tools is installed")
    for fn in (grpc.protos, grpc.services, grpc.protos_and_services):
        with pytest.raises(NotImplementedError, match="grpcio-tools"):
            fn("helloworld.proto")


# ------------------------------------------------------- channel_ready_future


class _FakeChannel:
    """Just the connectivity half of a grpc.Channel."""

    def __init__(self, state=grpc.ChannelConnectivity.IDLE):
        self.state = state
        self.callbacks = []
        self.try_to_connect = None
        self.lock = threading.Lock()

    def subscribe(self, callback, try_to_connect=False):
        self.try_to_connect = try_to_connect
        with self.lock:
            self.callbacks.append(callback)
        callback(self.state)

    def unsubscribe(self, callback):
        with self.lock:
            self.callbacks.remove(callback)

    def move_to(self, state):
        self.state = state
        with self.lock:
            callbacks = list(self.callbacks)
        for callback in callbacks:
            callback(state)


def test_channel_ready_future_matures_on_ready():
    channel = _FakeChannel()
    future = grpc.channel_ready_future(channel)
    assert isinstance(future, grpc.Future)
    assert channel.try_to_connect is True
    assert future.running() and not future.done() and not future.cancelled()
    with pytest.raises(grpc.FutureTimeoutError):
        future.result(timeout=0.05)
    done = []
    future.add_done_callback(done.append)
    channel.move_to(grpc.ChannelConnectivity.CONNECTING)
    assert not future.done()
    threading.Timer(0.05, channel.move_to, (grpc.ChannelConnectivity.READY,)).start()
    assert future.result(timeout=10) is None
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None and future.traceback() is None
    assert done == [future]
    assert channel.callbacks == []  # unsubscribed
    late = []
    future.add_done_callback(late.append)
    assert late == [future]
    assert future.cancel() is False


def test_channel_ready_future_already_ready():
    future = grpc.channel_ready_future(_FakeChannel(grpc.ChannelConnectivity.READY))
    assert future.done()
    assert future.result(timeout=0) is None


def test_channel_ready_future_cancel():
    channel = _FakeChannel()
    future = grpc.channel_ready_future(channel)
    done = []
    future.add_done_callback(done.append)
    waiter_error = []

    def wait():
        try:
            future.result()
        except grpc.FutureCancelledError as error:
            waiter_error.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    assert future.cancel() is True
    waiter.join(10)
    assert len(waiter_error) == 1
    assert future.cancelled() and future.done() and not future.running()
    assert done == [future]
    assert channel.callbacks == []
    channel.move_to(grpc.ChannelConnectivity.READY)  # no effect any more
    assert future.cancelled()
    with pytest.raises(grpc.FutureCancelledError):
        future.exception(timeout=0)


# ---------------------------------------------------------- grpc.experimental


def test_experimental_names():
    exp = grpc.experimental
    assert issubclass(exp.ExperimentalApiWarning, Warning)
    assert issubclass(exp.UsageError, Exception)
    assert exp.ChannelOptions.SingleThreadedUnaryStream == "SingleThreadedUnaryStream"
    for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        params = _params(getattr(exp, name))
        assert [p for p, _ in params] == [
            "request_iterator" if name.startswith("stream") else "request",
            "target", "method", "request_serializer", "response_deserializer",
            "options", "channel_credentials", "insecure", "call_credentials",
            "compression", "wait_for_ready", "timeout", "metadata",
            "_registered_method",
        ]  # fmt: skip
        assert dict(params)["timeout"] == 60.0
        assert dict(params)["options"] == ()


def test_experimental_api_warns_once():
    @grpc.experimental.experimental_api
    def _only_for_this_test(x):
        return x + 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _only_for_this_test(1) == 2
        assert _only_for_this_test(2) == 3
    assert [w.category for w in caught] == [grpc.experimental.ExperimentalApiWarning]
    assert _only_for_this_test.__name__ == "_only_for_this_test"


class _RecordingChannel:
    def __init__(self, target, options, compression, credentials=None):
        self.target, self.options, self.compression = target, options, compression
        self.credentials = credentials
        self.closed = False
        self.calls = []

    def _factory(arity):
        def factory(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
            def call(request, **kwargs):
                self.calls.append((arity, method, _registered_method, request, kwargs))
                return "response"

            return call

        return factory

    unary_unary = _factory("unary_unary")
    unary_stream = _factory("unary_stream")
    stream_unary = _factory("stream_unary")
    stream_stream = _factory("stream_stream")
    del _factory

    def close(self):
        self.closed = True


@pytest.fixture
def simple_stubs(monkeypatch):
    """A fresh channel cache whose channels are _RecordingChannels."""
    exp = sys.modules["grpc.experimental"]
    created = []

    def insecure_channel(target, options=None, compression=None):
        created.append(_RecordingChannel(target, options, compression))
        return created[-1]

    def secure_channel(target, credentials, options=None, compression=None):
        created.append(_RecordingChannel(target, options, compression, credentials))
        return created[-1]

    monkeypatch.setattr(grpc, "insecure_channel", insecure_channel)
    monkeypatch.setattr(grpc, "secure_channel", secure_channel)
    monkeypatch.setattr(grpc, "ssl_channel_credentials", lambda: "default-ssl")
    stubs = sys.modules["grpc._simple_stubs"]  # where grpcio keeps the cache too
    monkeypatch.setattr(stubs, "_CHANNEL_CACHE", stubs._ChannelCache())
    monkeypatch.setattr(exp, "_EXPERIMENTAL_APIS_USED", {"unary_unary", "unary_stream", "stream_unary", "stream_stream"})
    return exp, created


def test_simple_stubs_reuse_cached_channels(simple_stubs):
    exp, created = simple_stubs
    assert exp.unary_unary(b"a", "localhost:1", "/s/M", insecure=True) == "response"
    exp.unary_stream(b"b", "localhost:1", "/s/N", insecure=True, _registered_method=True)
    assert len(created) == 1
    channel = created[0]
    assert channel.credentials is None  # insecure_channel was used
    assert [c[:4] for c in channel.calls] == [
        ("unary_unary", "/s/M", False, b"a"),
        ("unary_stream", "/s/N", True, b"b"),
    ]
    kwargs = channel.calls[0][4]
    assert kwargs == {
        "metadata": None,
        "wait_for_ready": True,
        "credentials": None,
        "timeout": 60.0,
    }
    # Explicit insecure credentials share the channel of insecure=True.
    exp.stream_unary(iter(()), "localhost:1", "/s/O", channel_credentials=exp.insecure_channel_credentials())
    assert len(created) == 1
    # Other options, compression, or the default SSL credentials: new channels.
    exp.stream_stream(iter(()), "localhost:1", "/s/P", insecure=True, options=(("k", 1),))
    exp.unary_unary(b"", "localhost:1", "/s/M", insecure=True, compression=grpc.Compression.Gzip)
    exp.unary_unary(b"", "localhost:1", "/s/M")
    exp.unary_unary(b"", "localhost:1", "/s/M", wait_for_ready=False, timeout=None)
    assert len(created) == 4
    assert created[1].options == (("k", 1),)
    assert created[2].compression is grpc.Compression.Gzip
    assert created[3].credentials == "default-ssl"
    assert created[3].calls[1][4]["wait_for_ready"] is False
    assert created[3].calls[1][4]["timeout"] is None
    assert sys.modules["grpc._simple_stubs"]._CHANNEL_CACHE._test_only_channel_count() == 4


def test_simple_stubs_insecure_excludes_credentials(simple_stubs):
    exp, created = simple_stubs
    with pytest.raises(ValueError):
        exp.unary_unary(b"", "localhost:1", "/s/M", insecure=True, channel_credentials=grpc.ChannelCredentials(object()))
    assert created == []


def test_simple_stubs_evict_beyond_maximum(simple_stubs, monkeypatch):
    exp, created = simple_stubs
    monkeypatch.setattr(sys.modules["grpc._simple_stubs"], "_MAXIMUM_CHANNELS", 2)
    for port in (1, 2, 1, 3):  # using :1 again makes :2 the oldest
        exp.unary_unary(b"", f"localhost:{port}", "/s/M", insecure=True)
    assert [(c.target, c.closed) for c in created] == [
        ("localhost:1", False),
        ("localhost:2", True),
        ("localhost:3", False),
    ]
    assert sys.modules["grpc._simple_stubs"]._CHANNEL_CACHE._test_only_channel_count() == 2


def test_simple_stubs_evict_idle_channels(simple_stubs, monkeypatch):
    exp, created = simple_stubs
    monkeypatch.setattr(sys.modules["grpc._simple_stubs"], "_EVICTION_PERIOD", 0.1)
    exp.unary_unary(b"", "localhost:1", "/s/M", insecure=True)
    deadline = time.monotonic() + 10
    while not created[0].closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert created[0].closed
    assert sys.modules["grpc._simple_stubs"]._CHANNEL_CACHE._test_only_channel_count() == 0
    exp.unary_unary(b"", "localhost:1", "/s/M", insecure=True)
    assert len(created) == 2 and not created[1].closed
