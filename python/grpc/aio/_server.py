"""grpc.aio's server on the Go engine.

grpc-go accepts connections and calls; the event loop that started the
server runs every handler. The loop never blocks in the engine:

* Calls are announced on the loop's completion queue (pyext/cq.h): the
  server's notify completes one token per burst of calls (``aio_server_attach``)
  and the loop, in its reader callback, takes every queued call
  (``aio_server_take``) and starts one task per call. No goroutine or
  thread waits for calls.
* Each call is watched by the take that takes it: if it dies before it is
  finished (the client cancels, the deadline passes, the server stops), its
  token completes and the handler's task is cancelled; a call finished
  first costs the watch nothing more.
* Requests, responses and the other waits are ``aio_*`` operations that
  answer at once when they can and otherwise complete a token
  (grpc/aio/_completion.py).

Handlers run as grpcio's aio server runs them: coroutines and async
generators on the loop, plain functions and generators in the migration
thread pool (the loop's default executor if none was given), with a
synchronous context whose ``abort``/``send_initial_metadata`` run on the
loop. Status semantics follow grpcio's aio server: an exception is UNKNOWN
"Unexpected <class ...>: ..." (or the code the handler set), ``abort``
sends its status at once and raises ``AbortError``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
import time
import typing

import grpc
from grpc import _common
from grpc import _metrics
from grpc import _runtime
from grpc.aio import _base_server
from grpc.aio import _completion
from grpc.aio._batches import SendBatches
from grpc.aio._completion import quiet as _quiet
from grpc.aio._call import AbortError, InternalError, UsageError
from grpc.aio._interceptor import ServerInterceptor
from grpc.aio._loop_read import SocketWatch
from grpc.aio._typing import EOF

if typing.TYPE_CHECKING:
    from concurrent import futures
    from typing import Optional, Sequence

    from grpc.aio._typing import ChannelArgumentType

_LOGGER = logging.getLogger(__name__)

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNKNOWN = grpc.StatusCode.UNKNOWN
_INTERNAL = grpc.StatusCode.INTERNAL
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
_StatusCode = grpc.StatusCode
_CODE_VALUES = {code: code.value[0] for code in grpc.StatusCode}
_Context = contextvars.Context
_make_task = asyncio.Task
_BASE_CREATE_TASK = asyncio.BaseEventLoop.create_task
# Tasks take the context they run in (context=) from Python 3.11 on; before,
# a task copies the context it is created in (_task_in_fresh_context).
_TASK_CONTEXT_ARG = sys.version_info >= (3, 11)


def _task_in_fresh_context(loop, coro):
    """A task of coro in an empty contextvars.Context of its own, on Pythons
    without create_task's context= (3.9, 3.10)."""
    return _Context().run(loop.create_task, coro)

# How many calls one take, and requests one receive, may bring in.
_BATCH = 256
_RECV_ARM = []  # [whether receives arm the next read's wait], asked once


def _recv_arm(hot):
    """Whether a take may arm the next read's wait (GRPCGO_AIO_RECV_ARM)."""
    if not _RECV_ARM:
        _RECV_ARM.append(hot.aio_recv_arm())
    return _RECV_ARM[0]

_READY, _RUNNING, _STOPPING, _STOPPED = range(4)

# Seconds a server whose loop ends while it runs (asyncio.run() cancelling
# its guard) gives the statuses of its calls in flight to reach their
# clients before its connections close (a graceful stop: it ends sooner
# once every connection has drained).
_ABANDON_GRACE = 1.0

_EMPTY = ()

# What set_code(None) stores: the call ends UNKNOWN, code() says None.
_CODE_NONE = object()

_COMPRESSIONS = frozenset(int(c) for c in grpc.Compression)


class _HandlerCallDetails(grpc.HandlerCallDetails):
    __slots__ = ("method", "invocation_metadata")

    def __init__(self, method, invocation_metadata):
        self.method = method
        self.invocation_metadata = invocation_metadata


class _CallOver(Exception):
    """A write or read found the call over (the client went away): the
    handler's task is being cancelled; nothing more can be sent."""


def _is_async_handler(handler):
    return (inspect.isawaitable(handler) or inspect.iscoroutinefunction(handler)
            or inspect.isasyncgenfunction(handler))


async def _wait(q, loop, token, op):
    """Waits for op (started with token) to complete; its result."""
    future = loop.create_future()
    q.waiting[token] = future
    try:
        await future
    except BaseException:
        q.forget(token)
        raise
    return q.hot.aio_result(op)


