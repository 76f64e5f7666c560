"""Client and server interceptors of grpc.aio (grpcio's classes)."""

import abc
import asyncio
import collections
import functools
import time

import grpc

from . import _base_call
from ._completion import quiet as _quiet
from ._typing import EOF


class ServerInterceptor(metaclass=abc.ABCMeta):
    """Intercepts incoming RPCs of an asyncio server."""

    @abc.abstractmethod
    async def intercept_service(self, continuation, handler_call_details):
        """Returns the RpcMethodHandler for the call (or None), usually
        after awaiting continuation(handler_call_details)."""


class ClientCallDetails(
    collections.namedtuple(
        "ClientCallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")
    ),
    grpc.ClientCallDetails,
):
    """Describes an asyncio RPC to be invoked: method, timeout, metadata,
    credentials, wait_for_ready."""


class ClientInterceptor(metaclass=abc.ABCMeta):
    """The base of the four client interceptor kinds."""


class UnaryUnaryClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts unary-unary calls."""

    @abc.abstractmethod
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        """Returns a UnaryUnaryCall or a response; continuation(details,
        request) starts the call below."""


class UnaryStreamClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts unary-stream calls."""

    @abc.abstractmethod
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        """Returns a UnaryStreamCall or an async iterable of responses."""


class StreamUnaryClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts stream-unary calls."""

    @abc.abstractmethod
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        """Returns a StreamUnaryCall."""


class StreamStreamClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts stream-stream calls."""

    @abc.abstractmethod
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        """Returns a StreamStreamCall or an async iterable of responses."""


def _calls():
    from . import _call

    return _call


class InterceptedCall:
    """A call whose interceptors run in a task; once they returned a call,
    every method goes to it (the same call the interceptors saw)."""

    _deadline = None  # from the timeout the call was made with

    def __init__(self, interceptors_task):
        self._interceptors_task = interceptors_task
        self._pending_callbacks = []
        interceptors_task.add_done_callback(self._fire_pending)

    def _call_or_none(self):
        """The call the interceptors returned, None if they have not
        finished, or the exception they ended with."""
        task = self._interceptors_task
        if not task.done():
            return None
        if task.cancelled():
            return asyncio.CancelledError()
        error = task.exception()
        if error is not None:
            return error
        return task.result()

    def _fire_pending(self, task):
        callbacks, self._pending_callbacks = self._pending_callbacks, []
        for callback in callbacks:
            self._add_done_callback_now(callback)

    def _add_done_callback_now(self, callback):
        call = self._call_or_none()
        if isinstance(call, BaseException) or call.done():
            callback(self)
        else:
            call.add_done_callback(lambda _: callback(self))

    def cancel(self):
        task = self._interceptors_task
        if not task.done():
            return task.cancel()
        call = self._call_or_none()
        if isinstance(call, BaseException):
            return False
        return call.cancel()

    def cancelled(self):
        call = self._call_or_none()
        if call is None:
            return False
        if isinstance(call, asyncio.CancelledError):
            return True
        if isinstance(call, grpc.RpcError) and hasattr(call, "code"):
            return call.code() == grpc.StatusCode.CANCELLED
        if isinstance(call, BaseException):
            return False
        return call.cancelled()

    def done(self):
        call = self._call_or_none()
        if call is None:
            return False
        if isinstance(call, BaseException):
            return True
        return call.done()

    def add_done_callback(self, callback):
        if not self._interceptors_task.done():
            self._pending_callbacks.append(callback)
            return
        self._add_done_callback_now(callback)

    def time_remaining(self):
        # grpcio 1.85 raises NotImplementedError here (for every intercepted
        # call): plainly unfinished, so this answers as RpcContext says. The
        # call's own once the interceptors made it, else from the timeout
        # the call was made with.
        call = self._call_or_none()
        if call is not None and not isinstance(call, BaseException):
            remaining = call.time_remaining()
            if remaining is not None or not isinstance(call, UnaryUnaryCallResponse):
                return remaining
        deadline = self._deadline
        if deadline is None:
            return None
        return max(deadline - time.monotonic(), 0.0)

    async def _final_call(self):
        """The call, or the AioRpcError / CancelledError the interceptors
        ended with (returned, not raised)."""
        try:
            return await self._interceptors_task
        except _calls().AioRpcError as error:
            return error
        except asyncio.CancelledError as error:
            if not self._interceptors_task.cancelled():
                raise  # our own task was cancelled
            return error

    async def initial_metadata(self):
        call = await self._final_call()
        if isinstance(call, _calls().AioRpcError):
            return call.initial_metadata()
        if isinstance(call, asyncio.CancelledError):
            return None
        return await call.initial_metadata()

    async def trailing_metadata(self):
        call = await self._final_call()
        if isinstance(call, _calls().AioRpcError):
            return call.trailing_metadata()
        if isinstance(call, asyncio.CancelledError):
            return None
        return await call.trailing_metadata()

    async def code(self):
        call = await self._final_call()
        if isinstance(call, _calls().AioRpcError):
            return call.code()
        if isinstance(call, asyncio.CancelledError):
            return grpc.StatusCode.CANCELLED
        return await call.code()

    async def details(self):
        call = await self._final_call()
        if isinstance(call, _calls().AioRpcError):
            return call.details()
        if isinstance(call, asyncio.CancelledError):
            return _calls().LOCAL_CANCELLATION_DETAILS
        return await call.details()

    async def debug_error_string(self):
        call = await self._final_call()
        if isinstance(call, _calls().AioRpcError):
            return call.debug_error_string()
        if isinstance(call, asyncio.CancelledError):
            return ""
        return await call.debug_error_string()

    async def wait_for_connection(self):
        call = await self._interceptors_task
        return await call.wait_for_connection()


