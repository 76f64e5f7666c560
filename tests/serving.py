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


def run_loop(coro, loop_kind, timeout):
    """Runs coro to its end, bounded by timeout seconds, on a new event
    loop: asyncio's default ("asyncio") or uvloop's ("uvloop")."""
    import asyncio

    if loop_kind == "uvloop":
        import uvloop  # a test dependency (Makefile's TEST_DEPS)

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.close()


@contextlib.asynccontextmanager
async def aio_generic_server(service, methods):
    """grpc.aio.server on 127.0.0.1 answering `service`'s methods (name ->
    method handler); yields its port and stops it on the way out."""
    import asyncio

    from grpc import aio

    server = aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await asyncio.wait_for(server.stop(None), WAIT)
