"""grpc.aio channels."""

_NOT_YET = "grpc.aio (asyncio) channels are not implemented yet by grpcgo; use the synchronous grpc API"


def insecure_channel(target, options=None, compression=None, interceptors=None):
    """An asyncio channel to target without TLS."""
    raise NotImplementedError(_NOT_YET)


def secure_channel(target, credentials, options=None, compression=None, interceptors=None):
    """An asyncio channel to target with credentials."""
    raise NotImplementedError(_NOT_YET)
