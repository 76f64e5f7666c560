"""The server side: grpc.Server on the Go engine.

grpc-go accepts connections and calls, and hands every call, whatever its
method, to Python. Each call runs in the thread pool the user gave
``grpc.server``, which looks the handler up (interceptors, registered
methods, generic handlers, as grpcio does) and runs it.

Calls reach the pool two ways. A pool thread that has just finished a call
lingers for the next one, which Go hands it directly: one thread wake-up per
call under load. When no pool thread lingers, a dispatcher thread (waiting
outside Go) is woken and submits the call to the pool. A pool thread does not
linger while the pool has other work queued, so the pool stays the user's.
"""

import concurrent.futures
import contextvars
import logging
import os
import threading

import grpc
from grpc import _common
from grpc import _credentials
from grpc import _metrics
from grpc import _runtime
from grpc._servicer_context import ServicerContext, Abort

_LOGGER = logging.getLogger(__name__)

_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
_INTERNAL = grpc.StatusCode.INTERNAL.value[0]
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
_CANCELLED = grpc.StatusCode.CANCELLED.value[0]
_OK = 0

# How many requests one crossing may bring in.
_BATCH = 256

# How long a pool thread that finished a call waits for the next one before
# going back to its pool.
_LINGER = 0.02

# A pool thread frees what a finished call held before it lingers
# (GRPCGO_SERVER_RELEASE_FIRST=0: once the next call came, as before; A/B).
_RELEASE_FIRST = os.environ.get("GRPCGO_SERVER_RELEASE_FIRST") != "0"



def _start_or_run(target, *args, name):
    """Runs target(*args) on a daemon thread of its own, or here when
    Python starts no more threads (3.12+, once threading's exit hooks ran):
    stopping a server at exit must happen either way."""
    try:
        threading.Thread(target=target, args=args, name=name, daemon=True).start()
    except RuntimeError:
        target(*args)

class _HandlerCallDetails(grpc.HandlerCallDetails):
    """The method and the invocation metadata. A pool thread's call comes
    without its metadata (None), which is asked of the engine only when
    something reads it (most handlers never do), once per call: the
    context gets what the details got."""

    __slots__ = ("method", "_metadata", "_call", "_hot")

    def __init__(self, method, invocation_metadata, call=None, hot=None):
        self.method = method
        self._metadata = invocation_metadata
        self._call = call
        self._hot = hot

    @property
    def invocation_metadata(self):
        if self._metadata is None:
            self._metadata = self._hot.call_metadata(self._call)
        return self._metadata


class _RequestIterator:
    """The request stream a handler iterates, taken from Go in batches."""

    def __init__(self, hot, call, deserializer, context, first=None):
        self._hot = hot
        self._call = call
        self._deserializer = deserializer
        self._context = context
        # A request the engine read ahead (the method's handler used to take
        # a single request) comes first.
        self._batch = [] if first is None else [first]
        self._next = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._next == len(self._batch):
            self._batch = self._hot.call_recv(self._call, _BATCH)
            self._next = 0
            if not self._batch:
                self._context._half_closed = True
                raise StopIteration()
        data = self._batch[self._next]
        self._next += 1
        if self._deserializer is None:
            return data
        try:
            return self._deserializer(data)
        except Exception:
            _LOGGER.exception("Exception deserializing request!")
            raise Abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!") from None

    def next(self):
        return self.__next__()


def _validate_generic_handlers(handlers):
    for handler in handlers:
        if not hasattr(handler, "service"):
            raise AttributeError(
                '"{}" must conform to grpc.GenericRpcHandler type but does '
                'not have "service" method!'.format(handler)
            )


