"""The abstract client-side call classes of grpc.aio (grpcio's, method for
method: in particular RpcContext has none of the sync RpcContext's
add_callback/is_active)."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, AsyncIterator, Generator, Generic, Optional, Union

import grpc

from ._metadata import Metadata
from ._typing import DoneCallbackType, EOFType, RequestType, ResponseType

__all__ = "RpcContext", "Call", "UnaryUnaryCall", "UnaryStreamCall", "StreamUnaryCall", "StreamStreamCall"


class RpcContext(metaclass=ABCMeta):
    """What an asyncio RPC offers on either side: its state and its end."""

    @abstractmethod
    def cancelled(self) -> bool:
        """True if the RPC was cancelled with cancel()."""

    @abstractmethod
    def done(self) -> bool:
        """True once the RPC completed, was cancelled or aborted."""

    @abstractmethod
    def time_remaining(self) -> Optional[float]:
        """Seconds left before the deadline, or None without one."""

    @abstractmethod
    def cancel(self) -> bool:
        """Cancels the RPC; True if this call cancelled it."""

    @abstractmethod
    def add_done_callback(self, callback: DoneCallbackType) -> None:
        """Calls callback(call) when the RPC ends."""


class Call(RpcContext, metaclass=ABCMeta):
    """An asyncio RPC on the client side."""

    @abstractmethod
    async def initial_metadata(self) -> Metadata:
        """The server's initial metadata."""

    @abstractmethod
    async def trailing_metadata(self) -> Metadata:
        """The server's trailing metadata."""

    @abstractmethod
    async def code(self) -> grpc.StatusCode:
        """The RPC's grpc.StatusCode."""

    @abstractmethod
    async def details(self) -> str:
        """The RPC's status details."""

    @abstractmethod
    async def wait_for_connection(self) -> None:
        """Returns once the RPC reached its peer; raises AioRpcError if it
        failed before."""


class UnaryUnaryCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A unary-unary RPC on the client side."""

    @abstractmethod
    def __await__(self) -> Generator[Any, None, ResponseType]:
        """Awaits the response."""


class UnaryStreamCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A unary-stream RPC on the client side."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[ResponseType]:
        """The responses, as an async iterator."""

    @abstractmethod
    async def read(self) -> Union[EOFType, ResponseType]:
        """The next response, or grpc.aio.EOF at the end."""


class StreamUnaryCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A stream-unary RPC on the client side."""

    @abstractmethod
    async def write(self, request: RequestType) -> None:
        """Sends one request."""

    @abstractmethod
    async def done_writing(self) -> None:
        """Ends the requests (idempotent)."""

    @abstractmethod
    def __await__(self) -> Generator[Any, None, ResponseType]:
        """Awaits the response."""


class StreamStreamCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A stream-stream RPC on the client side."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[ResponseType]:
        """The responses, as an async iterator."""

    @abstractmethod
    async def read(self) -> Union[EOFType, ResponseType]:
        """The next response, or grpc.aio.EOF at the end."""

    @abstractmethod
    async def write(self, request: RequestType) -> None:
        """Sends one request."""

    @abstractmethod
    async def done_writing(self) -> None:
        """Ends the requests (idempotent)."""
