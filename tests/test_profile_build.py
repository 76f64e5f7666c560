"""bench/profile.py builds the engine users get (with symbols): grpc-go
with grpcgo's patch and Go's runtime with grpcgo's overlay and build tag,
the flags setup.py builds with (patches/engine_flags.py). Its build used to
leave the runtime's overlay out, so its profiles ran another runtime.

The build itself is not run: the go command's argv is checked.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def test_profile_builds_with_the_runtime_overlay(tmp_path, monkeypatch):
    profile = _load("grpcgo_bench_profile", os.path.join(REPO_ROOT, "bench", "profile.py"))
    engine_flags = _load("grpcgo_engine_flags", os.path.join(REPO_ROOT, "patches", "engine_flags.py"))
    builds = []

    def sh(argv, timeout=600, **kw):
        if argv[:2] == ["go", "build"]:
            builds.append(argv)
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kw)

    monkeypatch.setattr(profile, "sh", sh)
    profile.build_unstripped(REPO_ROOT, sys.executable, str(tmp_path))
    assert len(builds) == 1
    flags = engine_flags.go_flags(REPO_ROOT)
    for flag in flags:
        assert flag in builds[0], (flag, builds[0])
    if os.environ.get("GRPCGO_RUNTIME_PATCH", "1") != "0":
        assert any(f.startswith("-overlay=") for f in builds[0])
        tags = [f for f in builds[0] if f.startswith("-tags=")]
        assert tags and "grpcgo_rt" in tags[0].split("=", 1)[1].split(","), builds[0]
