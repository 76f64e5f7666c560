"""Type aliases grpc.aio's signatures use (grpcio's names)."""

from typing import (TYPE_CHECKING, Any, AsyncIterable, Callable, Iterable, Sequence, Tuple,
                    TypeVar, Union)

from grpc._cython.cygrpc import EOF, _EOF  # noqa: F401 (grpc.aio's EOF, defined as in grpcio)

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


EOFType = _EOF  # grpcio's name for it
