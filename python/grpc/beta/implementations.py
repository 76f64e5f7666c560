"""Beta entry points: credentials, channels, stubs and servers, adapted to
the grpc API."""

import grpc
from grpc.beta import interfaces  # noqa: F401  pylint: disable=unused-import
from grpc.framework.common import cardinality  # noqa: F401  pylint: disable=unused-import
from grpc.framework.interfaces.face import face  # noqa: F401  pylint: disable=unused-import

ChannelCredentials = grpc.ChannelCredentials
ssl_channel_credentials = grpc.ssl_channel_credentials
CallCredentials = grpc.CallCredentials
access_token_call_credentials = grpc.access_token_call_credentials
composite_call_credentials = grpc.composite_call_credentials
composite_channel_credentials = grpc.composite_channel_credentials
ServerCredentials = grpc.ServerCredentials
ssl_server_credentials = grpc.ssl_server_credentials


def metadata_call_credentials(metadata_plugin, name=None):
    """CallCredentials from a beta plugin, whose metadata may be bytes."""
    from grpc.beta import _metadata  # pylint: disable=import-outside-toplevel

    def plugin(context, callback):
        def beta_callback(beta_metadata, error):
            callback(_metadata.unbeta(beta_metadata), error)

        metadata_plugin(context, beta_callback)

    return grpc.metadata_call_credentials(plugin, name=name)


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


_EMPTY_STUB_OPTIONS = StubOptions(None, None, None, None, None, None)
_EMPTY_SERVER_OPTIONS = ServerOptions(None, None, None, None, None, None, None)


def _stub_options(options):
    options = options or _EMPTY_STUB_OPTIONS
    options.request_serializers = options.request_serializers or {}
    options.response_deserializers = options.response_deserializers or {}
    return options


def generic_stub(channel, options=None):
    """A face.GenericStub over the beta channel."""
    from grpc.beta import _client_adaptations  # pylint: disable=import-outside-toplevel

    return _client_adaptations.generic_stub(channel._channel, _stub_options(options))


def dynamic_stub(channel, service, cardinalities, options=None):
    """A face.DynamicStub for one service (group) over the beta channel."""
    from grpc.beta import _client_adaptations  # pylint: disable=import-outside-toplevel

    return _client_adaptations.dynamic_stub(channel._channel, service, cardinalities,
                                            _stub_options(options))


def server(service_implementations, options=None):
    """An interfaces.Server serving face method implementations by (group,
    method), on a grpc.server."""
    from grpc.beta import _server_adaptations  # pylint: disable=import-outside-toplevel

    options = options or _EMPTY_SERVER_OPTIONS
    return _server_adaptations.server(
        service_implementations, options.multi_method_implementation,
        options.request_deserializers, options.response_serializers, options.thread_pool,
        options.thread_pool_size)
