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
    __slots__ = ("hot", "cq", "fd", "waiting", "tokens", "watch_tokens", "__weakref__")

    def __init__(self, loop):
        self.hot = _runtime.hot()
        self.cq = self.hot.cq_new()
        self.fd = self.hot.cq_fd(self.cq)
        self.waiting = {}  # token -> future
        self.tokens = itertools.count(1)
        # The next token of the server calls' watches: aio_server_take
        # numbers them from here, apart from tokens' numbers.
        self.watch_tokens = 1 << 62
        # The drain is C (cq_resolve), called by the loop with no Python
        # frame of ours around it (_drain is the same, for callers here);
        # its last argument, unused, is what keeps this queue alive.
        loop.add_reader(self.fd, self.hot.cq_resolve, self.cq, self.waiting, self)

    def _drain(self):
        # In C (pyext/aio_unary.h): every completed token's future is
        # resolved, a Wait's callbacks (its task's wake-up) run at once; if
        # KeyboardInterrupt or SystemExit leaves a task woken there, the
        # tokens after its own go back on the queue (a later turn).
        self.hot.cq_resolve(self.cq, self.waiting)

    def token(self, loop):
        """A new token and the future (of loop, the queue's) its completion
        resolves."""
        token = next(self.tokens)
        future = loop.create_future()
        self.waiting[token] = future
        return token, future

    def forget(self, token):
        self.waiting.pop(token, None)

    # No close(): a queue lives as long as its loop watches its fd, and goes
    # with the loop (module docstring). Its waiters are not all futures (a
    # server's acceptor and its calls' watches have only done() and
    # set_result(), _server.py), so no cancel() could end them all.


# Wait, a future of one token's completion that wakes its waiters at once, is
# C (pyext/aio_unary.h) and lives in the engine library, so it is reached
# through the module's __getattr__ (importing grpc.aio must not load it).
#
# An asyncio.Future resolved by the drain schedules its callbacks (the
# awaiting task's wake-up) with call_soon: one more turn of the loop before
# the task runs. The drain runs as the loop's reader callback, where no task
# is running, so a Wait runs its callbacks right there (each in its own
# context, as call_soon would): the awaiting task resumes in the turn its
# completion arrived in. Anything else that ends a Wait (cancel(),
# done_soon()) may run inside a task and schedules the callbacks as
# asyncio.Future does. It speaks asyncio's future protocol (a task awaits
# it; shield, wait_for and gather accept it); its result is None.


def __getattr__(name):
    if name == "Wait":
        return _runtime.hot().Wait
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def quiet(task):
    """task, which logs nothing if it is collected pending: the tasks
    grpc.aio makes for its own work (a server's guard, a handler's, a
    request iterator's, the interceptors') are pending when a program
    leaves its loop with calls in flight, and grpcio's say nothing then."""
    try:
        task._log_destroy_pending = False
    except AttributeError:  # a task factory's own kind of task
        pass
    return task


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
