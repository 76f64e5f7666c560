"""The gRPC interop client on grpc.aio (the asyncio API), public API only.

    python interop/aio_client.py --server_host=HOST --server_port=N --test_case=NAME
        [--use_tls [--use_test_ca] [--ca_file=PEM] [--server_host_override=NAME]]
        [--soak_iterations=N ...]

The asyncio twin of client.py: the same flags, cases, checks and exit status
(0 pass, 1 fail, 2 bad flags), each case written the way asyncio code calls
gRPC (await a call, async iteration, read()/write()/done_writing()). It runs
on whichever `grpc` the interpreter imports (grpcgo or grpcio).
"""

import asyncio
import os
import sys
import time

import grpc
import grpc.aio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client as sync_client  # noqa: E402  (flags, constants, checks)
from client import (CALL_TIMEOUT, INITIAL_METADATA_KEY, INITIAL_METADATA_VALUE,  # noqa: E402
                    LARGE_REQUEST_SIZE, LARGE_RESPONSE_SIZE, REQUEST_SIZES, RESPONSE_SIZES,
                    SPECIAL_STATUS_MESSAGE, TRAILING_METADATA_KEY, TRAILING_METADATA_VALUE,
                    CaseFailure, _check_echoed_metadata, _check_payload, _expect, _expect_code,
                    _payload)
from src.proto.grpc.testing import empty_pb2  # noqa: E402
from src.proto.grpc.testing import messages_pb2  # noqa: E402
from src.proto.grpc.testing import test_pb2_grpc  # noqa: E402


async def empty_unary(stub, args):
    response = await stub.EmptyCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    _expect(response == empty_pb2.Empty(), f"got {response!r}, want an empty message")


async def large_unary(stub, args):
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=LARGE_RESPONSE_SIZE,
        payload=_payload(LARGE_REQUEST_SIZE))
    response = await stub.UnaryCall(request, timeout=CALL_TIMEOUT)
    _check_payload(response.payload, LARGE_RESPONSE_SIZE)


async def client_streaming(stub, args):
    async def requests():
        for size in REQUEST_SIZES:
            yield messages_pb2.StreamingInputCallRequest(payload=_payload(size))

    response = await stub.StreamingInputCall(requests(), timeout=CALL_TIMEOUT)
    _expect(response.aggregated_payload_size == sum(REQUEST_SIZES),
            f"aggregated_payload_size {response.aggregated_payload_size}, "
            f"want {sum(REQUEST_SIZES)}")


async def server_streaming(stub, args):
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=size)
                             for size in RESPONSE_SIZES])
    call = stub.StreamingOutputCall(request, timeout=CALL_TIMEOUT)
    responses = [response async for response in call]
    _expect(len(responses) == len(RESPONSE_SIZES),
            f"{len(responses)} responses, want {len(RESPONSE_SIZES)}")
    for index, (response, size) in enumerate(zip(responses, RESPONSE_SIZES)):
        _check_payload(response.payload, size, f"response {index}")
    _expect(await call.code() is grpc.StatusCode.OK, f"status {await call.code()}")


async def ping_pong(stub, args):
    call = stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    for index, (request_size, response_size) in enumerate(zip(REQUEST_SIZES, RESPONSE_SIZES)):
        await call.write(messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
            payload=_payload(request_size)))
        response = await call.read()
        _expect(response is not grpc.aio.EOF, f"the stream ended before response {index}")
        _check_payload(response.payload, response_size, f"response {index}")
    await call.done_writing()
    _expect(await call.read() is grpc.aio.EOF, "a response after the last ping")
    _expect(await call.code() is grpc.StatusCode.OK, f"status {await call.code()}")


async def empty_stream(stub, args):
    call = stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    await call.done_writing()
    _expect(await call.read() is grpc.aio.EOF, "a response to no request")
    _expect(await call.code() is grpc.StatusCode.OK, f"status {await call.code()}")


async def timeout_on_sleeping_server(stub, args):
    call = stub.FullDuplexCall(timeout=0.001)
    try:
        await call.write(messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE, payload=_payload(27182)))
        await call.read()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass
    else:
        raise CaseFailure("the call succeeded; want DEADLINE_EXCEEDED")
    code = await call.code()
    _expect(code is grpc.StatusCode.DEADLINE_EXCEEDED, f"code() {code}, want DEADLINE_EXCEEDED")


