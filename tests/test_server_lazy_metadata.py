"""A sync server's call reaches its pool thread without its invocation
metadata, which the engine converts (call_metadata) only when something
reads it: most handlers never do (docs/ARCHITECTURE.md, "Servers"). What
is checked: a handler that never reads it costs no conversion; the
interceptor's details and the handler's context share one conversion,
with the client's pairs in order; GRPCGO_SERVER_LAZY_MD=0 puts it in the
event as before."""

import os
import subprocess
import sys
import textwrap

import grpc

from grpc import _runtime
from serving import generic_server
from test_runtime import grpcgo_only

pytestmark = grpcgo_only

TIMEOUT = 60


class _Seen(grpc.ServerInterceptor):
    def __init__(self):
        self.metadata = []

    def intercept_service(self, continuation, details):
        if details.method.endswith("/Read"):
            self.metadata.append(details.invocation_metadata)
        return continuation(details)


def _count_conversions(monkeypatch):
    hot = _runtime.hot()
    real = hot.call_metadata
    calls = []

    def counted(call):
        calls.append(call)
        return real(call)

    monkeypatch.setattr(hot, "call_metadata", counted)
    return calls


def test_metadata_is_converted_only_when_read_and_once(monkeypatch):
    calls = _count_conversions(monkeypatch)
    seen = _Seen()
    got = []

    def read(request, context):
        got.append(context.invocation_metadata())
        got.append(context.invocation_metadata())
        return request

    methods = {"Plain": grpc.unary_unary_rpc_method_handler(lambda r, c: r),
               "Read": grpc.unary_unary_rpc_method_handler(read)}
    sent = (("k1", "v1"), ("k2-bin", b"\x00\x01"), ("k1", "v2"))
    with generic_server("t.Lazy", methods, interceptors=(seen,)) as port:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            for _ in range(5):
                assert ch.unary_unary("/t.Lazy/Plain")(b"x", metadata=sent, timeout=TIMEOUT) == b"x"
            assert calls == [], "a handler that never read the metadata had it converted"
            assert ch.unary_unary("/t.Lazy/Read")(b"y", metadata=sent, timeout=TIMEOUT) == b"y"
    assert len(calls) == 1, calls
    assert got[0] is got[1] is seen.metadata[0]
    pairs = [(m.key, m.value) for m in got[0]]
    assert [p for p in pairs if p[0].startswith("k")] == list(sent)


def test_lazy_0_puts_the_metadata_in_the_event():
    script = textwrap.dedent(
        """
        import grpc
        from grpc import _runtime
        from concurrent import futures
        hot = _runtime.hot()
        calls = []
        real = hot.call_metadata
        hot.call_metadata = lambda call: calls.append(call) or real(call)
        def read(request, context):
            return dict(context.invocation_metadata())["k"].encode()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[
            grpc.method_handlers_generic_handler("t.Lazy", {
                "Read": grpc.unary_unary_rpc_method_handler(read)})])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            assert ch.unary_unary("/t.Lazy/Read")(b"", metadata=(("k", "v"),), timeout=30) == b"v"
        server.stop(None).wait(10)
        print(len(calls))
        """
    )
    env = dict(os.environ, GRPCGO_SERVER_LAZY_MD="0")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "0"
