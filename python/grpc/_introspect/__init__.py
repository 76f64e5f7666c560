"""Read-only introspection of the grpcgo engine (the cold, gopy-bound module).

The Go package grpcgo/core/introspect is bound with gopy; its C module
``_introspect`` (``PyInit__introspect``) lives in the same shared library as
the hot module, ``grpc/_engine<EXT_SUFFIX>``. Importing this package loads that
library; ``import grpc`` never imports this package.

``introspect.py`` and ``go.py`` here are generated (``make gopy``); this file
is not.
"""

from typing import NamedTuple

from grpc import _runtime

__all__ = [
    "LiveCounters",
    "go_version",
    "grpc_go_version",
    "library_path",
    "live",
    "version",
]

# gopy's wrappers do `from . import _introspect`; the init function the
# loader calls is named after the last component: PyInit__introspect.
_C_MODULE_NAME = __name__ + "._introspect"


def library_path() -> str:
    """Returns the path of the engine library, ``grpc/_engine<EXT_SUFFIX>``."""
    return _runtime.library_path()


def _check_process() -> None:
    # A Go runtime does not survive fork(): the hot module (which loads the
    # library first) raises a clear RuntimeError in a forked child.
    _runtime.hot().check()


_check_process()
_introspect = _runtime.load_extension(_C_MODULE_NAME)

from . import introspect as _bound  # noqa: E402  (needs _introspect registered)


def version() -> str:
    """The grpcgo engine version (the distribution version)."""
    _check_process()
    return _bound.Version()


def grpc_go_version() -> str:
    """The version of google.golang.org/grpc compiled into the engine."""
    _check_process()
    return _bound.GrpcGoVersion()


def go_version() -> str:
    """The Go toolchain version that built the engine."""
    _check_process()
    return _bound.GoVersion()


class LiveCounters(NamedTuple):
    """Snapshot of the engine's live objects."""

    channels: int
    servers: int
    client_calls: int
    server_calls: int
    handles: int  # engine objects Python holds (channels, calls, servers, ...)
    go_procs: int  # GOMAXPROCS now: follows the Python threads using the engine
    return_mode: int  # how a Python thread leaving Go treats its P (-1: no runtime hook)
    ps_released: int  # Ps that Python threads leaving Go gave up so far
    ps_taken: int  # Ps taken from Python threads running Python by Go threads needing one
    nap_mode: int  # how a Go thread about to steal a running P's next goroutine waits (-1: no hook)
    naps: int  # such waits done the nap_mode way (not Go's 3 us sleep) so far


def live() -> LiveCounters:
    """Returns the current number of live channels, servers and in-flight calls."""
    _check_process()
    c = _bound.Live()
    return LiveCounters(
        channels=c.Channels,
        servers=c.Servers,
        go_procs=c.GoProcs,
        client_calls=c.ClientCalls,
        server_calls=c.ServerCalls,
        handles=c.Handles,
        return_mode=c.ReturnMode,
        ps_released=c.PsReleased,
        ps_taken=c.PsTaken,
        nap_mode=c.NapMode,
        naps=c.Naps,
    )
