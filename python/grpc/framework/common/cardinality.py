"""The four shapes of an RPC, by how many messages go each way."""

import enum


@enum.unique
class Cardinality(enum.Enum):
    """Whether each side of an RPC sends one message or a stream."""

    UNARY_UNARY = "request-unary/response-unary"
    UNARY_STREAM = "request-unary/response-streaming"
    STREAM_UNARY = "request-streaming/response-unary"
    STREAM_STREAM = "request-streaming/response-streaming"
