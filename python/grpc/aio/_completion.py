"""How engine operations reach an asyncio event loop (the Python half of
pyext/cq.h).

Each event loop gets one completion queue, made on first use from that
loop's thread. An operation started in the engine carries the queue and a
token; when it completes, Go appends the token and wakes the queue's fd
once. The loop watches the fd with ``add_reader`` and ``_drain`` resolves
the futures of every completed token in one pass. No thread polls and no Go
thread takes the GIL.

An open loop keeps its queue alive (the reader it watches the fd with);
nothing else must: the registry here holds neither, since a queue's
waiting futures hold their loop. So a loop that closed with work in flight
(a call never awaited, a stream left open, a server never stopped) is
collected with its queue, its calls (whose engine calls are then cancelled,
freeing their server handlers) and its fd. Operations in flight keep the C
queue alive (cq.h), so a late completion lands nowhere instead of in freed
memory.
"""

import asyncio
import itertools
import threading
import weakref

from grpc import _runtime

_queues = weakref.WeakKeyDictionary()  # loop -> weakref to its _Queue
_queues_lock = threading.Lock()


class _Queue:
    # No strong reference to the loop (its futures in waiting hold it).
    __slots__ = ("hot", "cq", "fd", "loop_ref", "waiting", "tokens", "__weakref__")

    def __init__(self, loop):
        self.hot = _runtime.hot()
        self.cq = self.hot.cq_new()
        self.fd = self.hot.cq_fd(self.cq)
        self.loop_ref = weakref.ref(loop)
        self.waiting = {}  # token -> future
        self.tokens = itertools.count(1)
        loop.add_reader(self.fd, self._drain)

    def _drain(self):
        waiting = self.waiting
        for token in self.hot.cq_drain(self.cq):
            future = waiting.pop(token, None)
            if future is not None and not future.done():
                future.set_result(None)

    def token(self, loop):
        """A new token and the future (of loop, the queue's) its completion
        resolves."""
        token = next(self.tokens)
        future = loop.create_future()
        self.waiting[token] = future
        return token, future

    def forget(self, token):
        self.waiting.pop(token, None)

    def close(self):
        loop = self.loop_ref()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.fd)
        for future in self.waiting.values():
            if not future.done():
                future.cancel()
        self.waiting.clear()


def queue():
    """(the running loop, its completion queue), the queue made on first use."""
    loop = asyncio.get_running_loop()
    ref = _queues.get(loop)
    q = None if ref is None else ref()
    if q is None:
        with _queues_lock:
            ref = _queues.get(loop)
            q = None if ref is None else ref()
            if q is None:
                q = _Queue(loop)
                _queues[loop] = weakref.ref(q)
    return loop, q


async def wait(q, token, future, op):
    """Waits for op (started with token) and returns its result. If the
    waiting task is cancelled, the operation is dropped (its goroutine ends)."""
    try:
        await future
    except asyncio.CancelledError:
        q.forget(token)
        raise
    return q.hot.aio_result(op)
