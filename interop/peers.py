"""The real peers the interop runs and tests use, built on demand under build/.

    python interop/peers.py go-interop   # prints the grpc-go client and server paths
    python interop/peers.py grpcurl      # prints the grpcurl path
    python interop/peers.py grpcio       # prints the python of the grpcio venv

- grpc-go's interop client and server at GRPC_GO_VERSION, and grpcurl at
  GRPCURL_VERSION, come from the Go module proxy with `go install pkg@version`,
  run outside any module (so the project's go.mod is untouched) into a
  directory named after the version: build/interop/grpc-go-<v>/ and
  build/interop/grpcurl-<v>/. A build goes to a temporary directory that is
  renamed into place only when complete, so an interrupted build is redone.
- grpcio from PyPI goes into its own venv, build/interop/grpcio-<v>-venv. It
  must never be installed where grpcgo is: both own `import grpc`.

Pins live here only: mk/interop.mk and the tests read them from this module.
"""

import os
import shutil
import subprocess
import sys
import tempfile

GRPC_GO_VERSION = "v1.85.0"
GRPCURL_VERSION = "v1.9.3"
GRPCIO_VERSION = "1.85.1"
# grpcio's venv also needs protobuf, at least the gencode version of the
# stubs in interop/src (grpcio-tools 1.85.1 writes 7.35.1 gencode).
GRPCIO_VENV_PACKAGES = (f"grpcio=={GRPCIO_VERSION}", "protobuf>=7.35.1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "interop")

GO_BUILD_TIMEOUT = 900  # seconds: a cold module cache compiles all of grpc-go
PIP_TIMEOUT = 900


class PeerError(RuntimeError):
    """A peer could not be built or installed."""


def _run(cmd, timeout, **kwargs):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kwargs)
    except FileNotFoundError as error:
        raise PeerError(f"`{cmd[0]}` is not installed: {error}") from error
    except subprocess.TimeoutExpired as error:
        raise PeerError(f"`{' '.join(cmd)}` took over {timeout} s") from error
    if proc.returncode != 0:
        raise PeerError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n"
                        f"{proc.stdout}{proc.stderr}")
    return proc


def _go_install(dest, packages, version, names):
    """go install packages@version into dest unless every name is there."""
    paths = [os.path.join(dest, name) for name in names]
    if all(os.access(path, os.X_OK) for path in paths):
        return paths
    go = shutil.which("go")
    if go is None:
        raise PeerError("the Go toolchain (`go`) is not on PATH")
    os.makedirs(BUILD, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=BUILD)
    try:
        env = dict(os.environ, GOBIN=tmp)
        # Run from a directory with no go.mod: `go install pkg@version`
        # ignores the current module anyway, but this makes it plain.
        _run([go, "install"] + [f"{pkg}@{version}" for pkg in packages],
             GO_BUILD_TIMEOUT, cwd=tmp, env=env)
        os.chmod(tmp, 0o755)  # mkdtemp made it private
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


def go_interop():
    """(client, server): grpc-go's interop programs at GRPC_GO_VERSION."""
    client, server = _go_install(
        os.path.join(BUILD, f"grpc-go-{GRPC_GO_VERSION}"),
        ("google.golang.org/grpc/interop/client",
         "google.golang.org/grpc/interop/server"),
        GRPC_GO_VERSION, ("client", "server"))
    return client, server


def grpcurl():
    """The path of grpcurl at GRPCURL_VERSION."""
    (path,) = _go_install(
        os.path.join(BUILD, f"grpcurl-{GRPCURL_VERSION}"),
        ("github.com/fullstorydev/grpcurl/cmd/grpcurl",),
        GRPCURL_VERSION, ("grpcurl",))
    return path


def grpcio_python(python=None):
    """The python of a venv holding grpcio GRPCIO_VERSION (created if missing)."""
    venv = os.path.join(BUILD, f"grpcio-{GRPCIO_VERSION}-venv")
    exe = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".complete")
    if os.path.exists(stamp):
        return exe
    shutil.rmtree(venv, ignore_errors=True)
    os.makedirs(BUILD, exist_ok=True)
    base = python or os.environ.get("INTEROP_BASE_PYTHON") or _base_python()
    _run([base, "-m", "venv", venv], PIP_TIMEOUT)
    _run([exe, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
         + list(GRPCIO_VENV_PACKAGES), PIP_TIMEOUT)
    check = _run([exe, "-c", "import grpc, os; print(os.path.dirname(grpc.__file__))"],
                 60).stdout.strip()
    if any(name.startswith("_engine") for name in os.listdir(check)):
        raise PeerError(f"the grpcio venv imports grpcgo from {check}")
    open(stamp, "w").close()
    return exe


def _base_python():
    """A python that can make venvs: the base of the running one if in a venv."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if os.path.exists(base) else sys.executable


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    try:
        if what == "go-interop":
            print("\n".join(go_interop()))
        elif what == "grpcurl":
            print(grpcurl())
        elif what == "grpcio":
            print(grpcio_python())
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except PeerError as error:
        print(f"peers: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
