"""Small pieces shared by the client and server sides."""

import collections
import json
import logging

import grpc

_LOGGER = logging.getLogger("grpc")

# One metadata entry, as grpcio hands them out: a tuple with names.
Metadatum = collections.namedtuple("_Metadatum", ("key", "value"))

# grpc.StatusCode by wire value.
CODES = {code.value[0]: code for code in grpc.StatusCode}


def code_value(code):
    """The wire value of a grpc.StatusCode."""
    return code.value[0]


def timeout_arg(timeout):
    """The engine's convention for an optional timeout: seconds, or -1."""
    if timeout is None:
        return -1.0
    if not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds, not %s" % type(timeout).__name__)
    return max(float(timeout), 0.0)


def wait_for_ready_arg(wait_for_ready):
    if wait_for_ready is None:
        return 0
    return 1 if wait_for_ready else -1


def options_json(options):
    """Encodes channel or server options for the engine.

    Options are (key, value) pairs with int, float, str or bytes values, as
    grpcio accepts; other values are a TypeError there and here. Options the
    engine does not know are ignored, as grpcio ignores them.
    """
    pairs = []
    for option in options or ():
        try:
            key, value = option
        except (TypeError, ValueError):
            raise ValueError(
                "options must be a sequence of (key, value) pairs, got %r" % (option,)
            ) from None
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if not isinstance(key, str):
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, (int, float, str)):
            raise TypeError(
                "Expected int, bytes, or behavior, got %s for channel argument %r"
                % (type(value), key)
            )
        pairs.append((key, value))
    return json.dumps(pairs).encode()


def serialize(message, serializer):
    """The bytes to send. Raises what the serializer raised, or TypeError
    (grpcio's wording) when the result is not bytes."""
    data = message if serializer is None else serializer(message)
    check_bytes(data)
    return data


def check_bytes(data):
    if type(data) is not bytes:
        raise TypeError(
            "Argument 'message' has incorrect type (expected bytes, got %s)"
            % type(data).__name__
        )


def compression_arg(compression):
    """The engine's convention for an optional grpc.Compression: -1 unset.
    NoCompression counts as unset, as in grpcio."""
    return int(compression) if compression else -1


def with_compression(options, compression):
    """Channel or server options plus grpcio's default-compression option."""
    if not compression:
        return options
    return tuple(options or ()) + (("grpc.default_compression_algorithm", int(compression)),)


def deserialize(data, deserializer):
    return data if deserializer is None else deserializer(data)
