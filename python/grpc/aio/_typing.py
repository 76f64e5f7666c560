"""Type aliases grpc.aio's signatures use (grpcio's names)."""

from typing import (TYPE_CHECKING, Any, AsyncIterable, Callable, Iterable, Sequence, Tuple,
                    TypeVar, Union)

if TYPE_CHECKING:
    from ._metadata import Metadata

RequestType = TypeVar("RequestType")
ResponseType = TypeVar("ResponseType")
SerializingFunction = Callable[[Any], bytes]
DeserializingFunction = Callable[[bytes], Any]
MetadatumType = Tuple[str, Union[str, bytes]]
MetadataKey = str
MetadataValue = Union[str, bytes]
MetadataType = Union["Metadata", Sequence[MetadatumType]]
ChannelArgumentType = Sequence[Tuple[str, Any]]
DoneCallbackType = Callable[[Any], None]
RequestIterableType = Union[Iterable[Any], AsyncIterable[Any]]
ResponseIterableType = AsyncIterable[Any]


class _EOFType:
    """The type of grpc.aio.EOF: what read() returns at the end of a stream."""

    __slots__ = ()

    def __repr__(self):
        return "<grpc.aio.EOF>"

    def __bool__(self):
        return False


EOFType = _EOFType
EOF = _EOFType()
