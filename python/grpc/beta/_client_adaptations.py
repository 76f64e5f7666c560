"""Beta stubs (face.GenericStub, face.DynamicStub) over grpc channels."""

import grpc
from grpc.beta import _metadata
from grpc.framework.common import cardinality
from grpc.framework.foundation import future
from grpc.framework.interfaces.face import face

# grpc status code -> (face.Abortion.Kind, face.AbortionError subclass)
_ABORTIONS = {
    grpc.StatusCode.CANCELLED: (face.Abortion.Kind.CANCELLED, face.CancellationError),
    grpc.StatusCode.UNKNOWN: (face.Abortion.Kind.REMOTE_FAILURE, face.RemoteError),
    grpc.StatusCode.DEADLINE_EXCEEDED: (face.Abortion.Kind.EXPIRED, face.ExpirationError),
    grpc.StatusCode.UNIMPLEMENTED: (face.Abortion.Kind.LOCAL_FAILURE, face.LocalError),
}
_DEFAULT_ABORTION = (face.Abortion.Kind.REMOTE_FAILURE, face.RemoteError)


def _abortion(rpc_error):
    kind, _ = _ABORTIONS.get(rpc_error.code(), _DEFAULT_ABORTION)
    return face.Abortion(kind, _metadata.beta(rpc_error.initial_metadata()),
                         _metadata.beta(rpc_error.trailing_metadata()), rpc_error.code(),
                         rpc_error.details())


def _abortion_error(rpc_error):
    _, error_class = _ABORTIONS.get(rpc_error.code(), _DEFAULT_ABORTION)
    return error_class(_metadata.beta(rpc_error.initial_metadata()),
                       _metadata.beta(rpc_error.trailing_metadata()), rpc_error.code(),
                       rpc_error.details())


class _InvocationProtocolContext:
    """What a beta invocation's protocol_context() offers."""

    def disable_next_request_compression(self):
        pass  # the hint changes no result, only bytes on the wire


class _Rendezvous(future.Future, face.Call):
    """A grpc call (future and/or response iterator) seen through the face
    interfaces: grpc's errors become face.AbortionErrors."""

    def __init__(self, response_future, response_iterator, call):
        self._future = response_future
        self._iterator = response_iterator
        self._call = call

    def cancel(self):
        return self._call.cancel()

    def cancelled(self):
        try:
            return self._future.cancelled()
        except AttributeError:
            return False

    def running(self):
        return self._future.running()

    def done(self):
        return self._future.done()

    def _translate(self, method, timeout):
        try:
            return method(timeout=timeout)
        except grpc.RpcError as rpc_error:
            raise _abortion_error(rpc_error) from None
        except grpc.FutureTimeoutError:
            raise future.TimeoutError() from None
        except grpc.FutureCancelledError:
            raise future.CancelledError() from None

    def result(self, timeout=None):
        return self._translate(self._future.result, timeout)

    def exception(self, timeout=None):
        try:
            rpc_error = self._translate(self._future.exception, timeout)
        except face.AbortionError as error:
            return error
        return None if rpc_error is None else _abortion_error(rpc_error)

    def traceback(self, timeout=None):
        return self._translate(self._future.traceback, timeout)

    def add_done_callback(self, fn):
        self._future.add_done_callback(lambda ignored: fn(self))

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except grpc.RpcError as rpc_error:
            raise _abortion_error(rpc_error) from None

    next = __next__

    def is_active(self):
        return self._call.is_active()

    def time_remaining(self):
        return self._call.time_remaining()

    def add_abortion_callback(self, abortion_callback):
        def done():
            if self._call.code() is not grpc.StatusCode.OK:
                abortion_callback(_abortion(self._call))

        return self._call.add_callback(done)

    def protocol_context(self):
        return _InvocationProtocolContext()

    def initial_metadata(self):
        return _metadata.beta(self._call.initial_metadata())

    def terminal_metadata(self):
        return _metadata.beta(self._call.trailing_metadata())

    def code(self):
        return self._call.code()

    def details(self):
        return self._call.details()


def _kwargs(timeout, metadata, protocol_options, metadata_transformer):
    metadata = _metadata.unbeta(metadata)
    if metadata_transformer is not None:
        metadata = _metadata.unbeta(metadata_transformer(metadata))
    credentials = None if protocol_options is None else protocol_options.credentials
    return {"timeout": timeout, "metadata": metadata or None, "credentials": credentials}


