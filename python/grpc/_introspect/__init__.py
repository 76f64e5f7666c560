"""Read-only introspection of the grpcgo engine (the cold, gopy-bound module).

The Go package grpcgo/core/introspect is bound with gopy; its C module
``_introspect`` (``PyInit__introspect``) lives in the same shared library as
the hot module, ``grpc/_engine<EXT_SUFFIX>``. Importing this package loads that
library; ``import grpc`` never imports this package.

``introspect.py`` and ``go.py`` here are generated (``make gopy``); this file
is not.
"""

import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from typing import NamedTuple

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
    """Returns the path of the engine library, ``grpc/_engine<EXT_SUFFIX>``.

    Looks next to the ``grpc`` package this module belongs to. Raises
    ImportError naming the expected file if it is missing.
    """
    grpc_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    suffixes = [sysconfig.get_config_var("EXT_SUFFIX")]
    suffixes += [s for s in importlib.machinery.EXTENSION_SUFFIXES if s not in suffixes]
    for suffix in suffixes:
        if suffix:
            path = os.path.join(grpc_dir, "_engine" + suffix)
            if os.path.isfile(path):
                return path
    raise ImportError(
        f"grpcgo engine library not found: expected "
        f"{os.path.join(grpc_dir, '_engine' + (suffixes[0] or '.so'))}; "
        f"is grpcgo installed (pip install .)?",
        path=grpc_dir,
    )


def _load_c_module():
    module = sys.modules.get(_C_MODULE_NAME)
    if module is not None:
        return module
    path = library_path()
    loader = importlib.machinery.ExtensionFileLoader(_C_MODULE_NAME, path)
    spec = importlib.util.spec_from_file_location(_C_MODULE_NAME, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_C_MODULE_NAME] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[_C_MODULE_NAME]
        raise
    return module


_introspect = _load_c_module()
_loaded_in_pid = os.getpid()

from . import introspect as _bound  # noqa: E402  (needs _introspect registered)


def _check_process() -> None:
    # A Go runtime does not survive fork(): calls into it from a forked child
    # hang. Fail clearly instead.
    if os.getpid() != _loaded_in_pid:
        raise RuntimeError(
            "grpcgo's engine was loaded before this process was forked and "
            "cannot be used in the child; use the 'spawn' or 'forkserver' "
            "multiprocessing start method"
        )


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


def live() -> LiveCounters:
    """Returns the current number of live channels, servers and in-flight calls."""
    _check_process()
    c = _bound.Live()
    return LiveCounters(
        channels=c.Channels,
        servers=c.Servers,
        client_calls=c.ClientCalls,
        server_calls=c.ServerCalls,
    )
