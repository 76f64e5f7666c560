"""Calling user code without letting its exceptions escape."""

import abc
import collections
import enum
import functools
import logging

_LOGGER = logging.getLogger(__name__)


class Outcome(abc.ABC):
    """What a call did: returned a value (kind RETURNED, return_value) or
    raised (kind RAISED, exception)."""

    @enum.unique
    class Kind(enum.Enum):
        """Whether the call returned or raised."""

        RETURNED = enum.auto()
        RAISED = enum.auto()


class _Outcome(
    collections.namedtuple("_Outcome", ("kind", "return_value", "exception")),
    Outcome,
):
    __slots__ = ()


def call_logging_exceptions(behavior, message, *args, **kwargs):
    """Calls behavior(*args, **kwargs); logs message with the traceback if
    it raises. Returns an Outcome either way."""
    try:
        value = behavior(*args, **kwargs)
    except Exception as error:  # pylint: disable=broad-except
        _LOGGER.exception(message)
        return _Outcome(Outcome.Kind.RAISED, None, error)
    return _Outcome(Outcome.Kind.RETURNED, value, None)


def with_exceptions_logged(behavior, message):
    """behavior wrapped so that calling it returns an Outcome and logs
    message when it raises (see call_logging_exceptions)."""

    @functools.wraps(behavior)
    def wrapper(*args, **kwargs):
        return call_logging_exceptions(behavior, message, *args, **kwargs)

    return wrapper
