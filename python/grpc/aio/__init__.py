"""grpc.aio: gRPC's asyncio API, on grpcgo's Go engine.

The modules follow grpcio's: _base_call/_base_channel/_base_server hold the
abstract classes, _call/_channel the client, _interceptor the interceptors,
_metadata Metadata, _typing the type aliases; _completion carries engine
completions to event loops. Importing grpc.aio does not load the engine.
"""

from ._base_call import (Call, RpcContext, StreamStreamCall, StreamUnaryCall, UnaryStreamCall,
                         UnaryUnaryCall)
from ._base_channel import (Channel, StreamStreamMultiCallable, StreamUnaryMultiCallable,
                            UnaryStreamMultiCallable, UnaryUnaryMultiCallable)
from ._base_server import Server, ServicerContext
from ._call import AbortError, AioRpcError, BaseError, InternalError, UsageError
from ._channel import insecure_channel, secure_channel
from ._interceptor import (ClientCallDetails, ClientInterceptor, InterceptedUnaryUnaryCall,
                           ServerInterceptor, StreamStreamClientInterceptor,
                           StreamUnaryClientInterceptor, UnaryStreamClientInterceptor,
                           UnaryUnaryClientInterceptor)
from ._metadata import Metadata
from ._server import server
from ._typing import EOF
from grpc._cython.cygrpc import init_grpc_aio, shutdown_grpc_aio

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