class _Method:
    """The grpc multi-callables of one beta method."""

    def __init__(self, channel, group, method, options):
        path = "/%s/%s" % (group, method)
        serializer = options.request_serializers.get((group, method))
        deserializer = options.response_deserializers.get((group, method))
        self._transformer = options.metadata_transformer
        self.unary_unary = channel.unary_unary(path, serializer, deserializer)
        self.unary_stream = channel.unary_stream(path, serializer, deserializer)
        self.stream_unary = channel.stream_unary(path, serializer, deserializer)
        self.stream_stream = channel.stream_stream(path, serializer, deserializer)

    def kwargs(self, timeout, metadata, protocol_options):
        return _kwargs(timeout, metadata, protocol_options, self._transformer)


def _blocking(multi, request, kwargs, with_call):
    try:
        response, call = multi.with_call(request, **kwargs)
    except grpc.RpcError as rpc_error:
        raise _abortion_error(rpc_error) from None
    return (response, _Rendezvous(None, None, call)) if with_call else response


def _future(multi, request, kwargs):
    response_future = multi.future(request, **kwargs)
    return _Rendezvous(response_future, None, response_future)


def _inline(multi, request, kwargs):
    call = multi(request, **kwargs)
    return _Rendezvous(call, call, call)


def _event(rendezvous, receiver, abortion_callback, streaming):
    """Drives a face.ResponseReceiver from a call on a thread of its own."""
    import threading  # pylint: disable=import-outside-toplevel

    def run():
        try:
            if streaming:
                for response in rendezvous:
                    receiver.response(response)
            else:
                receiver.response(rendezvous.result())
        except face.AbortionError:
            abortion_callback(_abortion(rendezvous._call))
            return
        receiver.complete(rendezvous.terminal_metadata(), rendezvous.code(), rendezvous.details())

    threading.Thread(target=run, daemon=True).start()
    return rendezvous


class _UnaryUnaryMultiCallable(face.UnaryUnaryMultiCallable):
    def __init__(self, method):
        self._method = method

    def __call__(self, request, timeout, metadata=None, with_call=False, protocol_options=None):
        return _blocking(self._method.unary_unary, request,
                         self._method.kwargs(timeout, metadata, protocol_options), with_call)

    def future(self, request, timeout, metadata=None, protocol_options=None):
        return _future(self._method.unary_unary, request,
                       self._method.kwargs(timeout, metadata, protocol_options))

    def event(self, request, receiver, abortion_callback, timeout, metadata=None,
              protocol_options=None):
        return _event(self.future(request, timeout, metadata, protocol_options), receiver,
                      abortion_callback, False)


class _UnaryStreamMultiCallable(face.UnaryStreamMultiCallable):
    def __init__(self, method):
        self._method = method

    def __call__(self, request, timeout, metadata=None, protocol_options=None):
        return _inline(self._method.unary_stream, request,
                       self._method.kwargs(timeout, metadata, protocol_options))

    def event(self, request, receiver, abortion_callback, timeout, metadata=None,
              protocol_options=None):
        return _event(self(request, timeout, metadata, protocol_options), receiver,
                      abortion_callback, True)


class _StreamUnaryMultiCallable(face.StreamUnaryMultiCallable):
    def __init__(self, method):
        self._method = method

    def __call__(self, request_iterator, timeout, metadata=None, with_call=False,
                 protocol_options=None):
        return _blocking(self._method.stream_unary, request_iterator,
                         self._method.kwargs(timeout, metadata, protocol_options), with_call)

    def future(self, request_iterator, timeout, metadata=None, protocol_options=None):
        return _future(self._method.stream_unary, request_iterator,
                       self._method.kwargs(timeout, metadata, protocol_options))

    def event(self, receiver, abortion_callback, timeout, metadata=None, protocol_options=None):
        raise NotImplementedError(
            "event-style stream-request invocation is not supported by grpcgo's grpc.beta")


