"""The objects a client call returns: grpc.Call, grpc.Future, the response
iterator of streaming calls, and grpc.RpcError for calls that failed."""

import collections
import logging
import sys
import threading
import time

import grpc
from grpc import _common

_LOGGER = logging.getLogger(__name__)

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_INTERNAL = grpc.StatusCode.INTERNAL
_UNKNOWN = grpc.StatusCode.UNKNOWN

# How many responses one crossing may bring back.
_BATCH = 256

SERIALIZE_FAILED = "Exception serializing request!"
_DESERIALIZE_FAILED = "Exception deserializing response!"
_ITERATION_FAILED = "Exception iterating requests!"
_LOCALLY_CANCELLED = "Locally cancelled by application!"


class _Outcome:
    """How a call ended, as the application sees it."""

    __slots__ = ("code", "details", "initial_metadata", "trailing_metadata", "response")

    def __init__(self, code, details, initial_metadata, trailing_metadata, response=None):
        self.code = code
        self.details = details
        self.initial_metadata = initial_metadata
        self.trailing_metadata = trailing_metadata
        self.response = response


def _describe(cls_name, outcome):
    return (
        "<{} of RPC that terminated with:\n"
        "\tstatus = {}\n"
        '\tdetails = "{}"\n'
        '\tdebug_error_string = "{}"\n'
        ">".format(cls_name, outcome.code, outcome.details, _debug_string(outcome))
    )


def _debug_string(outcome):
    return "grpc_status:%d, grpc_message:%r" % (outcome.code.value[0], outcome.details)


class _InactiveRpcError(grpc.RpcError, grpc.Call, grpc.Future):
    """An RPC that has ended with a non-OK status: the error and its Call."""

    def __init__(self, outcome):
        super().__init__()
        self._outcome = outcome

    def initial_metadata(self):
        return self._outcome.initial_metadata

    def trailing_metadata(self):
        return self._outcome.trailing_metadata

    def code(self):
        return self._outcome.code

    def details(self):
        return self._outcome.details

    def debug_error_string(self):
        return _debug_string(self._outcome)

    def __str__(self):
        return _describe(type(self).__name__, self._outcome)

    __repr__ = __str__

    # Call/RpcContext
    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False

    # Future
    def cancelled(self):
        return False

    def running(self):
        return False

    def done(self):
        return True

    def result(self, timeout=None):
        raise self

    def exception(self, timeout=None):
        return self

    def traceback(self, timeout=None):
        try:
            raise self
        except grpc.RpcError:
            return sys.exc_info()[2]

    def add_done_callback(self, fn, timeout=None):
        fn(self)


class _CompletedCall(grpc.Call, grpc.Future):
    """The Call of a unary-response RPC that succeeded (from with_call)."""

    def __init__(self, outcome):
        self._outcome = outcome

    def initial_metadata(self):
        return self._outcome.initial_metadata

    def trailing_metadata(self):
        return self._outcome.trailing_metadata

    def code(self):
        return self._outcome.code

    def details(self):
        return self._outcome.details

    def debug_error_string(self):
        return ""  # grpcio: empty once the call ended OK

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False

    def cancelled(self):
        return False

    def running(self):
        return False

    def done(self):
        return True

    def result(self, timeout=None):
        return self._outcome.response

    def exception(self, timeout=None):
        return None

    def traceback(self, timeout=None):
        return None

    def add_done_callback(self, fn, timeout=None):
        fn(self)


def _local_failure(code, details):
    return _InactiveRpcError(_Outcome(code, details, (), ()))


class _CallbackWatcher:
    """Runs callbacks once, when a call ends: from a thread that waits for
    the end (started only when someone asks for a callback), or from the
    first thread that learns of the end. Until they have run, fire() from
    any other thread waits for them, so that they have run when result()
    returns or an iteration ends, as in grpcio."""

    def __init__(self):
        self._lock = threading.Condition(threading.Lock())
        self._callbacks = []
        self._fired = False
        self._watching = False
        self._runner = None  # the thread running the callbacks

    def add(self, fn, start_watch):
        """Returns False if the call already ended (fn not kept)."""
        with self._lock:
            if self._fired:
                return False
            self._callbacks.append(fn)
            if not self._watching:
                self._watching = True
                start_watch()
        return True

    def fire(self, *args):
        me = threading.get_ident()
        with self._lock:
            if self._fired:
                # A callback that asks for the result runs on the runner.
                while self._runner is not None and self._runner != me:
                    self._lock.wait()
                return
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
            if not callbacks:
                return
            self._runner = me
        try:
            for fn in callbacks:
                try:
                    fn(*args)
                except Exception:
                    _LOGGER.exception("Exception in callback %r", fn)
        finally:
            with self._lock:
                self._runner = None
                self._lock.notify_all()


