"""grpc.aio's names and abstract classes are grpcio 1.85's
(/work/shared/reference/aio-surface.md): same __all__, same abstract
methods, so code that subclasses them (google-api-core) works."""

import inspect
import subprocess
import sys

import grpc
import grpc.aio as aio

GRPCIO_ALL = {
    "init_grpc_aio", "shutdown_grpc_aio", "AioRpcError", "RpcContext", "Call",
    "UnaryUnaryCall", "UnaryStreamCall", "StreamUnaryCall", "StreamStreamCall",
    "Channel", "UnaryUnaryMultiCallable", "UnaryStreamMultiCallable",
    "StreamUnaryMultiCallable", "StreamStreamMultiCallable", "ClientCallDetails",
    "ClientInterceptor", "UnaryStreamClientInterceptor", "UnaryUnaryClientInterceptor",
    "StreamUnaryClientInterceptor", "StreamStreamClientInterceptor",
    "InterceptedUnaryUnaryCall", "ServerInterceptor", "insecure_channel", "server",
    "Server", "ServicerContext", "EOF", "secure_channel", "AbortError", "BaseError",
    "UsageError", "InternalError", "Metadata",
}

# Abstract methods per class, as grpcio 1.85.1 declares them.
ABSTRACT = {
    "RpcContext": {"add_done_callback", "cancel", "cancelled", "done", "time_remaining"},
    "Call": {"code", "details", "initial_metadata", "trailing_metadata", "wait_for_connection"},
    "UnaryUnaryCall": {"__await__"},
    "UnaryStreamCall": {"__aiter__", "read"},
    "StreamUnaryCall": {"__await__", "done_writing", "write"},
    "StreamStreamCall": {"__aiter__", "done_writing", "read", "write"},
    "Channel": {"__aenter__", "__aexit__", "channel_ready", "close", "get_state", "stream_stream",
                "stream_unary", "unary_stream", "unary_unary", "wait_for_state_change"},
    "UnaryUnaryMultiCallable": {"__call__"},
    "UnaryStreamMultiCallable": {"__call__"},
    "StreamUnaryMultiCallable": {"__call__"},
    "StreamStreamMultiCallable": {"__call__"},
    "ServerInterceptor": {"intercept_service"},
    "UnaryUnaryClientInterceptor": {"intercept_unary_unary"},
    "UnaryStreamClientInterceptor": {"intercept_unary_stream"},
    "StreamUnaryClientInterceptor": {"intercept_stream_unary"},
    "StreamStreamClientInterceptor": {"intercept_stream_stream"},
    "Server": {"add_generic_rpc_handlers", "add_insecure_port", "add_secure_port", "start", "stop",
               "wait_for_termination"},
    "ServicerContext": {"abort", "abort_with_status", "auth_context", "disable_next_message_compression",
                        "invocation_metadata", "peer", "peer_identities", "peer_identity_key", "read",
                        "send_initial_metadata", "set_code", "set_compression", "set_details",
                        "set_trailing_metadata", "write"},
}
INHERITED = {
    "Call": "RpcContext", "UnaryUnaryCall": "Call", "UnaryStreamCall": "Call",
    "StreamUnaryCall": "Call", "StreamStreamCall": "Call",
}


def test_all_is_grpcios():
    assert set(aio.__all__) == GRPCIO_ALL
    for name in aio.__all__:
        assert hasattr(aio, name), name


def test_abstract_methods_are_grpcios():
    for name, methods in ABSTRACT.items():
        cls = getattr(aio, name)
        expected = set(methods)
        base = INHERITED.get(name)
        while base is not None:
            expected |= ABSTRACT[base]
            base = INHERITED.get(base)
        assert set(cls.__abstractmethods__) == expected, name


def test_rpc_context_is_not_the_sync_one():
    # google-api-core subclasses these without add_callback/is_active.
    assert not issubclass(aio.RpcContext, grpc.RpcContext)
    assert not hasattr(aio.Call, "add_callback")
    assert not hasattr(aio.Call, "is_active")

    class Fake(aio.UnaryUnaryCall):
        def cancelled(self): return False
        def done(self): return True
        def time_remaining(self): return None
        def cancel(self): return False
        def add_done_callback(self, callback): pass
        async def initial_metadata(self): return aio.Metadata()
        async def trailing_metadata(self): return aio.Metadata()
        async def code(self): return grpc.StatusCode.OK
        async def details(self): return ""
        async def wait_for_connection(self): pass
        def __await__(self): return iter(())

    Fake()


def test_coroutines_where_grpcio_has_them():
    for cls, names in ((aio.Call, ("code", "details", "initial_metadata", "trailing_metadata",
                                   "wait_for_connection")),
                       (aio.StreamStreamCall, ("read", "write", "done_writing")),
                       (aio.Channel, ("__aenter__", "__aexit__", "close", "channel_ready",
                                      "wait_for_state_change")),
                       (aio.Server, ("start", "stop", "wait_for_termination"))):
        for name in names:
            assert inspect.iscoroutinefunction(getattr(cls, name)), (cls, name)


def test_errors_and_eof():
    assert issubclass(aio.AioRpcError, grpc.RpcError)
    for name in ("UsageError", "AbortError", "InternalError"):
        assert issubclass(getattr(aio, name), aio.BaseError)
    assert repr(aio.EOF) == "<grpc.aio.EOF>"
    error = aio.AioRpcError(grpc.StatusCode.NOT_FOUND, aio.Metadata(), aio.Metadata(("k", "v")), "gone")
    assert error.code() is grpc.StatusCode.NOT_FOUND and error.details() == "gone"
    assert "NOT_FOUND" in str(error)
    details = aio.ClientCallDetails("/m", 1.0, None, None, None)
    assert isinstance(details, grpc.ClientCallDetails) and details.method == "/m"


def test_import_does_not_load_the_engine():
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, grpc.aio\n"
         "print([l for l in open('/proc/self/maps') if '_engine' in l])\n"
         "print(sorted(m for m in ('grpc._channel', 'grpc._credentials', 'grpc._hot') if m in sys.modules))\n"],
        capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]
