"""Builds face.MethodImplementation values from behaviors."""

import collections

from grpc.framework.common import cardinality
from grpc.framework.common import style
from grpc.framework.interfaces.face import face

_BEHAVIORS = (
    "unary_unary_inline", "unary_stream_inline", "stream_unary_inline",
    "stream_stream_inline", "unary_unary_event", "unary_stream_event",
    "stream_unary_event", "stream_stream_event",
)


class _MethodImplementation(
    face.MethodImplementation,
    collections.namedtuple("_MethodImplementation", ("cardinality", "style") + _BEHAVIORS),
):
    __slots__ = ()


def _implementation(shape, how, behavior):
    fields = dict.fromkeys(_BEHAVIORS)
    fields["%s_%s" % (shape.name.lower(), how.value)] = behavior
    return _MethodImplementation(shape, how, **fields)


def unary_unary_inline(behavior):
    """behavior(request, context) -> response."""
    return _implementation(cardinality.Cardinality.UNARY_UNARY, style.Service.INLINE, behavior)


def unary_stream_inline(behavior):
    """behavior(request, context) -> iterator of responses."""
    return _implementation(cardinality.Cardinality.UNARY_STREAM, style.Service.INLINE, behavior)


def stream_unary_inline(behavior):
    """behavior(request_iterator, context) -> response."""
    return _implementation(cardinality.Cardinality.STREAM_UNARY, style.Service.INLINE, behavior)


def stream_stream_inline(behavior):
    """behavior(request_iterator, context) -> iterator of responses."""
    return _implementation(cardinality.Cardinality.STREAM_STREAM, style.Service.INLINE, behavior)


def unary_unary_event(behavior):
    """behavior(request, response_callback, context)."""
    return _implementation(cardinality.Cardinality.UNARY_UNARY, style.Service.EVENT, behavior)


def unary_stream_event(behavior):
    """behavior(request, response_consumer, context)."""
    return _implementation(cardinality.Cardinality.UNARY_STREAM, style.Service.EVENT, behavior)


def stream_unary_event(behavior):
    """behavior(response_callback, context) -> request consumer."""
    return _implementation(cardinality.Cardinality.STREAM_UNARY, style.Service.EVENT, behavior)


def stream_stream_event(behavior):
    """behavior(response_consumer, context) -> request consumer."""
    return _implementation(cardinality.Cardinality.STREAM_STREAM, style.Service.EVENT, behavior)
