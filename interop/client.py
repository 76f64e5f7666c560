"""The gRPC interop client, on the public `grpc` API only.

    python interop/client.py --server_host=HOST --server_port=N --test_case=NAME
        [--use_tls [--use_test_ca] [--ca_file=PEM] [--server_host_override=NAME]]
        [--soak_iterations=N ...]

It runs on whichever `grpc` package the interpreter imports (grpcgo in the
project venv, grpcio in the throwaway venv `make interop` builds) and runs one
case of the interop test descriptions against grpc.testing.TestService.
Exit status: 0 when the case passed, 1 when it failed (the reason on stderr),
2 for bad flags or an unknown case.

Cases: empty_unary, large_unary, client_streaming, server_streaming,
ping_pong, empty_stream, timeout_on_sleeping_server, cancel_after_begin,
cancel_after_first_response, status_code_and_message, special_status_message,
custom_metadata, unimplemented_method, unimplemented_service,
client_compressed_unary, server_compressed_unary, rpc_soak, channel_soak.

client_compressed_unary first sends the spec's feature probe (an uncompressed
request with expect_compressed=true); a server that cannot check compression
answers OK instead of INVALID_ARGUMENT, which is reported and tolerated: the
compressed and uncompressed calls that follow must succeed either way. Whether
a response arrived compressed is invisible through the public API, so
server_compressed_unary checks the responses only.
"""

import argparse
import os
import queue
import sys
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from src.proto.grpc.testing import empty_pb2  # noqa: E402
from src.proto.grpc.testing import messages_pb2  # noqa: E402
from src.proto.grpc.testing import test_pb2_grpc  # noqa: E402

import tls_testdata  # noqa: E402

REQUEST_SIZES = (27182, 8, 1828, 45904)
RESPONSE_SIZES = (31415, 9, 2653, 58979)
LARGE_REQUEST_SIZE = 271828
LARGE_RESPONSE_SIZE = 314159
INITIAL_METADATA_KEY = "x-grpc-test-echo-initial"
INITIAL_METADATA_VALUE = "test_initial_metadata_value"
TRAILING_METADATA_KEY = "x-grpc-test-echo-trailing-bin"
TRAILING_METADATA_VALUE = b"\x0a\x0b\x0a\x0b\x0a\x0b"
SPECIAL_STATUS_MESSAGE = (
    "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
)

# Every call but the soak's carries a deadline, so no case can hang.
CALL_TIMEOUT = 30.0


class CaseFailure(AssertionError):
    """The peer did not behave as the case requires."""


def _expect(condition, message):
    if not condition:
        raise CaseFailure(message)


def _payload(size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


def _check_payload(payload, size, what="response"):
    _expect(payload.type == messages_pb2.COMPRESSABLE,
            f"{what} payload type {payload.type}, want COMPRESSABLE")
    _expect(len(payload.body) == size,
            f"{what} payload of {len(payload.body)} bytes, want {size}")


def _expect_code(error, code, details=None):
    _expect(isinstance(error, grpc.RpcError),
            f"want an RpcError with {code}, got {error!r}")
    _expect(error.code() is code, f"status {error.code()}, want {code}"
            f" (details {error.details()!r})")
    if details is not None:
        _expect(error.details() == details,
                f"details {error.details()!r}, want {details!r}")


class _Pipe:
    """A request iterator fed from another thread; close() ends it."""

    _END = object()

    def __init__(self):
        self._queue = queue.Queue()

    def add(self, request):
        self._queue.put(request)

    def close(self):
        self._queue.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration()
        return item

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


# -- the cases ---------------------------------------------------------------

def empty_unary(stub, args):
    response = stub.EmptyCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    _expect(isinstance(response, empty_pb2.Empty), f"got {response!r}")
    _expect(response == empty_pb2.Empty(), f"got {response!r}, want an empty message")


def _large_unary(stub, **kwargs):
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_size=LARGE_RESPONSE_SIZE,
        payload=_payload(LARGE_REQUEST_SIZE),
    )
    response = stub.UnaryCall(request, **kwargs)
    _check_payload(response.payload, LARGE_RESPONSE_SIZE)


def large_unary(stub, args):
    _large_unary(stub, timeout=CALL_TIMEOUT)


