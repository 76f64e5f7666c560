"""The abstract channel and multi-callable classes of grpc.aio."""

import abc
from typing import Generic

from ._typing import RequestType, ResponseType


class UnaryUnaryMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a unary-unary method."""

    @abc.abstractmethod
    def __call__(self, request, *, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        """Starts the RPC; returns a UnaryUnaryCall."""


class UnaryStreamMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a unary-stream method."""

    @abc.abstractmethod
    def __call__(self, request, *, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        """Starts the RPC; returns a UnaryStreamCall."""


class StreamUnaryMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a stream-unary method."""

    @abc.abstractmethod
    def __call__(self, request_iterator=None, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        """Starts the RPC; returns a StreamUnaryCall."""


class StreamStreamMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a stream-stream method."""

    @abc.abstractmethod
    def __call__(self, request_iterator=None, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        """Starts the RPC; returns a StreamStreamCall."""


class Channel(abc.ABC):
    """An asyncio channel: a virtual connection to a target."""

    @abc.abstractmethod
    async def __aenter__(self):
        """Returns the channel."""

    @abc.abstractmethod
    async def __aexit__(self, exc_type, exc_val, exc_tb):
        """Closes the channel (no grace)."""

    @abc.abstractmethod
    async def close(self, grace=None):
        """Closes the channel: calls in flight get grace seconds, then end
        CANCELLED."""

    @abc.abstractmethod
    def get_state(self, try_to_connect=False):
        """The channel's grpc.ChannelConnectivity."""

    @abc.abstractmethod
    async def wait_for_state_change(self, last_observed_state):
        """Returns once the state differs from last_observed_state."""

    @abc.abstractmethod
    async def channel_ready(self):
        """Returns once the channel is READY."""

    @abc.abstractmethod
    def unary_unary(self, method, request_serializer=None, response_deserializer=None,
                    _registered_method=False):
        """A UnaryUnaryMultiCallable for method."""

    @abc.abstractmethod
    def unary_stream(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        """A UnaryStreamMultiCallable for method."""

    @abc.abstractmethod
    def stream_unary(self, method, request_serializer=None, response_deserializer=None,
                     _registered_method=False):
        """A StreamUnaryMultiCallable for method."""

    @abc.abstractmethod
    def stream_stream(self, method, request_serializer=None, response_deserializer=None,
                      _registered_method=False):
        """A StreamStreamMultiCallable for method."""
