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
    __slots__ = ("hot", "cq", "fd", "loop_ref", "waiting", "tokens", "watch_tokens", "__weakref__")

    def __init__(self, loop):
        self.hot = _runtime.hot()
        self.cq = self.hot.cq_new()
        self.fd = self.hot.cq_fd(self.cq)
        self.loop_ref = weakref.ref(loop)
        self.waiting = {}  # token -> future
        self.tokens = itertools.count(1)
        # The next token of the server calls' watches: aio_server_take
        # numbers them from here, apart from tokens' numbers.
        self.watch_tokens = 1 << 62
        loop.add_reader(self.fd, self._drain)

    def _drain(self):
        waiting = self.waiting
        tokens = self.hot.cq_drain(self.cq)
        for i, token in enumerate(tokens):
            future = waiting.pop(token, None)
            if future is None:
                continue
            if future.__class__ is Wait or not future.done():  # a Wait checks itself
                try:
                    future.set_result(None)
                except BaseException:
                    # KeyboardInterrupt or SystemExit out of a task a Wait
                    # woke: the tokens after it still complete.
                    rest = tokens[i + 1:]
                    if rest:
                        loop = self.loop_ref()
                        if loop is not None and not loop.is_closed():
                            loop.call_soon(self._complete, rest)
                    raise

    def _complete(self, tokens):
        waiting = self.waiting
        for token in tokens:
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


class Wait:
    """A future of one token's completion that wakes its waiters at once.

    An asyncio.Future resolved by the drain schedules its callbacks (the
    awaiting task's wake-up) with call_soon: one more turn of the loop
    before the task runs. The drain runs as the loop's reader callback,
    where no task is running, so a Wait runs its callbacks right there
    (each in its own context, as call_soon would): the awaiting task
    resumes in the turn its completion arrived in. Anything else that ends a
    Wait (cancel(), done_soon()) may run inside a task and schedules the
    callbacks as asyncio.Future does.

    It speaks asyncio's future protocol (a task awaits it; shield, wait and
    gather accept it; with no get_loop(), asyncio reads _loop); its result
    is None.
    """

    __slots__ = ("_asyncio_future_blocking", "_loop", "_state", "_callbacks", "_message")

    _log_traceback = False

    def __init__(self, loop):
        self._asyncio_future_blocking = False
        self._loop = loop
        self._state = 0  # 1 done, 2 cancelled
        self._callbacks = None
        self._message = None

    def done(self):
        return self._state != 0

    def cancelled(self):
        return self._state == 2

    def result(self):
        state = self._state
        if state == 1:
            return None
        if state == 2:
            raise asyncio.CancelledError(*(() if self._message is None else (self._message,)))
        raise asyncio.InvalidStateError("Result is not set.")

    def exception(self):
        self.result()
        return None

    def add_done_callback(self, fn, *, context=None):
        if self._state:
            self._loop.call_soon(fn, self, context=context)
        elif self._callbacks is None:
            self._callbacks = [(fn, context)]
        else:
            self._callbacks.append((fn, context))

    def remove_done_callback(self, fn):
        callbacks = self._callbacks
        if not callbacks:
            return 0
        kept = [c for c in callbacks if c[0] != fn]
        self._callbacks = kept
        return len(callbacks) - len(kept)

    def cancel(self, msg=None):
        if self._state:
            return False
        self._state = 2
        self._message = msg
        self._schedule()
        return True

    def done_soon(self):
        """Completes it with the callbacks scheduled (safe inside a task)."""
        if not self._state:
            self._state = 1
            self._schedule()

    def _schedule(self):
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            call_soon = self._loop.call_soon
            for fn, context in callbacks:
                call_soon(fn, self, context=context)

    def set_result(self, _):
        """The drain's completion: the callbacks run now."""
        if self._state:
            return
        self._state = 1
        callbacks, self._callbacks = self._callbacks, None
        if not callbacks:
            return
        for i, (fn, context) in enumerate(callbacks):
            try:
                if context is None:
                    fn(self)
                else:
                    context.run(fn, self)
            except (SystemExit, KeyboardInterrupt):
                call_soon = self._loop.call_soon
                for fn, context in callbacks[i + 1:]:
                    call_soon(fn, self, context=context)
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": "Exception in callback %r" % (fn,),
                    "exception": exc,
                    "future": self,
                })

    def __await__(self):
        if not self._state:
            self._asyncio_future_blocking = True
            yield self
        return self.result()

    __iter__ = __await__


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