class _InterceptedUnaryResponseMixin:
    def __await__(self):
        call = yield from self._interceptors_task.__await__()
        response = yield from call.__await__()
        return response


class _InterceptedStreamResponseMixin:
    _response_aiter = None

    async def _responses_of_call(self):
        call = await self._interceptors_task
        async for response in call:
            yield response

    def __aiter__(self):
        if self._response_aiter is None:
            self._response_aiter = self._responses_of_call()
        return self._response_aiter

    async def read(self):
        if self._response_aiter is None:
            self._response_aiter = self._responses_of_call()
        try:
            return await self._response_aiter.__anext__()
        except StopAsyncIteration:
            return EOF


class _Slot:
    """write()'s hand-off to the request iterator the interceptors see, one
    request at a time (grpcio: an asyncio.Queue(maxsize=1)). Its waits are
    plain futures that are never cancelled: a loop left with the call in
    flight is collected with them, where an asyncio.Queue's wait, closed
    then, cancels its future on the closed loop and logs "Event loop is
    closed".

    A put is all or nothing, in the writer's own task: cancelled, it has
    put nothing (and a wake-up it got for room goes to the next writer, as
    asyncio.Queue's does, or that writer would wait for good)."""

    __slots__ = ("_loop", "_item", "_getter", "_putters")
    _EMPTY = object()

    def __init__(self, loop):
        self._loop = loop
        self._item = self._EMPTY
        self._getter = None  # the reader's wait for an item
        self._putters = collections.deque()  # writers' waits for room

    async def put(self, item, stop=None):
        """Puts item once the slot has room; False, with nothing put, if
        stop (a future: the call's end) is done first."""
        while self._item is not self._EMPTY:
            if stop is not None and stop.done():
                return False
            waiter = self._loop.create_future()
            self._putters.append(waiter)

            def wake(_, waiter=waiter):
                if not waiter.done():
                    waiter.set_result(None)

            if stop is not None:
                stop.add_done_callback(wake)
            try:
                await waiter
            except BaseException:
                # Cancelled (or closed with a collected loop: then the
                # waiter is pending, and nothing here touches the loop).
                if waiter.done() and not waiter.cancelled():
                    if self._item is self._EMPTY:
                        self._wake_putter()  # room this writer will not take
                else:
                    try:
                        self._putters.remove(waiter)
                    except ValueError:
                        pass
                raise
            finally:
                if stop is not None:
                    stop.remove_done_callback(wake)
        self._item = item
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return True

    def _wake_putter(self):
        putters = self._putters
        while putters:
            putter = putters.popleft()
            if not putter.done():
                putter.set_result(None)
                return

    async def get(self):
        while self._item is self._EMPTY:
            self._getter = getter = self._loop.create_future()
            await getter
        item, self._item = self._item, self._EMPTY
        self._wake_putter()
        return item


