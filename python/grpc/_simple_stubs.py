"""The "simple stubs": single calls that take a target instead of a channel
(grpc.experimental.unary_unary and its three siblings).

Their channels come from a per-process cache keyed by target, options,
credentials and compression, and are closed once idle for a while.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import typing

import grpc
from grpc.experimental import _INSECURE_CREDENTIALS
from grpc.experimental import experimental_api

_LOGGER = logging.getLogger(__name__)

_DEFAULT_TIMEOUT = float(
    os.environ.get("GRPC_PYTHON_DEFAULT_TIMEOUT_SECONDS", "60.0")
)
_EVICTION_PERIOD = float(
    os.environ.get("GRPC_PYTHON_MANAGED_CHANNEL_EVICTION_SECONDS", "600")
)
_MAXIMUM_CHANNELS = int(
    os.environ.get("GRPC_PYTHON_MANAGED_CHANNEL_MAXIMUM", str(2**8))
)


class _ChannelCache(object):
    """Channels keyed by (target, options, credentials, compression).

    Each use moves a channel to the end of the order and pushes back its
    eviction time; a daemon thread closes channels idle for _EVICTION_PERIOD
    seconds, and the oldest are closed at once beyond _MAXIMUM_CHANNELS.
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._channels = collections.OrderedDict()  # key -> (channel, expiry)
        self._evictor = None

    def get(self, target, options, credentials, insecure, compression):
        if insecure and credentials:
            raise ValueError(
                "The insecure option is mutually exclusive with the"
                " channel_credentials option. Please use one or the other."
            )
        if insecure:
            credentials = _INSECURE_CREDENTIALS
        # None (default SSL credentials) stays None in the key so that calls
        # relying on the default share one channel.
        key = (target, tuple(options), credentials, compression)
        evicted = []
        with self._condition:
            entry = self._channels.pop(key, None)
            if entry is None:
                channel = _create_channel(target, key[1], credentials, compression)
                while self._channels and len(self._channels) >= _MAXIMUM_CHANNELS:
                    evicted.append(self._channels.popitem(last=False)[1][0])
            else:
                channel = entry[0]
            self._channels[key] = (channel, time.monotonic() + _EVICTION_PERIOD)
            if self._evictor is None:
                self._evictor = threading.Thread(
                    target=self._evict_idle,
                    name="grpc-simple-stubs-channel-evictor",
                    daemon=True,
                )
                self._evictor.start()
            elif len(self._channels) == 1:
                self._condition.notify()
        _close_all(evicted)
        return channel

    def _evict_idle(self):
        while True:
            with self._condition:
                evicted = []
                while not evicted:
                    if not self._channels:
                        self._condition.wait()
                        continue
                    key, (channel, expiry) = next(iter(self._channels.items()))
                    remaining = expiry - time.monotonic()
                    if remaining > 0:
                        self._condition.wait(remaining)
                        continue
                    del self._channels[key]
                    evicted.append(channel)
            _close_all(evicted)

    def _test_only_channel_count(self):
        with self._condition:
            return len(self._channels)


def _create_channel(target, options, credentials, compression):
    if credentials is _INSECURE_CREDENTIALS:
        return grpc.insecure_channel(target, options, compression)
    if credentials is None:
        _LOGGER.debug("Defaulting to SSL channel credentials.")
        credentials = grpc.ssl_channel_credentials()
    return grpc.secure_channel(target, credentials, options, compression)


def _close_all(channels):
    for channel in channels:
        try:
            channel.close()
        except Exception:  # pylint: disable=broad-except
            _LOGGER.exception("Exception closing an evicted channel")


_CHANNEL_CACHE = _ChannelCache()


def _invoke(
    arity,
    request,
    target,
    method,
    request_serializer,
    response_deserializer,
    options,
    channel_credentials,
    insecure,
    call_credentials,
    compression,
    wait_for_ready,
    timeout,
    metadata,
    _registered_method,
):
    channel = _CHANNEL_CACHE.get(
        target, options, channel_credentials, insecure, compression
    )
    multicallable = getattr(channel, arity)(
        method,
        request_serializer=request_serializer,
        response_deserializer=response_deserializer,
        _registered_method=_registered_method,
    )
    return multicallable(
        request,
        metadata=metadata,
        wait_for_ready=True if wait_for_ready is None else wait_for_ready,
        credentials=call_credentials,
        timeout=timeout,
    )


