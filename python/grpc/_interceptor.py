"""Client-side interceptors: grpc.intercept_channel.

Each interceptor wraps the channel below it. A multi-callable of an
intercepted channel hands the interceptor a continuation that performs the
call on the channel below with whatever call details the interceptor
passes, and returns what the interceptor returns: pure Python over the
public Channel API, as in grpcio.
"""

import collections
import sys

import grpc


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


def _unwrap(details, defaults):
    """The call arguments from details an interceptor passed, falling back on
    the original call's for attributes it left out."""
    return tuple(
        getattr(details, field, getattr(defaults, field)) for field in _ClientCallDetails._fields
    )


class _FailureOutcome(grpc.RpcError, grpc.Future, grpc.Call):
    """A call that raised something other than an RpcError."""

    def __init__(self, exception, traceback):
        super().__init__()
        self._exception = exception
        self._traceback = traceback

    def initial_metadata(self):
        return None

    def trailing_metadata(self):
        return None

    def code(self):
        return grpc.StatusCode.INTERNAL

    def details(self):
        return "Exception raised while intercepting the RPC"

    def cancel(self):
        return False

    def cancelled(self):
        return False

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def running(self):
        return False

    def done(self):
        return True

    def result(self, ignored_timeout=None):
        raise self._exception

    def exception(self, ignored_timeout=None):
        return self._exception

    def traceback(self, ignored_timeout=None):
        return self._traceback

    def add_callback(self, unused_callback):
        return False

    def add_done_callback(self, fn):
        fn(self)

    def __iter__(self):
        return self

    def __next__(self):
        raise self._exception

    def next(self):
        return self.__next__()


class _UnaryOutcome(grpc.Call, grpc.Future):
    """A finished unary call: its response and its Call."""

    def __init__(self, response, call):
        self._response = response
        self._call = call

    def initial_metadata(self):
        return self._call.initial_metadata()

    def trailing_metadata(self):
        return self._call.trailing_metadata()

    def code(self):
        return self._call.code()

    def details(self):
        return self._call.details()

    def is_active(self):
        return self._call.is_active()

    def time_remaining(self):
        return self._call.time_remaining()

    def cancel(self):
        return self._call.cancel()

    def add_callback(self, callback):
        return self._call.add_callback(callback)

    def cancelled(self):
        return False

    def running(self):
        return False

    def done(self):
        return True

    def result(self, ignored_timeout=None):
        return self._response

    def exception(self, ignored_timeout=None):
        return None

    def traceback(self, ignored_timeout=None):
        return None

    def add_done_callback(self, fn):
        fn(self)


class _Intercepted:
    """What the four intercepted multi-callables share."""

    def __init__(self, thunk, method, interceptor):
        self._thunk = thunk
        self._method = method
        self._interceptor = interceptor

    def _details(self, timeout, metadata, credentials, wait_for_ready, compression):
        return _ClientCallDetails(
            self._method, timeout, metadata, credentials, wait_for_ready, compression
        )

    def _call_below(self, how, details, request):
        """Runs the call on the channel below with the details an
        interceptor chose."""
        method, timeout, metadata, credentials, wait_for_ready, compression = details
        target = self._thunk(method)
        if how is not None:
            target = getattr(target, how)
        return target(
            request,
            timeout=timeout,
            metadata=metadata,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )


def _failure():
    return _FailureOutcome(sys.exc_info()[1], sys.exc_info()[2])


