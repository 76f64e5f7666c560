"""The names of grpcio's Cython module that programs written against grpcio
import, so that code keeps working unchanged: ``from grpc._cython.cygrpc
import AbortError`` (grpc.aio's exceptions are defined here, as in grpcio,
and grpc.aio re-exports them), ``EOF``, ``ChannelArgKey``, ``StatusCode``,
``_Metadatum``; PyInstaller's ``--hidden-import grpc._cython.cygrpc``.

grpcgo has no C-core under it: grpcio's core objects (channels, calls,
servers, completion queues, credentials, ``execute_batch``) have no
counterpart here, and asking for one raises an AttributeError that says so.
Importing this module loads no engine.
"""

import collections
import enum


class BaseError(Exception):
    """The base of grpc.aio's own exceptions."""


class UsageError(BaseError):
    """The API was used in a way it does not support: a call made on a
    closed channel, read()/write() mixed with an iterator on one call."""


class AbortError(BaseError):
    """Raised inside a handler by context.abort(): the handler's code may
    clean up on its way out, and should let it propagate."""


class InternalError(BaseError):
    """An internal error of the runtime."""


class ExecuteBatchError(InternalError):
    """grpcio raises it when a batch fails in C-core; grpcgo never does
    (kept so that ``except`` clauses naming it still work)."""


class _EOF:
    """The type of grpc.aio.EOF: what read() returns at the end of a stream."""

    __slots__ = ()

    def __repr__(self):
        return "<grpc.aio.EOF>"

    def __bool__(self):
        return False


EOF = _EOF()


def init_grpc_aio():
    """Kept for compatibility: grpc.aio needs no global set-up (each event
    loop gets its completion queue on first use)."""


def shutdown_grpc_aio():
    """Kept for compatibility: nothing global to shut down."""


_Metadatum = collections.namedtuple("_Metadatum", ("key", "value"))


class StatusCode(enum.IntEnum):
    """C-core's status codes, by their lowercase names."""

    ok = 0
    cancelled = 1
    unknown = 2
    invalid_argument = 3
    deadline_exceeded = 4
    not_found = 5
    already_exists = 6
    permission_denied = 7
    unauthenticated = 16
    resource_exhausted = 8
    failed_precondition = 9
    aborted = 10
    out_of_range = 11
    unimplemented = 12
    internal = 13
    unavailable = 14
    data_loss = 15


class ChannelArgKey:
    """Channel argument names, as bytes (grpcio's spelling)."""

    enable_census = b"grpc.census"
    max_concurrent_streams = b"grpc.max_concurrent_streams"
    max_receive_message_length = b"grpc.max_receive_message_length"
    max_send_message_length = b"grpc.max_send_message_length"
    http2_initial_sequence_number = b"grpc.http2.initial_sequence_number"
    default_authority = b"grpc.default_authority"
    primary_user_agent_string = b"grpc.primary_user_agent"
    secondary_user_agent_string = b"grpc.secondary_user_agent"
    ssl_session_cache = b"grpc.ssl_session_cache"
    ssl_target_name_override = b"grpc.ssl_target_name_override"


class ConnectivityState:
    idle = 0
    connecting = 1
    ready = 2
    transient_failure = 3
    shutdown = 4


class CompressionAlgorithm:
    none = 0
    deflate = 1
    gzip = 2


class CompressionLevel:
    none = 0
    low = 1
    medium = 2
    high = 3


class WriteFlag:
    buffer_hint = 1
    no_compress = 2


class PropagationConstants:
    GRPC_PROPAGATE_DEADLINE = 0x1
    GRPC_PROPAGATE_CENSUS_STATS_CONTEXT = 0x2
    GRPC_PROPAGATE_CENSUS_TRACING_CONTEXT = 0x4
    GRPC_PROPAGATE_CANCELLATION = 0x8
    GRPC_PROPAGATE_DEFAULTS = 0xFFFF


class LocalConnectionType:
    uds = 0
    local_tcp = 1


GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM = "grpc.default_compression_algorithm"
GRPC_COMPRESSION_REQUEST_ALGORITHM_MD_KEY = "grpc-internal-encoding-request"

_ALGORITHM_NAMES = {CompressionAlgorithm.none: b"identity", CompressionAlgorithm.deflate: b"deflate",
                    CompressionAlgorithm.gzip: b"gzip"}


def compression_algorithm_name(algorithm):
    """The wire name of a CompressionAlgorithm value, as bytes."""
    try:
        return _ALGORITHM_NAMES[algorithm]
    except KeyError:
        raise ValueError("unknown compression algorithm %r" % (algorithm,)) from None


def __getattr__(name):
    raise AttributeError(
        "module 'grpc._cython.cygrpc' has no attribute %r: grpcgo runs on grpc-go, "
        "not grpcio's C-core, and keeps only the names programs use (grpc.aio's "
        "exceptions, EOF, the constant classes)" % (name,))
