"""grpc.aio channels and their multi-callables.

An aio Channel owns an engine channel made exactly as the synchronous
grpc.Channel makes one (same options, credentials and compression
conventions; grpc/_channel.py), and starts its calls on the event loop
that invokes them (grpc/aio/_call.py). Calls from several event loops may
share a channel: each call belongs to the loop it started on.
"""

from __future__ import annotations

import asyncio
import os
import types
import typing
import weakref

import grpc
from grpc import _grpcio_metadata
from grpc import _metrics

from . import _base_channel
from . import _call
from . import _completion
from ._metadata import Metadata

if typing.TYPE_CHECKING:
    from typing import Optional, Sequence

    from ._interceptor import ClientInterceptor
    from ._typing import ChannelArgumentType

_CONNECTIVITY = {c.value[0]: c for c in grpc.ChannelConnectivity}


def _method_name(method):
    if isinstance(method, bytes):
        method = method.decode()
    if not isinstance(method, str):
        raise TypeError("method must be str, not %s" % type(method).__name__)
    return method


class _MultiCallable:
    def __init__(self, channel, method, request_serializer, response_deserializer, interceptors):
        self._channel = channel
        self._method = _method_name(method)
        self._serializer = request_serializer
        self._deserializer = response_deserializer
        self._interceptors = interceptors

    def _intercepted(self, cls, request, timeout, metadata, credentials, wait_for_ready,
                     compression):
        from . import _interceptor

        # A closed channel raises UsageError when the call is awaited (from
        # the interceptors' task), not here, as in grpcio.
        if metadata is None:
            metadata = Metadata()
        elif not isinstance(metadata, Metadata):
            metadata = Metadata.from_tuple(tuple(metadata))
        return getattr(_interceptor, cls)(
            self._interceptors, request, timeout, metadata, credentials, wait_for_ready,
            compression, self._channel, self._method, self._serializer, self._deserializer)