class _UnaryResponse(_Intercepted):
    """Unary-response shapes. As in grpcio: with_call's continuation turns
    failures into outcomes but an interceptor's own exception propagates;
    future() turns both into a failed future."""

    _intercept_name = None

    def _intercept(self, request, timeout, metadata, credentials, wait_for_ready,
                   compression, continuation):
        original = self._details(timeout, metadata, credentials, wait_for_ready, compression)
        intercept = getattr(self._interceptor, self._intercept_name)
        return intercept(lambda new_details, new_request: continuation(
            _unwrap(new_details, original), new_request), original, request)

    def _with_call_below(self, details, request):
        try:
            response, call = self._call_below("with_call", details, request)
            return _UnaryOutcome(response, call)
        except grpc.RpcError as rpc_error:
            return rpc_error
        except Exception:
            return _failure()

    def _future_below(self, details, request):
        try:
            return self._call_below("future", details, request)
        except Exception:
            return _failure()

    def __call__(self, request, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        response, _ = self.with_call(
            request, timeout, metadata, credentials, wait_for_ready, compression
        )
        return response

    def with_call(self, request, timeout=None, metadata=None, credentials=None,
                  wait_for_ready=None, compression=None):
        call = self._intercept(request, timeout, metadata, credentials, wait_for_ready,
                               compression, self._with_call_below)
        return call.result(), call

    def future(self, request, timeout=None, metadata=None, credentials=None,
               wait_for_ready=None, compression=None):
        try:
            return self._intercept(request, timeout, metadata, credentials, wait_for_ready,
                                   compression, self._future_below)
        except Exception:
            return _failure()


class _StreamResponse(_Intercepted):
    """Streaming-response shapes: any exception, the interceptor's or the
    call's, comes back as a failed call object that raises when used."""

    _intercept_name = None

    def __call__(self, request, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        original = self._details(timeout, metadata, credentials, wait_for_ready, compression)
        intercept = getattr(self._interceptor, self._intercept_name)
        try:
            return intercept(
                lambda new_details, new_request: self._call_below(
                    None, _unwrap(new_details, original), new_request),
                original,
                request,
            )
        except Exception:
            return _failure()


class _UnaryUnary(_UnaryResponse, grpc.UnaryUnaryMultiCallable):
    _intercept_name = "intercept_unary_unary"


class _StreamUnary(_UnaryResponse, grpc.StreamUnaryMultiCallable):
    _intercept_name = "intercept_stream_unary"


class _UnaryStream(_StreamResponse, grpc.UnaryStreamMultiCallable):
    _intercept_name = "intercept_unary_stream"


class _StreamStream(_StreamResponse, grpc.StreamStreamMultiCallable):
    _intercept_name = "intercept_stream_stream"


class _Channel(grpc.Channel):
    """A channel whose calls of some shapes go through one interceptor."""

    def __init__(self, channel, interceptor):
        self._channel = channel
        self._interceptor = interceptor

    def subscribe(self, callback, try_to_connect=False):
        self._channel.subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback):
        self._channel.unsubscribe(callback)

    def _wrap(self, factory, kind, wrapper, method, request_serializer,
              response_deserializer, _registered_method):
        def thunk(m):
            return factory(m, request_serializer, response_deserializer, _registered_method)

        if isinstance(self._interceptor, kind):
            return wrapper(thunk, method, self._interceptor)
        return thunk(method)

    def unary_unary(self, method, request_serializer=None, response_deserializer=None,
                    _registered_method=False):
        return self._wrap(self._channel.unary_unary, grpc.UnaryUnaryClientInterceptor,
                          _UnaryUnary, method, request_serializer, response_deserializer,
                          _registered_method)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        return self._wrap(self._channel.unary_stream, grpc.UnaryStreamClientInterceptor,
                          _UnaryStream, method, request_serializer, response_deserializer,
                          _registered_method)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        return self._wrap(self._channel.stream_unary, grpc.StreamUnaryClientInterceptor,
                          _StreamUnary, method, request_serializer, response_deserializer,
                          _registered_method)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None,
                      _registered_method=False):
        return self._wrap(self._channel.stream_stream, grpc.StreamStreamClientInterceptor,
                          _StreamStream, method, request_serializer, response_deserializer,
                          _registered_method)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._channel.__exit__(exc_type, exc_val, exc_tb)
        return False


_KINDS = (
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
)


def intercept_channel(channel, *interceptors):
    """The implementation behind grpc.intercept_channel: the first
    interceptor given sees each call first."""
    for interceptor in reversed(list(interceptors)):
        if not isinstance(interceptor, _KINDS):
            raise TypeError(
                "interceptor must be "
                "grpc.UnaryUnaryClientInterceptor or "
                "grpc.UnaryStreamClientInterceptor or "
                "grpc.StreamUnaryClientInterceptor or "
                "grpc.StreamStreamClientInterceptor"
            )
        channel = _Channel(channel, interceptor)
    return channel
