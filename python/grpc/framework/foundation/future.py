"""The Future interface of the framework layer (grpc.Future's ancestor).

Unlike concurrent.futures, add_done_callback is the only way to be told of
completion, and a callback added after completion runs at once.
"""

import abc


class TimeoutError(Exception):  # pylint: disable=redefined-builtin
    """result(), exception() or traceback() waited longer than allowed."""


class CancelledError(Exception):
    """The computation was cancelled before it finished."""


class Future(abc.ABC):
    """A computation that may still be under way."""

    @abc.abstractmethod
    def cancel(self):
        """Tries to cancel; True if cancelled (now or before), False if the
        computation already finished or cannot be stopped."""
        raise NotImplementedError()

    @abc.abstractmethod
    def cancelled(self):
        """Whether the computation was cancelled."""
        raise NotImplementedError()

    @abc.abstractmethod
    def running(self):
        """Whether the computation is still under way."""
        raise NotImplementedError()

    @abc.abstractmethod
    def done(self):
        """Whether the computation finished (returned, raised, cancelled)."""
        raise NotImplementedError()

    @abc.abstractmethod
    def result(self, timeout=None):
        """The computation's value, waiting up to timeout seconds (None:
        forever). Raises TimeoutError, CancelledError, or what it raised."""
        raise NotImplementedError()

    @abc.abstractmethod
    def exception(self, timeout=None):
        """What the computation raised (None if it returned), waiting as
        result() does."""
        raise NotImplementedError()

    @abc.abstractmethod
    def traceback(self, timeout=None):
        """The traceback of what the computation raised (None if it
        returned), waiting as result() does."""
        raise NotImplementedError()

    @abc.abstractmethod
    def add_done_callback(self, fn):
        """Calls fn(self) when the computation finishes, or at once if it
        has."""
        raise NotImplementedError()
