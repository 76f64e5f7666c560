"""A thread pool whose tasks' exceptions are logged."""

from concurrent import futures
import logging

_LOGGER = logging.getLogger(__name__)


def _logged(fn):
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            _LOGGER.exception("Unexpected exception from %s executed in logging pool!", fn)
            raise

    return run


class _LoggingPool:
    """A ThreadPoolExecutor look-alike that logs what its tasks raise
    (the futures still carry the exceptions)."""

    def __init__(self, pool):
        self._pool = pool

    def submit(self, fn, *args, **kwargs):
        return self._pool.submit(_logged(fn), *args, **kwargs)

    def map(self, func, *iterables, **kwargs):
        return self._pool.map(_logged(func), *iterables, timeout=kwargs.get("timeout"))

    def shutdown(self, wait=True):
        self._pool.shutdown(wait=wait)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown(wait=True)
        return False


def pool(max_workers):
    """A thread pool of at most max_workers threads that logs the
    exceptions its tasks raise."""
    return _LoggingPool(futures.ThreadPoolExecutor(max_workers))
