"""The client-side call objects of grpc.aio and its errors.

A call lives on the event loop that started it and talks to the engine only
through the hot module's aio_* functions (pyext/hot_aio.go): each answers at
once when it can, or returns an operation whose token completes on the
loop's completion queue (grpc/aio/_completion.py). Nothing here blocks the
loop.

Rules the objects keep:
- A unary-unary call is one engine call: started by aio_unary, its end
  completes a token and unary_wait(call, 0) then reads the outcome.
- A streaming call keeps at most one receive operation outstanding and
  reuses it until it completes; its result (a batch of messages) is always
  taken, so no message is lost while the call can still be read.
- The status is learned lazily, by one status operation started the first
  time someone needs it (done(), a done callback, code(), the end of the
  responses).
- A task cancelled while it waits on a call cancels the RPC (grpcio's rule);
  waiting for the status alone (code(), details(), ...) does not.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import operator
import os
import threading
import time
import typing
from weakref import ref as _weakref

import grpc
from grpc import _common
from grpc._cython.cygrpc import AbortError, BaseError, InternalError, UsageError  # noqa: F401

from . import _base_call
from ._batches import SendBatches
from ._metadata import Metadata
from ._completion import quiet as _quiet
from ._loop_read import SocketWatch
from ._typing import EOF

if typing.TYPE_CHECKING:
    from typing import Optional

_LOGGER = logging.getLogger(__name__)
# How many times a stream asks for its loop to read its connection (a
# refusal costs a crossing; the engine refuses until the stream
# ping-pongs, and while it is not alone on its connection or plain TCP).
_SOCKET_ASKS = 8

_OK = grpc.StatusCode.OK
_CODES = _common.CODES
_CANCELLED = grpc.StatusCode.CANCELLED
_INTERNAL = grpc.StatusCode.INTERNAL

# How many responses one receive may bring back.
_BATCH = 256
_RECV_ARM = []  # [whether receives arm the next read's wait], asked once


def _recv_arm(hot):
    """Whether a take may arm the next read's wait (GRPCGO_AIO_RECV_ARM)."""
    if not _RECV_ARM:
        _RECV_ARM.append(hot.aio_recv_arm())
    return _RECV_ARM[0]

# An async request iterator's requests cross in batches (_gather_request);
# GRPCGO_AIO_REQUEST_BATCH=0 sends them one crossing each (A/B runs).
_REQUEST_BATCHES = os.environ.get("GRPCGO_AIO_REQUEST_BATCH") != "0"

LOCAL_CANCELLATION_DETAILS = "Locally cancelled by application!"
CHANNEL_CLOSED_DETAILS = "Channel closed!"
CHANNEL_IS_CLOSED = "Channel is closed."  # the UsageError of a closed channel's use
SERIALIZE_FAILED = "Exception serializing request!"
_DESERIALIZE_FAILED = "Exception deserializing response!"
_NO_RESPONSE = "No response received for a unary-response call!"
RPC_ALREADY_FINISHED_DETAILS = "RPC already finished."
RPC_HALF_CLOSED_DETAILS = 'RPC is half closed after calling "done_writing".'
API_STYLE_ERROR = "The iterator and read/write APIs may not be mixed on a single RPC."
CALL_CREDENTIALS_INSECURE = "Call credentials are only valid on secure channels"


class AioRpcError(grpc.RpcError):
    """An RPC that ended with a non-OK status (asyncio API). A snapshot of
    the final status: its methods are plain functions."""

    def __init__(
        self,
        code: grpc.StatusCode,
        initial_metadata: Metadata,
        trailing_metadata: Metadata,
        details: Optional[str] = None,
        debug_error_string: Optional[str] = None,
    ) -> None:
        super().__init__()
        self._code = code
        self._details = details
        self._initial_metadata = initial_metadata
        self._trailing_metadata = trailing_metadata
        self._debug_error_string = debug_error_string

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> Optional[str]:
        return self._details

    def initial_metadata(self) -> Metadata:
        return self._initial_metadata

    def trailing_metadata(self) -> Metadata:
        return self._trailing_metadata

    def debug_error_string(self) -> Optional[str]:
        return self._debug_error_string

    def _repr(self):
        return ("<{} of RPC that terminated with:\n\tstatus = {}\n\tdetails = \"{}\"\n"
                "\tdebug_error_string = \"{}\"\n>").format(
            self.__class__.__name__, self._code, self._details, self._debug_error_string)

    def __repr__(self):
        return self._repr()

    def __str__(self):
        return self._repr()

    def __reduce__(self):
        return (type(self), (self._code, self._initial_metadata, self._trailing_metadata,
                             self._details, self._debug_error_string))


