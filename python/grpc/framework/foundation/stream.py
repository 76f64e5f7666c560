"""The consumer side of a stream of values."""

import abc


class Consumer(abc.ABC):
    """Takes the values of a stream, then its end."""

    @abc.abstractmethod
    def consume(self, value):
        """Takes the next value."""
        raise NotImplementedError()

    @abc.abstractmethod
    def terminate(self):
        """The stream has ended."""
        raise NotImplementedError()

    @abc.abstractmethod
    def consume_and_terminate(self, value):
        """Takes the last value; the stream ends with it."""
        raise NotImplementedError()
