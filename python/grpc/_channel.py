"""The client side: grpc.Channel and its multi-callables on the Go engine.

Every call makes one crossing into Go to start, and a unary call one more
to fetch its result, unless it is a blocking call that ended OK with a
small response and no metadata (the engine then leaves the response's
bytes where the caller waits); grpc-go does the rest. Streaming calls
exchange messages in batches through queues Go keeps, so a long stream
costs about one crossing per batch rather than per message.
"""

import logging
import threading
import time
import weakref

import grpc
from grpc import _metrics
from grpc import _common
from grpc import _credentials
from grpc import _grpcio_metadata
from grpc import _runtime
from grpc._call import (
    SERIALIZE_FAILED as _SERIALIZE_FAILED,
    _CompletedCall,
    _InactiveRpcError,
    _MultiThreadedRendezvous,  # noqa: F401  (grpcio's name; programs refer to it)
    _Outcome,
    _StreamCall,
    _StreamFuture,
    _UnaryFuture,
    _consume_requests,
    _local_failure,
    _spawn,
)

_LOGGER = logging.getLogger(__name__)

_OK = grpc.StatusCode.OK
_INTERNAL = grpc.StatusCode.INTERNAL
_DESERIALIZE_FAILED = "Exception deserializing response!"


def _check_call_args(credentials, compression):
    """The engine's per-call credentials (or None), after checking them and
    compression as grpcio does (its exceptions: _common)."""
    _common.check_call_compression(compression)
    if credentials is None:
        return None
    _common.check_call_credentials(credentials)
    return _credentials.capsule_of(credentials._credentials)


def _serialize_request(request, serializer):
    """The request's bytes, or None if the serializer raised (logged, as
    grpcio does). A serializer that returns something other than bytes is a
    programming error: TypeError, raised to the caller."""
    if serializer is None:
        if request is None:  # grpcio: nothing to send is a failed serialization
            _LOGGER.error(_SERIALIZE_FAILED)
            return None
        payload = request
    else:
        try:
            payload = serializer(request)
        except Exception:
            _LOGGER.exception(_SERIALIZE_FAILED)
            return None
        if payload is None:  # grpcio counts this as a failed serialization
            return None
    _common.check_bytes(payload)
    return payload


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


class _UnaryUnaryMultiCallable(grpc.UnaryUnaryMultiCallable):
    def __init__(self, channel, method, request_serializer, response_deserializer):
        self._channel = channel
        self._method = method
        self._serializer = request_serializer
        self._deserializer = response_deserializer

    def _invoke(self, request, timeout, metadata, credentials, wait_for_ready, compression,
                response_only=False):
        """The call's _Outcome; with response_only, the response's bytes
        instead when the call ended OK without metadata (the engine then
        hands them over without building the rest)."""
        call_credentials = _check_call_args(credentials, compression)
        handle = self._channel._live_handle()
        payload = _serialize_request(request, self._serializer)
        if payload is None:
            return _Outcome(_INTERNAL, _SERIALIZE_FAILED, (), ())
        result = self._channel._hot.unary(
            handle,
            self._method,
            payload,
            _common.timeout_arg(timeout),
            metadata,
            _common.wait_for_ready_arg(wait_for_ready),
            _common.compression_arg(compression),
            call_credentials,
            response_only,
        )
        if result.__class__ is bytes:
            return result
        return self._outcome(*result)

    def _outcome(self, code, details, response, initial, trailing):
        outcome = _Outcome(_common.CODES[code], details, initial, trailing)
        if code == 0 and response is not None:  # None: the server sent none
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
        outcome = self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression, True)
        if outcome.__class__ is bytes:
            try:
                return _common.deserialize(outcome, self._deserializer)
            except Exception:
                _LOGGER.exception(_DESERIALIZE_FAILED)
                outcome = _Outcome(_INTERNAL, _DESERIALIZE_FAILED, (), ())
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
        call_credentials = _check_call_args(credentials, compression)
        handle = self._channel._live_handle()
        payload = _serialize_request(request, self._serializer)
        if payload is None:
            raise _local_failure(_INTERNAL, _SERIALIZE_FAILED)
        hot = self._channel._hot
        call = hot.unary_start(
            handle,
            self._method,
            payload,
            _common.timeout_arg(timeout),
            metadata,
            _common.wait_for_ready_arg(wait_for_ready),
            _common.compression_arg(compression),
            call_credentials,
        )
        future = _UnaryFuture(hot, call, self._outcome, _deadline(timeout))
        future._credentials = credentials  # keeps a plugin registered until the call ends
        future._channel = self._channel  # a call keeps its channel alive
        return future


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
        call_credentials = _check_call_args(credentials, compression)
        handle = self._channel._live_handle()
        hot = self._channel._hot
        first = None
        if not self._client_streams:
            first = _serialize_request(request_or_iterator, self._serializer)
            if first is None:
                raise _local_failure(_INTERNAL, _SERIALIZE_FAILED)
        stream = hot.stream_start(
            handle,
            self._method,
            _common.timeout_arg(timeout),
            metadata,
            _common.wait_for_ready_arg(wait_for_ready),
            _common.compression_arg(compression),
            call_credentials,
            self._server_streams,
            self._client_streams,
            first,
            not self._client_streams,
        )
        call = call_class(hot, stream, self._deserializer, _deadline(timeout))
        call._credentials = credentials  # keeps a plugin registered until the call ends
        call._channel = self._channel  # a call keeps its channel alive
        if self._client_streams:
            # The sending thread holds the call weakly: a call dropped by
            # its owner is cancelled even while its requests never end.
            _spawn(_consume_requests, hot, stream, request_or_iterator, self._serializer,
                   weakref.ref(call))
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