def client_streaming(stub, args):
    requests = (messages_pb2.StreamingInputCallRequest(payload=_payload(size))
                for size in REQUEST_SIZES)
    response = stub.StreamingInputCall(requests, timeout=CALL_TIMEOUT)
    _expect(response.aggregated_payload_size == sum(REQUEST_SIZES),
            f"aggregated_payload_size {response.aggregated_payload_size}, "
            f"want {sum(REQUEST_SIZES)}")


def server_streaming(stub, args):
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=size)
                             for size in RESPONSE_SIZES],
    )
    responses = list(stub.StreamingOutputCall(request, timeout=CALL_TIMEOUT))
    _expect(len(responses) == len(RESPONSE_SIZES),
            f"{len(responses)} responses, want {len(RESPONSE_SIZES)}")
    for index, (response, size) in enumerate(zip(responses, RESPONSE_SIZES)):
        _check_payload(response.payload, size, f"response {index}")


def ping_pong(stub, args):
    with _Pipe() as pipe:
        responses = stub.FullDuplexCall(pipe, timeout=CALL_TIMEOUT)
        for index, (request_size, response_size) in enumerate(
                zip(REQUEST_SIZES, RESPONSE_SIZES)):
            pipe.add(messages_pb2.StreamingOutputCallRequest(
                response_type=messages_pb2.COMPRESSABLE,
                response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
                payload=_payload(request_size),
            ))
            response = next(responses)
            _check_payload(response.payload, response_size, f"response {index}")
        pipe.close()
        rest = list(responses)
        _expect(not rest, f"{len(rest)} responses after the last ping")
        _expect(responses.code() is grpc.StatusCode.OK, f"status {responses.code()}")


def empty_stream(stub, args):
    responses = list(stub.FullDuplexCall(iter(()), timeout=CALL_TIMEOUT))
    _expect(not responses, f"{len(responses)} responses, want none")


def timeout_on_sleeping_server(stub, args):
    with _Pipe() as pipe:
        responses = stub.FullDuplexCall(pipe, timeout=0.001)
        pipe.add(messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE, payload=_payload(27182)))
        try:
            for _ in responses:
                pass
        except grpc.RpcError as error:
            _expect_code(error, grpc.StatusCode.DEADLINE_EXCEEDED)
        else:
            raise CaseFailure("the call succeeded; want DEADLINE_EXCEEDED")
        _expect(responses.code() is grpc.StatusCode.DEADLINE_EXCEEDED,
                f"code() {responses.code()}, want DEADLINE_EXCEEDED")


def cancel_after_begin(stub, args):
    with _Pipe() as pipe:
        future = stub.StreamingInputCall.future(pipe, timeout=CALL_TIMEOUT)
        future.cancel()
        _expect(future.cancelled(), "cancelled() is False after cancel()")
        _expect(future.code() is grpc.StatusCode.CANCELLED,
                f"code() {future.code()}, want CANCELLED")


def cancel_after_first_response(stub, args):
    with _Pipe() as pipe:
        responses = stub.FullDuplexCall(pipe, timeout=CALL_TIMEOUT)
        pipe.add(messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=31415)],
            payload=_payload(27182),
        ))
        response = next(responses)
        _check_payload(response.payload, 31415)
        responses.cancel()
        try:
            next(responses)
        except grpc.RpcError as error:
            _expect_code(error, grpc.StatusCode.CANCELLED)
        else:
            raise CaseFailure("a response arrived after cancel(); want CANCELLED")
        _expect(responses.code() is grpc.StatusCode.CANCELLED,
                f"code() {responses.code()}, want CANCELLED")


