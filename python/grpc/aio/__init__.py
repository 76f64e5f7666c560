"""grpc.aio: gRPC's asyncio API.

grpcgo does not implement asyncio channels and servers yet. This module
holds what code written against grpc.aio imports and checks at import
time (its types, for isinstance checks and annotations; Metadata; the
error classes), so that packages such as grpcio-reflection and
grpcio-status load. Creating an asyncio channel or server raises
NotImplementedError saying so.
"""

import abc
import collections.abc

import grpc

__all__ = (
    "init_grpc_aio", "shutdown_grpc_aio", "AioRpcError", "RpcContext", "Call",
    "UnaryUnaryCall", "UnaryStreamCall", "StreamUnaryCall", "StreamStreamCall",
    "Channel", "UnaryUnaryMultiCallable", "UnaryStreamMultiCallable",
    "StreamUnaryMultiCallable", "StreamStreamMultiCallable", "ClientCallDetails",
    "ClientInterceptor", "UnaryStreamClientInterceptor", "UnaryUnaryClientInterceptor",
    "StreamUnaryClientInterceptor", "StreamStreamClientInterceptor",
    "InterceptedUnaryUnaryCall", "ServerInterceptor", "insecure_channel", "server",
    "Server", "ServicerContext", "EOF", "secure_channel", "AbortError", "BaseError",
    "UsageError", "InternalError", "Metadata",
)

_NOT_YET = "grpc.aio (asyncio) is not implemented yet by grpcgo; use the synchronous grpc API"


def init_grpc_aio():
    """Kept for compatibility; nothing to initialise."""


def shutdown_grpc_aio():
    """Kept for compatibility; nothing to shut down."""


def insecure_channel(target, options=None, compression=None, interceptors=None):
    raise NotImplementedError(_NOT_YET)


def secure_channel(target, credentials, options=None, compression=None, interceptors=None):
    raise NotImplementedError(_NOT_YET)


def server(migration_thread_pool=None, handlers=None, interceptors=None, options=None,
           maximum_concurrent_rpcs=None, compression=None):
    raise NotImplementedError(_NOT_YET)


class _EOFType:
    def __repr__(self):
        return "<grpc.aio.EOF>"

    def __bool__(self):
        return False


EOF = _EOFType()


class BaseError(Exception):
    """The base of grpc.aio's own exceptions."""


class UsageError(BaseError):
    """The API was used in a way it does not support."""


class AbortError(BaseError):
    """Raised inside a handler that aborted its RPC."""


class InternalError(BaseError):
    """An internal error of the runtime."""


class AioRpcError(grpc.RpcError):
    """An RPC that ended with a non-OK status (asyncio API)."""

    def __init__(self, code, initial_metadata, trailing_metadata, details=None,
                 debug_error_string=None):
        super().__init__()
        self._code = code
        self._details = details
        self._initial_metadata = initial_metadata
        self._trailing_metadata = trailing_metadata
        self._debug_error_string = debug_error_string

    def code(self):
        return self._code

    def details(self):
        return self._details

    def initial_metadata(self):
        return self._initial_metadata

    def trailing_metadata(self):
        return self._trailing_metadata

    def debug_error_string(self):
        return self._debug_error_string

    def __str__(self):
        return "<AioRpcError of RPC that terminated with:\n\tstatus = %s\n\tdetails = \"%s\"\n>" % (
            self._code, self._details)


class Metadata(collections.abc.Collection):
    """An ordered multimap of metadata keys to values."""

    def __init__(self, *args):
        self._entries = collections.OrderedDict()
        for key, value in args:
            self.add(key, value)

    @classmethod
    def from_tuple(cls, raw_metadata):
        return cls(*raw_metadata) if raw_metadata else cls()

    def add(self, key, value):
        self._entries.setdefault(key, []).append(value)

    def __len__(self):
        return sum(len(v) for v in self._entries.values())

    def __getitem__(self, key):
        try:
            return self._entries[key][0]
        except (KeyError, IndexError) as error:
            raise KeyError(repr(key)) from error

    def __setitem__(self, key, value):
        if key in self._entries:
            self._entries[key][0] = value
        else:
            self._entries[key] = [value]

    def __delitem__(self, key):
        values = self._entries.get(key)
        if not values:
            raise KeyError(repr(key))
        del values[0]
        if not values:
            del self._entries[key]

    def delete_all(self, key):
        del self._entries[key]

    def __iter__(self):
        for key, values in self._entries.items():
            for value in values:
                yield (key, value)

    def keys(self):
        return self._entries.keys()

    def values(self):
        return [value for _, value in self]

    def items(self):
        return list(self)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def get_all(self, key):
        return list(self._entries.get(key, []))

    def set_all(self, key, values):
        self._entries[key] = list(values)

    def __contains__(self, key):
        return key in self._entries

    def __eq__(self, other):
        if isinstance(other, self.__class__):
            return self._entries == other._entries
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, self.__class__):
            return Metadata(*(tuple(self) + tuple(other)))
        if isinstance(other, tuple):
            return Metadata(*(tuple(self) + other))
        return NotImplemented

    def __repr__(self):
        return "{0}({1!r})".format(self.__class__.__name__, tuple(self))


def _abstract(name, bases=(abc.ABC,), doc=""):
    return abc.ABCMeta(name, bases, {"__doc__": doc, "__module__": __name__})


RpcContext = _abstract("RpcContext", (grpc.RpcContext,), "Context of an asyncio RPC.")
Call = _abstract("Call", (RpcContext,), "An asyncio RPC on the client side.")
UnaryUnaryCall = _abstract("UnaryUnaryCall", (Call,))
UnaryStreamCall = _abstract("UnaryStreamCall", (Call,))
StreamUnaryCall = _abstract("StreamUnaryCall", (Call,))
StreamStreamCall = _abstract("StreamStreamCall", (Call,))
InterceptedUnaryUnaryCall = _abstract("InterceptedUnaryUnaryCall", (UnaryUnaryCall,))
Channel = _abstract("Channel", doc="An asyncio channel.")
UnaryUnaryMultiCallable = _abstract("UnaryUnaryMultiCallable")
UnaryStreamMultiCallable = _abstract("UnaryStreamMultiCallable")
StreamUnaryMultiCallable = _abstract("StreamUnaryMultiCallable")
StreamStreamMultiCallable = _abstract("StreamStreamMultiCallable")
ClientInterceptor = _abstract("ClientInterceptor")
UnaryUnaryClientInterceptor = _abstract("UnaryUnaryClientInterceptor", (ClientInterceptor,))
UnaryStreamClientInterceptor = _abstract("UnaryStreamClientInterceptor", (ClientInterceptor,))
StreamUnaryClientInterceptor = _abstract("StreamUnaryClientInterceptor", (ClientInterceptor,))
StreamStreamClientInterceptor = _abstract("StreamStreamClientInterceptor", (ClientInterceptor,))
ServerInterceptor = _abstract("ServerInterceptor")
Server = _abstract("Server", doc="An asyncio server.")
ServicerContext = _abstract("ServicerContext", (grpc.ServicerContext,))


class ClientCallDetails(
    collections.namedtuple(
        "ClientCallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")
    ),
    grpc.ClientCallDetails,
):
    """Describes an asyncio RPC to be invoked."""
