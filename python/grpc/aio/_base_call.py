"""The abstract client-side call classes of grpc.aio (grpcio's, method for
method: in particular RpcContext has none of the sync RpcContext's
add_callback/is_active)."""

from abc import ABCMeta, abstractmethod
from typing import Generic

from ._typing import RequestType, ResponseType

__all__ = "RpcContext", "Call", "UnaryUnaryCall", "UnaryStreamCall", "StreamUnaryCall", "StreamStreamCall"


class RpcContext(metaclass=ABCMeta):
    """What an asyncio RPC offers on either side: its state and its end."""

    @abstractmethod
    def cancelled(self):
        """True if the RPC was cancelled with cancel()."""

    @abstractmethod
    def done(self):
        """True once the RPC completed, was cancelled or aborted."""

    @abstractmethod
    def time_remaining(self):
        """Seconds left before the deadline, or None without one."""

    @abstractmethod
    def cancel(self):
        """Cancels the RPC; True if this call cancelled it."""

    @abstractmethod
    def add_done_callback(self, callback):
        """Calls callback(call) when the RPC ends."""


class Call(RpcContext, metaclass=ABCMeta):
    """An asyncio RPC on the client side."""

    @abstractmethod
    async def initial_metadata(self):
        """The server's initial metadata."""

    @abstractmethod
    async def trailing_metadata(self):
        """The server's trailing metadata."""

    @abstractmethod
    async def code(self):
        """The RPC's grpc.StatusCode."""

    @abstractmethod
    async def details(self):
        """The RPC's status details."""

    @abstractmethod
    async def wait_for_connection(self):
        """Returns once the RPC reached its peer; raises AioRpcError if it
        failed before."""


class UnaryUnaryCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A unary-unary RPC on the client side."""

    @abstractmethod
    def __await__(self):
        """Awaits the response."""


class UnaryStreamCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A unary-stream RPC on the client side."""

    @abstractmethod
    def __aiter__(self):
        """The responses, as an async iterator."""

    @abstractmethod
    async def read(self):
        """The next response, or grpc.aio.EOF at the end."""


class StreamUnaryCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A stream-unary RPC on the client side."""

    @abstractmethod
    async def write(self, request):
        """Sends one request."""

    @abstractmethod
    async def done_writing(self):
        """Ends the requests (idempotent)."""

    @abstractmethod
    def __await__(self):
        """Awaits the response."""


class StreamStreamCall(Generic[RequestType, ResponseType], Call, metaclass=ABCMeta):
    """A stream-stream RPC on the client side."""

    @abstractmethod
    def __aiter__(self):
        """The responses, as an async iterator."""

    @abstractmethod
    async def read(self):
        """The next response, or grpc.aio.EOF at the end."""

    @abstractmethod
    async def write(self, request):
        """Sends one request."""

    @abstractmethod
    async def done_writing(self):
        """Ends the requests (idempotent)."""