def _spawn(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class _LiveCall(grpc.RpcError, grpc.Call, grpc.Future):
    """A call under way, as grpcio returns them: a Call, a Future, and, once
    it failed, the RpcError itself. Subclasses say how to learn the outcome
    from the engine (_fetch) and how to stop the call there (_stop)."""

    _name = "_MultiThreadedRendezvous"

    def __init__(self, deadline):
        super().__init__()
        self._deadline = deadline
        self._lock = threading.Lock()
        self._outcome = None
        self._ended_locally = False  # cancelled, or failed on this side
        self._cancelled = False
        self._rpc_callbacks = _CallbackWatcher()
        self._done_callbacks = _CallbackWatcher()
        self._credentials = None  # the call's own CallCredentials, kept alive
        self._channel = None  # the Channel, kept alive while the call is

    def _fetch(self, timeout):
        raise NotImplementedError()

    def _stop(self):
        raise NotImplementedError()

    def _known_initial_metadata(self):
        return ()

    def _wait(self, timeout):
        """The outcome, waiting up to timeout (None: forever); None if not yet."""
        if self._outcome is not None:
            return self._outcome
        outcome = self._fetch(timeout)
        if outcome is None:
            return None
        with self._lock:
            if self._outcome is None:
                self._outcome = outcome
        return self._outcome

    # The outcome the Future methods report; stream-request unary calls
    # also settle their response first.
    _final = _wait

    def _end_locally(self, code, details):
        """Ends the call now with code and details; False if it had ended."""
        with self._lock:
            if self._outcome is not None:
                return False
            self._outcome = _Outcome(code, details, self._known_initial_metadata(), ())
            self._ended_locally = True
            self._cancelled = code is _CANCELLED
        self._stop()
        self._fire()
        return True

    def _fire(self):
        self._rpc_callbacks.fire()
        self._done_callbacks.fire(self)

    def _watch(self):
        _spawn(self._watch_until_done)

    def _watch_until_done(self):
        self._wait(None)
        self._fire()

    # -- Call -----------------------------------------------------------------
    def initial_metadata(self):
        return self._final(None).initial_metadata

    def trailing_metadata(self):
        return self._final(None).trailing_metadata

    def code(self):
        return self._final(None).code

    def details(self):
        return self._final(None).details

    def debug_error_string(self):
        outcome = self._final(None)
        return "" if outcome.code is _OK else _debug_string(outcome)

    def is_active(self):
        return self._wait(0) is None

    def time_remaining(self):
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def cancel(self):
        return self._end_locally(_CANCELLED, _LOCALLY_CANCELLED)

    def add_callback(self, callback):
        if self.done():
            return False
        return self._rpc_callbacks.add(callback, self._watch)

    # -- Future ---------------------------------------------------------------
    def cancelled(self):
        return self._cancelled

    def running(self):
        return self._wait(0) is None

    def done(self):
        return self._wait(0) is not None

    def _outcome_after_callbacks(self, timeout):
        """The final outcome (None if timeout passed first), once the
        call's callbacks have run."""
        outcome = self._final(timeout)
        if outcome is not None:
            self._fire()
        return outcome

    def result(self, timeout=None):
        outcome = self._outcome_after_callbacks(timeout)
        if outcome is None:
            raise grpc.FutureTimeoutError()
        if self._cancelled:
            raise grpc.FutureCancelledError()
        if outcome.code is _OK:
            return outcome.response
        raise self

    def exception(self, timeout=None):
        outcome = self._outcome_after_callbacks(timeout)
        if outcome is None:
            raise grpc.FutureTimeoutError()
        if self._cancelled:
            raise grpc.FutureCancelledError()
        return None if outcome.code is _OK else self

    def traceback(self, timeout=None):
        if self.exception(timeout) is None:
            return None
        try:
            raise self
        except grpc.RpcError:
            return sys.exc_info()[2]

    def add_done_callback(self, fn):
        if self.done() or not self._done_callbacks.add(fn, self._watch):
            fn(self)

    def __str__(self):
        outcome = self._wait(0)
        if outcome is None:
            return "<%s object of in-flight RPC>" % self._name
        return _describe(self._name, outcome)

    __repr__ = __str__


class _UnaryFuture(_LiveCall):
    """A unary-response call started with .future()."""

    def __init__(self, hot, call, make_outcome, deadline):
        super().__init__(deadline)
        self._hot = hot
        self._call = call
        self._make_outcome = make_outcome

    def _fetch(self, timeout):
        result = self._hot.unary_wait(self._call, _common.timeout_arg(timeout))
        return None if result is None else self._make_outcome(*result)

    def _stop(self):
        self._hot.unary_cancel(self._call)


def _consume_requests(hot, stream, iterator, serializer, call_ref):
    """Sends every request the iterator yields, then half-closes. Runs on its
    own thread so requests flow while responses arrive; call_ref is a weak
    reference to the call (so dropping the call cancels it)."""

    def abort(code, details):
        call = call_ref()
        if call is not None:
            call._abort(code, details)

    send = hot.stream_send
    try:
        for request in iterator:
            if serializer is None and type(request) is bytes:
                payload = request  # what serialize() would give, without its two calls
            else:
                try:
                    payload = _common.serialize(request, serializer)
                except Exception:
                    _LOGGER.exception(SERIALIZE_FAILED)
                    abort(_INTERNAL, SERIALIZE_FAILED)
                    return
            if not send(stream, payload):
                return  # the call ended; the rest would go nowhere
    except Exception:
        _LOGGER.exception(_ITERATION_FAILED)
        abort(_UNKNOWN, _ITERATION_FAILED)
        return
    hot.stream_close_send(stream)


class _StreamCall(_LiveCall):
    """A call with a streaming request or response; with a streaming
    response it is also the iterator of responses."""

    def __init__(self, hot, stream, deserializer, deadline):
        super().__init__(deadline)
        self._hot = hot
        self._stream = stream
        self._deserializer = deserializer
        self._buffer = collections.deque()
        self._initial = None
        self._settled = False  # the unary response has been taken

    def _fetch(self, timeout):
        status = self._hot.stream_status(self._stream, _common.timeout_arg(timeout))
        if status is None:
            return None
        code, details, trailing = status
        initial = self._initial
        if initial is None:
            initial = self._hot.stream_header(self._stream, 0.0) or ()
        return _Outcome(_common.CODES[code], details, initial, trailing)

    def _stop(self):
        self._hot.stream_cancel(self._stream)

    def __del__(self):
        # Dropped by its owner: nothing can read it any more. (The stream's
        # handle may live on in a thread sending requests.)
        if self._outcome is None:
            try:
                self._hot.stream_cancel(self._stream)
            except Exception:  # pragma: no cover - interpreter teardown
                pass

    def _known_initial_metadata(self):
        return self._initial or ()

    # Ends the call on this side (bad request, bad response, cancel).
    _abort = _LiveCall._end_locally

    # -- iteration ------------------------------------------------------------
    def __iter__(self):
        return self

    def __next__(self):
        if self._ended_locally:
            raise self
        if not self._buffer:
            batch = self._hot.stream_recv(self._stream, _BATCH, -1.0)
            if not batch:
                outcome = self._wait(None)
                self._fire()  # the call's callbacks have run when iteration ends
                if outcome.code is _OK:
                    raise StopIteration()
                raise self
            self._buffer.extend(batch)
        data = self._buffer.popleft()
        if self._deserializer is None:
            return data
        try:
            return self._deserializer(data)
        except Exception:
            _LOGGER.exception(_DESERIALIZE_FAILED)
            self._abort(_INTERNAL, _DESERIALIZE_FAILED)
            raise self

    def next(self):
        return self.__next__()

    def _unary_outcome(self, timeout):
        """For stream-request unary calls: the outcome with its one response,
        once the call ended; None if timeout passed first."""
        outcome = self._wait(timeout)
        if outcome is None or outcome.code is not _OK or self._settled:
            return outcome
        with self._lock:
            if not self._settled:
                self._settled = True
                batch = list(self._buffer)
                self._buffer.clear()
                if not batch:
                    batch = self._hot.stream_recv(self._stream, 1, 0.0) or []
                if batch:  # else the server ended OK without one: None, as in grpcio
                    try:
                        outcome.response = _common.deserialize(batch[0], self._deserializer)
                    except Exception:
                        _LOGGER.exception(_DESERIALIZE_FAILED)
                        outcome.code, outcome.details = _INTERNAL, _DESERIALIZE_FAILED
        return outcome

    def initial_metadata(self):
        if self._initial is None:
            initial = self._hot.stream_header(self._stream, -1.0)
            self._initial = () if initial is None else initial
        return self._initial


# grpcio's name for the streaming call object; some programs refer to it.
_MultiThreadedRendezvous = _StreamCall


class _StreamFuture(_StreamCall):
    """A stream-request unary-response call started with .future()."""

    _final = _StreamCall._unary_outcome
