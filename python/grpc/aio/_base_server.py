"""The abstract server-side classes of grpc.aio: Server and ServicerContext."""

from __future__ import annotations

import abc
from typing import Dict, Generic, Iterable, Mapping, NoReturn, Optional, Sequence, Union

import grpc

from ._typing import DoneCallbackType, EOFType, MetadataType, RequestType, ResponseType


class Server(abc.ABC):
    """An asyncio gRPC server."""

    @abc.abstractmethod
    def add_generic_rpc_handlers(
        self,
        generic_rpc_handlers: Sequence[grpc.GenericRpcHandler],
    ) -> None:
        """Registers GenericRpcHandlers."""

    def add_registered_method_handlers(
        self,
        service_name: str,
        method_handlers: Dict[str, grpc.RpcMethodHandler],
    ) -> None:
        """Registers the method handlers of one service (generated code)."""

    @abc.abstractmethod
    def add_insecure_port(self, address: str) -> int:
        """Listens on address without TLS; returns the port."""

    @abc.abstractmethod
    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        """Listens on address with server_credentials; returns the port."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Starts serving."""

    @abc.abstractmethod
    async def stop(self, grace: Optional[float]) -> None:
        """Stops serving: calls in flight get grace seconds."""

    @abc.abstractmethod
    async def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        """Waits until the server stopped or timeout passed; True if stopped."""


class ServicerContext(Generic[RequestType, ResponseType], abc.ABC):
    """What an asyncio handler gets besides its request."""

    @abc.abstractmethod
    async def read(self) -> Union[EOFType, RequestType]:
        """The next request, or grpc.aio.EOF."""

    @abc.abstractmethod
    async def write(self, message: ResponseType) -> None:
        """Sends one response."""

    @abc.abstractmethod
    async def send_initial_metadata(self, initial_metadata: MetadataType) -> None:
        """Sends the initial metadata."""

    @abc.abstractmethod
    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: MetadataType = (),
    ) -> NoReturn:
        """Ends the RPC with code and details; raises AbortError."""

    @abc.abstractmethod
    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        """Ends the RPC with a grpc.Status; raises AbortError."""

    @abc.abstractmethod
    def set_trailing_metadata(self, trailing_metadata: MetadataType) -> None:
        """Sets the trailing metadata."""

    @abc.abstractmethod
    def invocation_metadata(self) -> Optional[MetadataType]:
        """The client's metadata."""

    @abc.abstractmethod
    def set_code(self, code: grpc.StatusCode) -> None:
        """Sets the status code."""

    @abc.abstractmethod
    def set_details(self, details: str) -> None:
        """Sets the status details."""

    @abc.abstractmethod
    def set_compression(self, compression: grpc.Compression) -> None:
        """Sets the compression of responses."""

    @abc.abstractmethod
    def disable_next_message_compression(self) -> None:
        """Sends the next response uncompressed."""

    @abc.abstractmethod
    def peer(self) -> str:
        """The client's address."""

    @abc.abstractmethod
    def peer_identities(self) -> Optional[Iterable[bytes]]:
        """The client's identities, or None."""

    @abc.abstractmethod
    def peer_identity_key(self) -> Optional[str]:
        """The auth property that identifies the client, or None."""

    @abc.abstractmethod
    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        """The call's auth properties."""

    def time_remaining(self) -> Optional[float]:
        """Seconds before the deadline."""
        raise NotImplementedError()

    def trailing_metadata(self) -> MetadataType:
        """The trailing metadata set so far."""
        raise NotImplementedError()

    def code(self) -> Optional[grpc.StatusCode]:
        """The status code set so far."""
        raise NotImplementedError()

    def details(self) -> Optional[str]:
        """The status details set so far."""
        raise NotImplementedError()

    def add_done_callback(self, callback: DoneCallbackType) -> None:
        """Calls callback(context) when the RPC ends."""
        raise NotImplementedError()

    def cancelled(self) -> bool:
        """True if the RPC was cancelled."""
        raise NotImplementedError()

    def done(self) -> bool:
        """True once the RPC ended."""
        raise NotImplementedError()
