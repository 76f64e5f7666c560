"""The grpcgo.testing.Echo test service, written with grpcio's public API.

It behaves exactly like the grpc-go implementation in tests/gopeer/echo
(see the package comment in tests/gopeer/echo/protocol.go), so the Go client
cases can judge grpcgo's server and the Python tests can judge grpcgo's
client against a grpc-go server. Every message is a
google.protobuf.StringValue.

Conventions, shared by the four methods:

* Metadata echo: request metadata keys starting with ``x-echo-`` come back as
  initial metadata unchanged (sent at the start of the handler, only if there
  is at least one) and as trailing metadata with the prefix changed to
  ``x-trailer-``. ``-bin`` values round-trip as bytes.
* ``status:<code>:<details>`` ends the RPC with that status (code as a number
  0-16 or a name such as NOT_FOUND; details may contain colons).
* ``sleep:<ms>`` sleeps that long, returning early if the RPC ends, then the
  text is handled as any other.
* Request metadata ``x-compress-response: gzip`` (or ``deflate``) makes the
  handler compress its responses with that algorithm.

(The grpc-go server also keeps an ``x-report`` convention, reporting the
:authority, TLS server name, request encoding and authorization it saw; a
ServicerContext cannot see those, so this service does not.)

Per method: UnaryEcho echoes; ServerStream takes ``<n>:<text>`` and sends
``<text>-0`` .. ``<text>-<n-1>`` (optional suffix ``|status:<code>:<details>``
ends the stream with that status afterwards; a bare directive is applied and
then echoed once); ClientStream answers with all texts joined by ``,``;
BidiStream answers each request as it arrives.
"""

import time

import grpc
from google.protobuf import wrappers_pb2

SERVICE = "grpcgo.testing.Echo"
UNARY = f"/{SERVICE}/UnaryEcho"
SERVER_STREAM = f"/{SERVICE}/ServerStream"
CLIENT_STREAM = f"/{SERVICE}/ClientStream"
BIDI = f"/{SERVICE}/BidiStream"

COMPRESS_RESPONSE = "x-compress-response"
COMPRESSIONS = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate,
                "identity": grpc.Compression.NoCompression}

ECHO_PREFIX = "x-echo-"
TRAILER_PREFIX = "x-trailer-"
JOIN_SEPARATOR = ","

StringValue = wrappers_pb2.StringValue
SERIALIZE = StringValue.SerializeToString
DESERIALIZE = StringValue.FromString


def parse_code(text):
    """Returns the grpc.StatusCode named by a number (0-16) or a name."""
    if text.isdigit():
        for code in grpc.StatusCode:
            if code.value[0] == int(text):
                return code
        raise ValueError(f"bad status code {text!r}")
    try:
        return grpc.StatusCode[text.upper()]
    except KeyError:
        raise ValueError(f"bad status code {text!r}") from None


def parse_status(text):
    """Splits "status:<code>[:<details>]" into (grpc.StatusCode, details)."""
    parts = text.split(":", 2)
    if len(parts) < 2:
        raise ValueError(f"bad status directive {text!r}")
    return parse_code(parts[1]), parts[2] if len(parts) == 3 else ""


def echo_metadata(metadata):
    """Returns (initial, trailing) metadata answering request ``metadata``."""
    initial = tuple((k, v) for k, v in metadata if k.startswith(ECHO_PREFIX))
    trailing = tuple(
        (TRAILER_PREFIX + k[len(ECHO_PREFIX):], v) for k, v in initial
    )
    return initial, trailing


def _echo(context):
    for key, value in context.invocation_metadata():
        if key == COMPRESS_RESPONSE:
            if value not in COMPRESSIONS:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"{COMPRESS_RESPONSE}: unknown compressor {value!r}")
            context.set_compression(COMPRESSIONS[value])
    initial, trailing = echo_metadata(context.invocation_metadata())
    context.set_trailing_metadata(trailing)
    if initial:
        context.send_initial_metadata(initial)


def _sleep(context, ms):
    """Sleeps ms milliseconds or until the RPC ends; True if it is still on."""
    deadline = time.monotonic() + ms / 1000.0
    while context.is_active():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.01))
    return False


def _directive(text, context):
    """Applies a status:/sleep: directive. Aborts (raises) for status:.

    Returns False if the RPC ended while sleeping.
    """
    if text.startswith("status:"):
        try:
            code, details = parse_status(text)
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if code is grpc.StatusCode.OK:
            # abort() refuses OK: end the RPC normally with the details.
            context.set_details(details)
            return True
        context.abort(code, details)
    if text.startswith("sleep:"):
        ms = text[len("sleep:"):]
        if not ms.isdigit():
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"bad sleep directive {text!r}"
            )
        return _sleep(context, int(ms))
    return True


def _is_directive(text):
    return text.startswith("status:") or text.startswith("sleep:")


def unary_echo(request, context):
    _echo(context)
    _directive(request.value, context)
    return StringValue(value=request.value)


def server_stream(request, context):
    _echo(context)
    text = request.value
    if _is_directive(text):
        if _directive(text, context):
            yield StringValue(value=text)
        return
    spec, _, final = text.partition("|")
    count, sep, body = spec.partition(":")
    if (
        not sep
        or not count.isdigit()
        or (final and not final.startswith("status:"))
    ):
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
        # The status after messages, the set_code/set_details way.
        code, details = parse_status(final)
        context.set_code(code)
        context.set_details(details)


def client_stream(request_iterator, context):
    _echo(context)
    texts = []
    for request in request_iterator:
        _directive(request.value, context)
        texts.append(request.value)
    return StringValue(value=JOIN_SEPARATOR.join(texts))


def bidi_stream(request_iterator, context):
    _echo(context)
    for request in request_iterator:
        if not _directive(request.value, context):
            return
        yield StringValue(value=request.value)


def method_handlers():
    """The Echo service's method handlers, by method name."""
    return {
        "UnaryEcho": grpc.unary_unary_rpc_method_handler(
            unary_echo, request_deserializer=DESERIALIZE, response_serializer=SERIALIZE
        ),
        "ServerStream": grpc.unary_stream_rpc_method_handler(
            server_stream, request_deserializer=DESERIALIZE, response_serializer=SERIALIZE
        ),
        "ClientStream": grpc.stream_unary_rpc_method_handler(
            client_stream, request_deserializer=DESERIALIZE, response_serializer=SERIALIZE
        ),
        "BidiStream": grpc.stream_stream_rpc_method_handler(
            bidi_stream, request_deserializer=DESERIALIZE, response_serializer=SERIALIZE
        ),
    }


def generic_handler():
    """A grpc.GenericRpcHandler serving grpcgo.testing.Echo."""
    return grpc.method_handlers_generic_handler(SERVICE, method_handlers())


class EchoStub:
    """Multi-callables for the Echo service on a channel (a hand-written stub)."""

    def __init__(self, channel):
        kw = dict(request_serializer=SERIALIZE, response_deserializer=DESERIALIZE)
        self.UnaryEcho = channel.unary_unary(UNARY, **kw)
        self.ServerStream = channel.unary_stream(SERVER_STREAM, **kw)
        self.ClientStream = channel.stream_unary(CLIENT_STREAM, **kw)
        self.BidiStream = channel.stream_stream(BIDI, **kw)


def msg(text):
    return StringValue(value=text)