class _Rpc:
    """One call being served: the engine's call, its state, and the waiter
    its watch token resolves (the queue calls ``set_result`` when the call
    died before it was finished)."""

    __slots__ = ("server", "hot", "call", "method", "metadata", "peer", "deadline", "first",
                 "task", "token", "finished", "died", "status_sent", "metadata_sent",
                 "abort_exception", "code", "details", "trailing_metadata", "callbacks",
                 "context")

    def __init__(self, server, call, method, metadata, peer, time_left, first):
        self.server = server
        self.hot = server._hot
        self.call = call
        self.method = method
        self.metadata = metadata
        self.peer = peer
        self.deadline = None if time_left is None else time.monotonic() + time_left
        self.first = first
        self.task = None
        self.token = 0
        self.finished = False  # the watch is over
        self.died = False
        self.status_sent = False
        self.metadata_sent = False
        self.abort_exception = None
        self.code = None
        self.details = ""
        self.trailing_metadata = _EMPTY
        self.callbacks = None
        self.context = None

    # The completion queue's waiter interface (see _completion._Queue._drain).
    def done(self):
        return self.finished

    def set_result(self, _):
        # The call died before the handler finished it.
        self.finished = True
        self.died = True
        task = self.task
        if task is not None and not task.done():
            self.server._cancel(self)

    def raise_for_termination(self):
        if self.abort_exception is not None:
            raise self.abort_exception
        if self.status_sent:
            raise UsageError("RPC already finished.")

    def finish(self, code, details, trailing_metadata=None, last=None):
        """Ends the call with a status (once); whatever the handler gave, the
        call ends here (a call left unfinished would hang its client)."""
        self.status_sent = True
        context = self.context
        if context is not None and context._reqs is not None:
            context._reqs.ended = True  # the request iterator's next step raises
        self.metadata_sent = True
        if code.__class__ is not _StatusCode:
            code = _status_code(code)
        if details.__class__ is not str and details is not None and not isinstance(details, str):
            # grpcio's core refuses it: the call fails as if the handler raised.
            _LOGGER.error("Status details must be str, not %r", details)
            code = _UNKNOWN if code is _OK else code
            details = ("Unexpected %s: Argument 'details' has incorrect type"
                       " (expected str, got %s)" % (TypeError, type(details).__name__))
            last = None
        try:
            self.hot.call_finish(self.call, 0 if code is _OK else _CODE_VALUES[code],
                                 details or "", trailing_metadata or None, last)
        except Exception:
            # Invalid trailing metadata: the engine ended the call with
            # INTERNAL. Anything else it refused (details it cannot encode)
            # ended nothing: end it here.
            _LOGGER.exception("Cannot send status %r, %r, %r", code, details, trailing_metadata)
            self.hot.call_finish(self.call, _INTERNAL.value[0], "Invalid status", None, None)


class _Acceptor:
    """The waiter of a server's token: the drain (pyext/aio_unary.h
    cq_resolve) asks ``done()`` and calls ``set_result(None)``, which is the
    server's ``_accept`` itself (it takes every queued call and waits
    again). Both are C-level callables, so the drain runs no Python frame
    of this object's per burst of calls."""

    __slots__ = ("set_result",)

    done = staticmethod(bool)  # bool() is False: never done

    def __init__(self, accept):
        self.set_result = accept


