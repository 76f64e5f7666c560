"""gRPC's experimental APIs.

These APIs are subject to be removed during any minor version release.

Besides a few helpers, this module offers the "simple stubs" (unary_unary,
unary_stream, stream_unary, stream_stream, defined in grpc._simple_stubs):
single calls that take a target instead of a channel.
"""

from __future__ import annotations

import functools
import logging
import typing
import warnings

import grpc

_LOGGER = logging.getLogger(__name__)


class ChannelOptions(object):
    """Indicates a channel option unique to gRPC Python.

    This enumeration is part of an EXPERIMENTAL API.

    Attributes:
      SingleThreadedUnaryStream: Perform unary-stream RPCs on a single thread.
    """

    SingleThreadedUnaryStream = "SingleThreadedUnaryStream"


class UsageError(Exception):
    """Raised by the gRPC library to indicate usage not allowed by the API."""


class ExperimentalApiWarning(Warning):
    """A warning that an API is experimental."""


class _InsecureChannelCredentials(object):
    """What insecure_channel_credentials() wraps; recognized by identity."""

    def __repr__(self):
        return "<insecure channel credentials>"


# One object, so that insecure credentials hash the same everywhere (the
# simple-stub channel cache uses them in its keys). grpc.secure_channel
# rejects them; the simple stubs open an insecure channel for them.
_insecure_channel_credentials = _InsecureChannelCredentials()
_INSECURE_CREDENTIALS = grpc.ChannelCredentials(_insecure_channel_credentials)


def insecure_channel_credentials() -> grpc.ChannelCredentials:
    """Creates a ChannelCredentials for use with an insecure channel.

    THIS IS AN EXPERIMENTAL API.
    """
    return _INSECURE_CREDENTIALS


_EXPERIMENTAL_APIS_USED: typing.Set[str] = set()

_F = typing.TypeVar("_F", bound=typing.Callable[..., typing.Any])


def _warn_experimental(api_name, stack_offset):
    if api_name not in _EXPERIMENTAL_APIS_USED:
        _EXPERIMENTAL_APIS_USED.add(api_name)
        warnings.warn(
            "'{}' is an experimental API. It is subject to change or removal"
            " between minor releases. Proceed with caution.".format(api_name),
            ExperimentalApiWarning,
            stacklevel=2 + stack_offset,
        )


def experimental_api(f: _F) -> _F:
    """Decorator: the first call of f warns with an ExperimentalApiWarning."""

    @functools.wraps(f)
    def _wrapper(*args, **kwargs):
        _warn_experimental(f.__name__, 1)
        return f(*args, **kwargs)

    return typing.cast(_F, _wrapper)


def wrap_server_method_handler(
    wrapper: typing.Callable[[typing.Callable[..., typing.Any]], typing.Callable[..., typing.Any]],
    handler: typing.Optional[grpc.RpcMethodHandler],
) -> typing.Optional[grpc.RpcMethodHandler]:
    """Wraps the behavior of a server method handler.

    Args:
      wrapper: A function taking a method handler behavior (the function that
        implements the RPC) and returning a wrapped behavior.
      handler: An RpcMethodHandler to be wrapped.

    Returns:
      A new RpcMethodHandler whose behavior is wrapper(old behavior), or None
      if handler is None.
    """
    if not handler:
        return None
    if not handler.request_streaming:
        if not handler.response_streaming:
            return handler._replace(unary_unary=wrapper(handler.unary_unary))
        return handler._replace(unary_stream=wrapper(handler.unary_stream))
    if not handler.response_streaming:
        return handler._replace(stream_unary=wrapper(handler.stream_unary))
    return handler._replace(stream_stream=wrapper(handler.stream_stream))


# The simple stubs live in grpc._simple_stubs, as in grpcio.
from grpc._simple_stubs import (  # noqa: E402  pylint: disable=wrong-import-position
    stream_stream,
    stream_unary,
    unary_stream,
    unary_unary,
)

__all__ = (
    "ChannelOptions",
    "ExperimentalApiWarning",
    "UsageError",
    "experimental_api",
    "insecure_channel_credentials",
    "wrap_server_method_handler",
    "unary_unary",
    "unary_stream",
    "stream_unary",
    "stream_stream",
)