# grpcio's name for the library's part of the user agent. The engine sends
# grpcio's whole agent: "<primary> grpc-python/<version> grpc-c/<core
# version> (<os>; chttp2) <secondary>" (core/options.go).
_USER_AGENT = "grpc-python/{}".format(_grpcio_metadata.__version__)


class Channel(grpc.Channel):
    """A grpc.Channel backed by a grpc-go ClientConn."""

    def __init__(self, target, options, credentials, compression):
        if isinstance(target, bytes):
            target = target.decode()
        if not isinstance(target, str):
            raise TypeError("target must be str, not %s" % type(target).__name__)
        self._target = target
        self._hot = _runtime.hot()
        self._credentials = credentials  # keeps plugins registered while we live
        # The library's part of the user agent, after grpc.primary_user_agent.
        options = (("grpcgo.library_user_agent", _USER_AGENT),) + tuple(options or ())
        self._handle = self._hot.channel_new(
            target,
            _common.options_json(_common.with_compression(options, compression)),
            _credentials.capsule_of(credentials),
        )
        self._closed = False
        # Made on the first subscribe: until then the channel is in no
        # cycle, so dropping it releases it at once.
        self._connectivity = None

    def _live_handle(self):
        if self._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")
        return self._handle

    def unary_unary(self, method, request_serializer=None, response_deserializer=None,
                    _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return _UnaryUnaryMultiCallable(self, _method_name(method), request_serializer,
                                        response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return _UnaryStreamMultiCallable(self, _method_name(method), request_serializer,
                                         response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return _StreamUnaryMultiCallable(self, _method_name(method), request_serializer,
                                         response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None,
                      _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return _StreamStreamMultiCallable(self, _method_name(method), request_serializer,
                                          response_deserializer)

    def subscribe(self, callback, try_to_connect=False):
        if self._connectivity is None:
            with _CONNECTIVITY_LOCK:
                if self._connectivity is None:
                    self._connectivity = _Connectivity(self)
        self._connectivity.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        if self._connectivity is not None:
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
        state = hot.channel_state(handle, False)
        while True:
            with self._lock:
                if not self._subscribers or channel._closed:
                    self._thread = None
                    return
                # A connect request is used once, as grpcio does: after the
                # channel goes idle again it stays idle until a call.
                connect, self._connect = self._connect, False
                due = [s for s in self._subscribers if s[1] != state]
                for s in due:
                    s[1] = state
            connectivity = _CONNECTIVITY[state]
            for callback, _ in due:
                try:
                    callback(connectivity)
                except Exception:
                    _LOGGER.exception("Exception in connectivity callback %r", callback)
            if connect:
                hot.channel_state(handle, True)
            changed = hot.channel_watch(handle, state, self._POLL)
            if changed is not None:
                state = changed


_CONNECTIVITY = {c.value[0]: c for c in grpc.ChannelConnectivity}
_CONNECTIVITY_LOCK = threading.Lock()


def _method_name(method):
    if isinstance(method, bytes):
        method = method.decode()
    if not isinstance(method, str):
        raise TypeError("method must be str, not %s" % type(method).__name__)
    return method