async def cancel_after_begin(stub, args):
    call = stub.StreamingInputCall(timeout=CALL_TIMEOUT)
    await asyncio.sleep(0)
    call.cancel()
    _expect(call.cancelled(), "cancelled() is False after cancel()")
    code = await call.code()
    _expect(code is grpc.StatusCode.CANCELLED, f"code() {code}, want CANCELLED")
    try:
        await call
    except asyncio.CancelledError:
        pass
    else:
        raise CaseFailure("awaiting a cancelled call did not raise CancelledError")


async def cancel_after_first_response(stub, args):
    call = stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    await call.write(messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=31415)],
        payload=_payload(27182)))
    response = await call.read()
    _check_payload(response.payload, 31415)
    call.cancel()
    try:
        await call.read()
    except asyncio.CancelledError:
        pass
    else:
        raise CaseFailure("read() after cancel() did not raise CancelledError")
    code = await call.code()
    _expect(code is grpc.StatusCode.CANCELLED, f"code() {code}, want CANCELLED")


async def _echo_status_unary(stub, code, message):
    request = messages_pb2.SimpleRequest(
        response_status=messages_pb2.EchoStatus(code=code, message=message))
    try:
        await stub.UnaryCall(request, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        _expect_code(error, grpc.StatusCode.UNKNOWN, message)
    else:
        raise CaseFailure("UnaryCall succeeded; want UNKNOWN")


async def status_code_and_message(stub, args):
    message = "test status message"
    await _echo_status_unary(stub, 2, message)
    call = stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    await call.write(messages_pb2.StreamingOutputCallRequest(
        response_status=messages_pb2.EchoStatus(code=2, message=message)))
    await call.done_writing()
    try:
        await call.read()
    except grpc.aio.AioRpcError as error:
        _expect_code(error, grpc.StatusCode.UNKNOWN, message)
    else:
        raise CaseFailure("FullDuplexCall succeeded; want UNKNOWN")
    _expect(await call.details() == message, f"details() {await call.details()!r}")


async def special_status_message(stub, args):
    await _echo_status_unary(stub, 2, SPECIAL_STATUS_MESSAGE)


async def custom_metadata(stub, args):
    metadata = grpc.aio.Metadata((INITIAL_METADATA_KEY, INITIAL_METADATA_VALUE),
                                 (TRAILING_METADATA_KEY, TRAILING_METADATA_VALUE))
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=1, payload=_payload(1))
    call = stub.UnaryCall(request, metadata=metadata, timeout=CALL_TIMEOUT)
    _check_payload((await call).payload, 1)
    _check_echoed_metadata(await call.initial_metadata(), await call.trailing_metadata(),
                           "UnaryCall")

    call = stub.FullDuplexCall(metadata=metadata, timeout=CALL_TIMEOUT)
    await call.write(messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=1)],
        payload=_payload(1)))
    initial = await call.initial_metadata()
    _check_payload((await call.read()).payload, 1)
    await call.done_writing()
    _expect(await call.read() is grpc.aio.EOF, "a response after the only request")
    _check_echoed_metadata(initial, await call.trailing_metadata(), "FullDuplexCall")


async def unimplemented_method(stub, args):
    try:
        await stub.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        _expect_code(error, grpc.StatusCode.UNIMPLEMENTED)
    else:
        raise CaseFailure("UnimplementedCall succeeded; want UNIMPLEMENTED")


async def unimplemented_service(stub, args):
    other = test_pb2_grpc.UnimplementedServiceStub(args.channel)
    try:
        await other.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        _expect_code(error, grpc.StatusCode.UNIMPLEMENTED)
    else:
        raise CaseFailure("UnimplementedService succeeded; want UNIMPLEMENTED")


