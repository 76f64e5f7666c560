"""The thread through which the engine's news reaches Python (``grpcgo-events``).

Go never calls Python from its own goroutines. What it has for Python waits
in its queue in Go (pyext/hot_events.go), and this daemon thread takes all
of it in one crossing per wake-up (``events_next``):

- ended calls: the tokens of server calls whose handler registered
  ``context.add_callback`` callbacks (``watch_call``), queued by the engine
  when the call ends however it ends; their callbacks run here, so open
  calls waiting for their client to go (a health ``Watch``) hold no thread;
- grpc-go's log records (grpc/_logging.py) and per-call metric records
  (grpc/_metrics.py).

Call credentials' requests take the other lane of that queue, on their own
thread (``grpcgo-callbacks``, grpc/_credentials.py): the code run here
(callbacks, logging handlers) may make a call whose metadata plugin must
start meanwhile.

The thread starts with the first need of it (a server, logging, metrics);
at exit, grpc's ``atexit`` hook takes what is left (``flush``) after the
servers stopped.

Ownership of ended-call tokens: ``watch_call`` keeps the servicer context in
``_watched`` under a fresh token, and the engine gives the token back once,
when the call is over; the entry is removed when it comes back. So the
context (and its call) lives until then, and a token never names another
call.
"""

import itertools
import logging
import threading
import time

from grpc import _runtime

_LOGGER = logging.getLogger(__name__)

_lock = threading.Lock()
_thread = None
_tokens = itertools.count(1)
_watched = {}  # token -> ServicerContext whose callbacks run when the call ends


def start():
    """Starts grpcgo-events once. Returns False if Python starts no more
    threads (interpreter exit); the atexit flush then delivers."""
    global _thread
    if _thread is not None:
        return True
    with _lock:
        if _thread is None:
            thread = threading.Thread(target=_serve, name="grpcgo-events", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # exiting
                return False
            _thread = thread
    return True


def watch_call(context):
    """Runs ``context._run_callbacks()`` on grpcgo-events once the call is
    over (the handler finished it, or it died)."""
    token = next(_tokens)
    with _lock:
        _watched[token] = context
    start()
    try:
        context._hot.call_notify_done(context._call, token)
    except BaseException:
        with _lock:
            _watched.pop(token, None)
        raise


def pending():
    """How many watched calls have not ended yet (for tests)."""
    with _lock:
        return len(_watched)


# Held from a take to the end of its delivery: batches are delivered in the
# order Go queued them, whichever thread took them (this one, or the flush).
_deliver_lock = threading.Lock()


def _serve():
    hot = _runtime.hot()
    while True:
        with _deliver_lock:
            try:
                got = hot.events_next(0.0)
            except Exception:  # pragma: no cover - a forked child, or exiting
                return
            try:
                _handle(hot, got)
            except Exception:  # pragma: no cover - the thread goes on
                _LOGGER.exception("delivering the engine's events failed")
        try:
            hot.events_wait(-1.0)
        except Exception:  # pragma: no cover - a forked child, or exiting
            return


def _handle(hot, got):
    if not got:
        return
    ended, logs, metrics = got
    if ended:
        with _lock:
            contexts = [_watched.pop(token, None) for token in ended]
        for context in contexts:
            if context is not None:
                context._run_callbacks()
    if metrics:
        from grpc import _metrics

        _metrics.deliver(metrics)
    if logs:
        from grpc import _logging

        _logging.emit(logs)


# How long the flush at exit waits for watched calls of stopped servers to
# come back.
_FLUSH_WAIT = 1.0


def flush(hot):
    """Delivers what the engine holds (at exit, once servers stopped): waits
    up to _FLUSH_WAIT for the calls still watched, which stopping their
    servers ended, so their callbacks run."""
    deadline = time.monotonic() + _FLUSH_WAIT
    for _ in range(1000):  # a producer that never stops cannot hold exit
        wait = 0.0
        if pending() and time.monotonic() < deadline:
            wait = 0.05
        # The thread may be running a callback that never returns: then
        # what is left stays undelivered rather than hold exit.
        if not _deliver_lock.acquire(timeout=_FLUSH_WAIT):
            return
        try:
            try:
                got = hot.events_next(wait)
            except Exception:  # pragma: no cover
                return
            if got is None and not wait:
                return
            try:
                _handle(hot, got)
            except Exception:  # pragma: no cover - best effort at exit
                _LOGGER.exception("delivering the engine's last events failed")
        finally:
            _deliver_lock.release()
