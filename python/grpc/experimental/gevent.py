"""gevent support: not available on grpcgo.

grpcio's gevent mode runs its I/O on gevent's loop. grpcgo's I/O runs in Go,
whose threads block outside any Python event loop, so there is nothing to
patch: calling init_gevent() says so rather than leave a program that
would stall its hub.
"""

_UNSUPPORTED = (
    "grpc.experimental.gevent.init_gevent() is not supported by grpcgo: its "
    "I/O runs on Go threads, not on gevent's event loop. Use threads (or "
    "grpc.aio) instead of gevent with grpcgo."
)


def init_gevent():
    """Raises NotImplementedError: grpcgo cannot run on gevent's loop."""
    raise NotImplementedError(_UNSUPPORTED)