def _debug_string(code, details):
    # grpcio 1.85's aio calls: "<CODE>:<details>" ("" once OK, None if
    # cancelled here).
    return "%s:%s" % (code.name, details)


def _metadata(raw):
    """Metadata from the engine's tuple (or an absent one)."""
    return Metadata.from_tuple(raw) if raw else Metadata()


def serialize_request(request, serializer):
    """The request's bytes, or None if serializing failed (logged). A
    serializer returning something other than bytes is a TypeError."""
    if serializer is None:
        if request is None:
            _LOGGER.error(SERIALIZE_FAILED)
            return None
        payload = request
    else:
        try:
            payload = serializer(request)
        except Exception:
            _LOGGER.exception(SERIALIZE_FAILED)
            return None
        if payload is None:
            return None
    _common.check_bytes(payload)
    return payload


def call_credentials_arg(channel, credentials, compression):
    """The engine's per-call credentials (or None), after checking types. As
    grpcio, call credentials on a channel made by insecure_channel are
    refused when the call is made, whatever they are (grpcio's order:
    compression, the channel, then the credentials' type; its exceptions:
    _common)."""
    _common.check_call_compression(compression)
    if credentials is None:
        return None
    if not channel._secure:
        raise UsageError(CALL_CREDENTIALS_INSECURE)
    _common.check_call_credentials(credentials)
    return credentials._credentials.capsule


