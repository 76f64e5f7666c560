"""Type aliases of the synchronous API, under the names grpcio gives them
(``grpc._typing``); annotations in libraries and generated code import them."""

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, Tuple, TypeVar, Union

if TYPE_CHECKING:
    import grpc

RequestType = TypeVar("RequestType")
ResponseType = TypeVar("ResponseType")

SerializingFunction = Callable[[Any], bytes]
DeserializingFunction = Callable[[bytes], Any]

MetadataType = Sequence[Tuple[str, Union[str, bytes]]]
ChannelArgumentType = Tuple[str, Any]

DoneCallbackType = Callable[[Any], None]
NullaryCallbackType = Callable[[], None]

RequestIterableType = Iterable[Any]
ResponseIterableType = Iterable[Any]

# A servicer method in any of its shapes: (request or request iterator,
# context), and the non-blocking streaming form that also takes the
# function sending each response.
ArityAgnosticMethodHandler = Union[
    Callable[[Any, "grpc.ServicerContext"], Any],
    Callable[[Any, "grpc.ServicerContext"], Iterator[Any]],
    Callable[[Iterator[Any], "grpc.ServicerContext"], Any],
    Callable[[Iterator[Any], "grpc.ServicerContext"], Iterator[Any]],
    Callable[[Any, "grpc.ServicerContext", Callable[[Any], None]], Any],
    Callable[[Iterator[Any], "grpc.ServicerContext", Callable[[Any], None]], Any],
]
