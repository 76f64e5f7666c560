"""Small pieces shared by the client and server sides."""

import collections
import json
import logging
import time

import grpc

_LOGGER = logging.getLogger("grpc")

# One metadata entry, as grpcio hands them out: a tuple with names.
Metadatum = collections.namedtuple("_Metadatum", ("key", "value"))

# grpc.StatusCode by wire value.
CODES = {code.value[0]: code for code in grpc.StatusCode}


# Status codes and connectivity states by their wire value, under grpcio's
# names for these maps (libraries reach for them).
CYGRPC_STATUS_CODE_TO_STATUS_CODE = CODES
STATUS_CODE_TO_CYGRPC_STATUS_CODE = {code: value for value, code in CODES.items()}
CYGRPC_CONNECTIVITY_STATE_TO_CHANNEL_CONNECTIVITY = {
    state.value[0]: state for state in grpc.ChannelConnectivity
}

# The longest a blocking wait() sleeps before it looks again, so that signal
# handlers run on a waiting main thread.
MAXIMUM_WAIT_TIMEOUT = 0.1


def encode(s):
    """UTF-8 bytes of a str; bytes unchanged."""
    return s if isinstance(s, bytes) else s.encode("utf8")


def decode(b):
    """A str from UTF-8 bytes (bad bytes replaced); anything else unchanged."""
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def fully_qualified_method(group, method):
    """The path of a method, as gRPC puts it on the wire: /service/method."""
    return "/%s/%s" % (group, method)


def wait(wait_fn, wait_complete_fn, timeout=None, spin_cb=None):
    """Waits in short slices until wait_complete_fn() is true.

    wait_fn is an Event.wait or Condition.wait (it takes timeout=); between
    slices spin_cb, if given, runs. Returns True if timeout (seconds) passed
    first, else False.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not wait_complete_fn():
        if deadline is None:
            wait_fn(timeout=MAXIMUM_WAIT_TIMEOUT)
        else:
            remaining = deadline - time.monotonic()
            if remaining < 0:
                return True
            wait_fn(timeout=min(remaining, MAXIMUM_WAIT_TIMEOUT))
        if spin_cb is not None:
            spin_cb()
    return False


def validate_port_binding_result(address, port):
    """port, or RuntimeError if binding address failed (port 0)."""
    if port == 0:
        raise RuntimeError(
            "Failed to bind to address %s; set GRPC_VERBOSITY=debug environment "
            "variable to see detailed error message." % address
        )
    return port


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

    Options are (key, value) pairs with int, float, str or bytes values, or
    objects with __int__, as grpcio accepts; other values are a TypeError
    there and here. Options the engine does not know are ignored, as grpcio
    ignores them.
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
            raise TypeError("Expected str, not %s" % type(key))
        if isinstance(value, float):
            # grpcio passes a float as a pointer argument, which no option
            # takes: it is ignored (it must not become an integer).
            continue
        if isinstance(value, int) and not -(2**31) <= value < 2**31:
            raise OverflowError("value too large to convert to int")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, (int, float, str)) and hasattr(type(value), "__int__"):
            # grpcio takes such objects as pointers (an SSLSessionCache, for
            # one); here the integer names the engine's object.
            value = int(value)
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


# grpcio's look-up of a call's compression (the metadata value of each
# grpc.Compression, an IntEnum: its int finds it too).
_CALL_COMPRESSIONS = {0: "identity", 1: "deflate", 2: "gzip"}


def check_call_compression(compression):
    """A call's compression, checked as grpcio checks it: anything false is
    none, anything else is looked up among the grpc.Compression values, so
    that anything else raises grpcio's KeyError (TypeError if unhashable)."""
    if compression:
        _CALL_COMPRESSIONS[compression]


def check_call_credentials(credentials):
    """A call's credentials (not None), checked as grpcio checks them: an
    object without grpcio's _credentials raises its AttributeError, other
    credentials (a grpc.ChannelCredentials) a TypeError."""
    if not isinstance(credentials, grpc.CallCredentials):
        if not hasattr(credentials, "_credentials"):
            raise AttributeError("'%s' object has no attribute '_credentials'"
                                 % type(credentials).__name__)
        raise TypeError("credentials must be grpc.CallCredentials, not %r" % (credentials,))


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