class _InterceptedStreamRequestMixin:
    _FINISHED = object()

    def _init_requests(self, request_iterator):
        """The request iterator the interceptors see: the caller's, or one
        fed by write()/done_writing() when there is none."""
        if request_iterator is None:
            self._write_queue = _Slot(self._loop)
            self._status_task = None
            return self._written_requests()
        self._write_queue = None
        return request_iterator

    async def _written_requests(self):
        await self._interceptors_task
        first = True
        while True:
            request = await self._write_queue.get()
            if request is self._FINISHED:
                return
            yield request
            if first:
                # No second request before the stream opened: grpcio's
                # consumer waits for each send, so on a call that cannot
                # start write() takes two requests (one sent, one queued)
                # and the next raises InvalidStateError once the call
                # ended. Without this wait every write() "went" while the
                # stream was still opening.
                first = False
                call = self._last_call
                wait_opened = getattr(call, "_wait_opened", None)
                if wait_opened is not None and not await wait_opened():
                    return

    async def _put(self, request, call):
        # Stops waiting for room if the call ends meanwhile. In this task:
        # a write() cancelled while it waits has written nothing (it went
        # on in a task of its own, so a write that raised CancelledError
        # was sent later all the same, twice if the caller wrote it again).
        if self._status_task is None:
            self._status_task = _quiet(self._loop.create_task(call.code()))
        await self._write_queue.put(request, self._status_task)

    async def write(self, request):
        calls = _calls()
        if self._write_queue is None:
            raise calls.UsageError(calls.API_STYLE_ERROR)
        try:
            call = await self._interceptors_task
        except (asyncio.CancelledError, calls.AioRpcError):
            raise asyncio.InvalidStateError(calls.RPC_ALREADY_FINISHED_DETAILS)
        if call.done():
            raise asyncio.InvalidStateError(calls.RPC_ALREADY_FINISHED_DETAILS)
        if getattr(call, "_done_writing_flag", False) or self._writes_done:
            raise asyncio.InvalidStateError(calls.RPC_HALF_CLOSED_DETAILS)
        await self._put(request, call)
        if call.done():
            raise asyncio.InvalidStateError(calls.RPC_ALREADY_FINISHED_DETAILS)

    async def done_writing(self):
        calls = _calls()
        if self._write_queue is None:
            raise calls.UsageError(calls.API_STYLE_ERROR)
        try:
            call = await self._interceptors_task
        except asyncio.CancelledError:
            raise asyncio.InvalidStateError(calls.RPC_ALREADY_FINISHED_DETAILS)
        if self._writes_done:
            return
        self._writes_done = True
        await self._put(self._FINISHED, call)


class _Intercepted(InterceptedCall):
    """Runs the interceptor chain of one call in a task."""

    _method_name = None  # intercept_* method of the interceptors
    _last_call = None

    def __init__(self, interceptors, request, timeout, metadata, credentials, wait_for_ready,
                 compression, channel, method, serializer, deserializer):
        self._loop = asyncio.get_running_loop()
        self._writes_done = False
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
        if self._streams_requests:
            request = self._init_requests(request)
        # grpcio hands interceptors the method as bytes.
        details = ClientCallDetails(method.encode() if isinstance(method, str) else method,
                                    timeout, metadata, credentials, wait_for_ready)
        task = _quiet(self._loop.create_task(self._invoke(
            list(interceptors), details, request, compression, channel, serializer, deserializer)))
        super().__init__(task)

    async def _invoke(self, interceptors, details, request, compression, channel, serializer,
                      deserializer):
        async def run(remaining, details, request):
            if not remaining:
                call = self._final_call_class(
                    channel, _method(details.method), request, details.timeout, details.metadata,
                    details.credentials, details.wait_for_ready, compression, serializer,
                    deserializer)
                self._last_call = call
                return call
            continuation = functools.partial(run, remaining[1:])
            result = await getattr(remaining[0], self._method_name)(continuation, details, request)
            return self._adopt(result)

        return await run(interceptors, details, request)

    def _adopt(self, result):
        return result


def _method(method):
    if isinstance(method, bytes):
        return method.decode()
    return method


