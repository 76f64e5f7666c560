"""The gRPC interop TestService server, on the public `grpc` API only.

    python interop/server.py --port=N [--use_tls] [--host=127.0.0.1]
        [--tls_cert_file=PEM --tls_key_file=PEM]

It runs on whichever `grpc` package the interpreter imports: grpcgo in the
project venv, grpcio in the throwaway venv `make interop` builds. It serves
grpc.testing.TestService as the interop test descriptions specify (payloads
of zeros, echoed status and metadata, response intervals); UnimplementedCall
is left to the generated servicer base (UNIMPLEMENTED) and
grpc.testing.UnimplementedService is not registered at all.

Not implemented, because the public API cannot see it: `expect_compressed`
(whether a request arrived compressed). `response_compressed` is honoured
with context.set_compression.

With --use_tls it serves grpc-go's test certificate (server1.pem/.key, for
*.test.google.fr) from grpc-go's module directory unless files are given.

Once listening it prints "Server listening on HOST:PORT" (with --port=0 the
kernel picks the port); SIGTERM or SIGINT stops it (1 s grace). Exit status 1
when it cannot start.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from src.proto.grpc.testing import empty_pb2  # noqa: E402
from src.proto.grpc.testing import messages_pb2  # noqa: E402
from src.proto.grpc.testing import test_pb2_grpc  # noqa: E402

import tls_testdata  # noqa: E402

INITIAL_METADATA_KEY = "x-grpc-test-echo-initial"
TRAILING_METADATA_KEY = "x-grpc-test-echo-trailing-bin"

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _echo_metadata(context):
    """Echoes the two test metadata keys back, as initial and trailing."""
    initial, trailing = None, None
    for key, value in context.invocation_metadata():
        if key == INITIAL_METADATA_KEY and initial is None:
            initial = value
        elif key == TRAILING_METADATA_KEY and trailing is None:
            trailing = value
    if initial is not None:
        context.send_initial_metadata(((INITIAL_METADATA_KEY, initial),))
    if trailing is not None:
        context.set_trailing_metadata(((TRAILING_METADATA_KEY, trailing),))


def _maybe_abort(request, context):
    """Ends the call with request.response_status when that is not OK."""
    if request.HasField("response_status") and request.response_status.code:
        status = request.response_status
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        context.abort(code, status.message)


def _payload(response_type, size):
    if response_type != messages_pb2.COMPRESSABLE:
        raise ValueError(f"unsupported payload type {response_type}")
    if size < 0:
        raise ValueError(f"invalid response size {size}")
    return messages_pb2.Payload(type=response_type, body=b"\0" * size)


class TestService(test_pb2_grpc.TestServiceServicer):
    """grpc.testing.TestService per the interop test descriptions."""

    def EmptyCall(self, request, context):
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        _echo_metadata(context)
        _maybe_abort(request, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return messages_pb2.SimpleResponse(
            payload=_payload(request.response_type, request.response_size)
        )

    def CacheableUnaryCall(self, request, context):
        return self.UnaryCall(request, context)

    def StreamingOutputCall(self, request, context):
        _echo_metadata(context)
        for response in self._responses(request, context):
            yield response
        _maybe_abort(request, context)

    def StreamingInputCall(self, request_iterator, context):
        size = sum(len(request.payload.body) for request in request_iterator)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=size)

    def FullDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        for request in request_iterator:
            _maybe_abort(request, context)
            for response in self._responses(request, context):
                yield response

    def HalfDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        requests = list(request_iterator)
        for request in requests:
            _maybe_abort(request, context)
            for response in self._responses(request, context):
                yield response

    @staticmethod
    def _responses(request, context):
        for parameters in request.response_parameters:
            if parameters.interval_us > 0:
                time.sleep(parameters.interval_us / 1e6)
            if not context.is_active():
                return
            yield messages_pb2.StreamingOutputCallResponse(
                payload=_payload(request.response_type, parameters.size)
            )


def _bool(text):
    if text.lower() in ("1", "true", "t", "yes"):
        return True
    if text.lower() in ("0", "false", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=10000)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default loopback only)")
    parser.add_argument("--use_tls", type=_bool, nargs="?", const=True,
                        default=False)
    parser.add_argument("--tls_cert_file", default="")
    parser.add_argument("--tls_key_file", default="")
    parser.add_argument("--max_workers", type=int, default=16)
    return parser.parse_args(argv)


def serve(args):
    """Starts the server; returns (server, port). Raises when it cannot."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.max_workers))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"{host}:{args.port}"
    if args.use_tls:
        cert = args.tls_cert_file or tls_testdata.path("server1.pem")
        key = args.tls_key_file or tls_testdata.path("server1.key")
        with open(key, "rb") as f:
            private_key = f.read()
        with open(cert, "rb") as f:
            certificate_chain = f.read()
        credentials = grpc.ssl_server_credentials(((private_key, certificate_chain),))
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if not port:
        raise RuntimeError(f"could not bind {address}")
    server.start()
    return server, port


def main(argv=None):
    logging.basicConfig()
    args = parse_args(argv)
    try:
        server, port = serve(args)
    except Exception as error:  # noqa: BLE001 - report why, exit non-zero
        print(f"interop server failed to start: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"Server listening on {args.host}:{port}"
          f" ({'TLS' if args.use_tls else 'plaintext'}, grpc {grpc.__version__}"
          f" from {os.path.dirname(grpc.__file__)})", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(1).wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
