"""The base interface layer: operations exchanged between the two ends of
an RPC framework (kept for grpcio compatibility; grpcgo's RPCs do not run
on it)."""

import abc
import enum

from grpc.framework.interfaces._abstract import interface


class NoSuchMethodError(Exception):
    """The servicer does not know the (group, method) it was asked for.

    code and details, if not None, are sent to the other side.
    """

    def __init__(self, code, details):
        super().__init__()
        self.code = code
        self.details = details


class Outcome(abc.ABC):
    """How an operation ended: kind, plus code and details when the other
    side sent them."""

    @enum.unique
    class Kind(enum.Enum):
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        LOCAL_SHUTDOWN = "local shutdown"
        REMOTE_SHUTDOWN = "remote shutdown"
        RECEPTION_FAILURE = "reception failure"
        TRANSMISSION_FAILURE = "transmission failure"
        LOCAL_FAILURE = "local failure"
        REMOTE_FAILURE = "remote failure"


class Completion(abc.ABC):
    """The end of an operation: terminal_metadata, code and message."""


class Subscription(abc.ABC):
    """What a customer wants to hear of an operation: kind, and for FULL an
    operator and a protocol_receiver."""

    @enum.unique
    class Kind(enum.Enum):
        NONE = "none"
        TERMINATION_ONLY = "termination only"
        FULL = "full"


_MODULE = __name__

OperationContext = interface(
    "OperationContext", _MODULE,
    ("outcome", "add_termination_callback", "time_remaining", "cancel", "fail"),
    doc="The context of one operation.")
Operator = interface(
    "Operator", _MODULE, ("advance",),
    doc="Moves an operation forward (metadata, payload, completion, allowance).")
ProtocolReceiver = interface(
    "ProtocolReceiver", _MODULE, ("context",),
    doc="Receives the protocol context of an operation.")
Servicer = interface(
    "Servicer", _MODULE, ("service",),
    doc="Services operations: service(group, method, context, output_operator).")
End = interface(
    "End", _MODULE, ("start", "stop", "operate", "operation_stats", "add_idle_action"),
    doc="One end of an RPC framework.")