async def client_compressed_unary(stub, args):
    def request(expect_compressed):
        return messages_pb2.SimpleRequest(
            response_type=messages_pb2.COMPRESSABLE, response_size=LARGE_RESPONSE_SIZE,
            payload=_payload(LARGE_REQUEST_SIZE),
            expect_compressed=messages_pb2.BoolValue(value=expect_compressed))

    try:
        await stub.UnaryCall(request(True), compression=grpc.Compression.NoCompression,
                             timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        _expect_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    else:
        print("client_compressed_unary: the server accepted the probe (it does not "
              "check expect_compressed); going on with the compressed calls", file=sys.stderr)
    response = await stub.UnaryCall(request(True), compression=grpc.Compression.Gzip,
                                    timeout=CALL_TIMEOUT)
    _check_payload(response.payload, LARGE_RESPONSE_SIZE, "compressed call's response")
    response = await stub.UnaryCall(request(False), compression=grpc.Compression.NoCompression,
                                    timeout=CALL_TIMEOUT)
    _check_payload(response.payload, LARGE_RESPONSE_SIZE, "uncompressed call's response")


async def server_compressed_unary(stub, args):
    for compressed in (True, False):
        request = messages_pb2.SimpleRequest(
            response_type=messages_pb2.COMPRESSABLE, response_size=LARGE_RESPONSE_SIZE,
            payload=_payload(LARGE_REQUEST_SIZE),
            response_compressed=messages_pb2.BoolValue(value=compressed))
        response = await stub.UnaryCall(request, timeout=CALL_TIMEOUT)
        _check_payload(response.payload, LARGE_RESPONSE_SIZE, f"response_compressed={compressed}")


async def _soak(args, new_channel):
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=args.soak_response_size,
        payload=_payload(args.soak_request_size))
    max_latency = args.soak_per_iteration_max_acceptable_latency_ms / 1000.0
    gap = args.soak_min_time_ms_between_rpcs / 1000.0
    overall_deadline = time.monotonic() + args.soak_overall_timeout_seconds
    failures, done = [], 0
    for iteration in range(args.soak_iterations):
        started = time.monotonic()
        if started >= overall_deadline:
            break
        channel = new_channel() if new_channel else args.channel
        try:
            stub = test_pb2_grpc.TestServiceStub(channel)
            response = await stub.UnaryCall(request, timeout=max(0.001, overall_deadline - started))
            _check_payload(response.payload, args.soak_response_size)
            latency = time.monotonic() - started
            if latency > max_latency:
                failures.append(f"iteration {iteration}: {latency * 1000:.1f} ms > "
                                f"{max_latency * 1000:.0f} ms")
        except (grpc.RpcError, CaseFailure) as error:
            failures.append(f"iteration {iteration}: {error}")
        finally:
            if new_channel:
                await channel.close()
        done += 1
        pause = started + gap - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
    _expect(done == args.soak_iterations,
            f"only {done} of {args.soak_iterations} iterations within "
            f"{args.soak_overall_timeout_seconds} s")
    _expect(len(failures) <= args.soak_max_failures,
            f"{len(failures)} iterations failed (at most {args.soak_max_failures} "
            f"allowed): " + "; ".join(failures[:5]))


async def rpc_soak(stub, args):
    await _soak(args, None)


async def channel_soak(stub, args):
    await _soak(args, args.new_channel)


CASES = {case.__name__: case for case in (
    empty_unary, large_unary, client_streaming, server_streaming, ping_pong,
    empty_stream, timeout_on_sleeping_server, cancel_after_begin,
    cancel_after_first_response, status_code_and_message, special_status_message,
    custom_metadata, unimplemented_method, unimplemented_service,
    client_compressed_unary, server_compressed_unary, rpc_soak, channel_soak,
)}
assert set(CASES) == set(sync_client.CASES)


def channel_factory(args):
    """A function opening a new aio channel to the server as the flags say."""
    host = f"[{args.server_host}]" if ":" in args.server_host else args.server_host
    target = f"{host}:{args.server_port}"
    if not args.use_tls:
        return lambda: grpc.aio.insecure_channel(target)
    root_certificates = None
    if args.use_test_ca:
        with open(args.ca_file or sync_client.tls_testdata.path("ca.pem"), "rb") as f:
            root_certificates = f.read()
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    options = ()
    if args.server_host_override:
        options = (("grpc.ssl_target_name_override", args.server_host_override),)
    return lambda: grpc.aio.secure_channel(target, credentials, options)


async def run(args):
    args.new_channel = channel_factory(args)
    async with args.new_channel() as channel:
        args.channel = channel
        await CASES[args.test_case](test_pb2_grpc.TestServiceStub(channel), args)


def main(argv=None):
    args = sync_client.parse_args(argv)
    try:
        asyncio.run(run(args))
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
