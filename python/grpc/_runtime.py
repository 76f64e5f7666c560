"""Loads grpcgo's Go engine on first use, and guards the process around it.

``import grpc`` must not start the Go runtime: a Go runtime does not survive
``fork()``, and many programs import grpc in a parent that forks workers.
The engine library is loaded by the first channel or server instead. After
that, a forked child that touches grpc gets a clear error (raised in C,
before any call into Go).

Exit is one mechanism (docs/ARCHITECTURE.md, "Exit"):

1. When the main thread ends, nothing is cancelled or closed. Python waits
   for its non-daemon threads and executor workers, and their calls run to
   completion; servers keep serving (a call the shut-down executor refuses
   runs on a thread of its own).
2. Once every thread Python still waits for is one of a server's (running a
   handler or waiting for a call), only clients could end those handlers:
   every server is stopped then, with EXIT_GRACE seconds for the calls in
   flight before they are cancelled.
3. At interpreter finalization (grpc's atexit hook) event loops of threads
   other than the main one stop taking completions, servers stop, and the
   engine's gate closes: from then on a thread other than the main one that
   comes back from the engine, or calls into it, parks for good (as daemon
   threads blocked in grpcio stay blocked); the main thread, and atexit
   handlers that run after this one, keep making calls.
"""

import atexit
import importlib.machinery
import os
import sys
import threading
import time
import weakref

_lock = threading.Lock()
_hot = None

# How long calls in flight get when servers are stopped at exit (step 2).
EXIT_GRACE = 1.0

# How often, during exit, the threads Python waits for are looked at.
_EXIT_POLL = 0.02

# Live servers, stopped at exit.
_servers = weakref.WeakSet()

_stopped_at_exit = weakref.WeakSet()

# Threads running a server's task (a handler, or waiting for the next call).
_serving = set()

_exit_watch = None
_main_ended = threading.Event()  # set by threading's exit hook
_exit_watch_lock = threading.Lock()
_futures_thread = None  # concurrent.futures.thread, once the engine loaded


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
            from grpc import _logging

            _logging.start(module)
            # concurrent.futures joins its workers in an exit hook of its
            # own; ours must run first (hooks run last-registered first),
            # whichever of the two a program touched first.
            global _futures_thread
            import concurrent.futures.thread as _futures_thread

            try:
                threading._register_atexit(_on_threading_exit)
            except RuntimeError:  # loaded while threading's exit runs
                _on_threading_exit()
            atexit.register(_finalize, module)
            _hot = module
    return _hot


def track_server(server):
    _servers.add(server)
    _watch_exit()
    from grpc import _events

    _events.start()  # add_callback callbacks run there


def _watch_exit():
    """Starts the thread that carries out step 2 of exit, with the first
    server: it sleeps until the main thread has ended. Python 3.12 and
    later refuse to start threads once threading's exit hooks run, so it
    must exist before then."""
    global _exit_watch
    if _exit_watch is not None:
        return
    with _exit_watch_lock:
        if _exit_watch is None:
            watch = threading.Thread(target=_exit_watch_main, name="grpcgo-exit", daemon=True)
            try:
                watch.start()
            except RuntimeError:  # the interpreter is exiting: step 3 stops servers
                return
            _exit_watch = watch


def _exit_watch_main():
    _main_ended.wait()
    _stop_servers_when_alone()


def serving_begin():
    """The calling thread runs a server's task until serving_end()."""
    _serving.add(threading.get_ident())


def serving_end():
    _serving.discard(threading.get_ident())


def executors_shut_down():
    """Whether concurrent.futures refuses new work (interpreter exit)."""
    return _futures_thread is not None and _futures_thread._shutdown


def _on_threading_exit():
    # The main thread has ended: step 1 changes nothing; the watcher started
    # with the first server (_watch_exit) carries out step 2 while Python
    # joins its threads.
    _main_ended.set()


def _stop_servers_when_alone():
    """Step 2: stops every server once the threads Python waits for are all
    serving (or gone), then watches for servers started later."""
    while True:
        waited = _joined_at_exit()
        if all(t.ident in _serving for t in waited):
            for server in list(_servers):
                _stop_at_exit(server, EXIT_GRACE)
            if not waited:
                return
        time.sleep(_EXIT_POLL)


def _joined_at_exit():
    """The threads the interpreter still waits for: non-daemon threads, and
    concurrent.futures' workers (joined at exit even when daemonic, as they
    are when a daemon thread, like the server's, started them)."""
    main = threading.main_thread()
    threads = {t for t in threading.enumerate() if not t.daemon and t is not main}
    futures_thread = sys.modules.get("concurrent.futures.thread")
    if futures_thread is not None:
        threads.update(getattr(futures_thread, "_threads_queues", {}).keys())
    return [t for t in threads if t.is_alive()]


def _finalize(module):
    # Step 3: event loops of other threads take no more completions (their
    # tasks would fail on the calls the stops end); servers stop now; then
    # the gate closes.
    module.exit_begin()
    for server in list(_servers):
        try:
            _stop_at_exit(server, 0.0)
        except Exception:  # pragma: no cover - best effort at exit
            pass
    from grpc import _events

    _events.flush(module)  # the callbacks of the calls just stopped, the last log records
    module.exiting()


def _stop_at_exit(server, grace):
    stop = getattr(server, "_stop_at_exit", None)
    if stop is not None:
        stop(grace)  # once per grace, without waiting
    elif server not in _stopped_at_exit:  # grpc.aio: its loop is gone
        _stopped_at_exit.add(server)
        server._shutdown_at_exit()
