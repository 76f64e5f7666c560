"""grpc-go's logs, delivered to Python's ``logging``.

The engine's records go to the logger ``grpc.go.<component>``, named after
grpc-go's log component (``grpc.go.core``, ``grpc.go.transport``,
``grpc.go.xds``, ...; ``grpc.go`` when grpc-go names none), children of the
``grpc`` logger grpcio's own Python code logs under. Go never writes them to
stderr and never calls Python from its goroutines: it keeps the records that
pass the filter below in a bounded buffer, and the engine's one daemon
thread (``grpcgo-events``, grpc/_events.py) takes them in batches and logs
them; what is left is logged at interpreter exit. Each record carries grpc-go's time, file and
line (``created``, ``pathname``, ``lineno``).

Which records Go keeps follows grpcio's environment variables, read when the
engine loads (the first channel or server):

- ``GRPC_VERBOSITY``: ``DEBUG`` (every severity, every verbose record),
  ``INFO`` (INFO and up), ``ERROR`` (the default: ERROR and up), ``NONE``
  (nothing). ``WARNING`` is accepted too. Unset, grpc-go's own
  ``GRPC_GO_LOG_SEVERITY_LEVEL`` / ``GRPC_GO_LOG_VERBOSITY_LEVEL`` are honoured.
- ``GRPC_TRACE``: a comma-separated list of grpcio tracer names (``all``,
  ``api``, ``channel``, ``http``, ``round_robin``, ``xds_client``, ...; a
  leading ``-`` removes one) or grpc-go component names; the grpc-go
  components they map to (``_TRACERS``) log everything from INFO up,
  whatever ``GRPC_VERBOSITY`` says (except ``NONE``).

When either asks for INFO records and the ``grpc.go`` logger has no level of
its own, it is set to INFO (DEBUG for ``GRPC_VERBOSITY=DEBUG``), so that
``logging.basicConfig()`` shows them. Otherwise the usual rules apply: the
``grpc`` logger has a ``NullHandler``, as in grpcio, so records are shown only
once logging is configured; except when either variable is set (not to
``NONE``) and no handler would take a record: the user asked for gRPC's logs
the way grpcio users do, and grpcio's core writes them to stderr, so the
record goes to stderr, in grpcio's line format (``I1204 23:38:47.167518
  20332 clientconn.go:123] message``). With ``GRPC_TRACE`` set, the first
record says which tracers are on (``gRPC Tracers: api``), as grpcio's does.
"""

import logging
import os
import sys
import time

LOGGER_NAME = "grpc.go"

# grpc-go's severities (pyext/hot_log.go) and the logging levels they become.
_INFO, _WARNING, _ERROR, _FATAL, _NONE = range(5)
_LEVELS = {_INFO: logging.INFO, _WARNING: logging.WARNING, _ERROR: logging.ERROR,
           _FATAL: logging.CRITICAL}

_VERBOSITY = {
    # name: (lowest severity kept, verbosity level V(l) answers)
    "DEBUG": (_INFO, 99),
    "INFO": (_INFO, 0),
    "WARNING": (_WARNING, -1),
    "ERROR": (_ERROR, -1),
    "NONE": (_NONE, -1),
}

_CORE = ("core", "channelz")
_TRANSPORT = ("transport", "grpctransport")
_SECURITY = ("credentials", "alts", "pemfile", "authz", "authz-audit", "rbac")
_XDS = ("xds",)
_RESOLVER = ("dns", "delegating-resolver")
_BALANCER = ("balancer", "roundrobin", "pick-first-lb", "pick-first-leaf-lb",
             "weighted-round-robin", "least-request", "lazy-lb")

# grpcio's tracer names (grpc/doc/environment_variables.md) and the grpc-go
# components that log what they trace. Any other name is taken as a grpc-go
# component name.
_TRACERS = {
    "api": _CORE, "channel": _CORE, "call": _CORE, "call_error": _CORE,
    "client_channel": _CORE, "client_channel_call": _CORE,
    "client_channel_lb_call": _CORE + _BALANCER, "connectivity_state": _CORE,
    "subchannel": _CORE, "server_channel": _CORE, "channel_stack": _CORE,
    "idle_filter": _CORE, "retry": _CORE, "message_size": _CORE,
    "compression": _CORE, "deadline_filter": _CORE, "op_failure": _CORE,
    "http": _TRANSPORT, "http1": _TRANSPORT, "http2_stream_state": _TRANSPORT,
    "http_keepalive": _TRANSPORT, "flowctl": _TRANSPORT, "bdp_estimator": _TRANSPORT,
    "chttp2_hpack_parser": _TRANSPORT, "chttp2_new_stream": _TRANSPORT, "tcp": _TRANSPORT,
    "handshaker": _TRANSPORT + _SECURITY, "secure_endpoint": _SECURITY,
    "security_connector": _SECURITY, "tsi": _SECURITY, "auth_context_refcount": _SECURITY,
    "round_robin": ("roundrobin", "balancer"), "pick_first": ("pick-first-lb", "pick-first-leaf-lb"),
    "weighted_round_robin_lb": ("weighted-round-robin",), "priority_lb": _XDS,
    "outlier_detection_lb": _XDS + ("balancer",), "ring_hash_lb": _XDS, "rls_lb": ("rls",),
    "glb": ("grpclb",), "grpclb": ("grpclb",), "cds_lb": _XDS, "xds_client": _XDS,
    "xds_client_refcount": _XDS, "xds_resolver": _XDS, "xds_cluster_impl_lb": _XDS,
    "xds_cluster_manager_lb": _XDS, "xds_override_host_lb": _XDS, "xds_wrr_locality_lb": _XDS,
    "xds_server_config_fetcher": _XDS, "cares_resolver": _RESOLVER, "dns_resolver": _RESOLVER,
    "cares_address_sorting": _RESOLVER, "resolver_refcount": _RESOLVER,
}