class _ServicerContext(_base_server.ServicerContext):
    """The context an async handler gets (grpc.aio.ServicerContext)."""

    __slots__ = ("_rpc", "_q", "_loop", "_deserializer", "_serializer", "_reqs",
                 "_eof", "_auth", "_replies", "_waited", "_arm", "_armed", "_socket")

    def __init__(self, rpc, q, loop, deserializer, serializer):
        self._rpc = rpc
        self._q = q
        self._loop = loop
        self._deserializer = deserializer
        self._serializer = serializer
        # The requests taken last and the next one's index, in the C request
        # iterator (hot.AioRequests: .batch, .next) that read() shares; made
        # by the first take or the iterator.
        self._reqs = None
        self._eof = False
        self._auth = None
        self._replies = None  # SendBatches, made by the first write
        self._waited = False  # the last read waited for its request (see _put)
        self._arm = False  # the last read waited: the next take arms the next read's wait
        self._armed = None  # (token, Wait) that take armed, not awaited yet
        # The loop reads the connection itself while this call ping-pongs
        # (_loop_read.SocketWatch, made by the first take that armed a wait).
        self._socket = None

    async def _recv(self):
        """The next request's bytes, or None at the end.

        While reads wait for their request (a ping-pong), the receive that
        takes one also arms the next read's wait (aio_call_recv's next
        token, _arm), so that read awaits it without calling into the
        engine only to learn that nothing came yet."""
        reqs = self._reqs
        if reqs is not None:
            batch = reqs.batch
            if batch is not None and reqs.next < len(batch):
                data = batch[reqs.next]
                reqs.next += 1
                return data
        if self._eof:
            return None
        rpc, q, loop = self._rpc, self._q, self._loop
        hot, call, waiting = rpc.hot, rpc.call, q.waiting
        while True:
            armed = self._armed
            if armed is not None:
                # The last take armed this wait (the token completes once a
                # request is queued or the requests ended).
                self._armed = None
                token, future = armed
                if future.done():
                    self._arm = False  # it came without waiting: stop arming
                else:
                    if self._replies is not None:
                        self._replies.flush_now()  # the responses written go out before this waits
                    try:
                        await future
                    except BaseException:
                        q.forget(token)
                        raise
                    self._waited = True
            token = next(q.tokens)
            got = self._take(token)
            if got is not None:
                break
            # Nothing queued: the call's reader completes token once there
            # is. Requests stay queued in Go until taken, so a read
            # cancelled here (a timeout around read()) loses none.
            if self._replies is not None:
                self._replies.flush_now()  # the responses written go out before this waits
            # A Wait: the drain resumes this task in the turn its request
            # arrived in (an asyncio.Future would take one more turn).
            future = hot.Wait(loop)
            waiting[token] = future
            try:
                await future
            except BaseException:
                q.forget(token)
                raise
            self._waited = True
            self._arm = _recv_arm(hot)
        if not got:
            self._eof = True
            return None
        self._keep(got)
        return got[0]

    def _keep(self, got):
        """Keeps the batch just taken, its first request handed out."""
        reqs = self._reqs
        if reqs is None:
            reqs = self._requests()
        reqs.batch, reqs.next = got, 1

    def _requests(self):
        """The call's request iterator (hot.AioRequests), made once."""
        reqs = self._reqs
        if reqs is not None:
            return reqs
        rpc = self._rpc
        reqs = self._reqs = rpc.hot.AioRequests(self._next_request, self._deserializer)
        reqs.ended = rpc.abort_exception is not None or rpc.status_sent
        return reqs

    def _take(self, token):
        """One receive (token: the wait's if nothing is queued): the
        requests queued ([] at their end; with _arm, the next read's wait is
        armed), or None."""
        q = self._q
        rpc = self._rpc
        hot = rpc.hot
        if self._arm:
            following = next(q.tokens)
            got = hot.aio_call_recv(q.cq, token, rpc.call, _BATCH, following)
            if got:
                future = hot.Wait(self._loop)
                q.waiting[following] = future
                self._armed = (following, future)
                watch = self._socket
                if watch is None:
                    watch = self._socket = SocketWatch(
                        self._loop, q, rpc.call, hot.aio_call_loop_read, hot.aio_call_pump,
                        _SOCKET_ASKS)
                if watch.fd < 0 and watch.asks:
                    watch.ask()
            return got
        return hot.aio_call_recv(q.cq, token, rpc.call, _BATCH)

    async def _next_request(self):
        """The request iterator's step when its C part (hot.AioRequests)
        found no request of the batch at hand or the call ended: a
        ping-pong's request without _recv's coroutine (the wait the last
        take armed, then one take), else _recv."""
        rpc = self._rpc
        if rpc.abort_exception is not None or rpc.status_sent:
            rpc.raise_for_termination()
        armed = self._armed
        if armed is not None:
            self._armed = None
            token, future = armed
            if future.done():
                self._arm = False  # it came without waiting: stop arming
            else:
                replies = self._replies
                if replies is not None and replies.out:
                    replies.flush_now()  # the responses written go out before this waits
                try:
                    await future
                except BaseException:
                    self._q.forget(token)
                    raise
                self._waited = True
            got = self._take(next(self._q.tokens))
            if got:
                self._keep(got)
                data = got[0]
            elif got is None:
                data = await self._recv()  # nothing queued after all: wait
            else:
                self._eof = True
                data = None
        else:
            data = await self._recv()
        if rpc.abort_exception is not None or rpc.status_sent:
            rpc.raise_for_termination()
        if data is None:
            raise StopAsyncIteration()
        deserializer = self._deserializer
        return data if deserializer is None else deserializer(data)

    async def read(self):
        rpc = self._rpc
        rpc.raise_for_termination()
        data = await self._recv()
        rpc.raise_for_termination()
        if data is None:
            return EOF
        return _common.deserialize(data, self._deserializer)

    async def write(self, message):
        if not self._put(message):
            await self._flush()

    def _put(self, message):
        """write() without its coroutine: False if the caller must then
        await _flush() (a full batch). A streaming handler's responses come
        through here (_stream_responses), one coroutine fewer a response."""
        rpc = self._rpc
        if rpc.abort_exception is not None or rpc.status_sent:
            rpc.raise_for_termination()
        replies = self._replies
        if replies is None:
            replies = self._replies = SendBatches(
                self._loop, self._q, rpc.hot, rpc.hot.aio_call_send_many, rpc.call)
        elif replies.failed:
            raise _CallOver("the RPC has ended")
        if message.__class__ is bytes and self._serializer is None:
            data = message
        else:
            data = _serialize(message, self._serializer)
        rpc.metadata_sent = True
        # Responses go to the engine in batches (SendBatches); every status
        # is sent after a flush (see _flush), so none is overtaken. The first
        # after a read that waited (a bidi handler answering a request) goes
        # at once.
        if self._waited:
            self._waited = False
            replies.prompt = True
        return replies.put(data)

    async def _flush(self, shielded=False):
        """Waits until every response written is queued in the engine;
        raises _CallOver if the call can take no more (shielded:
        SendBatches.flush)."""
        replies = self._replies
        if replies is not None and not await replies.flush(shielded=shielded):
            raise _CallOver("the RPC has ended")

    async def send_initial_metadata(self, initial_metadata):
        rpc = self._rpc
        rpc.raise_for_termination()
        if rpc.metadata_sent:
            raise UsageError("Send initial metadata failed: already sent")
        # None raises grpcio's TypeError ("'NoneType' object is not
        # iterable"; its sync server's context takes None), sending nothing.
        initial_metadata = tuple(initial_metadata)
        rpc.metadata_sent = True
        sent = rpc.hot.aio_call_send_header(rpc.call, initial_metadata)
        if sent is None:
            # Metadata gRPC forbids: grpcio's core ends the call with INTERNAL.
            rpc.finish(_INTERNAL, "Invalid metadata")
            raise InternalError("Invalid metadata")
        if not sent:
            raise _CallOver("the RPC has ended")

    async def abort(self, code, details="", trailing_metadata=_EMPTY):
        rpc = self._rpc
        if rpc.abort_exception is not None:
            raise UsageError("Abort already called!")
        if trailing_metadata is not _EMPTY:
            # Before anything: invalid metadata ends the call as a TypeError
            # from the handler (UNKNOWN), as in grpcio.
            trailing_metadata = _trailing_metadata(trailing_metadata)
        rpc.abort_exception = AbortError("Locally aborted.")
        if self._reqs is not None:
            self._reqs.ended = True  # its next step raises it
        if details is not None and not isinstance(details, str):
            # Before the code is taken: the call ends UNKNOWN naming this
            # TypeError, as any exception from the handler (grpcio's).
            raise TypeError("Argument 'details' has incorrect type (expected str, got %s)"
                            % type(details).__name__)
        if trailing_metadata == _EMPTY and rpc.trailing_metadata:
            trailing_metadata = rpc.trailing_metadata
        else:
            rpc.trailing_metadata = trailing_metadata
        if details == "" and rpc.details:
            details = rpc.details
        else:
            rpc.details = details
        code = _status_code(code)
        if code is _OK:
            # As the sync server (grpcio's aio server hangs the call).
            _LOGGER.error("abort() called with %r; returning UNKNOWN", code)
            code, details = _UNKNOWN, ""
        rpc.code = code
        replies = self._replies
        if replies is not None and (replies.out or replies.sending is not None):
            try:
                await self._flush()  # responses written before the abort go first
            except _CallOver:
                pass
        if not rpc.status_sent:
            rpc.finish(code, details, trailing_metadata)
        raise rpc.abort_exception

    async def abort_with_status(self, status):
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_trailing_metadata(self, trailing_metadata):
        self._rpc.trailing_metadata = _trailing_metadata(trailing_metadata)

    def trailing_metadata(self):
        return self._rpc.trailing_metadata

    def invocation_metadata(self):
        return self._rpc.metadata

    def set_code(self, code):
        # As grpcio: None (or anything not a code) ends the call UNKNOWN,
        # while code() still answers None.
        self._rpc.code = _CODE_NONE if code is None else _status_code(code)

    def code(self):
        code = self._rpc.code
        return None if code is _CODE_NONE else code

    def set_details(self, details):
        self._rpc.details = details

    def details(self):
        return self._rpc.details

    def set_compression(self, compression):
        rpc = self._rpc
        if rpc.metadata_sent:
            raise RuntimeError("Compression setting must be specified before sending initial metadata")
        if compression.__class__ is not grpc.Compression:
            if not isinstance(compression, int) or isinstance(compression, bool) or \
                    compression not in _COMPRESSIONS:
                # grpcio takes any value without a word (and compresses
                # nothing, whatever it is given): never an error here.
                _LOGGER.warning("set_compression(%r): not a grpc.Compression, ignored",
                                compression)
                return
        # As the sync server: NoCompression keeps the server's default.
        if compression:
            rpc.hot.aio_call_set_compression(rpc.call, int(compression))

    def disable_next_message_compression(self):
        rpc = self._rpc
        rpc.hot.call_disable_next_compression(rpc.call)

    def peer(self):
        return self._rpc.peer

    def _auth_context(self):
        if self._auth is None:
            self._auth = self._rpc.hot.call_auth_context(self._rpc.call)
        return self._auth

    def peer_identities(self):
        properties, key = self._auth_context()
        return None if key is None else list(properties[key])

    def peer_identity_key(self):
        return self._auth_context()[1]

    def auth_context(self):
        return {k: list(v) for k, v in self._auth_context()[0].items()}

    def time_remaining(self):
        deadline = self._rpc.deadline
        if deadline is None:
            return None
        return max(deadline - time.monotonic(), 0.0)

    def add_done_callback(self, callback):
        rpc = self._rpc
        if rpc.callbacks is None:
            rpc.callbacks = []
        rpc.callbacks.append(functools.partial(callback, self))

    def done(self):
        return self._rpc.status_sent or self._rpc.died

    def cancelled(self):
        rpc = self._rpc
        return rpc.died or rpc.code is _CANCELLED


