"""The client side: grpc.Channel and its multi-callables on the Go engine.

Every call makes one crossing into Go to start (and, for unary calls, to
finish); grpc-go does the rest. Streaming calls exchange messages in
batches through queues Go keeps, so a long stream costs about one crossing
per batch rather than per message.
"""

import collections
import logging
import sys
import threading
import time

import grpc
from grpc import _common
from grpc import _runtime

_LOGGER = logging.getLogger(__name__)

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_INTERNAL = grpc.StatusCode.INTERNAL
_UNKNOWN = grpc.StatusCode.UNKNOWN

# How many responses one crossing may bring back.
_BATCH = 64

_SERIALIZE_FAILED = "Exception serializing request!"
_DESERIALIZE_FAILED = "Exception deserializing response!"
_ITERATION_FAILED = "Exception iterating requests!"
_LOCALLY_CANCELLED = "Locally cancelled by application!"
_NO_RESPONSE = "No response received for a unary-response call!"


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
        return None

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


def _check_call_args(credentials, compression):
    if credentials is not None:
        raise NotImplementedError(
            "per-call credentials are not supported yet by grpcgo (TLS and call "
            "credentials are a later milestone)"
        )


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


class _UnaryUnaryMultiCallable(grpc.UnaryUnaryMultiCallable):
    def __init__(self, channel, method, request_serializer, response_deserializer):
        self._channel = channel
        self._method = method
        self._serializer = request_serializer
        self._deserializer = response_deserializer

    def _invoke(self, request, timeout, metadata, credentials, wait_for_ready, compression):
        _check_call_args(credentials, compression)
        handle = self._channel._live_handle()
        try:
            payload = _common.serialize(request, self._serializer)
        except Exception:
            _LOGGER.exception(_SERIALIZE_FAILED)
            return _Outcome(_INTERNAL, _SERIALIZE_FAILED, (), ())
        code, details, response, initial, trailing = self._channel._hot.unary(
            handle,
            self._method,
            payload,
            _common.timeout_arg(timeout),
            metadata,
            _common.wait_for_ready_arg(wait_for_ready),
        )
        return self._outcome(code, details, response, initial, trailing)

    def _outcome(self, code, details, response, initial, trailing):
        outcome = _Outcome(_common.CODES[code], details, initial, trailing)
        if code == 0:
            try:
                outcome.response = _common.deserialize(response, self._deserializer)
            except Exception:
                _LOGGER.exception(_DESERIALIZE_FAILED)
                outcome.code, outcome.details = _INTERNAL, _DESERIALIZE_FAILED
        return outcome

    def __call__(
        self,
        request,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        outcome = self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)
        if outcome.code is not _OK:
            raise _InactiveRpcError(outcome)
        return outcome.response

    def with_call(
        self,
        request,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        outcome = self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)
        if outcome.code is not _OK:
            raise _InactiveRpcError(outcome)
        return outcome.response, _CompletedCall(outcome)

    def future(
        self,
        request,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        _check_call_args(credentials, compression)
        handle = self._channel._live_handle()
        try:
            payload = _common.serialize(request, self._serializer)
        except Exception:
            _LOGGER.exception(_SERIALIZE_FAILED)
            return _local_failure(_INTERNAL, _SERIALIZE_FAILED)
        hot = self._channel._hot
        call = hot.unary_start(
            handle,
            self._method,
            payload,
            _common.timeout_arg(timeout),
            metadata,
            _common.wait_for_ready_arg(wait_for_ready),
        )
        return _UnaryFuture(hot, call, self._outcome, _deadline(timeout))


class _CallbackWatcher:
    """Runs callbacks once, when a call ends, from a thread that waits for
    the end (started only when someone asks for a callback)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._callbacks = []
        self._fired = False
        self._watching = False

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
        with self._lock:
            if self._fired:
                return
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(*args)
            except Exception:
                _LOGGER.exception("Exception in callback %r", fn)


def _spawn(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class _UnaryFuture(grpc.RpcError, grpc.Call, grpc.Future):
    """A unary-response call under way: a Call and a Future."""

    def __init__(self, hot, call, make_outcome, deadline):
        super().__init__()
        self._hot = hot
        self._call = call
        self._make_outcome = make_outcome
        self._deadline = deadline
        self._lock = threading.Lock()
        self._outcome = None
        self._cancelled = False
        self._rpc_callbacks = _CallbackWatcher()
        self._done_callbacks = _CallbackWatcher()

    def _wait(self, timeout):
        """The outcome, waiting up to timeout (None: forever); None if not yet."""
        if self._outcome is not None:
            return self._outcome
        result = self._hot.unary_wait(self._call, _common.timeout_arg(timeout))
        if result is None:
            return None
        with self._lock:
            if self._outcome is None:
                outcome = self._make_outcome(*result)
                if self._cancelled:
                    outcome.code, outcome.details = _CANCELLED, _LOCALLY_CANCELLED
                self._outcome = outcome
        return self._outcome

    def _watch(self):
        _spawn(self._watch_until_done)

    def _watch_until_done(self):
        self._wait(None)
        self._rpc_callbacks.fire()
        self._done_callbacks.fire(self)

    # Call
    def initial_metadata(self):
        return self._wait(None).initial_metadata

    def trailing_metadata(self):
        return self._wait(None).trailing_metadata

    def code(self):
        return self._wait(None).code

    def details(self):
        return self._wait(None).details

    def debug_error_string(self):
        return _debug_string(self._wait(None))

    def is_active(self):
        return self._wait(0) is None

    def time_remaining(self):
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def cancel(self):
        with self._lock:
            if self._outcome is not None or self._cancelled:
                return False
            self._cancelled = True
        self._hot.unary_cancel(self._call)
        return True

    def add_callback(self, callback):
        return self._rpc_callbacks.add(callback, self._watch)

    # Future
    def cancelled(self):
        outcome = self._wait(0)
        return outcome is not None and self._cancelled

    def running(self):
        return self._wait(0) is None

    def done(self):
        return self._wait(0) is not None

    def result(self, timeout=None):
        outcome = self._wait(timeout)
        if outcome is None:
            raise grpc.FutureTimeoutError()
        if outcome.code is _OK:
            return outcome.response
        if self._cancelled:
            raise grpc.FutureCancelledError()
        raise _InactiveRpcError(outcome)

    def exception(self, timeout=None):
        outcome = self._wait(timeout)
        if outcome is None:
            raise grpc.FutureTimeoutError()
        if outcome.code is _OK:
            return None
        if self._cancelled:
            raise grpc.FutureCancelledError()
        return _InactiveRpcError(outcome)

    def traceback(self, timeout=None):
        error = self.exception(timeout)
        if error is None:
            return None
        try:
            raise error
        except grpc.RpcError:
            return sys.exc_info()[2]

    def add_done_callback(self, fn):
        if not self._done_callbacks.add(fn, self._watch):
            fn(self)

    def __str__(self):
        outcome = self._wait(0)
        if outcome is None:
            return "<_UnaryFuture object of in-flight RPC>"
        return _describe("_UnaryFuture", outcome)

    __repr__ = __str__


def _consume_requests(hot, stream, iterator, serializer, call):
    """Sends every request the iterator yields, then half-closes. Runs on its
    own thread so requests flow while responses arrive."""
    try:
        for request in iterator:
            try:
                payload = _common.serialize(request, serializer)
            except Exception:
                _LOGGER.exception(_SERIALIZE_FAILED)
                call._abort(_INTERNAL, _SERIALIZE_FAILED)
                return
            if not hot.stream_send(stream, payload):
                return  # the call ended; the rest would go nowhere
    except Exception:
        _LOGGER.exception(_ITERATION_FAILED)
        call._abort(_UNKNOWN, _ITERATION_FAILED)
        return
    hot.stream_close_send(stream)


class _StreamCall(grpc.RpcError, grpc.Call, grpc.Future):
    """A call with a streaming response or request: a Call, a Future, an
    iterator of responses, and, once it failed, the RpcError itself."""

    def __init__(self, hot, stream, deserializer, deadline):
        super().__init__()
        self._hot = hot
        self._stream = stream
        self._deserializer = deserializer
        self._deadline = deadline
        self._buffer = collections.deque()
        self._lock = threading.Lock()
        self._initial = None
        self._outcome = None
        self._override = None  # (code, details) set locally: cancel, bad request
        self._settled = False  # the unary response has been taken
        self._rpc_callbacks = _CallbackWatcher()
        self._done_callbacks = _CallbackWatcher()

    # -- ending ---------------------------------------------------------------
    def _abort(self, code, details):
        """Ends the call locally with code and details."""
        with self._lock:
            if self._outcome is not None or self._override is not None:
                return False
            self._override = (code, details)
        self._hot.stream_cancel(self._stream)
        return True

    def _wait(self, timeout):
        """The outcome once the call ended, waiting up to timeout; None if not."""
        if self._outcome is not None:
            return self._outcome
        status = self._hot.stream_status(self._stream, _common.timeout_arg(timeout))
        if status is None:
            return None
        code, details, trailing = status
        with self._lock:
            if self._outcome is None:
                initial = self._initial
                if initial is None:
                    initial = self._hot.stream_header(self._stream, 0.0) or ()
                outcome = _Outcome(_common.CODES[code], details, initial, trailing)
                if self._override is not None:
                    outcome.code, outcome.details = self._override
                self._outcome = outcome
        return self._outcome

    def _watch(self):
        _spawn(self._watch_until_done)

    def _watch_until_done(self):
        self._wait(None)
        self._rpc_callbacks.fire()
        self._done_callbacks.fire(self)

    # -- iteration ------------------------------------------------------------
    def __iter__(self):
        return self

    def __next__(self):
        if not self._buffer:
            batch = self._hot.stream_recv(self._stream, _BATCH, -1.0)
            if not batch:
                outcome = self._wait(None)
                if outcome.code is _OK:
                    raise StopIteration()
                raise self
            self._buffer.extend(batch)
        data = self._buffer.popleft()
        try:
            return _common.deserialize(data, self._deserializer)
        except Exception:
            _LOGGER.exception(_DESERIALIZE_FAILED)
            self._abort(_INTERNAL, _DESERIALIZE_FAILED)
            self._wait(None)
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
                if not batch:
                    outcome.code, outcome.details = _INTERNAL, _NO_RESPONSE
                else:
                    try:
                        outcome.response = _common.deserialize(batch[0], self._deserializer)
                    except Exception:
                        _LOGGER.exception(_DESERIALIZE_FAILED)
                        outcome.code, outcome.details = _INTERNAL, _DESERIALIZE_FAILED
        return outcome

    # -- Call -----------------------------------------------------------------
    def initial_metadata(self):
        if self._initial is None:
            initial = self._hot.stream_header(self._stream, -1.0)
            self._initial = () if initial is None else initial
        return self._initial

    def trailing_metadata(self):
        return self._wait(None).trailing_metadata

    def code(self):
        return self._wait(None).code

    def details(self):
        return self._wait(None).details

    def debug_error_string(self):
        return _debug_string(self._wait(None))

    def is_active(self):
        return self._wait(0) is None

    def time_remaining(self):
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def cancel(self):
        return self._abort(_CANCELLED, _LOCALLY_CANCELLED)

    def add_callback(self, callback):
        return self._rpc_callbacks.add(callback, self._watch)

    # -- Future ---------------------------------------------------------------
    def cancelled(self):
        outcome = self._wait(0)
        return outcome is not None and outcome.code is _CANCELLED and self._override is not None

    def running(self):
        return self._wait(0) is None

    def done(self):
        return self._wait(0) is not None

    def result(self, timeout=None):
        outcome = self._wait(timeout)
        if outcome is None:
            raise grpc.FutureTimeoutError()
        if outcome.code is _OK:
            return outcome.response
        if self.cancelled():
            raise grpc.FutureCancelledError()
        raise self

    def exception(self, timeout=None):
        outcome = self._wait(timeout)
        if outcome is None:
            raise grpc.FutureTimeoutError()
        if outcome.code is _OK:
            return None
        if self.cancelled():
            raise grpc.FutureCancelledError()
        return self

    def traceback(self, timeout=None):
        if self.exception(timeout) is None:
            return None
        try:
            raise self
        except grpc.RpcError:
            return sys.exc_info()[2]

    def add_done_callback(self, fn):
        if not self._done_callbacks.add(fn, self._watch):
            fn(self)

    def __str__(self):
        outcome = self._wait(0)
        if outcome is None:
            return "<_MultiThreadedRendezvous object of in-flight RPC>"
        return _describe("_MultiThreadedRendezvous", outcome)

    __repr__ = __str__


# grpcio's name for the streaming call object; some programs refer to it.
_MultiThreadedRendezvous = _StreamCall


class _StreamFuture(_StreamCall):
    """A stream-request unary-response call started with .future()."""

    def result(self, timeout=None):
        self._unary_outcome(timeout)
        return super().result(timeout)

    def exception(self, timeout=None):
        self._unary_outcome(timeout)
        return super().exception(timeout)

    def code(self):
        return self._unary_outcome(None).code

    def details(self):
        return self._unary_outcome(None).details


class _StreamMultiCallable:
    """What the three streaming multi-callables share."""

    _server_streams = True
    _client_streams = True

    def __init__(self, channel, method, request_serializer, response_deserializer):
        self._channel = channel
        self._method = method
        self._serializer = request_serializer
        self._deserializer = response_deserializer

    def _start(self, request_or_iterator, timeout, metadata, credentials, wait_for_ready,
               compression, call_class=_StreamCall):
        _check_call_args(credentials, compression)
        handle = self._channel._live_handle()
        hot = self._channel._hot
        first = None
        if not self._client_streams:
            try:
                first = _common.serialize(request_or_iterator, self._serializer)
            except Exception:
                _LOGGER.exception(_SERIALIZE_FAILED)
                return _local_failure(_INTERNAL, _SERIALIZE_FAILED)
        stream = hot.stream_start(
            handle,
            self._method,
            _common.timeout_arg(timeout),
            metadata,
            _common.wait_for_ready_arg(wait_for_ready),
            self._server_streams,
            self._client_streams,
            first,
            not self._client_streams,
        )
        call = call_class(hot, stream, self._deserializer, _deadline(timeout))
        if self._client_streams:
            _spawn(_consume_requests, hot, stream, request_or_iterator, self._serializer, call)
        return call


class _UnaryStreamMultiCallable(_StreamMultiCallable, grpc.UnaryStreamMultiCallable):
    _client_streams = False

    def __call__(
        self,
        request,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        return self._start(request, timeout, metadata, credentials, wait_for_ready, compression)


class _StreamStreamMultiCallable(_StreamMultiCallable, grpc.StreamStreamMultiCallable):
    def __call__(
        self,
        request_iterator,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        return self._start(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)


class _StreamUnaryMultiCallable(_StreamMultiCallable, grpc.StreamUnaryMultiCallable):
    _server_streams = False

    def _blocking(self, request_iterator, timeout, metadata, credentials, wait_for_ready, compression):
        call = self._start(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)
        if isinstance(call, _InactiveRpcError):
            raise call
        outcome = call._unary_outcome(None)
        if outcome.code is not _OK:
            raise _InactiveRpcError(outcome)
        return outcome

    def __call__(
        self,
        request_iterator,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        return self._blocking(
            request_iterator, timeout, metadata, credentials, wait_for_ready, compression
        ).response

    def with_call(
        self,
        request_iterator,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        outcome = self._blocking(
            request_iterator, timeout, metadata, credentials, wait_for_ready, compression
        )
        return outcome.response, _CompletedCall(outcome)

    def future(
        self,
        request_iterator,
        timeout=None,
        metadata=None,
        credentials=None,
        wait_for_ready=None,
        compression=None,
    ):
        return self._start(
            request_iterator, timeout, metadata, credentials, wait_for_ready, compression,
            call_class=_StreamFuture,
        )


class Channel(grpc.Channel):
    """A grpc.Channel backed by a grpc-go ClientConn."""

    def __init__(self, target, options, credentials, compression):
        if credentials is not None:
            raise NotImplementedError(
                "secure channels are not supported yet by grpcgo (TLS is a later milestone)"
            )
        if isinstance(target, bytes):
            target = target.decode()
        if not isinstance(target, str):
            raise TypeError("target must be str, not %s" % type(target).__name__)
        self._target = target
        self._hot = _runtime.hot()
        self._handle = self._hot.channel_new(target, _common.options_json(options))
        self._closed = False
        self._connectivity = _Connectivity(self)
        _runtime.track_channel(self)

    def _live_handle(self):
        if self._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")
        return self._handle

    def unary_unary(self, method, request_serializer=None, response_deserializer=None,
                    _registered_method=False):
        return _UnaryUnaryMultiCallable(self, _method_name(method), request_serializer,
                                        response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        return _UnaryStreamMultiCallable(self, _method_name(method), request_serializer,
                                         response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        return _StreamUnaryMultiCallable(self, _method_name(method), request_serializer,
                                         response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None,
                      _registered_method=False):
        return _StreamStreamMultiCallable(self, _method_name(method), request_serializer,
                                          response_deserializer)

    def subscribe(self, callback, try_to_connect=False):
        self._connectivity.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        self._connectivity.unsubscribe(callback)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._hot.channel_close(self._handle)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.close()
        return False

    def __del__(self):
        # The capsule's release closes the Go channel when this object goes.
        pass


class _Connectivity:
    """Delivers a channel's connectivity states to its subscribers from one
    thread, which runs while anyone is subscribed."""

    # How soon a new subscriber hears the current state.
    _POLL = 0.05

    def __init__(self, channel):
        self._channel = channel
        self._lock = threading.Lock()
        self._subscribers = []  # [callback, last state delivered]
        self._connect = False
        self._thread = None

    def subscribe(self, callback, try_to_connect):
        with self._lock:
            self._subscribers.append([callback, None])
            self._connect = self._connect or bool(try_to_connect)
            if self._thread is None:
                self._thread = _spawn(self._run)

    def unsubscribe(self, callback):
        with self._lock:
            for i, (cb, _) in enumerate(self._subscribers):
                if cb == callback:
                    del self._subscribers[i]
                    break

    def _run(self):
        channel = self._channel
        hot, handle = channel._hot, channel._handle
        state = None
        while True:
            with self._lock:
                if not self._subscribers or channel._closed:
                    self._thread = None
                    return
                connect = self._connect
            if state is None or (connect and state == 0):
                state = hot.channel_state(handle, connect)
            with self._lock:
                due = [s for s in self._subscribers if s[1] != state]
                for s in due:
                    s[1] = state
            connectivity = _CONNECTIVITY[state]
            for callback, _ in due:
                try:
                    callback(connectivity)
                except Exception:
                    _LOGGER.exception("Exception in connectivity callback %r", callback)
            changed = hot.channel_watch(handle, state, self._POLL)
            if changed is not None:
                state = changed


_CONNECTIVITY = {c.value[0]: c for c in grpc.ChannelConnectivity}


def _method_name(method):
    if isinstance(method, bytes):
        method = method.decode()
    if not isinstance(method, str):
        raise TypeError("method must be str, not %s" % type(method).__name__)
    return method