class _Server(grpc.Server):
    def __init__(self, thread_pool, handlers, interceptors, options, maximum_concurrent_rpcs,
                 xds=False):
        _validate_generic_handlers(handlers)
        self._pool = thread_pool
        # Threads linger only in a ThreadPoolExecutor, whose queue they watch.
        self._pool_queue = (getattr(thread_pool, "_work_queue", None)
                            if type(thread_pool) is concurrent.futures.ThreadPoolExecutor else None)
        self._generic = list(handlers)
        self._registered = {}
        # The lookup with the interceptors in front, built once: the first
        # interceptor given sees each call first.
        self._lookup = self._query
        for interceptor in reversed(tuple(interceptors)):
            self._lookup = _intercepted(interceptor, self._lookup)
        self._hot = _runtime.hot()
        self._handle = self._hot.server_new(
            _common.options_json(options), int(maximum_concurrent_rpcs or 0), bool(xds)
        )
        self._credentials = []
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._stop_events = []
        self._poller = None
        self._active = 0
        self._queued = 0  # _run tasks submitted and not yet started
        self._idle = threading.Condition(self._lock)
        self._exit_grace = None  # the grace it was stopped with at exit
        _runtime.track_server(self)

    # -- configuration --------------------------------------------------------
    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        _validate_generic_handlers(generic_rpc_handlers)
        with self._lock:
            self._generic.extend(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        if not method_handlers:
            return
        with self._lock:
            if self._started:
                # Ignored with grpcio's warning, word for word (its own tests
                # look for it); generic handlers added now are still used.
                _LOGGER.warning("Cannot register method handlers once server has started")
                return
            for method, handler in method_handlers.items():
                self._registered["/%s/%s" % (service_name, method)] = handler
                _metrics.note_registered("%s/%s" % (service_name, method))

    def add_insecure_port(self, address):
        if isinstance(address, bytes):
            address = address.decode()
        return self._hot.server_add_port(self._handle, address)

    def add_secure_port(self, address, server_credentials):
        if not isinstance(server_credentials, grpc.ServerCredentials):
            raise TypeError(
                "server_credentials must be grpc.ServerCredentials, not %r" % (server_credentials,)
            )
        if isinstance(address, bytes):
            address = address.decode()
        inner = server_credentials._credentials
        self._credentials.append(inner)  # keeps fetchers registered while we live
        return self._hot.server_add_port(self._handle, address, _credentials.capsule_of(inner))

    # -- life cycle -----------------------------------------------------------
    def start(self):
        with self._lock:
            if self._started:
                raise ValueError("Server already started!")
            if self._stopped:
                raise ValueError("Cannot start a stopped server!")
            self._started = True
        self._hot.server_start(self._handle)
        self._poller = threading.Thread(
            target=self._serve, name="grpcgo-server", daemon=True
        )
        self._poller.start()

    def stop(self, grace):
        """Stops the server; returns an Event set once every handler ended."""
        event = threading.Event()
        grace = 0.0 if grace is None else max(float(grace), 0.0)
        with self._lock:
            first = not self._stopped
            self._stopped = True
            if not first and not self._stop_events:
                event.set()  # already stopped, every handler ended
                return event
            self._stop_events.append(event)
        if first and self._started:
            # New calls are refused before stop() returns, as in grpcio,
            # though the grace is waited out on another thread.
            self._hot.server_refuse(self._handle)
        if grace == 0.0 and not self._active:
            # Without grace, stopping does not wait for anyone: do it now, so
            # an idle server's Event is set on return, as grpcio's is. (With
            # handlers running, their calls' statuses drain on a thread:
            # stop() never waits for a client, as grpcio's does not.)
            self._stop(grace)
        else:
            _start_or_run(self._stop, grace, name="grpcgo-server-stop")
        return event

    def _stop(self, grace):
        self._hot.server_stop(self._handle, grace)
        with self._lock:
            if self._active:
                # Handlers still running see their calls cancelled; the
                # events wait for them to return.
                waiting = True
            else:
                waiting = False
                events, self._stop_events = self._stop_events, []
        if waiting:
            _start_or_run(self._set_when_idle, name="grpcgo-server-idle")
            return
        for event in events:
            event.set()

    def _set_when_idle(self):
        with self._lock:
            while self._active:
                self._idle.wait()
            events, self._stop_events = self._stop_events, []
        for event in events:
            event.set()

    def _stop_at_exit(self, grace):
        """Stops the server at interpreter exit (grpc/_runtime.py) as
        stop(grace) would, without waiting; a smaller grace later wins."""
        with self._lock:
            if self._exit_grace is not None and self._exit_grace <= grace:
                return
            self._exit_grace = grace
        if grace == 0.0:
            self._hot.server_stop(self._handle, 0.0)
            return
        _start_or_run(self._hot.server_stop, self._handle, grace, name="grpcgo-server-stop")

    def __del__(self):
        # A server that is collected (or whose __del__ is called, as grpcio's
        # tests do) stops: its calls are cancelled and wait_for_termination
        # returns. No lock here: the engine's stop is safe from any thread.
        try:
            if self._started and not self._stopped:
                self._stopped = True
                self._hot.server_stop(self._handle, 0.0)
        except Exception:  # pylint: disable=broad-except
            pass

    def wait_for_termination(self, timeout=None):
        """Blocks until the server stops; True if timeout passed first."""
        return not self._hot.server_wait(self._handle, _common.timeout_arg(timeout))

    # -- serving --------------------------------------------------------------
    def _serve(self):
        """The dispatcher thread: Go wakes it when a call is queued and no
        pool thread lingers; it starts a pool task, which takes whichever
        call is queued first. A task is not tied to one call, so no call
        waits in the pool's queue while another thread could take it."""
        hot, handle = self._hot, self._handle
        while hot.server_wait_call(handle):
            with self._lock:
                self._queued += 1
            try:
                self._pool.submit(self._run)
            except Exception:
                if _runtime.executors_shut_down():
                    # The interpreter is exiting and still waits for a
                    # thread: the server serves on (grpc/_runtime.py), the
                    # call on a thread of its own, or on this one where
                    # Python starts no more threads (3.12+).
                    try:
                        threading.Thread(target=self._run, name="grpcgo-server-exit").start()
                    except RuntimeError:
                        self._run()
                    continue
                # The pool was shut down: nobody will run the call.
                with self._lock:
                    self._queued -= 1
                event = hot.server_take(handle)
                if event:
                    hot.call_finish(event[0], _UNAVAILABLE, "server is shutting down", None, None)

    def _done(self):
        with self._lock:
            self._active -= 1
            # Only a stop waits for the handlers (_set_when_idle), and it
            # starts after _stopped is set, under this lock.
            if not self._active and self._stopped:
                self._idle.notify_all()

    def _query(self, call_details):
        """The handler for a call: a registered one, else the first generic
        handler's answer (the lists are read at call time)."""
        handler = self._registered.get(call_details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(call_details)
            if handler is not None:
                return handler
        return None

    def _run(self):
        """A pool task: takes a queued call (unless another thread took it
        already) and runs it, then runs the calls that come while this
        thread lingers."""
        hot, handle = self._hot, self._handle
        with self._lock:
            self._queued -= 1
        _runtime.serving_begin()
        try:
            event = hot.server_take(handle)
            while event:  # False (nothing came) or None (stopped) ends the task
                # The call's count of running handlers; _handle_call gives
                # it back (see there).
                with self._lock:
                    self._active += 1
                # Each RPC (its interceptors and handler) runs in a fresh,
                # empty contextvars.Context, as in grpcio: nothing one RPC
                # sets leaks into the next on this thread.
                rpc_context = contextvars.Context()
                rpc_context.run(_handle_call, self, rpc_context, *event)
                if _RELEASE_FIRST:
                    # What the call held (its handle, its request, what the
                    # handler set in its context) is freed now, its response
                    # written, not once the next call has come: that is on
                    # the next call's way to its handler.
                    event = rpc_context = None
                event = hot.server_linger(handle, _LINGER) if self._may_linger() else None
        finally:
            _runtime.serving_end()

    def _may_linger(self):
        """Only in a ThreadPoolExecutor whose queue holds none but our own
        tasks: the pool's other tasks must not wait behind a thread that
        waits for calls. (Our queued tasks are not tied to calls: a
        lingering thread takes what they would have.)"""
        queue = self._pool_queue
        return (queue is not None and queue.qsize() <= self._queued
                and not getattr(self._pool, "_shutdown", True)
                and not _runtime.executors_shut_down())


def _intercepted(interceptor, continuation):
    return lambda details: interceptor.intercept_service(continuation, details)


def _finish(hot, call, context, code, details, last=None):
    context._statused = True
    server = context.__dict__.pop("_server", None)  # _handler_ended, inline
    if server is not None:
        server._done()
    try:
        hot.call_finish(call, code, details, context._trailing_metadata, last)
    except Exception:
        # The engine ended the call with INTERNAL; say why.
        _LOGGER.exception("Invalid trailing metadata %r", context._trailing_metadata)
    finally:
        context._run_callbacks()


def _behavior(handler):
    if handler.request_streaming:
        return handler.stream_stream if handler.response_streaming else handler.stream_unary
    return handler.unary_stream if handler.response_streaming else handler.unary_unary


def _handler_ended(context):
    """Gives back the server's count of running handlers that the call's
    context holds, once: before the call's end is written, or when the
    handler returns, whichever comes first. A client that has seen its call
    end may stop the server at once and must find it idle (stop(None)'s
    Event set on return, as grpcio's), not waiting for a pool thread's
    bookkeeping after the write. (The pop is one step under the GIL: a
    non-blocking handler's sender may end the call on another thread while
    the handler returns.)"""
    server = context.__dict__.pop("_server", None)
    if server is not None:
        server._done()


def _handle_call(server, rpc_context, call, method, metadata, peer, time_left, first):
    """Runs a call taken by a pool thread. The call holds one count of
    server._active (_run took it): given back here before an end written
    here, else carried by the call's context (_handler_ended)."""
    hot = server._hot
    details = _HandlerCallDetails(method, metadata, call, hot)
    try:
        handler = server._lookup(details)
    except Exception:
        server._done()
        _LOGGER.exception("Exception servicing handler for %s", method)
        hot.call_finish(call, _UNKNOWN, "Error in service handler!", None, None)
        return
    except BaseException:
        server._done()
        raise
    if handler is None:
        server._done()
        hot.call_finish(call, _UNIMPLEMENTED, "Method not found!", None, None)
        return
    metadata = details._metadata  # read by the lookup, or still None
    behavior = _behavior(handler)
    pool = getattr(behavior, "experimental_thread_pool", None)
    if isinstance(pool, concurrent.futures.ThreadPoolExecutor) and pool is not server._pool:
        # grpcio's per-method pool: the handler runs there, in (a copy of)
        # this RPC's context; the call's count goes with it.
        try:
            pool.submit(rpc_context.copy().run, _serve, server, rpc_context, handler,
                        behavior, call, method, metadata, peer, time_left, first)
        except Exception:  # the pool was shut down
            server._done()
            hot.call_finish(call, _UNAVAILABLE, "server is shutting down", None, None)
        return
    _serve(server, rpc_context, handler, behavior, call, method, metadata, peer, time_left, first)


def _serve(server, rpc_context, handler, behavior, call, method, metadata, peer, time_left, first):
    hot = server._hot
    context = ServicerContext(hot, call, metadata, peer, time_left)
    context._contextvars = rpc_context
    context._server = server  # holds the call's count of running handlers
    try:
        if handler.request_streaming:
            request = _RequestIterator(hot, call, handler.request_deserializer, context, first)
        else:
            if first is not None:
                data = first
            else:
                # Next time the engine reads this method's request itself.
                hot.server_mark_unary(server._handle, method)
                data = hot.call_recv_one(call)
            if data is None:
                _finish(hot, call, context, _CANCELLED, "Cancelled")
                return
            context._half_closed = True
            try:
                request = _common.deserialize(data, handler.request_deserializer)
            except Exception:
                _LOGGER.exception("Exception deserializing request!")
                raise Abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!") from None
        if not handler.response_streaming:
            _unary_response(hot, call, context, behavior(request, context), handler.response_serializer)
        elif getattr(behavior, "experimental_non_blocking", False):
            # grpcio's non-blocking streaming handler: it is given the
            # function that sends each response (None ends the call with the
            # context's status) and may return at once; the call stays open
            # without holding this thread.
            behavior(request, context, _response_sender(hot, call, context, handler.response_serializer))
        else:
            _stream_responses(hot, call, context, behavior(request, context), handler.response_serializer)
    except Exception as error:
        _fail(hot, call, context, error)
    finally:
        if context._server is not None:  # the handler returned, its call not ended
            _handler_ended(context)


def _response_sender(hot, call, context, serializer):
    def send_response(response):
        if context._statused:
            return
        if response is None:
            code, details = _status(context)
            _finish(hot, call, context, code, details)
            return
        try:
            payload = _common.serialize(response, serializer)
        except Exception:
            _LOGGER.exception("Failed to serialize response!")
            _finish(hot, call, context, _INTERNAL, "Failed to serialize response!")
            return
        hot.call_send(call, payload)

    return send_response


def _fail(hot, call, context, error, what="Exception calling application"):
    """Ends the call after the handler raised, as grpcio does: an abort's
    status, else a code set on the context, else UNKNOWN ("<what>: error")."""
    if isinstance(error, Abort):
        code, details = error.code, error.details
    elif context._aborted:
        code, details = context._code, context._details
    else:
        details = "{}: {}".format(what, error)
        _LOGGER.exception(details)
        code = grpc.StatusCode.UNKNOWN
        if context._code is not None and context._code is not grpc.StatusCode.OK:
            code = context._code
        if context._details is not None:
            details = context._details
    code = _wire_code(code)
    if code == _OK:
        code = _UNKNOWN
    _finish(hot, call, context, code, details or "")


def _wire_code(code):
    """The wire value of a code a handler set: UNKNOWN for anything that is
    not a grpc.StatusCode (an int, say), as in grpcio."""
    if isinstance(code, grpc.StatusCode):
        return code.value[0]
    return _UNKNOWN


def _status(context):
    if context._code is None:
        return _OK, context._details or ""
    return _wire_code(context._code), context._details or ""


def _unary_response(hot, call, context, response, serializer):
    code, details = _status(context)
    if code != _OK:
        _finish(hot, call, context, code, details)
        return
    try:
        if response is None and serializer is None:
            raise TypeError("the handler returned None")
        payload = _common.serialize(response, serializer)
    except Exception:
        _LOGGER.exception("Failed to serialize response!")
        _finish(hot, call, context, _INTERNAL, "Failed to serialize response!")
        return
    _finish(hot, call, context, _OK, details, payload)


def _stream_responses(hot, call, context, responses, serializer):
    iterator = responses
    send = hot.call_send
    while True:
        try:
            response = next(iterator)
        except StopIteration:
            break
        except Exception as error:
            _fail(hot, call, context, error, "Exception iterating responses")
            return
        if response is None:
            break  # grpcio ends the stream there
        if serializer is None and type(response) is bytes:
            payload = response  # what serialize() would give, without its two calls
        else:
            try:
                payload = _common.serialize(response, serializer)
            except Exception:
                _LOGGER.exception("Failed to serialize response!")
                _close(iterator)  # the handler's own end, before the call's
                _finish(hot, call, context, _INTERNAL, "Failed to serialize response!")
                return
        if not send(call, payload):
            _close(iterator)  # the client is gone
            _finish(hot, call, context, _CANCELLED, "Cancelled")
            return
    code, details = _status(context)
    _finish(hot, call, context, code, details)


def _close(iterator):
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


def create_server(thread_pool, generic_rpc_handlers, interceptors, options,
                  maximum_concurrent_rpcs, compression, xds):
    """The implementation behind grpc.server()."""
    if maximum_concurrent_rpcs is not None and maximum_concurrent_rpcs < 1:
        raise ValueError("maximum_concurrent_rpcs must be a positive integer or None")
    # xds: the ports serve as the xDS management server's Listener resources
    # say (grpc-go's xds.GRPCServer); without a bootstrap, the engine logs an
    # error and serves as a plain server, as grpcio does.
    return _Server(thread_pool, generic_rpc_handlers, interceptors,
                   _common.with_compression(options, compression), maximum_concurrent_rpcs,
                   xds)
