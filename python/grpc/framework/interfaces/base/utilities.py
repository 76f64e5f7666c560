"""Plain values of the base interface's types."""

import collections

from grpc.framework.interfaces.base import base


class _Completion(
    base.Completion,
    collections.namedtuple("_Completion", ("terminal_metadata", "code", "message")),
):
    __slots__ = ()


class _Subscription(
    base.Subscription,
    collections.namedtuple(
        "_Subscription", ("kind", "termination_callback", "allowance", "operator",
                          "protocol_receiver")),
):
    __slots__ = ()


_NONE_SUBSCRIPTION = _Subscription(base.Subscription.Kind.NONE, None, None, None, None)


def completion(terminal_metadata, code, message):
    """A base.Completion with these values."""
    return _Completion(terminal_metadata, code, message)


def full_subscription(operator, protocol_receiver):
    """A FULL base.Subscription to operator and protocol_receiver."""
    return _Subscription(base.Subscription.Kind.FULL, None, None, operator, protocol_receiver)
