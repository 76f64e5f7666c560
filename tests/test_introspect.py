"""grpc._introspect: the gopy-bound cold module inside grpc/_engine<EXT_SUFFIX>.

Runs against the INSTALLED grpc package. Expected values come from the repo
(core/version.go) and from the library's own Go build info (`go version -m`),
so they are the values core returns, not copies.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def grpc_pkg():
    import grpc

    here = os.path.dirname(os.path.abspath(grpc.__file__))
    assert glob.glob(os.path.join(here, "_engine*.so")), (
        f"grpc is not grpcgo's package (no _engine*.so beside {grpc.__file__})"
    )
    return grpc


@pytest.fixture(scope="module")
def gi(grpc_pkg):
    import grpc._introspect

    return grpc._introspect


@pytest.fixture(scope="module")
def build_info(gi):
    """`go version -m` of the engine library: (go version, {module: version})."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go not on PATH")
    out = subprocess.run(
        [go, "version", "-m", gi.library_path()],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    first, *rest = out.splitlines()
    deps = {}
    for line in rest:
        fields = line.split()
        if len(fields) >= 3 and fields[0] in ("dep", "=>"):
            deps[fields[1]] = fields[2]
    return first.rsplit(" ", 1)[-1], deps


def core_version():
    with open(os.path.join(REPO_ROOT, "core", "version.go")) as f:
        m = re.search(r'^const Version = "([^"]+)"', f.read(), re.M)
    assert m, "const Version not found in core/version.go"
    return m.group(1)


def test_library_is_the_installed_engine(grpc_pkg, gi):
    grpc_dir = os.path.dirname(os.path.abspath(grpc_pkg.__file__))
    path = gi.library_path()
    assert os.path.dirname(path) == grpc_dir
    assert os.path.basename(path).startswith("_engine")
    c_module = sys.modules["grpc._introspect._introspect"]
    assert os.path.abspath(c_module.__file__) == path


def test_version(gi):
    v = gi.version()
    assert isinstance(v, str) and v
    assert v == core_version()


def test_grpc_go_version(gi, build_info):
    v = gi.grpc_go_version()
    assert isinstance(v, str) and v
    assert "v" + v == build_info[1]["google.golang.org/grpc"]


def test_go_version(gi, build_info):
    v = gi.go_version()
    assert isinstance(v, str) and v.startswith("go")
    assert v == build_info[0]


def test_live(gi):
    snap = gi.live()
    assert isinstance(snap, gi.LiveCounters)
    assert set(snap._asdict()) == {"channels", "servers", "client_calls", "server_calls", "handles",
                                   "go_procs", "return_mode", "ps_released",
                                   "ps_taken", "nap_mode", "naps"}
    for name, value in snap._asdict().items():
        assert type(value) is int, (name, value)
        assert value >= 0, (name, value)


def test_live_counts_each_object(gi):
    # In a fresh process (nothing else alive): each object shows up in its
    # count while it lives and leaves it when it goes.
    script = r"""
import gc, threading, time
from concurrent import futures
import grpc, grpc._introspect as gi

def counts():
    s = gi.live()
    return [s.channels, s.servers, s.client_calls, s.server_calls, s.handles]

print("before", *counts())
started, release = threading.Event(), threading.Event()
def hold(request, context):
    started.set()
    release.wait(30)
    return request
pool = futures.ThreadPoolExecutor(max_workers=2)
server = grpc.server(pool, handlers=[grpc.method_handlers_generic_handler(
    "t.S", {"H": grpc.unary_unary_rpc_method_handler(hold)})])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print("server", *counts())
ch = grpc.insecure_channel("127.0.0.1:%d" % port)
print("channel", *counts())
future = ch.unary_unary("/t.S/H").future(b"x", timeout=30)
assert started.wait(30)
print("call", *counts())
release.set()
assert future.result(timeout=30) == b"x"
del future
ch.close()
server.stop(None).wait(30)
del ch, server
deadline = time.monotonic() + 30
# (The server's dispatcher thread holds the server until it has seen the
# stop, a moment after stop() returns.)
while (counts()[:4] != [0, 0, 0, 0] or counts()[4] > 1) and time.monotonic() < deadline:
    gc.collect()
    time.sleep(0.01)
gc.collect()
print("after", *counts())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    got = {line.split()[0]: list(map(int, line.split()[1:]))
           for line in out.stdout.splitlines()}
    # [channels, servers, client_calls, server_calls, handles]
    assert got["before"] == [0, 0, 0, 0, 0], got
    assert got["server"] == [0, 1, 0, 0, 1], got
    assert got["channel"] == [1, 1, 0, 0, 2], got
    assert got["call"][:4] == [1, 1, 1, 1] and got["call"][4] >= 3, got
    # A finished server call's handle may wait in C for a batched release
    # (docs/ARCHITECTURE.md, "The hot module"): at most one here.
    assert got["after"][:4] == [0, 0, 0, 0] and got["after"][4] <= 1, got


_GO_PROCS_SCRIPT = r"""
import os, sys, threading, time
from concurrent import futures
import grpc, grpc._introspect as gi

def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"E": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port

how = sys.argv[1]  # "future": waits in Go; "blocking": a blocking call, waits in C;
                   # "server": serve, print the port, until stdin closes
if how == "server":
    server, port = serve()
    print(port, flush=True)
    sys.stdin.read()
    sys.exit(0)
base = gi.live().go_procs  # Go's default, before any thread used the engine
if how == "future":  # the server's threads count too
    server, port = serve()
else:  # the server's threads would count: in a process of its own
    import subprocess
    me = os.environ["GRPCGO_GO_PROCS_SCRIPT"]  # this script (sys.orig_argv is 3.10+)
    child = subprocess.Popen([sys.executable, "-c", me, "server"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    port = int(child.stdout.readline())
ch = grpc.insecure_channel("127.0.0.1:%d" % port)
call = ch.unary_unary("/t.S/E")
stop = threading.Event()
def caller():
    while not stop.is_set():
        if how == "future":
            call.future(b"x", timeout=10).result()
        else:
            call(b"x", timeout=10)
threads = [threading.Thread(target=caller) for _ in range(12)]
for t in threads:
    t.start()
peak = 0
# Blocking callers: watch for a fixed 1.5 s (a dozen of the tuner's periods).
deadline = time.monotonic() + (20 if how == "future" else 1.5)
while time.monotonic() < deadline and peak < 12:
    peak = max(peak, gi.live().go_procs)
    time.sleep(0.05)
stop.set()
for t in threads:
    t.join()
low = peak
deadline = time.monotonic() + 20
while time.monotonic() < deadline and low > base:
    low = gi.live().go_procs
    time.sleep(0.05)
print(peak, low, base, gi.live().return_mode)
"""


def _go_procs_run(how, **env_set):
    env = dict(os.environ, GRPCGO_GO_PROCS_SCRIPT=_GO_PROCS_SCRIPT, **env_set)
    env.pop("GOMAXPROCS", None)
    out = subprocess.run([sys.executable, "-c", _GO_PROCS_SCRIPT, how], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return tuple(map(int, out.stdout.split()))


def test_go_procs_follow_the_python_threads_using_the_engine(gi):
    # Each Python thread that waits on a call in Go holds one of Go's Ps
    # while it runs Python, so the engine raises GOMAXPROCS while many
    # threads call (12 callers, plus the server's threads in the same
    # process), and lowers it back to Go's default once they stop. In a
    # fresh process: GOMAXPROCS from the environment would pin it.
    peak, low, base, _ = _go_procs_run("future")
    assert peak >= 12, (peak, low, base)
    assert low == base, (peak, low, base)


@pytest.mark.parametrize("setting", ["", "1"])
def test_go_procs_do_not_follow_threads_blocked_in_unary_calls(gi, setting):
    # A thread making blocking unary calls waits for them in C, where Go
    # takes its P at once when another thread needs one (the runtime's
    # take): the engine does not add Ps for it (pyext/tuning.go). Twelve
    # such callers (the server in another process) leave GOMAXPROCS at
    # Go's default; GRPCGO_UNARY_CALLER_PS=1 counts them as before.
    peak, low, base, return_mode = _go_procs_run("blocking", GRPCGO_UNARY_CALLER_PS=setting)
    if return_mode < 0:
        pytest.skip("engine built without the runtime's hooks: callers count as before")
    if setting == "1":
        assert peak >= 12, (peak, low, base)
    else:
        # (On one CPU, a 1-P default, a run peaked at 2: one thread more
        # for a period, nothing like the twelve callers.)
        assert peak <= max(base, 2), (peak, low, base)
    assert low == base, (peak, low, base)


def test_live_does_not_leak_go_handles(gi):
    c_module = sys.modules["grpc._introspect._introspect"]
    gi.live()
    before = c_module.NumHandles()
    for _ in range(200):
        gi.live()
    assert c_module.NumHandles() == before


def test_import_grpc_does_not_load_introspection():
    code = (
        "import sys, grpc\n"
        "assert 'grpc._introspect' not in sys.modules, 'grpc imported _introspect'\n"
        "maps = '/proc/self/maps'\n"
        "import os\n"
        "if os.path.exists(maps):\n"
        "    with open(maps) as f:\n"
        "        assert '_engine' not in f.read(), 'import grpc loaded the engine'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_clear_error(gi):
    gi.version()  # the library is loaded in this process
    pid = os.fork()
    if pid == 0:  # child: must not call into Go
        try:
            gi.version()
        except RuntimeError as e:
            os._exit(0 if "spawn" in str(e) else 2)
        except BaseException:
            os._exit(3)
        os._exit(1)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("forked child hung calling grpc._introspect")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
