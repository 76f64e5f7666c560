"""Consumers that transform, buffer, or hand values to another thread."""

import collections
import logging
import threading

from grpc.framework.foundation import stream

_LOGGER = logging.getLogger(__name__)

_END = object()  # the end of the stream, queued like a value


class TransformingConsumer(stream.Consumer):
    """Passes transformation(value) on to downstream."""

    def __init__(self, transformation, downstream):
        self._transformation = transformation
        self._downstream = downstream

    def consume(self, value):
        self._downstream.consume(self._transformation(value))

    def terminate(self):
        self._downstream.terminate()

    def consume_and_terminate(self, value):
        self._downstream.consume_and_terminate(self._transformation(value))


class IterableConsumer(stream.Consumer):
    """A consumer that is also an iterator over what it consumed: next()
    waits for a value and stops once the stream ended and all were read."""

    def __init__(self):
        self._condition = threading.Condition()
        self._values = collections.deque()
        self._open = True

    def consume(self, value):
        with self._condition:
            if self._open:
                self._values.append(value)
                self._condition.notify()

    def terminate(self):
        with self._condition:
            self._open = False
            self._condition.notify()

    def consume_and_terminate(self, value):
        with self._condition:
            if self._open:
                self._values.append(value)
                self._open = False
                self._condition.notify()

    def __iter__(self):
        return self

    def next(self):
        with self._condition:
            while self._open and not self._values:
                self._condition.wait()
            if self._values:
                return self._values.popleft()
        raise StopIteration()

    __next__ = next


class ThreadSwitchingConsumer(stream.Consumer):
    """Hands values to sink on a thread of pool, one at a time and in order;
    the caller never waits for sink."""

    def __init__(self, sink, pool):
        self._lock = threading.Lock()
        self._sink = sink
        self._pool = pool
        self._queue = collections.deque()  # values (and _END) not yet handed over
        self._draining = False  # a pool task is handing values over
        self._open = True

    def _enqueue(self, item):
        # Called with the lock held.
        self._queue.append(item)
        if not self._draining:
            self._draining = True
            self._pool.submit(self._drain)

    def _drain(self):
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                item = self._queue.popleft()
                last = bool(self._queue) and self._queue[0] is _END
                if last:
                    self._queue.popleft()
            try:
                if item is _END:
                    self._sink.terminate()
                elif last:
                    self._sink.consume_and_terminate(item)
                else:
                    self._sink.consume(item)
            except Exception as error:  # pylint: disable=broad-except
                _LOGGER.exception(error)

    def consume(self, value):
        with self._lock:
            if self._open:
                self._enqueue(value)

    def terminate(self):
        with self._lock:
            if self._open:
                self._open = False
                self._enqueue(_END)

    def consume_and_terminate(self, value):
        with self._lock:
            if self._open:
                self._open = False
                self._enqueue(value)
                self._queue.append(_END)
