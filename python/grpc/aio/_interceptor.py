"""Client and server interceptors of grpc.aio (grpcio's classes)."""

import abc
import collections

import grpc

from . import _base_call


class ServerInterceptor(metaclass=abc.ABCMeta):
    """Intercepts incoming RPCs of an asyncio server."""

    @abc.abstractmethod
    async def intercept_service(self, continuation, handler_call_details):
        """Returns the RpcMethodHandler for the call (or None), usually
        after awaiting continuation(handler_call_details)."""


class ClientCallDetails(
    collections.namedtuple(
        "ClientCallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")
    ),
    grpc.ClientCallDetails,
):
    """Describes an asyncio RPC to be invoked: method, timeout, metadata,
    credentials, wait_for_ready."""


class ClientInterceptor(metaclass=abc.ABCMeta):
    """The base of the four client interceptor kinds."""


class UnaryUnaryClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts unary-unary calls."""

    @abc.abstractmethod
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        """Returns a UnaryUnaryCall or a response; continuation(details,
        request) starts the call below."""


class UnaryStreamClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts unary-stream calls."""

    @abc.abstractmethod
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        """Returns a UnaryStreamCall or an async iterable of responses."""


class StreamUnaryClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts stream-unary calls."""

    @abc.abstractmethod
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        """Returns a StreamUnaryCall."""


class StreamStreamClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    """Intercepts stream-stream calls."""

    @abc.abstractmethod
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        """Returns a StreamStreamCall or an async iterable of responses."""


class InterceptedCall:
    """A call whose interceptors are still running; the call they produce
    does the work once they are done."""


class InterceptedUnaryUnaryCall(InterceptedCall, _base_call.UnaryUnaryCall):
    """A unary-unary call through client interceptors."""
