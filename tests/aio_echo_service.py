"""The grpcgo.testing.Echo test service written for grpc.aio's server:
coroutine and async-generator handlers with the same conventions as
tests/echo_service.py (metadata echo, ``status:``, ``sleep:``), so the
grpc-go client cases (tests/gopeer) can judge the aio server too."""

import asyncio

import grpc

from echo_service import (DESERIALIZE, JOIN_SEPARATOR, SERIALIZE, SERVICE, StringValue,
                          echo_metadata, parse_status)


async def _echo(context):
    initial, trailing = echo_metadata(context.invocation_metadata())
    context.set_trailing_metadata(trailing)
    if initial:
        await context.send_initial_metadata(initial)


async def _directive(text, context):
    """Applies a status:/sleep: directive; aborts (raises) for status:."""
    if text.startswith("status:"):
        try:
            code, details = parse_status(text)
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if code is grpc.StatusCode.OK:
            context.set_details(details)
            return
        await context.abort(code, details)
    if text.startswith("sleep:"):
        ms = text[len("sleep:"):]
        if not ms.isdigit():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad sleep directive {text!r}")
        # The handler's task is cancelled if the RPC ends meanwhile.
        await asyncio.sleep(int(ms) / 1000.0)


def _is_directive(text):
    return text.startswith("status:") or text.startswith("sleep:")


async def unary_echo(request, context):
    await _echo(context)
    await _directive(request.value, context)
    return StringValue(value=request.value)


async def server_stream(request, context):
    await _echo(context)
    text = request.value
    if _is_directive(text):
        await _directive(text, context)
        yield StringValue(value=text)
        return
    spec, _, final = text.partition("|")
    count, sep, body = spec.partition(":")
    if not sep or not count.isdigit() or (final and not final.startswith("status:")):
        context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
        context.set_details(f"want <n>:<text>[|status:...], got {text!r}")
        return
    if final:
        try:
            parse_status(final)
        except ValueError as e:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(str(e))
            return
    for i in range(int(count)):
        yield StringValue(value=f"{body}-{i}")
    if final:
        code, details = parse_status(final)
        context.set_code(code)
        context.set_details(details)


async def client_stream(request_iterator, context):
    await _echo(context)
    texts = []
    async for request in request_iterator:
        await _directive(request.value, context)
        texts.append(request.value)
    return StringValue(value=JOIN_SEPARATOR.join(texts))


async def bidi_stream(request_iterator, context):
    # The reader/writer way: read() until EOF, write() each answer.
    await _echo(context)
    from grpc import aio

    while True:
        request = await context.read()
        if request is aio.EOF:
            return
        await _directive(request.value, context)
        await context.write(StringValue(value=request.value))


def method_handlers():
    kw = dict(request_deserializer=DESERIALIZE, response_serializer=SERIALIZE)
    return {
        "UnaryEcho": grpc.unary_unary_rpc_method_handler(unary_echo, **kw),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **kw),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **kw),
        "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream, **kw),
    }


def generic_handler():
    return grpc.method_handlers_generic_handler(SERVICE, method_handlers())