@experimental_api
def unary_unary(
    request: typing.Any,
    target: str,
    method: str,
    request_serializer: typing.Optional[typing.Callable[[typing.Any], bytes]] = None,
    response_deserializer: typing.Optional[typing.Callable[[bytes], typing.Any]] = None,
    options: typing.Sequence[typing.Tuple[str, typing.Any]] = (),
    channel_credentials: typing.Optional[grpc.ChannelCredentials] = None,
    insecure: bool = False,
    call_credentials: typing.Optional[grpc.CallCredentials] = None,
    compression: typing.Optional[grpc.Compression] = None,
    wait_for_ready: typing.Optional[bool] = None,
    timeout: typing.Optional[float] = _DEFAULT_TIMEOUT,
    metadata: typing.Optional[typing.Sequence[typing.Tuple[str, typing.Union[str, bytes]]]] = None,
    _registered_method: typing.Optional[bool] = False,
) -> typing.Any:
    """Invokes a unary-unary RPC without an explicitly specified channel.

    THIS IS AN EXPERIMENTAL API.

    The channel comes from a per-process cache keyed by target, options,
    channel credentials and compression; idle channels are closed after
    GRPC_PYTHON_MANAGED_CHANNEL_EVICTION_SECONDS (default 600) and at most
    GRPC_PYTHON_MANAGED_CHANNEL_MAXIMUM (default 256) are kept.

    Args:
      request: The request message.
      target: The server address.
      method: The name of the RPC method.
      request_serializer: Optional request serializer (None: raw bytes).
      response_deserializer: Optional response deserializer (None: raw bytes).
      options: Channel options, as a tuple of key-value pairs.
      channel_credentials: A ChannelCredentials; default SSL credentials.
      insecure: Use an insecure channel; excludes channel_credentials.
      call_credentials: An optional CallCredentials for the call.
      compression: An optional grpc.Compression for the channel.
      wait_for_ready: Wait for the channel to be ready (default True).
      timeout: Seconds allowed for the call; default 60 (environment variable
        GRPC_PYTHON_DEFAULT_TIMEOUT_SECONDS); None for no deadline.
      metadata: Optional metadata for the call.

    Returns:
      The response to the RPC.

    Raises:
      grpc.RpcError: If the RPC ends with a non-OK status.
      ValueError: If insecure is combined with channel_credentials.
    """
    return _invoke(
        "unary_unary", request, target, method, request_serializer,
        response_deserializer, options, channel_credentials, insecure,
        call_credentials, compression, wait_for_ready, timeout, metadata,
        _registered_method,
    )  # fmt: skip


@experimental_api
def unary_stream(
    request: typing.Any,
    target: str,
    method: str,
    request_serializer: typing.Optional[typing.Callable[[typing.Any], bytes]] = None,
    response_deserializer: typing.Optional[typing.Callable[[bytes], typing.Any]] = None,
    options: typing.Sequence[typing.Tuple[str, typing.Any]] = (),
    channel_credentials: typing.Optional[grpc.ChannelCredentials] = None,
    insecure: bool = False,
    call_credentials: typing.Optional[grpc.CallCredentials] = None,
    compression: typing.Optional[grpc.Compression] = None,
    wait_for_ready: typing.Optional[bool] = None,
    timeout: typing.Optional[float] = _DEFAULT_TIMEOUT,
    metadata: typing.Optional[typing.Sequence[typing.Tuple[str, typing.Union[str, bytes]]]] = None,
    _registered_method: typing.Optional[bool] = False,
) -> typing.Iterator[typing.Any]:
    """Invokes a unary-stream RPC without an explicitly specified channel.

    THIS IS AN EXPERIMENTAL API. Arguments as for unary_unary.

    Returns:
      An iterator of responses (also a grpc.Call).
    """
    return _invoke(
        "unary_stream", request, target, method, request_serializer,
        response_deserializer, options, channel_credentials, insecure,
        call_credentials, compression, wait_for_ready, timeout, metadata,
        _registered_method,
    )  # fmt: skip


@experimental_api
def stream_unary(
    request_iterator: typing.Iterator[typing.Any],
    target: str,
    method: str,
    request_serializer: typing.Optional[typing.Callable[[typing.Any], bytes]] = None,
    response_deserializer: typing.Optional[typing.Callable[[bytes], typing.Any]] = None,
    options: typing.Sequence[typing.Tuple[str, typing.Any]] = (),
    channel_credentials: typing.Optional[grpc.ChannelCredentials] = None,
    insecure: bool = False,
    call_credentials: typing.Optional[grpc.CallCredentials] = None,
    compression: typing.Optional[grpc.Compression] = None,
    wait_for_ready: typing.Optional[bool] = None,
    timeout: typing.Optional[float] = _DEFAULT_TIMEOUT,
    metadata: typing.Optional[typing.Sequence[typing.Tuple[str, typing.Union[str, bytes]]]] = None,
    _registered_method: typing.Optional[bool] = False,
) -> typing.Any:
    """Invokes a stream-unary RPC without an explicitly specified channel.

    THIS IS AN EXPERIMENTAL API. Arguments as for unary_unary, with an
    iterator of requests.

    Returns:
      The response to the RPC.
    """
    return _invoke(
        "stream_unary", request_iterator, target, method, request_serializer,
        response_deserializer, options, channel_credentials, insecure,
        call_credentials, compression, wait_for_ready, timeout, metadata,
        _registered_method,
    )  # fmt: skip


@experimental_api
def stream_stream(
    request_iterator: typing.Iterator[typing.Any],
    target: str,
    method: str,
    request_serializer: typing.Optional[typing.Callable[[typing.Any], bytes]] = None,
    response_deserializer: typing.Optional[typing.Callable[[bytes], typing.Any]] = None,
    options: typing.Sequence[typing.Tuple[str, typing.Any]] = (),
    channel_credentials: typing.Optional[grpc.ChannelCredentials] = None,
    insecure: bool = False,
    call_credentials: typing.Optional[grpc.CallCredentials] = None,
    compression: typing.Optional[grpc.Compression] = None,
    wait_for_ready: typing.Optional[bool] = None,
    timeout: typing.Optional[float] = _DEFAULT_TIMEOUT,
    metadata: typing.Optional[typing.Sequence[typing.Tuple[str, typing.Union[str, bytes]]]] = None,
    _registered_method: typing.Optional[bool] = False,
) -> typing.Iterator[typing.Any]:
    """Invokes a stream-stream RPC without an explicitly specified channel.

    THIS IS AN EXPERIMENTAL API. Arguments as for unary_unary, with an
    iterator of requests.

    Returns:
      An iterator of responses (also a grpc.Call).
    """
    return _invoke(
        "stream_stream", request_iterator, target, method, request_serializer,
        response_deserializer, options, channel_credentials, insecure,
        call_credentials, compression, wait_for_ready, timeout, metadata,
        _registered_method,
    )  # fmt: skip


