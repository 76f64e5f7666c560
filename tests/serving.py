"""A sync server for tests that need one of their own (the module-level
fixtures of conftest.py serve fixed services)."""

import concurrent.futures
import contextlib

import grpc

WAIT = 20


@contextlib.contextmanager
def generic_server(service, methods, workers=4, **kwargs):
    """grpc.server on 127.0.0.1 answering `service`'s methods (name ->
    method handler), with a pool of `workers` threads; yields its port and
    stops it on the way out."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    server = grpc.server(pool, handlers=[grpc.method_handlers_generic_handler(service, methods)],
                         **kwargs)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait(WAIT)
        pool.shutdown(wait=False)
