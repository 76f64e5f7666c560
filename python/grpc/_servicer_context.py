"""grpc.ServicerContext for handlers running on the Go engine."""

import logging
import threading
import time

import grpc
from grpc import _events

_LOGGER = logging.getLogger(__name__)

# gRPC core's "infinite future" deadline, in seconds since the epoch.
_INFINITE_FUTURE = float(2**63 - 1)


class Abort(Exception):
    """Raised to end a call with a status (context.abort, bad requests)."""

    def __init__(self, code, details):
        super().__init__(details)
        self.code = code
        self.details = details


# The client's side of a call, in grpcio's words (grpc._server's _state.client).
OPEN, CLOSED, CANCELLED = "open", "closed", "cancelled"


def _encoded(details):
    return details.encode("utf-8") if isinstance(details, str) else details


class _State:
    """grpcio's per-RPC state record (``context._state``), which monitoring
    libraries read (py-grpc-prometheus reads ``client`` and ``code``), as a
    view of the context: ``code``, ``details`` (bytes), ``client`` ("open",
    "closed" once the request stream ended, "cancelled" once the call died
    without a status from us), ``trailing_metadata``, ``aborted``,
    ``statused``, and the rest of grpcio's fields."""

    __slots__ = ("_context", "condition")

    def __init__(self, context):
        self._context = context
        self.condition = threading.Condition()

    code = property(lambda self: self._context._code,
                    lambda self, v: setattr(self._context, "_code", v))
    details = property(lambda self: _encoded(self._context._details),
                       lambda self, v: setattr(self._context, "_details", v))
    trailing_metadata = property(lambda self: self._context._trailing_metadata,
                                 lambda self, v: setattr(self._context, "_trailing_metadata", v))
    aborted = property(lambda self: self._context._aborted)
    statused = property(lambda self: self._context._statused)
    initial_metadata_allowed = property(lambda self: not self._context._initial_metadata_sent)
    callbacks = property(lambda self: self._context._callbacks)
    context = property(lambda self: self._context._contextvars)

    @property
    def client(self):
        context = self._context
        if not context._statused and not context.is_active():
            return CANCELLED
        return CLOSED if context._half_closed else OPEN

    # Fields grpcio keeps that have no counterpart here.
    request = None
    compression_algorithm = None
    disable_next_compression = False
    due = frozenset()
    rpc_errors = ()


class ServicerContext(grpc.ServicerContext):
    # While a call's context holds _server (set by the server's _serve), the
    # server counts its handler as running (grpc._server._handler_ended).
    _server = None

    def __init__(self, hot, call, metadata, peer, time_left):
        self._hot = hot
        self._call = call
        self._metadata = metadata
        self._peer = peer
        self._deadline = None if time_left is None else time.monotonic() + time_left
        self._code = None
        self._details = None
        self._trailing_metadata = None
        self._aborted = False
        self._initial_metadata_sent = False
        self._auth_context = None
        self._callbacks = []
        self._callbacks_lock = threading.Lock()
        self._watching = False
        self._statused = False  # the call was given its status
        self._half_closed = False  # the request stream ended
        self._state_view = None
        self._contextvars = None  # the contextvars.Context the RPC runs in

    @property
    def _state(self):
        if self._state_view is None:
            self._state_view = _State(self)
        return self._state_view

    # -- RpcContext -----------------------------------------------------------
    def is_active(self):
        return self._hot.call_active(self._call)

    def time_remaining(self):
        if self._deadline is None:
            # grpcio reports the time left to its infinite deadline.
            return _INFINITE_FUTURE - time.time()
        return max(self._deadline - time.monotonic(), 0.0)

    def cancel(self):
        # As the client's cancellation would: releases the handler even
        # while it is blocked sending to a client that stopped reading.
        self._hot.call_cancel(self._call)

    def add_callback(self, callback):
        with self._callbacks_lock:
            if self._callbacks is None:
                return False
            self._callbacks.append(callback)
            watch = not self._watching
            self._watching = True
        if watch:
            # The RPC may end while the handler still runs, or after it
            # returned (the client cancels, the deadline passes): callbacks
            # run then, on the engine's event thread, not on a thread per call.
            _events.watch_call(self)
        return True

    def _run_callbacks(self):
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            try:
                callback()
            except Exception:
                _LOGGER.exception("Exception calling callback %r", callback)

    # -- ServicerContext ------------------------------------------------------
    def invocation_metadata(self):
        if self._metadata is None:  # not read before (grpc._server's lazy metadata)
            self._metadata = self._hot.call_metadata(self._call)
        return self._metadata

    def peer(self):
        return self._peer

    def _auth(self):
        if self._auth_context is None:
            self._auth_context = self._hot.call_auth_context(self._call)
        return self._auth_context

    def peer_identities(self):
        properties, key = self._auth()
        return None if key is None else list(properties[key])

    def peer_identity_key(self):
        return self._auth()[1]

    def auth_context(self):
        return {k: list(v) for k, v in self._auth()[0].items()}

    def set_compression(self, compression):
        # grpcio: NoCompression keeps the default, and a setting after the
        # initial metadata went out has no effect.
        if compression and not self._initial_metadata_sent:
            self._hot.call_set_compression(self._call, int(compression))

    def disable_next_message_compression(self):
        self._hot.call_disable_next_compression(self._call)

    def send_initial_metadata(self, initial_metadata):
        if self._initial_metadata_sent:
            raise ValueError("Initial metadata no longer allowed!")
        self._initial_metadata_sent = True
        if self._hot.call_send_header(self._call, initial_metadata) is None:
            # Metadata gRPC forbids: grpcio ends the call with INTERNAL.
            raise Abort(grpc.StatusCode.INTERNAL, "Invalid metadata")

    def set_trailing_metadata(self, trailing_metadata):
        self._trailing_metadata = tuple(trailing_metadata) if trailing_metadata else None

    def trailing_metadata(self):
        return self._trailing_metadata

    def abort(self, code, details):
        if code is grpc.StatusCode.OK:
            _LOGGER.error("abort() called with StatusCode.OK; returning UNKNOWN")
            code = grpc.StatusCode.UNKNOWN
            details = ""
        self._aborted = True
        self._code = code
        self._details = details
        raise Abort(code, details)

    def abort_with_status(self, status):
        self.set_trailing_metadata(status.trailing_metadata)
        self.abort(status.code, status.details)

    def set_code(self, code):
        self._code = code

    def set_details(self, details):
        self._details = details

    def code(self):
        return self._code

    def details(self):
        # grpcio keeps details encoded.
        if isinstance(self._details, str):
            return self._details.encode("utf-8")
        return self._details
