"""The abstract server-side classes of grpc.aio: Server and ServicerContext."""

import abc
from typing import Generic

from ._typing import RequestType, ResponseType


class Server(abc.ABC):
    """An asyncio gRPC server."""

    @abc.abstractmethod
    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        """Registers GenericRpcHandlers."""

    def add_registered_method_handlers(self, service_name, method_handlers):
        """Registers the method handlers of one service (generated code)."""

    @abc.abstractmethod
    def add_insecure_port(self, address):
        """Listens on address without TLS; returns the port."""

    @abc.abstractmethod
    def add_secure_port(self, address, server_credentials):
        """Listens on address with server_credentials; returns the port."""

    @abc.abstractmethod
    async def start(self):
        """Starts serving."""

    @abc.abstractmethod
    async def stop(self, grace):
        """Stops serving: calls in flight get grace seconds."""

    @abc.abstractmethod
    async def wait_for_termination(self, timeout=None):
        """Waits until the server stopped or timeout passed; True if stopped."""


class ServicerContext(Generic[RequestType, ResponseType], abc.ABC):
    """What an asyncio handler gets besides its request."""

    @abc.abstractmethod
    async def read(self):
        """The next request, or grpc.aio.EOF."""

    @abc.abstractmethod
    async def write(self, message):
        """Sends one response."""

    @abc.abstractmethod
    async def send_initial_metadata(self, initial_metadata):
        """Sends the initial metadata."""

    @abc.abstractmethod
    async def abort(self, code, details="", trailing_metadata=()):
        """Ends the RPC with code and details; raises AbortError."""

    @abc.abstractmethod
    async def abort_with_status(self, status):
        """Ends the RPC with a grpc.Status; raises AbortError."""

    @abc.abstractmethod
    def set_trailing_metadata(self, trailing_metadata):
        """Sets the trailing metadata."""

    @abc.abstractmethod
    def invocation_metadata(self):
        """The client's metadata."""

    @abc.abstractmethod
    def set_code(self, code):
        """Sets the status code."""

    @abc.abstractmethod
    def set_details(self, details):
        """Sets the status details."""

    @abc.abstractmethod
    def set_compression(self, compression):
        """Sets the compression of responses."""

    @abc.abstractmethod
    def disable_next_message_compression(self):
        """Sends the next response uncompressed."""

    @abc.abstractmethod
    def peer(self):
        """The client's address."""

    @abc.abstractmethod
    def peer_identities(self):
        """The client's identities, or None."""

    @abc.abstractmethod
    def peer_identity_key(self):
        """The auth property that identifies the client, or None."""

    @abc.abstractmethod
    def auth_context(self):
        """The call's auth properties."""

    def time_remaining(self):
        """Seconds before the deadline."""
        raise NotImplementedError()

    def trailing_metadata(self):
        """The trailing metadata set so far."""
        raise NotImplementedError()

    def code(self):
        """The status code set so far."""
        raise NotImplementedError()

    def details(self):
        """The status details set so far."""
        raise NotImplementedError()

    def add_done_callback(self, callback):
        """Calls callback(context) when the RPC ends."""
        raise NotImplementedError()

    def cancelled(self):
        """True if the RPC was cancelled."""
        raise NotImplementedError()

    def done(self):
        """True once the RPC ended."""
        raise NotImplementedError()
