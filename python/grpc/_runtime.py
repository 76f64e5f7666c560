"""Loads grpcgo's Go engine on first use, and guards the process around it.

``import grpc`` must not start the Go runtime: a Go runtime does not survive
``fork()``, and many programs import grpc in a parent that forks workers.
The engine library is loaded by the first channel or server instead. After
that, a forked child that touches grpc gets a clear error (raised in C,
before any call into Go), and at interpreter exit servers are stopped and
no thread comes back into Python from Go once finalization began.
"""

import atexit
import importlib.machinery
import os
import sys
import threading
import weakref

_lock = threading.Lock()
_hot = None

# Live engine objects, stopped or closed at exit.
_servers = weakref.WeakSet()
_channels = weakref.WeakSet()


def library_path():
    """The path of the engine library, ``grpc/_engine<EXT_SUFFIX>``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, "_engine" + suffix)
        if os.path.isfile(path):
            return path
    raise ImportError(
        "grpcgo's engine library (grpc/_engine%s) is missing next to %s: "
        "install the package with `pip install .`"
        % (importlib.machinery.EXTENSION_SUFFIXES[0], here)
    )


def load_extension(name):
    """Loads the C module ``name`` (``grpc.X``) from the engine library."""
    module = sys.modules.get(name)
    if module is None:
        loader = importlib.machinery.ExtensionFileLoader(name, library_path())
        spec = importlib.machinery.ModuleSpec(name, loader, origin=loader.path)
        module = loader.create_module(spec)
        loader.exec_module(module)
        sys.modules[name] = module
    return module


def hot():
    """The hot module, loading the engine on first use."""
    global _hot
    if _hot is not None:
        return _hot
    with _lock:
        if _hot is None:
            module = load_extension("grpc._hot")
            from grpc._common import Metadatum

            module.setup(threading.main_thread().ident, Metadatum)
            threading._register_atexit(_on_threading_exit)
            atexit.register(_finalize, module)
            _hot = module
    return _hot


def track_server(server):
    _servers.add(server)


def track_channel(channel):
    _channels.add(channel)


def _on_threading_exit():
    # Runs before the interpreter joins its non-daemon threads (and before
    # concurrent.futures joins its workers). Daemon threads are abandoned:
    # one waiting in Go stays there, as a thread blocked in grpcio does.
    # Non-daemon threads must finish, so their calls are cancelled: channels
    # close, servers stop (releasing handlers blocked on a client).
    keep = [t.ident for t in _joined_at_exit() if t.ident is not None]
    _hot.exiting(keep)
    for channel in list(_channels):
        try:
            channel.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass
    for server in list(_servers):
        try:
            server._shutdown_at_exit()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _joined_at_exit():
    """The threads the interpreter still waits for: non-daemon threads, and
    concurrent.futures' workers (joined at exit even when daemonic, as they
    are when a daemon thread, like the server's, started them)."""
    threads = [t for t in threading.enumerate() if not t.daemon]
    futures_thread = sys.modules.get("concurrent.futures.thread")
    if futures_thread is not None:
        threads.extend(getattr(futures_thread, "_threads_queues", {}).keys())
    return threads


def _finalize(module):
    # From here on no thread returning from Go takes the GIL back from a
    # finalizing interpreter.
    module.exiting()