class InterceptedUnaryUnaryCall(_InterceptedUnaryResponseMixin, _Intercepted,
                                _base_call.UnaryUnaryCall):
    """A unary-unary call through client interceptors."""

    _method_name = "intercept_unary_unary"
    _streams_requests = False

    @property
    def _final_call_class(self):
        return _calls().UnaryUnaryCall

    def _adopt(self, result):
        if isinstance(result, _base_call.UnaryUnaryCall):
            return result
        return UnaryUnaryCallResponse(result)


class InterceptedUnaryStreamCall(_InterceptedStreamResponseMixin, _Intercepted,
                                 _base_call.UnaryStreamCall):
    """A unary-stream call through client interceptors."""

    _method_name = "intercept_unary_stream"
    _streams_requests = False

    @property
    def _final_call_class(self):
        return _calls().UnaryStreamCall

    def _adopt(self, result):
        if isinstance(result, _base_call.UnaryStreamCall):
            self._last_call = result
        else:
            self._last_call = UnaryStreamCallResponseIterator(self._last_call, result)
        return self._last_call


class InterceptedStreamUnaryCall(_InterceptedUnaryResponseMixin, _InterceptedStreamRequestMixin,
                                 _Intercepted, _base_call.StreamUnaryCall):
    """A stream-unary call through client interceptors."""

    _method_name = "intercept_stream_unary"
    _streams_requests = True

    @property
    def _final_call_class(self):
        return _calls().StreamUnaryCall


class InterceptedStreamStreamCall(_InterceptedStreamResponseMixin, _InterceptedStreamRequestMixin,
                                  _Intercepted, _base_call.StreamStreamCall):
    """A stream-stream call through client interceptors."""

    _method_name = "intercept_stream_stream"
    _streams_requests = True

    @property
    def _final_call_class(self):
        return _calls().StreamStreamCall

    def _adopt(self, result):
        if isinstance(result, _base_call.StreamStreamCall):
            self._last_call = result
        else:
            self._last_call = StreamStreamCallResponseIterator(self._last_call, result)
        return self._last_call


class UnaryUnaryCallResponse(_base_call.UnaryUnaryCall):
    """The call of an interceptor that answered with a response itself."""

    def __init__(self, response):
        self._response = response

    def cancel(self):
        return False

    def cancelled(self):
        return False

    def done(self):
        return True

    def add_done_callback(self, callback):
        callback(self)

    def time_remaining(self):
        return None

    async def initial_metadata(self):
        return None

    async def trailing_metadata(self):
        return None

    async def code(self):
        return grpc.StatusCode.OK

    async def details(self):
        return ""

    async def debug_error_string(self):
        return None

    def __await__(self):
        if False:  # a generator that returns at once
            yield None
        return self._response

    async def wait_for_connection(self):
        pass


class _StreamCallResponseIterator:
    """A streaming call whose responses come from an interceptor's iterator."""

    def __init__(self, call, response_iterator):
        self._call = call
        self._response_iterator = response_iterator

    def cancel(self):
        return self._call.cancel()

    def cancelled(self):
        return self._call.cancelled()

    def done(self):
        return self._call.done()

    def add_done_callback(self, callback):
        self._call.add_done_callback(callback)

    def time_remaining(self):
        return self._call.time_remaining()

    async def initial_metadata(self):
        return await self._call.initial_metadata()

    async def trailing_metadata(self):
        return await self._call.trailing_metadata()

    async def code(self):
        return await self._call.code()

    async def details(self):
        return await self._call.details()

    async def debug_error_string(self):
        return await self._call.debug_error_string()

    def __aiter__(self):
        return self._response_iterator.__aiter__()

    async def wait_for_connection(self):
        return await self._call.wait_for_connection()


class UnaryStreamCallResponseIterator(_StreamCallResponseIterator, _base_call.UnaryStreamCall):
    async def read(self):
        raise NotImplementedError()


class StreamStreamCallResponseIterator(_StreamCallResponseIterator, _base_call.StreamStreamCall):
    async def read(self):
        raise NotImplementedError()

    async def write(self, request):
        raise NotImplementedError()

    async def done_writing(self):
        raise NotImplementedError()

    @property
    def _done_writing_flag(self):
        return getattr(self._call, "_done_writing_flag", False)