def settings(environ=os.environ):
    """(severity, verbose, traced components) from the environment."""
    severity, verbose = _ERROR, -1
    name = environ.get("GRPC_VERBOSITY", "").strip().upper()
    if name in _VERBOSITY:
        severity, verbose = _VERBOSITY[name]
    elif name:
        logging.getLogger(LOGGER_NAME).error(
            "Unknown GRPC_VERBOSITY %r (DEBUG, INFO, ERROR or NONE); using ERROR", name)
    else:
        go = environ.get("GRPC_GO_LOG_SEVERITY_LEVEL", "").strip().upper()
        severity = {"INFO": _INFO, "WARNING": _WARNING, "ERROR": _ERROR}.get(go, _ERROR)
        try:
            verbose = int(environ.get("GRPC_GO_LOG_VERBOSITY_LEVEL", "0"))
        except ValueError:
            verbose = 0
        if severity != _INFO:
            verbose = -1
    traced = set()
    for tracer in environ.get("GRPC_TRACE", "").split(","):
        tracer = tracer.strip().lower()
        remove = tracer.startswith("-")
        tracer = tracer.lstrip("-")
        if not tracer or tracer == "list_tracers":
            continue
        components = ("*",) if tracer in ("all", "*") else _TRACERS.get(tracer, (tracer,))
        if remove:
            traced.difference_update(components)
        else:
            traced.update(components)
    if severity == _NONE:
        traced = set()
    return severity, verbose, sorted(traced)


def tracer_names(environ=os.environ):
    """The grpcio tracer names GRPC_TRACE enables, in its order."""
    names = []
    for tracer in environ.get("GRPC_TRACE", "").split(","):
        tracer = tracer.strip().lower()
        remove = tracer.startswith("-")
        tracer = tracer.lstrip("-")
        if not tracer or tracer == "list_tracers":
            continue
        if tracer in names:
            names.remove(tracer)
        if not remove:
            names.append(tracer)
    return names


# Whether records nothing would handle go to stderr (start() decides).
_to_stderr = False


def start(hot, environ=os.environ):
    """Sets the engine's filter and starts the thread that logs its records
    (when the engine loads; none when GRPC_VERBOSITY is NONE)."""
    global _to_stderr
    severity, verbose, traced = settings(environ)
    hot.log_setup(severity, verbose, traced)
    logger = logging.getLogger(LOGGER_NAME)
    if severity <= _INFO or traced:
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
    if severity == _NONE:
        return
    # The user asked for gRPC's logs through grpcio's variables: records
    # Python's logging would drop (no handler configured) are written to
    # stderr, as grpcio's core writes its own.
    _to_stderr = any(environ.get(name, "").strip() for name in ("GRPC_VERBOSITY", "GRPC_TRACE"))
    names = tracer_names(environ)
    if names and logger.isEnabledFor(logging.INFO):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, sys._getframe().f_lineno,
                                   "gRPC Tracers: " + ", ".join(names), None, None)
        _deliver(logger, record)
    from grpc import _events

    _events.start()


def _handled(logger, level):
    """Whether a handler other than a NullHandler would take a record of
    level logged on logger."""
    current = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, logging.NullHandler) and level >= handler.level:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


_LETTERS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E",
            logging.CRITICAL: "F"}


def _deliver(logger, record):
    if _to_stderr and not _handled(logger, record.levelno):
        # grpcio's (absl's) line: I1204 23:38:47.167518   20332 file:line] message
        created = record.created
        line = "%s%s.%06d %7d %s:%d] %s\n" % (
            _LETTERS.get(record.levelno, "E"), time.strftime("%m%d %H:%M:%S", time.localtime(created)),
            int((created % 1) * 1e6), os.getpid(), os.path.basename(record.pathname),
            record.lineno, record.getMessage())
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except Exception:  # no stderr (pythonw, closed)
            pass
    else:
        logger.handle(record)


_start_time = getattr(logging, "_startTime", time.time())


def emit(batch):
    for severity, component, message, created, path, line in batch:
        logger = logging.getLogger(LOGGER_NAME + "." + component if component else LOGGER_NAME)
        level = _LEVELS.get(severity, logging.ERROR)
        if not logger.isEnabledFor(level):
            continue
        try:
            record = logger.makeRecord(logger.name, level, path or "(grpc-go)", line, message,
                                       None, None)
            record.created = created
            record.msecs = (created - int(created)) * 1000
            record.relativeCreated = (created - _start_time) * 1000
            _deliver(logger, record)
        except Exception:  # a broken handler must not stop the thread
            pass
