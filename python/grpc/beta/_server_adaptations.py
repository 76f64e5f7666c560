"""Beta servers: face method implementations served by a grpc.server."""

from concurrent import futures
import threading

import grpc
from grpc.beta import _metadata
from grpc.beta import interfaces
from grpc.framework.common import cardinality
from grpc.framework.common import style
from grpc.framework.foundation import abandonment
from grpc.framework.foundation import stream_util
from grpc.framework.interfaces.face import face

_DEFAULT_POOL_SIZE = 8


class _ServerProtocolContext(interfaces.GRPCServicerContext):
    def __init__(self, servicer_context):
        self._context = servicer_context

    def peer(self):
        return self._context.peer()

    def disable_next_response_compression(self):
        pass  # the hint changes no result, only bytes on the wire


class _FaceServicerContext(face.ServicerContext):
    """A grpc.ServicerContext seen as a face.ServicerContext."""

    def __init__(self, servicer_context):
        self._context = servicer_context

    def is_active(self):
        return self._context.is_active()

    def time_remaining(self):
        return self._context.time_remaining()

    def add_abortion_callback(self, abortion_callback):
        def on_end():
            if self._context.is_active() is False and self._context.code() not in (
                    None, grpc.StatusCode.OK):
                abortion_callback(None)

        return self._context.add_callback(on_end)

    def cancel(self):
        self._context.cancel()

    def protocol_context(self):
        return _ServerProtocolContext(self._context)

    def invocation_metadata(self):
        return _metadata.beta(self._context.invocation_metadata())

    def initial_metadata(self, initial_metadata):
        self._context.send_initial_metadata(_metadata.unbeta(initial_metadata))

    def terminal_metadata(self, terminal_metadata):
        self._context.set_trailing_metadata(_metadata.unbeta(terminal_metadata))

    def code(self, code):
        self._context.set_code(code)

    def details(self, details):
        self._context.set_details(details)


class _Callback:
    """A response callback (event style) whose value the handler waits for."""

    def __init__(self):
        self._condition = threading.Condition()
        self._done = False
        self._value = None

    def __call__(self, value):
        with self._condition:
            self._value, self._done = value, True
            self._condition.notify_all()

    def wait(self, context):
        with self._condition:
            while not self._done and context.is_active():
                self._condition.wait(0.1)
            return self._value


def _feed(request_iterator, consumer):
    try:
        for request in request_iterator:
            consumer.consume(request)
        consumer.terminate()
    except Exception:  # pylint: disable=broad-except
        consumer.terminate()


def _adapt_inline(behavior):
    def adapted(request_or_iterator, context):
        try:
            return behavior(request_or_iterator, _FaceServicerContext(context))
        except abandonment.Abandoned:
            context.abort(grpc.StatusCode.ABORTED, "Abandoned")
        return None

    return adapted


def _unary_unary_event(behavior):
    def adapted(request, context):
        callback = _Callback()
        behavior(request, callback, _FaceServicerContext(context))
        return callback.wait(context)

    return adapted


def _unary_stream_event(behavior):
    def adapted(request, context):
        responses = stream_util.IterableConsumer()
        behavior(request, responses, _FaceServicerContext(context))
        return responses

    return adapted


def _stream_unary_event(behavior):
    def adapted(request_iterator, context):
        callback = _Callback()
        requests = behavior(callback, _FaceServicerContext(context))
        _feed(request_iterator, requests)
        return callback.wait(context)

    return adapted


def _stream_stream_event(behavior, pool):
    def adapted(request_iterator, context):
        responses = stream_util.IterableConsumer()
        requests = behavior(responses, _FaceServicerContext(context))
        pool.submit(_feed, request_iterator, requests)
        return responses

    return adapted


def _handler(implementation, deserializer, serializer, pool):
    shape, how = implementation.cardinality, implementation.style
    inline = how is style.Service.INLINE
    if shape is cardinality.Cardinality.UNARY_UNARY:
        behavior = (_adapt_inline(implementation.unary_unary_inline) if inline
                    else _unary_unary_event(implementation.unary_unary_event))
        return grpc.unary_unary_rpc_method_handler(behavior, deserializer, serializer)
    if shape is cardinality.Cardinality.UNARY_STREAM:
        behavior = (_adapt_inline(implementation.unary_stream_inline) if inline
                    else _unary_stream_event(implementation.unary_stream_event))
        return grpc.unary_stream_rpc_method_handler(behavior, deserializer, serializer)
    if shape is cardinality.Cardinality.STREAM_UNARY:
        behavior = (_adapt_inline(implementation.stream_unary_inline) if inline
                    else _stream_unary_event(implementation.stream_unary_event))
        return grpc.stream_unary_rpc_method_handler(behavior, deserializer, serializer)
    behavior = (_adapt_inline(implementation.stream_stream_inline) if inline
                else _stream_stream_event(implementation.stream_stream_event, pool))
    return grpc.stream_stream_rpc_method_handler(behavior, deserializer, serializer)


class _MultiMethod:
    """A face.MultiMethodImplementation behind any method it is asked for."""

    def __init__(self, implementation, pool):
        self._implementation = implementation
        self._pool = pool

    def handler(self, group, method):
        def service(response_consumer, context):
            return self._implementation.service(group, method, response_consumer, context)

        return grpc.stream_stream_rpc_method_handler(_stream_stream_event(service, self._pool))


class _GenericHandler(grpc.GenericRpcHandler):
    def __init__(self, implementations, multi_method, deserializers, serializers, pool):
        self._handlers = {
            "/%s/%s" % (group, method): _handler(
                implementation, deserializers.get((group, method)),
                serializers.get((group, method)), pool)
            for (group, method), implementation in implementations.items()
        }
        self._multi_method = multi_method

    def service(self, handler_call_details):
        handler = self._handlers.get(handler_call_details.method)
        if handler is None and self._multi_method is not None:
            group, _, method = handler_call_details.method.lstrip("/").rpartition("/")
            return self._multi_method.handler(group, method)
        return handler


class _Server(interfaces.Server):
    def __init__(self, server):
        self._server = server

    def add_insecure_port(self, address):
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address, server_credentials):
        return self._server.add_secure_port(address, server_credentials)

    def start(self):
        self._server.start()

    def stop(self, grace):
        return self._server.stop(grace)

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._server.stop(None)
        return False


def server(service_implementations, multi_method_implementation, request_deserializers,
           response_serializers, thread_pool, thread_pool_size):
    pool = thread_pool or futures.ThreadPoolExecutor(thread_pool_size or _DEFAULT_POOL_SIZE)
    multi_method = (None if multi_method_implementation is None
                    else _MultiMethod(multi_method_implementation, pool))
    handler = _GenericHandler(service_implementations, multi_method,
                              request_deserializers or {}, response_serializers or {}, pool)
    return _Server(grpc.server(pool, handlers=(handler,)))