def _echo_status_unary(stub, code, message):
    request = messages_pb2.SimpleRequest(
        response_status=messages_pb2.EchoStatus(code=code, message=message))
    try:
        stub.UnaryCall(request, timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        _expect_code(error, grpc.StatusCode.UNKNOWN, message)
    else:
        raise CaseFailure("UnaryCall succeeded; want UNKNOWN")


def status_code_and_message(stub, args):
    message = "test status message"
    _echo_status_unary(stub, 2, message)
    with _Pipe() as pipe:
        responses = stub.FullDuplexCall(pipe, timeout=CALL_TIMEOUT)
        pipe.add(messages_pb2.StreamingOutputCallRequest(
            response_status=messages_pb2.EchoStatus(code=2, message=message)))
        pipe.close()
        try:
            for _ in responses:
                pass
        except grpc.RpcError as error:
            _expect_code(error, grpc.StatusCode.UNKNOWN, message)
        else:
            raise CaseFailure("FullDuplexCall succeeded; want UNKNOWN")


def special_status_message(stub, args):
    _echo_status_unary(stub, 2, SPECIAL_STATUS_MESSAGE)


def _check_echoed_metadata(initial, trailing, what):
    initial = [value for key, value in initial if key == INITIAL_METADATA_KEY]
    trailing = [value for key, value in trailing if key == TRAILING_METADATA_KEY]
    _expect(initial == [INITIAL_METADATA_VALUE],
            f"{what}: initial metadata {INITIAL_METADATA_KEY}={initial!r}, "
            f"want [{INITIAL_METADATA_VALUE!r}]")
    _expect(trailing == [TRAILING_METADATA_VALUE],
            f"{what}: trailing metadata {TRAILING_METADATA_KEY}={trailing!r}, "
            f"want [{TRAILING_METADATA_VALUE!r}]")


def custom_metadata(stub, args):
    metadata = ((INITIAL_METADATA_KEY, INITIAL_METADATA_VALUE),
                (TRAILING_METADATA_KEY, TRAILING_METADATA_VALUE))
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=1, payload=_payload(1))
    response, call = stub.UnaryCall.with_call(
        request, metadata=metadata, timeout=CALL_TIMEOUT)
    _check_payload(response.payload, 1)
    _check_echoed_metadata(call.initial_metadata(), call.trailing_metadata(), "UnaryCall")

    with _Pipe() as pipe:
        responses = stub.FullDuplexCall(pipe, metadata=metadata, timeout=CALL_TIMEOUT)
        pipe.add(messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=1)],
            payload=_payload(1),
        ))
        initial = responses.initial_metadata()
        _check_payload(next(responses).payload, 1)
        pipe.close()
        rest = list(responses)
        _expect(not rest, f"{len(rest)} responses after the only request")
        _check_echoed_metadata(initial, responses.trailing_metadata(), "FullDuplexCall")


def unimplemented_method(stub, args):
    try:
        stub.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        _expect_code(error, grpc.StatusCode.UNIMPLEMENTED)
    else:
        raise CaseFailure("UnimplementedCall succeeded; want UNIMPLEMENTED")


def unimplemented_service(stub, args):
    other = test_pb2_grpc.UnimplementedServiceStub(args.channel)
    try:
        other.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        _expect_code(error, grpc.StatusCode.UNIMPLEMENTED)
    else:
        raise CaseFailure("UnimplementedService succeeded; want UNIMPLEMENTED")


def client_compressed_unary(stub, args):
    def request(expect_compressed):
        return messages_pb2.SimpleRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_size=LARGE_RESPONSE_SIZE,
            payload=_payload(LARGE_REQUEST_SIZE),
            expect_compressed=messages_pb2.BoolValue(value=expect_compressed),
        )

    try:
        stub.UnaryCall(request(True), compression=grpc.Compression.NoCompression,
                       timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        _expect_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    else:
        print("client_compressed_unary: the server accepted the probe (it does not "
              "check expect_compressed); going on with the compressed calls",
              file=sys.stderr)
    response = stub.UnaryCall(request(True), compression=grpc.Compression.Gzip,
                              timeout=CALL_TIMEOUT)
    _check_payload(response.payload, LARGE_RESPONSE_SIZE, "compressed call's response")
    response = stub.UnaryCall(request(False), compression=grpc.Compression.NoCompression,
                              timeout=CALL_TIMEOUT)
    _check_payload(response.payload, LARGE_RESPONSE_SIZE, "uncompressed call's response")


def server_compressed_unary(stub, args):
    for compressed in (True, False):
        request = messages_pb2.SimpleRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_size=LARGE_RESPONSE_SIZE,
            payload=_payload(LARGE_REQUEST_SIZE),
            response_compressed=messages_pb2.BoolValue(value=compressed),
        )
        response = stub.UnaryCall(request, timeout=CALL_TIMEOUT)
        _check_payload(response.payload, LARGE_RESPONSE_SIZE,
                       f"response_compressed={compressed}")