class UnaryUnaryMultiCallable(_MultiCallable, _base_channel.UnaryUnaryMultiCallable):
    def __call__(self, request, *, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        if self._interceptors:
            return self._intercepted("InterceptedUnaryUnaryCall", request, timeout, metadata,
                                     credentials, wait_for_ready, compression)
        return _call.UnaryUnaryCall(self._channel, self._method, request, timeout, metadata,
                                    credentials, wait_for_ready, compression, self._serializer,
                                    self._deserializer)


def _install_unary_caller(hot):
    """Once the engine is loaded (the first Channel), the __call__ above is
    run by C (pyext/aio_unary.h, AioUnaryCaller): the same call with no
    Python frame per call, the Python function kept as its __wrapped__
    (signature, docs). GRPCGO_AIO_UNARY_CALLER=0 leaves the Python one."""
    global _unary_caller_installed
    if _unary_caller_installed:
        return
    _unary_caller_installed = True
    python_call = UnaryUnaryMultiCallable.__dict__.get("__call__")
    if isinstance(python_call, types.FunctionType) and os.environ.get("GRPCGO_AIO_UNARY_CALLER") != "0":
        UnaryUnaryMultiCallable.__call__ = hot.AioUnaryCaller(_call.UnaryUnaryCall, python_call)


_unary_caller_installed = False


class UnaryStreamMultiCallable(_MultiCallable, _base_channel.UnaryStreamMultiCallable):
    def __call__(self, request, *, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        if self._interceptors:
            return self._intercepted("InterceptedUnaryStreamCall", request, timeout, metadata,
                                     credentials, wait_for_ready, compression)
        return _call.UnaryStreamCall(self._channel, self._method, request, timeout, metadata,
                                     credentials, wait_for_ready, compression, self._serializer,
                                     self._deserializer)


class StreamUnaryMultiCallable(_MultiCallable, _base_channel.StreamUnaryMultiCallable):
    def __call__(self, request_iterator=None, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        if self._interceptors:
            return self._intercepted("InterceptedStreamUnaryCall", request_iterator, timeout,
                                     metadata, credentials, wait_for_ready, compression)
        return _call.StreamUnaryCall(self._channel, self._method, request_iterator, timeout,
                                     metadata, credentials, wait_for_ready, compression,
                                     self._serializer, self._deserializer)


class StreamStreamMultiCallable(_MultiCallable, _base_channel.StreamStreamMultiCallable):
    def __call__(self, request_iterator=None, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        if self._interceptors:
            return self._intercepted("InterceptedStreamStreamCall", request_iterator, timeout,
                                     metadata, credentials, wait_for_ready, compression)
        return _call.StreamStreamCall(self._channel, self._method, request_iterator, timeout,
                                      metadata, credentials, wait_for_ready, compression,
                                      self._serializer, self._deserializer)


# grpcio's name: the library's part of an aio channel's user agent.
_USER_AGENT = "grpc-python-asyncio/{}".format(_grpcio_metadata.__version__)


class Channel(_base_channel.Channel):
    """An asyncio channel on a grpc-go ClientConn."""

    def __init__(self, target, options, credentials, compression, interceptors):
        from . import _interceptor
        from grpc import _channel as _sync_channel

        kinds = {
            "unary_unary": _interceptor.UnaryUnaryClientInterceptor,
            "unary_stream": _interceptor.UnaryStreamClientInterceptor,
            "stream_unary": _interceptor.StreamUnaryClientInterceptor,
            "stream_stream": _interceptor.StreamStreamClientInterceptor,
        }
        self._interceptors = {kind: [] for kind in kinds}
        for interceptor in interceptors or ():
            if not isinstance(interceptor, _interceptor.ClientInterceptor):
                raise ValueError(
                    "Interceptor {} must be {} or {} or {} or {}".format(
                        interceptor, *(cls.__name__ for cls in kinds.values())))
            for kind, cls in kinds.items():
                if isinstance(interceptor, cls):
                    self._interceptors[kind].append(interceptor)
        # The engine channel, made as grpc.Channel makes it, with grpcio's
        # aio agent (grpc-python-asyncio/) in place of grpc-python/.
        options = (("grpcgo.library_user_agent", _USER_AGENT),) + tuple(options or ())
        self._engine = _sync_channel.Channel(target, options, credentials, compression)
        self._hot = self._engine._hot
        _install_unary_caller(self._hot)
        self._secure = credentials is not None  # call credentials need it
        self._handle = self._engine._handle
        # Calls not ended, for close(grace): a weak reference to each as the
        # key (a plain dict, cheaper per call than a WeakSet); a call
        # collected first removes its own through _forget_call.
        self._calls = calls = {}
        # Holds the dict, not the channel (no cycle through the channel).
        self._forget_call = lambda ref: calls.pop(ref, None)
        self._closing = False
        self._closed = None  # a future of the close, once started
        self._last_queue = None
        try:
            self._loop_ref = weakref.ref(asyncio.get_running_loop())
        except RuntimeError:
            self._loop_ref = None

    @property
    def _loop(self):
        """The loop running when the channel was made (grpcio's attribute;
        None if none ran). Calls belong to the loop they start on."""
        return None if self._loop_ref is None else self._loop_ref()

    # -- what calls use ------------------------------------------------------
    def _live_handle(self):
        if self._closing:
            raise _call.UsageError(_call.CHANNEL_IS_CLOSED)
        return self._handle

    def _queue(self):
        """(running loop, its completion queue), cached for the loop that
        used this channel last."""
        loop = asyncio.get_running_loop()
        cached = self._last_queue
        if cached is not None and cached[0]() is loop:
            q = cached[1]()
            if q is not None:
                return loop, q
        loop, q = _completion.queue()
        # Weak: a queue holds its loop (see _completion), and a channel must
        # not keep a loop that ended alive.
        self._last_queue = (weakref.ref(loop), weakref.ref(q))
        return loop, q

    # -- multi-callables -------------------------------------------------------
    def unary_unary(self, method, request_serializer=None, response_deserializer=None,
                    _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer,
                                       self._interceptors["unary_unary"])

    def unary_stream(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer,
                                        self._interceptors["unary_stream"])

    def stream_unary(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer,
                                        self._interceptors["stream_unary"])

    def stream_stream(self, method, request_serializer=None, response_deserializer=None,
                      _registered_method=False):
        _metrics.note_registered(method, _registered_method)
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer,
                                         self._interceptors["stream_stream"])

    # -- life ----------------------------------------------------------------
    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        await self._close(None)

    async def close(self, grace=None):
        await self._close(grace)

    async def _close(self, grace):
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._closing = True
        try:
            # Calls of this loop get the grace; a call belongs to the loop it
            # started on, and calls of other loops are cancelled on theirs.
            # dict.copy runs no Python code, so a call collected meanwhile
            # (whose removal changes the dict) cannot break the iteration.
            calls = [call for call in (ref() for ref in self._calls.copy()) if call is not None]
            ours = [call for call in calls if call._loop is loop and not call.done()]
            if grace and ours:
                waiters = [loop.create_future() for _ in ours]
                for call, waiter in zip(ours, waiters):
                    call.add_done_callback(
                        lambda _, w=waiter: w.done() or w.set_result(None))
                await asyncio.wait(waiters, timeout=grace)
            for call in calls:
                if call._loop is loop:
                    call._cancel(_call.CHANNEL_CLOSED_DETAILS)
                elif not call._loop.is_closed():
                    call._loop.call_soon_threadsafe(call._cancel, _call.CHANNEL_CLOSED_DETAILS)
            self._engine._closed = True
            # Never waits (grpc-go's teardown goes on in Go), so close()
            # without grace returns without yielding to the loop, as
            # grpcio's: code that stops its loop right after still sees it
            # finish.
            self._hot.channel_close(self._handle)
        finally:
            if not self._closed.done():
                self._closed.set_result(None)

    def get_state(self, try_to_connect=False):
        if self._engine._closed:
            return grpc.ChannelConnectivity.SHUTDOWN
        return _CONNECTIVITY[self._hot.channel_state(self._handle, bool(try_to_connect))]

    async def wait_for_state_change(self, last_observed_state):
        if self._engine._closed:
            # grpcio: a watch that was waiting returns, a new one is misuse.
            raise _call.UsageError(_call.CHANNEL_IS_CLOSED)
        loop, q = self._queue()
        token = next(q.tokens)
        op = self._hot.aio_channel_watch(q.cq, token, self._handle, last_observed_state.value[0])
        future = loop.create_future()
        q.waiting[token] = future
        try:
            await future
        except asyncio.CancelledError:
            q.forget(token)
            raise
        self._hot.aio_result(op)

    async def channel_ready(self):
        state = self.get_state(try_to_connect=True)
        while state is not grpc.ChannelConnectivity.READY:
            if state is grpc.ChannelConnectivity.SHUTDOWN:
                raise _call.UsageError(_call.CHANNEL_IS_CLOSED)
            await self.wait_for_state_change(state)
            state = self.get_state(try_to_connect=True)


def insecure_channel(
    target: str,
    options: Optional[ChannelArgumentType] = None,
    compression: Optional[grpc.Compression] = None,
    interceptors: Optional[Sequence[ClientInterceptor]] = None,
) -> _base_channel.Channel:
    """An asyncio channel to target without TLS."""
    return Channel(target, options, None, compression, interceptors)


def secure_channel(
    target: str,
    credentials: grpc.ChannelCredentials,
    options: Optional[ChannelArgumentType] = None,
    compression: Optional[grpc.Compression] = None,
    interceptors: Optional[Sequence[ClientInterceptor]] = None,
) -> _base_channel.Channel:
    """An asyncio channel to target with credentials (TLS, mTLS, composite
    with call credentials; the synchronous API's credential objects)."""
    from grpc import ChannelCredentials, _unwrap
    from grpc.experimental import _insecure_channel_credentials

    inner = _unwrap(credentials, ChannelCredentials)
    if inner is _insecure_channel_credentials:
        raise ValueError(
            "secure_channel cannot be called with insecure credentials."
            " Call insecure_channel instead.")
    return Channel(target, options, inner, compression, interceptors)