class _StreamStreamMultiCallable(face.StreamStreamMultiCallable):
    def __init__(self, method):
        self._method = method

    def __call__(self, request_iterator, timeout, metadata=None, protocol_options=None):
        return _inline(self._method.stream_stream, request_iterator,
                       self._method.kwargs(timeout, metadata, protocol_options))

    def event(self, receiver, abortion_callback, timeout, metadata=None, protocol_options=None):
        raise NotImplementedError(
            "event-style stream-request invocation is not supported by grpcgo's grpc.beta")


class _GenericStub(face.GenericStub):
    def __init__(self, channel, options):
        self._channel = channel
        self._options = options

    def _method(self, group, method):
        return _Method(self._channel, group, method, self._options)

    def blocking_unary_unary(self, group, method, request, timeout, metadata=None,
                             with_call=False, protocol_options=None):
        return self.unary_unary(group, method)(request, timeout, metadata, with_call,
                                               protocol_options)

    def future_unary_unary(self, group, method, request, timeout, metadata=None,
                           protocol_options=None):
        return self.unary_unary(group, method).future(request, timeout, metadata,
                                                      protocol_options)

    def inline_unary_stream(self, group, method, request, timeout, metadata=None,
                            protocol_options=None):
        return self.unary_stream(group, method)(request, timeout, metadata, protocol_options)

    def blocking_stream_unary(self, group, method, request_iterator, timeout, metadata=None,
                              with_call=False, protocol_options=None):
        return self.stream_unary(group, method)(request_iterator, timeout, metadata,
                                                with_call, protocol_options)

    def future_stream_unary(self, group, method, request_iterator, timeout, metadata=None,
                            protocol_options=None):
        return self.stream_unary(group, method).future(request_iterator, timeout, metadata,
                                                       protocol_options)

    def inline_stream_stream(self, group, method, request_iterator, timeout, metadata=None,
                             protocol_options=None):
        return self.stream_stream(group, method)(request_iterator, timeout, metadata,
                                                 protocol_options)

    def event_unary_unary(self, group, method, request, receiver, abortion_callback, timeout,
                          metadata=None, protocol_options=None):
        return self.unary_unary(group, method).event(request, receiver, abortion_callback,
                                                     timeout, metadata, protocol_options)

    def event_unary_stream(self, group, method, request, receiver, abortion_callback, timeout,
                           metadata=None, protocol_options=None):
        return self.unary_stream(group, method).event(request, receiver, abortion_callback,
                                                      timeout, metadata, protocol_options)

    def event_stream_unary(self, group, method, receiver, abortion_callback, timeout,
                           metadata=None, protocol_options=None):
        return self.stream_unary(group, method).event(receiver, abortion_callback, timeout,
                                                      metadata, protocol_options)

    def event_stream_stream(self, group, method, receiver, abortion_callback, timeout,
                            metadata=None, protocol_options=None):
        return self.stream_stream(group, method).event(receiver, abortion_callback, timeout,
                                                       metadata, protocol_options)

    def unary_unary(self, group, method):
        return _UnaryUnaryMultiCallable(self._method(group, method))

    def unary_stream(self, group, method):
        return _UnaryStreamMultiCallable(self._method(group, method))

    def stream_unary(self, group, method):
        return _StreamUnaryMultiCallable(self._method(group, method))

    def stream_stream(self, group, method):
        return _StreamStreamMultiCallable(self._method(group, method))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        return False


_SHAPES = {
    cardinality.Cardinality.UNARY_UNARY: _GenericStub.unary_unary,
    cardinality.Cardinality.UNARY_STREAM: _GenericStub.unary_stream,
    cardinality.Cardinality.STREAM_UNARY: _GenericStub.stream_unary,
    cardinality.Cardinality.STREAM_STREAM: _GenericStub.stream_stream,
}


class _DynamicStub(face.DynamicStub):
    """The methods of one group as attributes, by their cardinalities."""

    def __init__(self, generic_stub, group, cardinalities):
        self._generic_stub = generic_stub
        self._group = group
        self._cardinalities = cardinalities

    def __getattr__(self, attr):
        shape = self._cardinalities.get(attr)
        if shape is None:
            raise AttributeError('_DynamicStub object has no attribute "%s"!' % attr)
        return _SHAPES[shape](self._generic_stub, self._group, attr)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        return False


def generic_stub(channel, options):
    return _GenericStub(channel, options)


def dynamic_stub(channel, service, cardinalities, options):
    return _DynamicStub(_GenericStub(channel, options), service, cardinalities)