def _soak(args, new_channel):
    """rpc_soak / channel_soak: args.soak_iterations large unary calls."""
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_size=args.soak_response_size,
        payload=_payload(args.soak_request_size),
    )
    max_latency = args.soak_per_iteration_max_acceptable_latency_ms / 1000.0
    gap = args.soak_min_time_ms_between_rpcs / 1000.0
    overall_deadline = time.monotonic() + args.soak_overall_timeout_seconds
    failures, done, latencies = [], 0, []
    for iteration in range(args.soak_iterations):
        started = time.monotonic()
        if started >= overall_deadline:
            break
        channel = new_channel() if new_channel else args.channel
        try:
            stub = test_pb2_grpc.TestServiceStub(channel)
            response = stub.UnaryCall(
                request, timeout=max(0.001, overall_deadline - started))
            _check_payload(response.payload, args.soak_response_size)
            latency = time.monotonic() - started
            latencies.append(latency)
            if latency > max_latency:
                failures.append(f"iteration {iteration}: {latency * 1000:.1f} ms > "
                                f"{max_latency * 1000:.0f} ms")
        except (grpc.RpcError, CaseFailure) as error:
            failures.append(f"iteration {iteration}: {error}")
        finally:
            if new_channel:
                channel.close()
        done += 1
        pause = started + gap - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    latencies.sort()
    if latencies:
        print(f"soak: {done} iterations, {len(failures)} failed, latency p50 "
              f"{latencies[len(latencies) // 2] * 1000:.1f} ms, max "
              f"{latencies[-1] * 1000:.1f} ms", file=sys.stderr)
    _expect(done == args.soak_iterations,
            f"only {done} of {args.soak_iterations} iterations within "
            f"{args.soak_overall_timeout_seconds} s")
    _expect(len(failures) <= args.soak_max_failures,
            f"{len(failures)} iterations failed (at most {args.soak_max_failures} "
            f"allowed): " + "; ".join(failures[:5]))


def rpc_soak(stub, args):
    _soak(args, None)


def channel_soak(stub, args):
    _soak(args, args.new_channel)


CASES = {case.__name__: case for case in (
    empty_unary, large_unary, client_streaming, server_streaming, ping_pong,
    empty_stream, timeout_on_sleeping_server, cancel_after_begin,
    cancel_after_first_response, status_code_and_message, special_status_message,
    custom_metadata, unimplemented_method, unimplemented_service,
    client_compressed_unary, server_compressed_unary, rpc_soak, channel_soak,
)}


# -- flags and channel -------------------------------------------------------

def _bool(text):
    if text.lower() in ("1", "true", "t", "yes"):
        return True
    if text.lower() in ("0", "false", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    flag = parser.add_argument
    flag("--server_host", default="localhost")
    flag("--server_port", type=int, default=10000)
    flag("--test_case", default="large_unary", choices=sorted(CASES))
    flag("--use_tls", type=_bool, nargs="?", const=True, default=False)
    flag("--use_test_ca", type=_bool, nargs="?", const=True, default=False)
    flag("--ca_file", default="")
    flag("--server_host_override", default="")
    flag("--soak_iterations", type=int, default=10)
    flag("--soak_max_failures", type=int, default=0)
    flag("--soak_per_iteration_max_acceptable_latency_ms", type=int, default=1000)
    flag("--soak_overall_timeout_seconds", type=int, default=10)
    flag("--soak_min_time_ms_between_rpcs", type=int, default=0)
    flag("--soak_request_size", type=int, default=LARGE_REQUEST_SIZE)
    flag("--soak_response_size", type=int, default=LARGE_RESPONSE_SIZE)
    return parser.parse_args(argv)


def channel_factory(args):
    """A function opening a new channel to the server as the flags say."""
    host = f"[{args.server_host}]" if ":" in args.server_host else args.server_host
    target = f"{host}:{args.server_port}"
    if not args.use_tls:
        return lambda: grpc.insecure_channel(target)
    root_certificates = None
    if args.use_test_ca:
        with open(args.ca_file or tls_testdata.path("ca.pem"), "rb") as f:
            root_certificates = f.read()
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    options = ()
    if args.server_host_override:
        options = (("grpc.ssl_target_name_override", args.server_host_override),)
    return lambda: grpc.secure_channel(target, credentials, options)


def run(args):
    args.new_channel = channel_factory(args)
    with args.new_channel() as channel:
        args.channel = channel
        CASES[args.test_case](test_pb2_grpc.TestServiceStub(channel), args)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except Exception as error:  # noqa: BLE001 - any failure fails the case
        kind = "" if isinstance(error, CaseFailure) else f"{type(error).__name__}: "
        if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
            kind = f"RpcError {error.code()} {error.details()!r}: "
        print(f"FAIL {args.test_case}: {kind}{error}", file=sys.stderr, flush=True)
        return 1
    print(f"PASS {args.test_case}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
