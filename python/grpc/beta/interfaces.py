"""The beta API's interfaces."""

import abc

import grpc

ChannelConnectivity = grpc.ChannelConnectivity
# The beta API's name for SHUTDOWN (grpcio adds it to grpc.ChannelConnectivity
# too, when grpc.beta is imported).
ChannelConnectivity.FATAL_FAILURE = ChannelConnectivity.SHUTDOWN
# grpc.StatusCode's members, under the beta name.
StatusCode = grpc.StatusCode


class GRPCCallOptions:
    """Options of a beta call: disable_compression, subcall_of, credentials."""

    def __init__(self, disable_compression, subcall_of, credentials):
        self.disable_compression = disable_compression
        self.subcall_of = subcall_of
        self.credentials = credentials


def grpc_call_options(disable_compression=False, credentials=None):
    """GRPCCallOptions for a call (subcall_of is not supported)."""
    return GRPCCallOptions(disable_compression, None, credentials)


GRPCAuthMetadataContext = grpc.AuthMetadataContext
GRPCAuthMetadataPluginCallback = grpc.AuthMetadataPluginCallback
GRPCAuthMetadataPlugin = grpc.AuthMetadataPlugin


class GRPCServicerContext(abc.ABC):
    """What a beta servicer may ask of its call besides the face context."""

    @abc.abstractmethod
    def peer(self):
        """The peer's address."""
        raise NotImplementedError()

    @abc.abstractmethod
    def disable_next_response_compression(self):
        """Sends the next response uncompressed."""
        raise NotImplementedError()


class GRPCInvocationContext(abc.ABC):
    """What a beta invoker may ask of its call besides the face context."""

    @abc.abstractmethod
    def disable_next_request_compression(self):
        """Sends the next request uncompressed."""
        raise NotImplementedError()


class Server(abc.ABC):
    """A beta server."""

    @abc.abstractmethod
    def add_insecure_port(self, address):
        """Binds address without security; returns the port."""
        raise NotImplementedError()

    @abc.abstractmethod
    def add_secure_port(self, address, server_credentials):
        """Binds address with server_credentials; returns the port."""
        raise NotImplementedError()

    @abc.abstractmethod
    def start(self):
        """Starts serving."""
        raise NotImplementedError()

    @abc.abstractmethod
    def stop(self, grace):
        """Stops serving within grace seconds; returns an Event."""
        raise NotImplementedError()
