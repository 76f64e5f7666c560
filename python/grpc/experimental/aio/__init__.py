"""grpc.experimental.aio: the former name of grpc.aio, kept for code that
still imports it (grpcio-reflection and grpcio-status do)."""

from grpc.aio import *  # noqa: F401,F403
from grpc.aio import __all__  # noqa: F401
