"""The abstract channel and multi-callable classes of grpc.aio."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Any, Generic, Optional, Type, TypeVar

import grpc

from . import _base_call
from ._typing import (DeserializingFunction, MetadataType, RequestIterableType, RequestType,
                      ResponseType, SerializingFunction)

_ChannelT = TypeVar("_ChannelT", bound="Channel")


class UnaryUnaryMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a unary-unary method."""

    @abc.abstractmethod
    def __call__(
        self,
        request: RequestType,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataType] = None,
        credentials: Optional[grpc.CallCredentials] = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> _base_call.UnaryUnaryCall[RequestType, ResponseType]:
        """Starts the RPC; returns a UnaryUnaryCall."""


class UnaryStreamMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a unary-stream method."""

    @abc.abstractmethod
    def __call__(
        self,
        request: RequestType,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataType] = None,
        credentials: Optional[grpc.CallCredentials] = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> _base_call.UnaryStreamCall[RequestType, ResponseType]:
        """Starts the RPC; returns a UnaryStreamCall."""


class StreamUnaryMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a stream-unary method."""

    @abc.abstractmethod
    def __call__(
        self,
        request_iterator: Optional[RequestIterableType] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataType] = None,
        credentials: Optional[grpc.CallCredentials] = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> _base_call.StreamUnaryCall[RequestType, ResponseType]:
        """Starts the RPC; returns a StreamUnaryCall."""


class StreamStreamMultiCallable(Generic[RequestType, ResponseType], abc.ABC):
    """Invokes a stream-stream method."""

    @abc.abstractmethod
    def __call__(
        self,
        request_iterator: Optional[RequestIterableType] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataType] = None,
        credentials: Optional[grpc.CallCredentials] = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> _base_call.StreamStreamCall[RequestType, ResponseType]:
        """Starts the RPC; returns a StreamStreamCall."""


class Channel(abc.ABC):
    """An asyncio channel: a virtual connection to a target."""

    @abc.abstractmethod
    async def __aenter__(self: _ChannelT) -> _ChannelT:
        """Returns the channel."""

    @abc.abstractmethod
    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        """Closes the channel (no grace)."""

    @abc.abstractmethod
    async def close(self, grace: Optional[float] = None) -> None:
        """Closes the channel: calls in flight get grace seconds, then end
        CANCELLED."""

    @abc.abstractmethod
    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """The channel's grpc.ChannelConnectivity."""

    @abc.abstractmethod
    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Returns once the state differs from last_observed_state."""

    @abc.abstractmethod
    async def channel_ready(self) -> None:
        """Returns once the channel is READY."""

    @abc.abstractmethod
    def unary_unary(
        self,
        method: str,
        request_serializer: Optional[SerializingFunction] = None,
        response_deserializer: Optional[DeserializingFunction] = None,
        _registered_method: Optional[bool] = False,
    ) -> UnaryUnaryMultiCallable[Any, Any]:
        """A UnaryUnaryMultiCallable for method."""

    @abc.abstractmethod
    def unary_stream(
        self,
        method: str,
        request_serializer: Optional[SerializingFunction] = None,
        response_deserializer: Optional[DeserializingFunction] = None,
        _registered_method: Optional[bool] = False,
    ) -> UnaryStreamMultiCallable[Any, Any]:
        """A UnaryStreamMultiCallable for method."""

    @abc.abstractmethod
    def stream_unary(
        self,
        method: str,
        request_serializer: Optional[SerializingFunction] = None,
        response_deserializer: Optional[DeserializingFunction] = None,
        _registered_method: Optional[bool] = False,
    ) -> StreamUnaryMultiCallable[Any, Any]:
        """A StreamUnaryMultiCallable for method."""

    @abc.abstractmethod
    def stream_stream(
        self,
        method: str,
        request_serializer: Optional[SerializingFunction] = None,
        response_deserializer: Optional[DeserializingFunction] = None,
        _registered_method: Optional[bool] = False,
    ) -> StreamStreamMultiCallable[Any, Any]:
        """A StreamStreamMultiCallable for method."""
