"""grpcgo's change to the Go runtime, for the extension's build only.

A Python thread returning from the engine keeps its P "in a system call";
goroutines it readied wait on that P for sysmon when every other P is busy
(docs/ARCHITECTURE.md, "A Python thread's P"). This module prepares a
`go build -overlay` file that makes cgocallbackg's return to C go through
grpcgoReturnToC (patches/go-runtime/grpcgo_return.go.in), which can hand
that P over at once. The toolchain's own runtime source is read (GOROOT)
and edited in a copy under OUT_DIR; nothing in GOROOT changes.

The edit is one exact snippet of cgocallbackg. If the toolchain's source
does not have it (another Go release), the build goes on with the
runtime as it is, says so, and the engine behaves as before: the change is
an optimisation, not a dependency. Returns the extra go flags and the build
tag (grpcgo_rt) that tells pyext the hook exists.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "grpcgo_rt"

EDIT = (
    "\t// going back to cgo call\n"
    "\treentersyscall(savedpc, uintptr(savedsp), uintptr(savedbp))\n",
    "\t// going back to cgo call (grpcgo: maybe without the P)\n"
    "\tgrpcgoReturnToC(savedpc, uintptr(savedsp), uintptr(savedbp))\n",
)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def prepare(out_dir, go="go"):
    """Writes OUT_DIR/overlay.json; returns (go flags, build tags)."""
    if os.environ.get("GRPCGO_RUNTIME_PATCH", "1") == "0":
        return [], []
    out_dir = os.path.abspath(out_dir)
    goroot = subprocess.check_output([go, "env", "GOROOT"], text=True).strip()
    src = os.path.join(goroot, "src", "runtime", "cgocall.go")
    text = _read(src)
    old, new = EDIT
    if text.count(old) != 1:
        sys.stderr.write("grpcgo: %s has no single copy of the snippet patches/go_runtime_patch.py "
                         "edits; building with the runtime unchanged\n" % src)
        return [], []
    added = _read(os.path.join(HERE, "go-runtime", "grpcgo_return.go.in"))
    patched = os.path.join(out_dir, "runtime", "cgocall.go")
    extra = os.path.join(out_dir, "runtime", "grpcgo_return.go")
    _write(patched, text.replace(old, new))
    _write(extra, added)
    overlay = os.path.join(out_dir, "overlay.json")
    _write(overlay, json.dumps({"Replace": {
        src: patched,
        os.path.join(goroot, "src", "runtime", "grpcgo_return.go"): extra,
    }}, indent=1))
    return ["-overlay=" + overlay], [TAG]


if __name__ == "__main__":
    flags, tags = prepare(sys.argv[1] if len(sys.argv) > 1 else "build/go-runtime-patch")
    print(" ".join(flags + ["-tags=" + ",".join(tags)] if tags else flags))
