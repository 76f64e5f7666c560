"""Builds grpcgo: the `grpc` package plus its Go engine.

The engine is ONE c-shared library, grpc/_engine<EXT_SUFFIX>, built with
`go build -buildmode=c-shared ./pyext` against the headers of the Python
that runs this build. It holds two C modules (the hand-written hot module
and the gopy-generated cold one); grpc._runtime loads them on first use.
Needs Go (see go.mod for the minimum version) and a C compiler. grpc-go is
built with grpcgo's change for metadata order (patches/grpc_go_patch.py).
"""

import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class GoExtension(Extension):
    """An extension module built by `go build` from a Go package."""

    def __init__(self, name, package):
        super().__init__(name, sources=[])
        self.package = package


class build_go_ext(build_ext):
    def build_extension(self, ext):
        if not isinstance(ext, GoExtension):
            return super().build_extension(ext)
        go = shutil.which("go")
        if go is None:
            raise RuntimeError("grpcgo needs the Go toolchain (go) on PATH to build its engine")
        out = os.path.abspath(self.get_ext_fullpath(ext.name))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        env = dict(os.environ)
        env["CGO_ENABLED"] = "1"
        # Python's headers come from the interpreter running the build; the
        # library does not link libpython: the interpreter that loads it
        # provides those symbols.
        include = sysconfig.get_paths()["include"]
        env["CGO_CFLAGS"] = ("-I%s -O2 %s" % (include, env.get("CGO_CFLAGS", ""))).strip()
        # grpc-go, pinned by go.mod, with grpcgo's change for metadata order
        # (patches/grpc_go_patch.py; docs/ARCHITECTURE.md).
        # The runtime's return to Python, for this library only
        # (patches/go_runtime_patch.py; docs/ARCHITECTURE.md). Both through
        # patches/engine_flags.py, as bench/profile.py builds.
        sys.path.insert(0, os.path.join(ROOT, "patches"))
        try:
            import engine_flags
        finally:
            sys.path.pop(0)
        patched = engine_flags.go_flags(ROOT, go)
        cmd = [go, "build", "-buildmode=c-shared", "-trimpath", *patched,
               "-ldflags=-s -w", "-o", out, ext.package]
        self.announce("building %s: %s" % (ext.name, " ".join(cmd)), level=2)
        subprocess.check_call(cmd, cwd=ROOT, env=env)
        header = os.path.splitext(out)[0] + ".h"
        if os.path.exists(header):
            os.remove(header)


setup(
    ext_modules=[GoExtension("grpc._engine", "./pyext")],
    cmdclass={"build_ext": build_go_ext},
)