class _SyncServicerContext:
    """The context a plain (thread pool) handler gets: grpc.ServicerContext's
    methods, the ones that touch the call run on the server's loop."""

    def __init__(self, context):
        self._context = context
        self._loop = context._loop
        self._callbacks = []

    def _on_loop(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def abort(self, code, details="", trailing_metadata=_EMPTY):
        self._on_loop(self._context.abort(code, details, trailing_metadata))

    def abort_with_status(self, status):
        self.abort(status.code, status.details, status.trailing_metadata)

    def send_initial_metadata(self, initial_metadata):
        self._on_loop(self._context.send_initial_metadata(initial_metadata))

    def set_trailing_metadata(self, trailing_metadata):
        self._context.set_trailing_metadata(trailing_metadata)

    def trailing_metadata(self):
        return self._context.trailing_metadata()

    def invocation_metadata(self):
        return self._context.invocation_metadata()

    def set_code(self, code):
        self._context.set_code(code)

    def code(self):
        return self._context.code()

    def set_details(self, details):
        self._context.set_details(details)

    def details(self):
        return self._context.details()

    def set_compression(self, compression):
        self._context.set_compression(compression)

    def disable_next_message_compression(self):
        self._context.disable_next_message_compression()

    def add_callback(self, callback):
        self._callbacks.append(callback)
        return True

    def is_active(self):
        return not self._context.done()

    def cancelled(self):
        return self._context.cancelled()

    def peer(self):
        return self._context.peer()

    def peer_identities(self):
        return self._context.peer_identities()

    def peer_identity_key(self):
        return self._context.peer_identity_key()

    def auth_context(self):
        return self._context.auth_context()

    def time_remaining(self):
        return self._context.time_remaining()


def _sync_requests(context, loop):
    """The request iterator a plain streaming-request handler gets: each
    request is read on the loop."""
    eof = EOF
    while True:
        message = asyncio.run_coroutine_threadsafe(context.read(), loop).result()
        if message is eof:
            return
        yield message


async def _sync_responses(generator, loop, pool, run):
    """A plain handler's response iterator, advanced in the pool."""
    done = object()

    def step():
        return next(generator, done)

    while True:
        response = await loop.run_in_executor(pool, run, step)
        if response is done:
            return
        yield response


class Server(_base_server.Server):
    """Serves RPCs on the event loop that starts it."""

    def __init__(self, thread_pool, generic_handlers, interceptors, options,
                 maximum_concurrent_rpcs, compression):
        if interceptors:
            invalid = [i for i in interceptors if not isinstance(i, ServerInterceptor)]
            if invalid:
                raise ValueError(
                    "Interceptor must be ServerInterceptor, the following are invalid: %s" % invalid)
        if maximum_concurrent_rpcs is not None and maximum_concurrent_rpcs <= 0:
            raise ValueError("maximum_concurrent_rpcs should be a positive integer")
        _validate_generic_handlers(generic_handlers)
        self._pool = thread_pool
        self._generic = list(generic_handlers)
        self._registered = {}
        self._interceptors = tuple(interceptors or ())
        self._hot = _runtime.hot()
        self._handle = self._hot.server_new(
            _common.options_json(_common.with_compression(options, compression)),
            int(maximum_concurrent_rpcs or 0))
        self._credentials = []
        self._state = _READY
        self._loop = None
        self._q = None
        self._token = 0
        self._acceptor = _Acceptor(self._accept)
        self._rpcs = {}  # task -> _Rpc, of the calls being served
        self._releasing = set()  # _Rpc whose status waits for its responses (_release)
        self._cancelled_here = False  # a call was ended CANCELLED here (_release)
        self._unary = set()  # methods whose requests the engine reads ahead
        self._plans = {}  # method handler -> how it runs (see _plan)
        self._guard = None
        self._waiters = []  # futures of wait_for_termination() on the server's loop
        _runtime.track_server(self)

    # -- configuration --------------------------------------------------------
    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        _validate_generic_handlers(generic_rpc_handlers)
        self._generic.extend(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        if self._state != _READY:
            _LOGGER.warning("Cannot register method handlers once server has started")
            return
        for method, handler in (method_handlers or {}).items():
            self._registered["/%s/%s" % (service_name, method)] = handler
            _metrics.note_registered("%s/%s" % (service_name, method))

    def add_insecure_port(self, address):
        if isinstance(address, bytes):
            address = address.decode()
        return self._hot.server_add_port(self._handle, address)

    def add_secure_port(self, address, server_credentials):
        if not isinstance(server_credentials, grpc.ServerCredentials):
            raise TypeError(
                "server_credentials must be grpc.ServerCredentials, not %r" % (server_credentials,))
        from grpc import _credentials  # (loaded on use: importing grpc.aio loads no engine)

        if isinstance(address, bytes):
            address = address.decode()
        inner = server_credentials._credentials
        self._credentials.append(inner)  # keeps fetchers registered while we live
        return self._hot.server_add_port(self._handle, address, _credentials.capsule_of(inner))

    # -- life cycle -----------------------------------------------------------
    async def start(self):
        if self._state == _RUNNING:
            return
        if self._state != _READY:
            raise UsageError("Server not in ready state")
        loop, q = _completion.queue()
        hot = self._hot
        self._loop, self._q = loop, q
        self._token = next(q.tokens)
        hot.aio_server_attach(q.cq, self._token, self._handle)
        try:
            hot.server_start(self._handle)
        except ValueError as error:
            raise UsageError(str(error)) from None
        self._state = _RUNNING
        q.waiting[self._token] = self._acceptor
        self._guard = _quiet(loop.create_task(self._guard_loop(), name="grpc.aio server"))

    async def _guard_loop(self):
        """Lives as long as the server runs. asyncio.run() cancels it when
        its loop ends (Ctrl-C, or main() returned with the server still
        running): the server then stops, as nobody will serve it. New calls
        are refused at once; each call in flight ends CANCELLED, as in
        grpcio, whose handlers' tasks asyncio.run() cancels too (their
        _release sends it). The connections close once those statuses are
        written (a graceful stop, _ABANDON_GRACE at most, awaited here, so
        in asyncio.run()'s shutdown): a stop without grace closed them at
        once and the clients saw UNAVAILABLE instead."""
        try:
            await self._loop.create_future()  # never resolved: only cancelled
        except asyncio.CancelledError:
            if self._state == _RUNNING:
                self._state = _STOPPED
                q = self._q
                token = next(q.tokens)
                # (A graceful stop also waits, up to the grace, for clients
                # that keep their connection open after its GOAWAY, as
                # grpcio's do: none when no call is in flight.)
                # asyncio.run() may have cancelled the handlers' tasks before
                # this one, so that they are gone from _rpcs already: the
                # statuses they sent may still be queued in the engine, and a
                # stop without grace would close their connections first
                # (the clients saw UNAVAILABLE).
                busy = self._rpcs or self._releasing or self._cancelled_here
                op = self._hot.aio_server_stop(
                    q.cq, token, self._handle, _ABANDON_GRACE if busy else 0.0)
                for rpc in list(self._rpcs.values()):
                    self._cancel(rpc)
                self._wake_waiters()
                try:
                    await _wait(q, self._loop, token, op)
                except asyncio.CancelledError:
                    # Cancelled again: no more waiting.
                    self._hot.aio_server_stop(q.cq, next(q.tokens), self._handle, 0.0)
            raise

    def _wake_waiters(self):
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def stop(self, grace):
        if self._state in (_READY, _STOPPED):
            return
        grace = 0.0 if grace is None else max(float(grace), 0.0)
        self._state = _STOPPING
        # The stop runs in a task of its own: a caller cancelled while it
        # waits (a handler stopping its own server is, when the stop cancels
        # its call; a wait_for() around stop()) must not leave the server
        # stopping for good, with wait_for_termination() waiting forever.
        stopping = _quiet(asyncio.get_running_loop().create_task(
            self._stop(grace, asyncio.current_task())))
        await asyncio.shield(stopping)

    async def _stop(self, grace, caller):
        loop, q = _completion.queue()
        token = next(q.tokens)
        op = self._hot.aio_server_stop(q.cq, token, self._handle, grace)
        # Go refuses new calls now, gives the calls in flight grace, then
        # cancels them (their watches cancel the handlers' tasks). Then
        # every handler must have returned (but the one stopping its own
        # server, if one is).
        await _wait(q, loop, token, op)
        if loop is self._loop:
            tasks = [t for t in self._rpcs if t is not caller]
            if tasks:
                await asyncio.wait(tasks)
        if self._state == _STOPPED:
            return  # another stop() finished meanwhile
        self._state = _STOPPED
        guard = self._guard
        if loop is self._loop:
            if guard is not None and not guard.done():
                guard.cancel()
                await asyncio.wait([guard])
            self._wake_waiters()
            # Let wait_for_termination() return before stop() does, so a
            # loop stopped right after (run_until_complete users) leaves
            # no task behind.
            await asyncio.sleep(0)
        elif not self._loop.is_closed():  # (a closed loop runs nothing more)
            self._loop.call_soon_threadsafe(self._wake_waiters)
            if guard is not None:
                self._loop.call_soon_threadsafe(guard.cancel)

    async def wait_for_termination(self, timeout=None):
        if self._state == _STOPPED:
            return False
        loop, q = _completion.queue()
        if loop is self._loop:
            # stop() on this loop wakes it once every handler returned.
            waiter = loop.create_future()
            self._waiters.append(waiter)
        else:
            token = next(q.tokens)
            stopped = self._hot.aio_server_stopped(q.cq, token, self._handle)
            if stopped is True:
                return False
            waiter = _wait(q, loop, token, stopped)
        if timeout is None:
            await waiter
            return False
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return True
        return False

    def _shutdown_at_exit(self):
        self._hot.server_stop(self._handle, 0.0)

    # -- serving --------------------------------------------------------------
    def _accept(self, _=None):
        """Starts a task for every queued call, then waits for more (on the
        loop's thread, from the completion queue's reader callback: this is
        the acceptor's set_result). The take watches each call it takes:
        token base + i completes if the i-th dies before it is finished."""
        try:
            hot, handle, q, loop = self._hot, self._handle, self._q, self._loop
            waiting, rpcs, serve = q.waiting, self._rpcs, self._serve
            # asyncio's own create_task is three Python calls around the
            # Task it makes: make that Task directly when nothing else
            # would (no task factory; uvloop's create_task is C already).
            make = _make_task if (_TASK_CONTEXT_ARG
                                  and type(loop).create_task is _BASE_CREATE_TASK
                                  and loop.get_task_factory() is None) else None
            while True:
                base = q.watch_tokens
                events = hot.aio_server_take(handle, _BATCH, q.cq, base)
                if events is None:
                    return  # stopped: no more calls
                q.watch_tokens = base + len(events)
                for event in events:
                    rpc = _Rpc(self, *event)
                    # No done callback: _serve takes its task out of _rpcs
                    # as it returns (a callback costs the loop another turn
                    # per call).
                    if make is not None:
                        rpc.task = task = make(serve(rpc), loop=loop, context=_Context())
                        task._log_destroy_pending = False  # _quiet, inline
                    elif _TASK_CONTEXT_ARG:
                        rpc.task = task = _quiet(loop.create_task(serve(rpc), context=_Context()))
                    else:
                        rpc.task = task = _quiet(_task_in_fresh_context(loop, serve(rpc)))
                    rpcs[task] = rpc
                    rpc.token = base
                    waiting[base] = rpc
                    base += 1
                if len(events) < _BATCH:
                    break
            waiting[self._token] = self._acceptor
        except Exception:  # pragma: no cover - a bug; keep the loop alive
            _LOGGER.exception("grpc.aio server: taking calls failed")

    def _cancel(self, rpc):
        """Cancels a call's task. A task cancelled before it ever ran never
        enters _serve, so what _serve's end does is done when it is done."""
        if rpc.task.cancel():
            rpc.task.add_done_callback(lambda _: self._forget(rpc))

    def _forget(self, rpc):
        try:
            self._release(rpc)
        finally:
            self._rpcs.pop(rpc.task, None)

    def _release(self, rpc):
        """Ends a call the handler left unfinished and stops its watch."""
        if not rpc.status_sent:
            context = rpc.context
            replies = None if context is None else context._replies
            if replies is not None and not rpc.died:
                # A KeyboardInterrupt or SystemExit from the handler (a
                # cancelled one flushed in _serve): the responses it wrote
                # go first. A batch still being queued is waited for (its
                # completion hands over what was written meanwhile), then
                # this runs again.
                if replies.sending is None:
                    replies.flush_now()
                if replies.sending is not None:
                    self._releasing.add(rpc)  # (a stop gives it grace: _guard_loop)
                    replies.sending.add_done_callback(lambda _: self._release(rpc))
                    return
            self._releasing.discard(rpc)
            if not rpc.died:
                self._cancelled_here = True  # (its status goes out: _guard_loop)
            # Cancelled. The call died (it is over already, this only
            # releases it), or its task was cancelled (asyncio.run() ending
            # its loop: Ctrl-C, main() returned): the client sees
            # CANCELLED, in grpcio's words.
            rpc.finish(_CANCELLED, "CANCELLED")
        if not rpc.finished:
            rpc.finished = True
            self._q.forget(rpc.token)

    def _query(self, details):
        handler = self._registered.get(details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None

    async def _lookup(self, rpc):
        details = _HandlerCallDetails(rpc.method, rpc.metadata)
        if not self._interceptors:
            return self._query(details)
        interceptors = iter(self._interceptors)

        async def continuation(call_details):
            interceptor = next(interceptors, None)
            if interceptor is None:
                return self._query(call_details)
            return await interceptor.intercept_service(continuation, call_details)

        return await continuation(details)

    async def _serve(self, rpc):
        try:
            try:
                if self._interceptors:
                    handler = await self._lookup(rpc)
                else:
                    handler = self._registered.get(rpc.method)
                    if handler is None:
                        handler = self._query(_HandlerCallDetails(rpc.method, rpc.metadata))
                if handler is None:
                    rpc.finish(_UNIMPLEMENTED, "Method not found!")
                    return
                plan = self._plans.get(handler)
                if plan is None:
                    plan = self._plan(handler)
                if plan[1] and not plan[2] and not plan[3] and rpc.first is not None:
                    # An async unary-unary handler whose request came with
                    # the call (the usual case), without _run's coroutine.
                    context = rpc.context = _ServicerContext(
                        rpc, self._q, self._loop, handler.request_deserializer,
                        handler.response_serializer)
                    request = rpc.first
                    rpc.first = None
                    deserializer = handler.request_deserializer
                    if deserializer is not None:
                        request = deserializer(request)
                    response = await plan[0](request, context)
                    replies = context._replies
                    if replies is not None and (replies.out or replies.sending is not None):
                        await context._flush()
                    serializer = handler.response_serializer
                    if rpc.code is None and rpc.abort_exception is None and not rpc.status_sent:
                        # _send_unary's usual case, inline
                        if serializer is not None or response.__class__ is not bytes:
                            response = b"" if response is None and serializer is None else \
                                _serialize(response, serializer)
                        rpc.finish(_OK, rpc.details, rpc.trailing_metadata, response)
                    else:
                        _send_unary(rpc, response, serializer)
                else:
                    await self._run(rpc, handler, plan)
            except AbortError as error:
                if error is not rpc.abort_exception:
                    # An AbortError the handler made itself: the call ends
                    # as for any exception.
                    raise
            else:
                if rpc.abort_exception is not None:
                    _LOGGER.error("Abort error unexpectedly suppressed: %r", rpc.abort_exception)
        except _CallOver:
            pass
        except asyncio.CancelledError:
            # The task was cancelled with the call alive (asyncio.run()
            # ending the loop on Ctrl-C, or the program's own cancel()): the
            # responses the handler wrote go out before the CANCELLED
            # status (_release), as in grpcio, where a write() returned
            # once its response was in the engine. Shielded: asyncio.run()
            # and the server's guard may both cancel the task, and a second
            # cancel while the flush waits must not drop the batch being
            # queued (_release then waits for it).
            context = rpc.context
            if (context is not None and not rpc.status_sent and not rpc.died
                    and context._replies is not None
                    and (context._replies.out or context._replies.sending is not None)):
                try:
                    await context._flush(shielded=True)
                except (asyncio.CancelledError, _CallOver):
                    pass
        except Exception as error:
            context = rpc.context
            if (context is not None and not rpc.status_sent and not rpc.died
                    and context._replies is not None
                    and (context._replies.out or context._replies.sending is not None)):
                try:
                    await context._flush()  # responses written before it go first
                except (asyncio.CancelledError, _CallOver):
                    pass
            if not rpc.status_sent and not rpc.died:
                _LOGGER.exception("Unexpected [%s] raised by servicer method [%s]",
                                  type(error).__name__, rpc.method)
                code = rpc.code if rpc.code is not None and rpc.code is not _OK else _UNKNOWN
                rpc.finish(code, "Unexpected %s: %s" % (type(error), error), rpc.trailing_metadata)
        finally:
            try:
                context = rpc.context
                if context is not None and context._socket is not None:
                    context._socket.stop()
                if not rpc.status_sent:
                    self._release(rpc)
                elif not rpc.finished:  # _release, inline: the usual end
                    rpc.finished = True
                    self._q.waiting.pop(rpc.token, None)
                callbacks = rpc.callbacks
                if callbacks:
                    for callback in callbacks:
                        try:
                            callback()
                        except Exception:
                            _LOGGER.exception("Error in callback for method [%s]", rpc.method)
            finally:
                # Last, with nothing awaited after it: the task returns in
                # this step, so to stop() a task gone from _rpcs has returned.
                self._rpcs.pop(rpc.task, None)

    def _plan(self, handler):
        """How a method handler runs, worked out once per handler: (behavior,
        whether it is async, request streaming, response streaming)."""
        plan = self._plans.get(handler)
        if plan is None:
            streaming_request = handler.request_streaming
            streaming_response = handler.response_streaming
            if streaming_request:
                behavior = handler.stream_stream if streaming_response else handler.stream_unary
            else:
                behavior = handler.unary_stream if streaming_response else handler.unary_unary
            plan = (behavior, _is_async_handler(behavior), streaming_request, streaming_response)
            if len(self._plans) >= 4096:
                self._plans.clear()  # handlers made per call (interceptors): no growth
            try:
                self._plans[handler] = plan
            except TypeError:  # an unhashable handler object: no caching
                pass
        return plan

    async def _run(self, rpc, handler, plan):
        loop, q = self._loop, self._q
        behavior, is_async, streaming_request, streaming_response = plan
        context = _ServicerContext(rpc, q, loop, handler.request_deserializer, handler.response_serializer)
        rpc.context = context
        if streaming_request:
            request = context._requests() if is_async else _sync_requests(context, loop)
        else:
            data = rpc.first
            rpc.first = None
            if data is None:
                if rpc.method not in self._unary:
                    # From now on the engine reads this method's request
                    # before it hands the call over.
                    self._unary.add(rpc.method)
                    self._hot.server_mark_unary(self._handle, rpc.method)
                data = await context._recv()
                if data is None:
                    return  # the client went away before sending it
            deserializer = handler.request_deserializer
            request = data if deserializer is None else deserializer(data)
        if streaming_response:
            await self._stream_responses(rpc, context, behavior, request)
        elif is_async:
            response = await behavior(request, context)
            replies = context._replies
            if replies is not None and (replies.out or replies.sending is not None):
                await context._flush()
            _send_unary(rpc, response, handler.response_serializer)
        else:
            await self._unary_response(rpc, context, behavior, request, handler.response_serializer)

    def _in_pool(self, behavior, request, context):
        """Runs a plain handler in the migration thread pool with a sync
        context; its result and that context."""
        sync_context = _SyncServicerContext(context)
        run = contextvars.copy_context().run
        return sync_context, self._loop.run_in_executor(
            self._pool, run, behavior, request, sync_context)

    async def _unary_response(self, rpc, context, behavior, request, serializer):
        """A plain unary-response handler, run in the pool."""
        sync_context, future = self._in_pool(behavior, request, context)
        response = await future
        for callback in sync_context._callbacks:
            callback()
        if inspect.isawaitable(response):  # a wrapped coroutine function
            response = await response
        replies = context._replies
        if replies is not None and (replies.out or replies.sending is not None):
            await context._flush()
        _send_unary(rpc, response, serializer)

    async def _stream_responses(self, rpc, context, behavior, request):
        if inspect.iscoroutinefunction(behavior):
            # The handler writes through the context and returns None.
            await behavior(request, context)
        else:
            sync_context = None
            if inspect.isasyncgenfunction(behavior):
                responses = behavior(request, context)
            else:
                sync_context = _SyncServicerContext(context)
                run = contextvars.copy_context().run
                generator = behavior(request, sync_context)
                if hasattr(generator, "__aiter__"):
                    responses = generator
                else:
                    responses = _sync_responses(iter(generator), self._loop, self._pool, run)
            try:
                put = context._put
                async for response in responses:
                    if rpc.abort_exception is not None or rpc.status_sent:
                        rpc.raise_for_termination()
                    if not put(response):  # context.write(response), without its coroutine
                        await context._flush()
            finally:
                aclose = getattr(responses, "aclose", None)
                if aclose is not None:
                    await aclose()
            if sync_context is not None:
                for callback in sync_context._callbacks:
                    callback()
        await context._flush()
        rpc.raise_for_termination()
        code = rpc.code if rpc.code is not None else _OK
        rpc.finish(code, rpc.details, rpc.trailing_metadata)


# How many times a call asks for its loop to read its connection (a refusal
# costs a crossing; the engine refuses while the call is not alone on its
# connection, not plain TCP or not reading directly).
_SOCKET_ASKS = 4


def _send_unary(rpc, response, serializer):
    """Ends a unary-response call: the response and its status in one
    crossing (or the status the handler set)."""
    if rpc.abort_exception is not None or rpc.status_sent:
        rpc.raise_for_termination()
    code = rpc.code
    if code is None or code is _OK:
        if serializer is None and response.__class__ is bytes:
            payload = response
        else:
            payload = b"" if response is None and serializer is None else _serialize(
                response, serializer)
        rpc.finish(_OK, rpc.details, rpc.trailing_metadata, payload)
    else:
        rpc.finish(code, rpc.details, rpc.trailing_metadata)


def _status_code(code):
    """The StatusCode a handler means (grpcio's aio server): a StatusCode,
    an int in 0..16 as that code, anything else UNKNOWN."""
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return _common.CODES.get(code, _UNKNOWN)
    return _UNKNOWN


_BAD_TRAILING = "Invalid trailing metadata type, expected Tuple[Tuple[str, Union[str, bytes]]...]: %r"


def _trailing_metadata(metadata):
    """Trailing metadata as a tuple of (str, str | bytes) pairs; TypeError
    (grpcio's words) for anything else (None, a dict, a str, other items).
    A list or a grpc.aio.Metadata is taken, in set_trailing_metadata as in
    grpcio, and in abort too (grpcio's abort refuses them: a bug)."""
    if metadata.__class__ is tuple and not metadata:
        return metadata
    if metadata is None or isinstance(metadata, (str, bytes, dict)):
        raise TypeError(_BAD_TRAILING % (metadata,))
    try:
        items = tuple(metadata)
    except TypeError:
        raise TypeError(_BAD_TRAILING % (metadata,)) from None
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str) \
                or not isinstance(item[1], (str, bytes)):
            raise TypeError(_BAD_TRAILING % (metadata,))
    return items


def _serialize(message, serializer):
    # grpcio's aio server sends a str as its UTF-8 bytes, and None (a
    # response or a serializer's result) as an empty message.
    if isinstance(message, str):
        message = message.encode("utf-8")
    data = message if serializer is None else serializer(message)
    if data.__class__ is bytes:
        return data
    if data is None:
        return b""
    if isinstance(data, bytes):
        return bytes(data)
    raise TypeError("Expected bytes, got %s" % type(data).__name__)


def _validate_generic_handlers(handlers):
    for handler in handlers:
        if not hasattr(handler, "service"):
            raise AttributeError(
                '"{}" must conform to grpc.GenericRpcHandler type but does '
                'not have "service" method!'.format(handler))


def server(
    migration_thread_pool: Optional[futures.Executor] = None,
    handlers: Optional[Sequence[grpc.GenericRpcHandler]] = None,
    interceptors: Optional[Sequence[ServerInterceptor]] = None,
    options: Optional[ChannelArgumentType] = None,
    maximum_concurrent_rpcs: Optional[int] = None,
    compression: Optional[grpc.Compression] = None,
) -> _base_server.Server:
    """Creates a grpc.aio server (see grpc.aio.server)."""
    return Server(migration_thread_pool, () if handlers is None else handlers,
                  () if interceptors is None else interceptors,
                  () if options is None else options, maximum_concurrent_rpcs, compression)
