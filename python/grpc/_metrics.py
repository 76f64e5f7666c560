"""Per-call metrics from the engine, for grpc_observability's plugins.

While a plugin is registered (``start``), channels and servers made from
then on record each client attempt, client call and server call in Go
(core/metrics.go); the engine's one daemon thread (``grpcgo-events``,
grpc/_events.py) takes batches of records and hands each record to every
registered sink (a ``grpc_observability`` plugin's instruments). Go never
calls Python.

A method counts as registered (its name is recorded rather than "other",
as in grpcio) once a multi-callable was made for it with
``_registered_method=True`` (what grpcio-tools' stubs pass) or a server
registered it with ``add_registered_method_handlers``.
"""

import logging
import threading

from grpc import _events
from grpc import _runtime

_LOGGER = logging.getLogger(__name__)

# Record kinds (core/metrics.go).
ATTEMPT_STARTED, ATTEMPT_ENDED, CALL_ENDED, SERVER_STARTED, SERVER_ENDED = range(5)

_REGISTERED = set()  # "pkg.Service/Method"

_lock = threading.Lock()
_sinks = []


def note_registered(method, registered=True):
    """Records that method (``/pkg.Service/Method``, str or bytes) is a
    registered one."""
    if registered:
        if isinstance(method, bytes):
            method = method.decode("utf-8", "replace")
        _REGISTERED.add(method.lstrip("/"))


def is_registered(method):
    return method in _REGISTERED


def start(sink):
    """Adds sink (called with each record tuple: kind, method, target, code,
    seconds, sent, received) and switches the engine's metrics on."""
    hot = _runtime.hot()
    with _lock:
        _sinks.append(sink)
        hot.metrics_enable(True)
    _events.start()


def stop(sink):
    """Delivers what the engine holds, removes sink; the last one switches
    the engine's metrics off."""
    hot = _runtime.hot()
    flush()
    with _lock:
        if sink in _sinks:
            _sinks.remove(sink)
        if not _sinks:
            hot.metrics_enable(False)


def flush():
    """Delivers the records the engine holds now (for a reader about to
    collect, and at deregistration)."""
    deliver(_runtime.hot().metrics_take())


_deliver_lock = threading.Lock()


def deliver(got):
    if not got:
        return
    records, dropped = got
    with _lock:
        sinks = list(_sinks)
    if dropped:
        _LOGGER.warning("%d per-call metric records were dropped: Python did not take them in time",
                        dropped)
    with _deliver_lock:
        for record in records:
            for sink in sinks:
                try:
                    sink(record)
                except Exception:  # a failing exporter must not stop the thread
                    _LOGGER.exception("recording a gRPC metric failed")
