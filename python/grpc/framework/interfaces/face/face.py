"""The face interface layer: what grpc.beta's stubs and servicers are
(kept for grpcio compatibility; see grpc.beta for what works on grpcgo)."""

import abc
import collections
import enum

from grpc.framework.common import cardinality  # noqa: F401  pylint: disable=unused-import
from grpc.framework.common import style  # noqa: F401  pylint: disable=unused-import
from grpc.framework.foundation import future  # noqa: F401  pylint: disable=unused-import
from grpc.framework.foundation import stream  # noqa: F401  pylint: disable=unused-import
from grpc.framework.interfaces._abstract import interface


class NoSuchMethodError(Exception):
    """Raised by customer code for a (group, method) it does not know."""

    def __init__(self, group, method):
        super().__init__()
        self.group = group
        self.method = method

    def __repr__(self):
        return "face.NoSuchMethodError(%s, %s)" % (self.group, self.method)


class Abortion(
    collections.namedtuple(
        "Abortion", ("kind", "initial_metadata", "terminal_metadata", "code", "details")
    )
):
    """How an RPC was aborted, with what the other side sent (or None)."""

    @enum.unique
    class Kind(enum.Enum):
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        LOCAL_SHUTDOWN = "local shutdown"
        REMOTE_SHUTDOWN = "remote shutdown"
        NETWORK_FAILURE = "network failure"
        LOCAL_FAILURE = "local failure"
        REMOTE_FAILURE = "remote failure"


class AbortionError(Exception, metaclass=abc.ABCMeta):
    """An aborted RPC, with what the other side sent (or None)."""

    def __init__(self, initial_metadata, terminal_metadata, code, details):
        super().__init__()
        self.initial_metadata = initial_metadata
        self.terminal_metadata = terminal_metadata
        self.code = code
        self.details = details

    def __str__(self):
        return '%s(code=%s, details="%s")' % (type(self).__name__, self.code, self.details)


class CancellationError(AbortionError):
    """The RPC was cancelled."""


class ExpirationError(AbortionError):
    """The RPC ran out of time."""


class LocalShutdownError(AbortionError):
    """This side shut down during the RPC."""


class RemoteShutdownError(AbortionError):
    """The other side shut down during the RPC."""


class NetworkError(AbortionError):
    """The network failed the RPC."""


class LocalError(AbortionError):
    """This side failed the RPC."""


class RemoteError(AbortionError):
    """The other side failed the RPC."""


_MODULE = __name__

RpcContext = interface(
    "RpcContext", _MODULE,
    ("is_active", "time_remaining", "add_abortion_callback", "cancel", "protocol_context"),
    doc="What both sides of an RPC can ask of it.")
Call = interface(
    "Call", _MODULE, ("initial_metadata", "terminal_metadata", "code", "details"),
    bases=(RpcContext,), doc="The invoker's view of an RPC.")
ServicerContext = interface(
    "ServicerContext", _MODULE,
    ("invocation_metadata", "initial_metadata", "terminal_metadata", "code", "details"),
    bases=(RpcContext,), doc="The servicer's view of an RPC.")
ResponseReceiver = interface(
    "ResponseReceiver", _MODULE, ("initial_metadata", "response", "complete"),
    doc="Receives what the servicer sends back.")
UnaryUnaryMultiCallable = interface(
    "UnaryUnaryMultiCallable", _MODULE, ("__call__", "future", "event"),
    doc="Invokes a unary-request, unary-response method.")
UnaryStreamMultiCallable = interface(
    "UnaryStreamMultiCallable", _MODULE, ("__call__", "event"),
    doc="Invokes a unary-request, streaming-response method.")
StreamUnaryMultiCallable = interface(
    "StreamUnaryMultiCallable", _MODULE, ("__call__", "future", "event"),
    doc="Invokes a streaming-request, unary-response method.")
StreamStreamMultiCallable = interface(
    "StreamStreamMultiCallable", _MODULE, ("__call__", "event"),
    doc="Invokes a streaming-request, streaming-response method.")
MethodImplementation = interface(
    "MethodImplementation", _MODULE, (),
    doc="A method's implementation: cardinality, style, and the one behavior "
        "attribute (unary_unary_inline, ..., stream_stream_event) they select.")
MultiMethodImplementation = interface(
    "MultiMethodImplementation", _MODULE, ("service",),
    doc="Services any method: service(group, method, response_consumer, context).")
GenericStub = interface(
    "GenericStub", _MODULE,
    ("blocking_unary_unary", "future_unary_unary", "inline_unary_stream",
     "blocking_stream_unary", "future_stream_unary", "inline_stream_stream",
     "event_unary_unary", "event_unary_stream", "event_stream_unary",
     "event_stream_stream", "unary_unary", "unary_stream", "stream_unary",
     "stream_stream"),
    doc="Invokes any method by group and name.")
DynamicStub = interface(
    "DynamicStub", _MODULE, (),
    doc="Invokes the methods of one group as attributes.")
