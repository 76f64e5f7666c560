"""Beta entry points: credentials and channels work on grpcgo; beta stubs
and servers do not (see _UNSUPPORTED)."""

import grpc
from grpc.beta import interfaces  # noqa: F401  pylint: disable=unused-import
from grpc.framework.common import cardinality  # noqa: F401  pylint: disable=unused-import
from grpc.framework.interfaces.face import face  # noqa: F401  pylint: disable=unused-import

_UNSUPPORTED = (
    "grpc.beta.implementations.{} is not supported by grpcgo (the beta stubs "
    "and servers were deprecated in grpcio 1.0); use the grpc API instead: "
    "grpc.insecure_channel / grpc.secure_channel with generated *_pb2_grpc "
    "stubs, and grpc.server."
)

ChannelCredentials = grpc.ChannelCredentials
ssl_channel_credentials = grpc.ssl_channel_credentials
CallCredentials = grpc.CallCredentials
access_token_call_credentials = grpc.access_token_call_credentials
composite_call_credentials = grpc.composite_call_credentials
composite_channel_credentials = grpc.composite_channel_credentials
ServerCredentials = grpc.ServerCredentials
ssl_server_credentials = grpc.ssl_server_credentials


def metadata_call_credentials(metadata_plugin, name=None):
    """CallCredentials from a beta plugin (its callback takes metadata and
    an error, as grpc's does)."""
    return grpc.metadata_call_credentials(metadata_plugin, name=name)


def google_call_credentials(credentials):
    """CallCredentials from google-auth or oauth2client credentials."""
    from grpc import _auth  # pylint: disable=import-outside-toplevel

    return grpc.metadata_call_credentials(_auth.GoogleCallCredentials(credentials))


class Channel:
    """A beta channel: a grpc.Channel behind it (connectivity only)."""

    def __init__(self, channel):
        self._channel = channel

    def subscribe(self, callback, try_to_connect=None):
        self._channel.subscribe(callback, try_to_connect=bool(try_to_connect))

    def unsubscribe(self, callback):
        self._channel.unsubscribe(callback)


def _target(host, port):
    return host if port is None else "%s:%d" % (host, port)


def insecure_channel(host, port):
    """A beta Channel to host:port (or host alone if port is None)."""
    return Channel(grpc.insecure_channel(_target(host, port)))


def secure_channel(host, port, channel_credentials):
    """A secure beta Channel to host:port (or host alone if port is None)."""
    return Channel(grpc.secure_channel(_target(host, port), channel_credentials))


class StubOptions:
    """Options of a beta stub (accepted, for programs that build them)."""

    def __init__(self, host, request_serializers, response_deserializers,
                 metadata_transformer, thread_pool, thread_pool_size):
        self.host = host
        self.request_serializers = request_serializers
        self.response_deserializers = response_deserializers
        self.metadata_transformer = metadata_transformer
        self.thread_pool = thread_pool
        self.thread_pool_size = thread_pool_size


def stub_options(host=None, request_serializers=None, response_deserializers=None,
                 metadata_transformer=None, thread_pool=None, thread_pool_size=None):
    return StubOptions(host, request_serializers, response_deserializers,
                       metadata_transformer, thread_pool, thread_pool_size)


class ServerOptions:
    """Options of a beta server (accepted, for programs that build them)."""

    def __init__(self, multi_method_implementation, request_deserializers,
                 response_serializers, thread_pool, thread_pool_size, default_timeout,
                 maximum_timeout):
        self.multi_method_implementation = multi_method_implementation
        self.request_deserializers = request_deserializers
        self.response_serializers = response_serializers
        self.thread_pool = thread_pool
        self.thread_pool_size = thread_pool_size
        self.default_timeout = default_timeout
        self.maximum_timeout = maximum_timeout


def server_options(multi_method_implementation=None, request_deserializers=None,
                   response_serializers=None, thread_pool=None, thread_pool_size=None,
                   default_timeout=None, maximum_timeout=None):
    return ServerOptions(multi_method_implementation, request_deserializers,
                         response_serializers, thread_pool, thread_pool_size,
                         default_timeout, maximum_timeout)


def generic_stub(channel, options=None):
    """Not supported by grpcgo: raises NotImplementedError."""
    raise NotImplementedError(_UNSUPPORTED.format("generic_stub"))


def dynamic_stub(channel, service, cardinalities, options=None):
    """Not supported by grpcgo: raises NotImplementedError."""
    raise NotImplementedError(_UNSUPPORTED.format("dynamic_stub"))


def server(service_implementations, options=None):
    """Not supported by grpcgo: raises NotImplementedError."""
    raise NotImplementedError(_UNSUPPORTED.format("server"))