def _cancelling():
    """Whether the running task has a cancellation requested (Python 3.11+;
    before, False)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def _retrieve(task):
    if not task.cancelled():
        task.exception()


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


class _Status(tuple):
    """How a call ended: (code, details, trailing, local). A tuple, so the
    C unary call (pyext/aio_unary.h) makes one without running Python."""

    __slots__ = ()

    def __new__(cls, code, details, trailing, local=False):
        # trailing: the engine's tuple; local: cancelled on this side
        return tuple.__new__(cls, (code, details, trailing, local))

    code = property(operator.itemgetter(0))
    details = property(operator.itemgetter(1))
    trailing = property(operator.itemgetter(2))
    local = property(operator.itemgetter(3))


class Call:
    """What every client call shares: its loop, queue, deadline, status and
    done callbacks. Subclasses learn the status from the engine."""

    _status = None
    _initial = None  # Metadata, once known
    _deadline = None
    _credentials = None
    _callbacks = None

    def _setup(self, channel, timeout, credentials):
        self._channel = channel
        self._hot = channel._hot
        self._loop, self._q = channel._queue()
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
        if credentials is not None:
            self._credentials = credentials  # keeps a metadata plugin registered
        # The channel's weak registry of calls not ended (see Channel._calls).
        self._ref = ref = _weakref(self, channel._forget_call)
        channel._calls[ref] = None

    # -- status -----------------------------------------------------------
    def _end(self, status):
        """Records how the call ended (first caller wins) and runs the done
        callbacks."""
        if self._status is not None:
            return False
        self._status = status
        # Dropping our weak reference too: one still alive when the call is
        # collected would run its callback for nothing.
        self._channel._calls.pop(self._ref, None)
        self._ref = None
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                try:
                    callback(self)
                except Exception:
                    _LOGGER.exception("Exception in done callback %r", callback)
        return True

    def _cancel(self, details):
        if self.done():
            return False
        if not self._end(_Status(_CANCELLED, details, (), True)):
            return False
        self._stop()
        return True

    def _error(self, status):
        if status.local and status.code is _CANCELLED:
            return asyncio.CancelledError()
        return AioRpcError(status.code, self._initial or Metadata(), _metadata(status.trailing),
                           status.details, _debug_string(status.code, status.details))

    def _raise_for_status(self, status):
        if status.code is not _OK:
            raise self._error(status)

    # -- RpcContext -------------------------------------------------------
    def cancelled(self):
        status = self._status
        return status is not None and status.code is _CANCELLED and status.local

    def cancel(self):
        return self._cancel(LOCAL_CANCELLATION_DETAILS)

    def time_remaining(self):
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def add_done_callback(self, callback):
        if self.done():
            callback(self)
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)
        self._watch()

    # -- Call -------------------------------------------------------------
    async def trailing_metadata(self):
        return _metadata((await self._wait_status()).trailing)

    async def code(self):
        return (await self._wait_status()).code

    async def details(self):
        return (await self._wait_status()).details

    async def debug_error_string(self):
        status = await self._wait_status()
        if status.code is _OK:
            return ""
        if status.local:
            return None
        return _debug_string(status.code, status.details)

    def __repr__(self):
        status = self._status
        if status is None:
            return "<%s object of in-flight RPC>" % type(self).__name__
        if status.code is _OK:
            return '<{} of RPC that terminated with:\n\tstatus = {}\n\tdetails = "{}"\n>'.format(
                type(self).__name__, status.code, status.details)
        return self._error(status)._repr().replace("AioRpcError", type(self).__name__, 1) \
            if status.code is not _CANCELLED or not status.local else \
            '<{} of RPC that terminated with:\n\tstatus = {}\n\tdetails = "{}"\n>'.format(
                type(self).__name__, status.code, status.details)

    __str__ = __repr__


def _log_deserialize_failure(exc):
    _LOGGER.error(_DESERIALIZE_FAILED, exc_info=exc)


class _UnaryUnaryCall:
    """What UnaryUnaryCall adds in Python to its C half.

    UnaryUnaryCall is made on first use (module __getattr__ below), since
    its C half lives in the engine library and importing grpc.aio must
    not load it. The C half (pyext/aio_unary.h: AioUnaryCall) starts the
    call when it is made (checks, Call._setup, the Wait, aio_unary), and
    owns done(), _settle() and `await call`: the task awaits the call's
    Wait, which the drain resolves by waking it at once, then the outcome
    is read with unary_wait(call, 0) and the status recorded (Call._end
    when done callbacks wait). Its fields are the attributes below
    (_status, _outcome, _future, _call, _token, _q, ...).
    """

    @property
    def _initial(self):
        # Built when asked for: most calls never look at it.
        raw = self._initial_raw
        return None if raw is None else _metadata(raw)

    def _serialize_failed(self):
        """The request could not be serialized (logged): the call ends
        INTERNAL without reaching the engine."""
        self._call = None
        self._end(_Status(_INTERNAL, SERIALIZE_FAILED, ()))
        self._outcome = (None, Metadata())
        self._future.done_soon()

    def _stop(self):
        if self._outcome is None:
            self._outcome = (None,)
        if self._call is not None:
            self._hot.unary_cancel(self._call)
        self._q.waiting.pop(self._token, None)
        self._future.done_soon()

    def _watch(self):
        self._future.add_done_callback(self._on_done)

    def _on_done(self, future):
        if not future.cancelled():
            self._settle()

    async def _wait_status(self):
        if self._status is None:
            future = self._future
            if not future.done():
                try:
                    await asyncio.shield(future)
                except asyncio.CancelledError:
                    # Our own cancellation, or the future's: a task awaiting
                    # the call was cancelled (it awaits the future itself).
                    if not future.cancelled() or _cancelling():
                        raise
            if future.cancelled():
                # The awaiting task's cancellation cancels the RPC (it will
                # when that task resumes); the outcome is that already.
                self.cancel()
            else:
                self._settle()
        return self._status

    async def initial_metadata(self):
        # As in grpcio: known once the whole call completed.
        await self._wait_status()
        initial = self._initial
        return initial if initial is not None else Metadata()

    async def wait_for_connection(self):
        status = await self._wait_status()
        self._raise_for_status(status)


def _make_unary_unary_call():
    from grpc import _runtime

    hot = _runtime.hot()
    hot.aio_unary_setup({
        "status": _Status, "ok": _OK, "internal": _INTERNAL, "codes": _CODES,
        "deserialize_failed": _DESERIALIZE_FAILED, "log_deserialize": _log_deserialize_failure,
        "serialize": serialize_request, "credentials_arg": call_credentials_arg,
        "timeout_arg": _common.timeout_arg, "wait_for_ready_arg": _common.wait_for_ready_arg,
        "compression_arg": _common.compression_arg, "usage_error": UsageError,
        "closed_message": CHANNEL_IS_CLOSED, "cancelled_error": asyncio.CancelledError,
        "invalid_state": asyncio.InvalidStateError,
        "get_running_loop": asyncio.get_running_loop, "monotonic": time.monotonic,
    })

    class UnaryUnaryCall(hot.AioUnaryCall, _UnaryUnaryCall, Call, _base_call.UnaryUnaryCall):
        """A unary-unary RPC: one engine call whose end completes a token."""

    UnaryUnaryCall.__module__ = __name__
    UnaryUnaryCall.__qualname__ = "UnaryUnaryCall"
    return UnaryUnaryCall


_make_lock = threading.Lock()


def __getattr__(name):
    if name == "UnaryUnaryCall":
        with _make_lock:
            cls = globals().get(name)
            if cls is None:
                cls = _make_unary_unary_call()
                globals()[name] = cls
        return cls
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


class _StreamCall(Call):
    """A call with a streaming request or response on an engine stream."""

    _server_streams = True
    _client_streams = True
    _status_op = None
    _status_future = None
    _recv_future = None
    _recv_armed = False  # _recv_future is a wait the last take armed, not awaited yet
    _arm = False  # the last read waited: the next take arms the next read's wait
    _eof = False
    _response_style = None  # "read" or "iter" once chosen
    _done_writing_flag = False
    _request_task = None
    _opened = False  # known to have opened (set by the first write())
    # An async request iterator's requests, sent in batches (_gather_request).
    _req = None
    _answered = False  # a response was taken since the last batch went
    # The loop reads the connection itself while the call ping-pongs
    # (_loop_read.SocketWatch, made by the first read that armed a wait).
    _socket = None

    def __init__(self, channel, method, request, timeout, metadata, credentials, wait_for_ready,
                 compression, serializer, deserializer):
        handle = channel._live_handle()
        creds = call_credentials_arg(channel, credentials, compression)
        first = None
        if not self._client_streams:
            first = serialize_request(request, serializer)
            if first is None:
                raise AioRpcError(_INTERNAL, Metadata(), Metadata(), SERIALIZE_FAILED,
                                  _debug_string(_INTERNAL, SERIALIZE_FAILED))
        self._setup(channel, timeout, credentials)
        self._serializer = serializer
        self._deserializer = deserializer
        self._buffer = collections.deque()
        try:
            self._stream = self._hot.stream_start(
                handle, method, _common.timeout_arg(timeout), metadata,
                _common.wait_for_ready_arg(wait_for_ready), _common.compression_arg(compression),
                creds, self._server_streams, self._client_streams, first, not self._client_streams)
        except BaseException:
            # Refused (metadata of a wrong type, ...): a call that never
            # started leaves the channel's registry, where close() would
            # find it half made.
            channel._calls.pop(self._ref, None)
            self._ref = None
            raise
        if self._client_streams and request is not None:
            self._request_style = "iter"
            self._req = SendBatches(self._loop, self._q, self._hot, self._hot.aio_stream_send_many,
                                    self._stream)
            self._request_task = _quiet(self._loop.create_task(self._consume_requests(request)))
        else:
            self._request_style = "write"

    # -- engine operations --------------------------------------------------
    def _op(self, start, *args):
        """Calls an aio_* function; returns (answer, None) if it answered at
        once, else (operation, future of its completion)."""
        q = self._q
        token = next(q.tokens)
        result = start(q.cq, token, *args)
        if result.__class__ is not q.cq.__class__:  # an operation is a capsule, as the queue
            return result, None
        future = self._loop.create_future()
        q.waiting[token] = future
        return result, future

    def _cancel(self, details):
        # As grpcio: a status the call has not learned yet does not stop a
        # cancel (done() would ask the engine, which may know it already).
        if self._status is not None:
            return False
        if not self._end(_Status(_CANCELLED, details, (), True)):
            return False
        self._stop()
        return True

    def _stop(self):
        self._hot.stream_cancel(self._stream)
        task = self._request_task
        if task is not None and not task.done() and not self._loop.is_closed():
            task.cancel()  # (a closed loop will never run it again)

    def _end(self, status):
        if not super()._end(status):
            return False
        if self._socket is not None:
            self._socket.stop()
        return True

    # -- status -------------------------------------------------------------
    def _watch(self):
        """Starts the status operation if nobody did yet."""
        if self._status is not None or self._status_op is not None:
            return
        result, future = self._op(self._hot.aio_stream_status, self._stream)
        if future is None:
            self._take_status(result)
            return
        self._status_op = result
        self._status_future = future
        future.add_done_callback(self._on_status)

    def _on_status(self, future):
        if self._status is None and not future.cancelled():
            self._take_status(self._hot.aio_result(self._status_op))

    def _take_status(self, result):
        code, details, trailing = result
        self._end(_Status(_common.CODES[code], details, trailing))

    def done(self):
        if self._status is None:
            self._watch()
        return self._status is not None

    async def _wait_status(self, cancel_rpc=False):
        if self._status is None:
            self._watch()
            if self._status is None:
                try:
                    await asyncio.shield(self._status_future)
                except asyncio.CancelledError:
                    if cancel_rpc and not self.done():
                        self.cancel()
                    raise
                if self._status is None:
                    self._on_status(self._status_future)
        return self._status

    async def initial_metadata(self):
        if self._initial is None:
            if self._status is not None and self._status.local:
                return Metadata()
            result, future = self._op(self._hot.aio_stream_header, self._stream)
            if future is not None:
                await future
                if self._initial is not None:
                    return self._initial
                result = self._hot.aio_result(result)
            if self._initial is None:
                self._initial = _metadata(result)
        return self._initial

    async def wait_for_connection(self):
        result, future = self._op(self._hot.aio_stream_opened, self._stream)
        if future is not None:
            await future
            result = self._hot.aio_result(result)
        # A stream that failed to open is marked so before its status is
        # set: wait for that status rather than ask done() too early.
        if not result or self.done():
            self._raise_for_status(await self._wait_status())

    # -- responses ----------------------------------------------------------
    async def _read_raw(self):
        """The next response's bytes, or EOF. Responses stay queued in Go
        until a receive takes them; when none is queued, one wait (a token
        the stream's reading goroutine completes) is shared by whoever
        reads, so nothing is lost whatever becomes of a waiting task.

        While reads wait for their response (a ping-pong), the receive that
        takes one also arms the next read's wait (aio_stream_recv's next
        token, _arm), so that read awaits it without calling into the
        engine only to learn that nothing came yet."""
        buffer = self._buffer
        while True:
            status = self._status
            if status is not None and status.local:
                # Cancelled here: nothing more is read (grpcio).
                buffer.clear()
                self._eof = True
                return EOF
            if buffer:
                self._answered = True
                return buffer.popleft()
            if self._eof:
                return EOF
            if self._recv_armed:
                # The last take armed this wait; the first reader owns it.
                future = self._armed_wait()
                if future is None:
                    continue
                try:
                    await future
                except asyncio.CancelledError:
                    if not self.done():
                        self.cancel()
                    raise
                continue
            future = self._recv_future
            if future is None or future.done():
                future = self._take()
                if future is None:
                    continue
                try:
                    await future
                except asyncio.CancelledError:
                    if not self.done():
                        self.cancel()  # grpcio: a reader cancelled mid-call cancels the RPC
                    raise
                self._arm = _recv_arm(self._hot)
            else:
                # Another reader waits already: share its wait, without
                # letting our own cancellation cancel it.
                try:
                    await asyncio.shield(future)
                except asyncio.CancelledError:
                    if future.cancelled() and not self.cancelled():
                        continue  # the owner's wait was cancelled, not us
                    if not self.done():
                        self.cancel()
                    raise

    def _take(self):
        """One receive: what is queued goes to the buffer (or the end is
        marked; with _arm, the next read's wait is armed) and None is
        returned; or, nothing queued, the Wait of the token the stream
        completes once something is."""
        q = self._q
        token = next(q.tokens)
        if self._arm:
            armed = next(q.tokens)
            result = self._hot.aio_stream_recv(q.cq, token, self._stream, _BATCH, armed)
        else:
            result = self._hot.aio_stream_recv(q.cq, token, self._stream, _BATCH)
        if result is not None:
            if result:
                self._buffer.extend(result)
                if self._arm:
                    future = self._recv_future = self._hot.Wait(self._loop)
                    q.waiting[armed] = future
                    self._recv_armed = True
                    if self._client_streams:
                        watch = self._socket
                        if watch is None:
                            watch = self._socket = SocketWatch(
                                self._loop, q, self._stream, self._hot.aio_stream_loop_read,
                                self._hot.aio_stream_pump, _SOCKET_ASKS)
                        if watch.fd < 0 and watch.asks:
                            watch.ask()
            else:
                self._eof = True
                if self._socket is not None:
                    self._socket.stop()
            return None
        # A Wait, not an asyncio.Future: the drain wakes the reading task
        # in the turn of the loop its response arrived in, not one turn
        # later (_completion).
        future = self._recv_future = self._hot.Wait(self._loop)
        q.waiting[token] = future
        return future

    def _armed_wait(self):
        """The wait the last take armed, now this reader's: None if what it
        waits for came already (arming stops then: the reads do not wait)."""
        self._recv_armed = False
        future = self._recv_future
        if future.done():
            self._arm = False
            return None
        return future

    def _armed_take(self):
        """The take after awaiting the wait the last take armed (read()'s
        and the response iterator's ping-pong path, without _read_raw's
        coroutine): the response's bytes, or None when the caller must go
        on in _read_raw (the call ended, the responses ended, or nothing
        was queued after all: the new wait is then the next reader's own,
        as an armed one is)."""
        if self._status is None and not self._eof:
            if self._take() is not None:
                self._recv_armed = True
                return None
            buffer = self._buffer
            if buffer:
                self._answered = True
                return buffer.popleft()
        return None

    def _deserialize(self, data):
        try:
            return _common.deserialize(data, self._deserializer)
        except Exception:
            _LOGGER.exception(_DESERIALIZE_FAILED)
            self._fail(_INTERNAL, _DESERIALIZE_FAILED)
            if self._status.code is _OK:  # a unary response, read once the call ended
                self._status = _Status(_INTERNAL, _DESERIALIZE_FAILED, self._status.trailing)
            raise self._error(self._status) from None

    def _fail(self, code, details):
        """Ends the call here with code (not a cancellation by the user)."""
        if self._end(_Status(code, details, ())):
            self._stop()

    async def _after_eof(self):
        status = await self._wait_status(cancel_rpc=True)
        self._raise_for_status(status)

    # -- requests -----------------------------------------------------------
    async def _consume_requests(self, requests):
        try:
            if hasattr(requests, "__aiter__") and _REQUEST_BATCHES:
                async for request in requests:
                    # True / False without waiting (no awaitable a request),
                    # else an awaitable of it.
                    sent = self._gather_request(request)
                    if sent is not True and (sent is False or not await sent):
                        return
                if not await self._flush_requests():
                    return
            elif hasattr(requests, "__aiter__"):
                async for request in requests:
                    sent = self._send_from_iterator(request)
                    if sent is not True and (sent is False or not await sent):
                        return
            else:
                for request in requests:
                    sent = self._send_from_iterator(request)
                    if sent is not True and (sent is False or not await sent):
                        return
            await self._done_writing()
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.debug("Client request_iterator raised exception", exc_info=True)
            self.cancel()
        except (KeyboardInterrupt, SystemExit):
            # It stops the loop (asyncio raises it from this task's step, and
            # asyncio.run() raises it); this task's exception is taken when
            # the loop next turns, so it is not logged as never retrieved.
            task = self._request_task
            if task is not None:
                task.add_done_callback(_retrieve)
            raise

    async def _wait_opened(self):
        """Waits for the stream to open; False if it could not (the call
        ended). For an intercepted call's write()s (_interceptor,
        _written_requests)."""
        opened, future = self._op(self._hot.aio_stream_opened, self._stream)
        if future is not None:
            opened = await self._op_result(opened, future)
        if not opened:
            return False
        self._opened = True
        return True

    def _gather_request(self, request):
        """An async request iterator's request, kept for the next batch:
        whether the call still takes requests (True / False), or an
        awaitable of that when it must wait. The batch goes
        to the engine in one crossing (aio_stream_send_many) at the loop's
        next turn, so as soon as the iterator waits for anything, or at
        _BATCH requests (then waiting for room); the first request after a
        response was taken goes at once (a request answering a response).
        GRPCGO_AIO_REQUEST_BATCH=0: one crossing per request
        (_send_from_iterator)."""
        if self._status is not None:
            return self._write_one(request, from_iterator=True)
        serializer = self._serializer
        if serializer is None and request.__class__ is bytes:
            payload = request
        else:
            try:
                payload = serializer(request) if serializer is not None else None
            except Exception:
                payload = None
            if payload.__class__ is not bytes:
                return self._flush_then_write(request)  # _write_one fails the call
        req = self._req
        if self._answered:
            self._answered = False
            req.prompt = True  # this request answers a response: its batch goes at once
        if not req.put(payload):
            return self._flush_requests()
        return not req.failed

    async def _flush_then_write(self, request):
        if not await self._flush_requests():
            return False
        return await self._write_one(request, from_iterator=True)

    async def _flush_requests(self):
        """Waits until every gathered request is queued in the engine; False
        if the call takes no more."""
        try:
            return await self._req.flush(self._has_status)
        except asyncio.CancelledError:
            if not self.done():
                self.cancel()
            raise

    def _has_status(self):
        return self._status is not None

    def _send_from_iterator(self, request):
        """Whether the request was queued (False: the call ended, stop
        iterating), or an awaitable of that. Queued at once when the engine
        has room, without a coroutine; otherwise through _write_one."""
        if self._status is None and not self._done_writing_flag:
            serializer = self._serializer
            if serializer is None and request.__class__ is bytes:
                payload = request
            else:
                try:
                    payload = serializer(request) if serializer is not None else None
                except Exception:
                    payload = None
            if payload.__class__ is bytes:
                q = self._q
                token = next(q.tokens)
                result = self._hot.aio_stream_send(q.cq, token, self._stream, payload)
                if result is True or result is False:
                    return result
                future = self._loop.create_future()
                q.waiting[token] = future
                return self._op_result(result, future)
        return self._write_one(request, from_iterator=True)

    async def _op_result(self, op, future):
        """What operation op gives once future completes; a task cancelled
        while it waits cancels the RPC (grpcio)."""
        try:
            await future
        except asyncio.CancelledError:
            if not self.done():
                self.cancel()
            raise
        return self._hot.aio_result(op)

    async def _write_one(self, request, from_iterator=False):
        """Sends one request; False (with from_iterator) or an error if the
        call ended first."""
        if self._status is not None:
            # Ended, and known to have ended. One that ended unseen (a first
            # write on a call that failed to start) raises its status below,
            # as grpcio's first write does.
            if from_iterator:
                return False
            raise asyncio.InvalidStateError(RPC_ALREADY_FINISHED_DETAILS)
        if self._done_writing_flag:
            raise asyncio.InvalidStateError(RPC_HALF_CLOSED_DETAILS)
        if not from_iterator and not self._opened:
            # The first write waits for the stream to open, as grpcio's
            # waits for its initial metadata to go: a call that could not
            # start raises its status here.
            opened, future = self._op(self._hot.aio_stream_opened, self._stream)
            if future is not None:
                opened = await self._op_result(opened, future)
            self._opened = True
            if not opened:
                self._raise_for_status(await self._wait_status())
                raise asyncio.InvalidStateError(RPC_ALREADY_FINISHED_DETAILS)
        payload = serialize_request(request, self._serializer)
        if payload is None:
            self._fail(_INTERNAL, SERIALIZE_FAILED)
            if from_iterator:
                return False
            raise self._error(self._status)
        result, future = self._op(self._hot.aio_stream_send, self._stream, payload)
        if future is not None:
            result = await self._op_result(result, future)
        if result:
            return True
        if from_iterator:
            return False
        # The call ended: its status says why.
        status = await self._wait_status()
        self._raise_for_status(status)
        raise asyncio.InvalidStateError(RPC_ALREADY_FINISHED_DETAILS)

    async def _done_writing(self):
        if self.done() or self._done_writing_flag:
            return
        self._done_writing_flag = True
        self._hot.aio_stream_close_send(self._stream)


class _StreamRequestMixin:
    """write() and done_writing(): calls with streaming requests only (a
    unary-stream call has neither, as in grpcio)."""

    async def write(self, request):
        if self._request_style != "write":
            raise UsageError(API_STYLE_ERROR)
        if self._opened and self._status is None and not self._done_writing_flag:
            # _write_one's common case without its coroutine: the stream is
            # open, the request goes to the engine here.
            if request.__class__ is bytes and self._serializer is None:
                payload = request
            else:
                payload = serialize_request(request, self._serializer)
                if payload is None:
                    self._fail(_INTERNAL, SERIALIZE_FAILED)
                    raise self._error(self._status)
            q = self._q
            token = next(q.tokens)
            result = self._hot.aio_stream_send(q.cq, token, self._stream, payload)
            if result is not True:
                await self._write_rest(result, token)
            return
        await self._write_one(request)

    async def _write_rest(self, result, token):
        """write() after aio_stream_send answered result (not True): an
        operation (the engine's queue is full), or False (the call ended)."""
        if result is not False:
            future = self._loop.create_future()
            self._q.waiting[token] = future
            if await self._op_result(result, future):
                return
        status = await self._wait_status()
        self._raise_for_status(status)
        raise asyncio.InvalidStateError(RPC_ALREADY_FINISHED_DETAILS)

    async def done_writing(self):
        if self._request_style != "write":
            raise UsageError(API_STYLE_ERROR)
        await self._done_writing()


class _StreamResponseMixin:
    def _style(self, style):
        if self._response_style is None:
            self._response_style = style
        elif self._response_style != style:
            raise UsageError(API_STYLE_ERROR)

    def __aiter__(self):
        self._style("iter")
        iterator = getattr(self, "_aiter", None)
        if iterator is None:
            # C (pyext/aio_iterators.h): a response already buffered comes
            # back with no coroutine; the rest is _next_response.
            iterator = self._aiter = self._hot.AioResponses(
                self, self._next_response, self._deserializer, self._buffer)
        return iterator

    async def _next_response(self):
        """The response iterator's step when its C part (hot.AioResponses)
        found no response buffered or the call cancelled here: a ping-pong's
        response without an inner coroutine (the wait the last take armed,
        then one take), else _read_raw."""
        if self._status is None and self._recv_armed:
            # A ping-pong's response (read()'s path).
            future = self._armed_wait()
            if future is not None:
                try:
                    await future
                except asyncio.CancelledError:
                    if not self.done():
                        self.cancel()
                    raise
            data = self._armed_take()
            if data is None:
                data = await self._read_raw()
                if data is EOF:
                    await self._after_eof()
                    raise StopAsyncIteration
        else:
            data = await self._read_raw()
            if data is EOF:
                await self._after_eof()
                raise StopAsyncIteration
        if self._deserializer is None:
            return data
        return self._deserialize(data)

    async def read(self):
        status = self._status
        if status is None:
            if self._response_style != "read":
                self._style("read")
            if self._recv_armed and not self._buffer:
                # A ping-pong's read: the wait the last take armed, then
                # one take, in this coroutine (_read_raw's loop otherwise).
                future = self._armed_wait()
                if future is not None:
                    try:
                        await future
                    except asyncio.CancelledError:
                        if not self.done():
                            self.cancel()
                        raise
                data = self._armed_take()
                if data is not None:
                    return data if self._deserializer is None else self._deserialize(data)
        elif status.local:
            self._raise_for_status(status)
        # Ended: what is left queued is still read, then EOF, whichever way
        # the responses were read before (grpcio).
        data = await self._read_raw()
        if data is EOF:
            await self._after_eof()
            return EOF
        return self._deserialize(data)


class _UnaryResponseMixin:
    def __await__(self):
        return self._response().__await__()

    async def _response(self):
        status = await self._wait_status(cancel_rpc=True)
        self._raise_for_status(status)
        if not hasattr(self, "_response_value"):
            data = await self._read_raw()
            if data is EOF:
                self._status = _Status(_INTERNAL, _NO_RESPONSE, status.trailing)
                raise self._error(self._status)
            self._response_value = self._deserialize(data)
        return self._response_value


class UnaryStreamCall(_StreamResponseMixin, _StreamCall, _base_call.UnaryStreamCall):
    """A unary-stream RPC."""

    _client_streams = False


class StreamUnaryCall(_UnaryResponseMixin, _StreamRequestMixin, _StreamCall,
                      _base_call.StreamUnaryCall):
    """A stream-unary RPC."""

    _server_streams = False


class StreamStreamCall(_StreamResponseMixin, _StreamRequestMixin, _StreamCall,
                       _base_call.StreamStreamCall):
    """A stream-stream RPC."""


def is_async_iterable(obj):
    return hasattr(obj, "__aiter__") or inspect.isasyncgen(obj)
