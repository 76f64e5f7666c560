"""grpcgo installs like grpcio: its distribution is `grpcio` 1.85.4+grpcgo.*.

Companion packages (grpcio-tools, -health-checking, -reflection, -status,
opentelemetry-instrumentation-grpc) require `grpcio`; with plain pip they find
it satisfied by ours, keep our `grpc`, and `pip check` is clean. PyPI's grpcio
installed over us replaces us whole, and the suite's guard (conftest.py) says
so.

The fresh-venv test builds a wheel of this checkout (Go's build cache makes
that quick after `make install`) and fetches the companions from PyPI.
"""

import importlib.metadata
import os
import subprocess
import sys
import venv

import pytest

import grpc
from conftest import REPO_ROOT, not_grpcgo

PIP_TIMEOUT = 900
# What a user of grpcio installs beside it. The gRPC packages on the 1.85 line
# that grpc.__version__ implements; a later line requires a later grpcio.
COMPANIONS = ("grpcio-tools==1.85.*", "grpcio-health-checking==1.85.*",
              "grpcio-reflection==1.85.*", "grpcio-status==1.85.*",
              "opentelemetry-instrumentation-grpc")


def _run(cmd, **kw):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` took over {PIP_TIMEOUT} s", pytrace=False)
    return proc


def _ok(cmd, **kw):
    proc = _run(cmd, **kw)
    assert proc.returncode == 0, f"`{' '.join(cmd)}` failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_our_distribution_is_grpcio_with_our_label():
    dist = importlib.metadata.distribution("grpcio")
    public, _, local = dist.version.partition("+")
    assert public == grpc.__version__
    assert local.startswith("grpcgo."), dist.version
    files = [str(f) for f in dist.files or ()]
    assert any(f.startswith("grpc/_engine") and f.endswith(".so") for f in files), files[:20]
    assert "grpc/__init__.py" in files


def test_fresh_venv_plain_pip_companions_keep_our_grpc(tmp_path):
    wheels = tmp_path / "wheels"
    _ok([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--wheel-dir", str(wheels), REPO_ROOT])
    (wheel,) = wheels.glob("grpcio-*+grpcgo*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check"]
    _ok(pip + ["install", "--quiet", str(wheel)])
    out = _ok(pip + ["install", *COMPANIONS])
    assert "Requirement already satisfied: grpcio" in out, out
    assert _run(pip + ["check"]).returncode == 0, _run(pip + ["check"]).stdout

    probe = ("import os, grpc, importlib.metadata as m\n"
             "from opentelemetry.instrumentation.dependencies import get_dependency_conflicts\n"
             "from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient\n"
             "print(os.path.dirname(os.path.abspath(grpc.__file__)))\n"
             "print(m.version('grpcio'))\n"
             "print(get_dependency_conflicts(GrpcInstrumentorClient().instrumentation_dependencies()))\n"
             "import grpc_tools.protoc, grpc_health.v1.health, grpc_reflection.v1alpha.reflection\n"
             "import grpc_status.rpc_status\n")
    grpc_dir, version, conflicts = _ok([py, "-c", probe], cwd="/").split("\n")[:3]
    assert not_grpcgo(grpc_dir) is None, grpc_dir
    assert version == importlib.metadata.version("grpcio")
    assert conflicts == "None"

    # `grpcio==1.85.4` is satisfied by 1.85.4+grpcgo.*: pip keeps us.
    out = _ok(pip + ["install", f"grpcio=={grpc.__version__}"])
    assert "Requirement already satisfied" in out, out
    assert not_grpcgo(grpc_dir) is None

    # PyPI's grpcio forced in replaces our distribution whole; the guard the
    # suite runs under (conftest.grpc_is_ours) must say grpc is not ours.
    _ok(pip + ["install", "--quiet", "--force-reinstall", "--no-deps",
               f"grpcio=={grpc.__version__}"])
    assert not_grpcgo(grpc_dir) is not None
    assert "+grpcgo" not in _ok([py, "-c", "import importlib.metadata as m; "
                                 "print(m.version('grpcio'))"], cwd="/")
