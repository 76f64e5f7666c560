"""grpcgo's change to the Go runtime, for the extension's build only.

A Python thread running Python keeps its Go P "in a system call"; a Go
thread that needs a P (the network poller's, one back from a system call)
then waits for sysmon when Python threads hold them all
(docs/ARCHITECTURE.md, "A Python thread's P"). This module prepares a
`go build -overlay` file that adds patches/go-runtime/grpcgo_return.go.in
to package runtime and edits snippets: proc.go's two places where a
thread finds no idle P call grpcgoTakeFromC (take one a Python thread
holds in C), cgocallbackg's return to C goes through grpcgoReturnToC
(what the thread does with its P; Go's behaviour by default), and
runqgrab's 3 us sleep before it steals a running P's runnext asks
grpcgoStealNap first (a yield by default: GRPCGO_RT_NAP). The
toolchain's own runtime source is read (GOROOT) and edited in a copy under
OUT_DIR; nothing in GOROOT changes.

The edits are exact snippets of cgocall.go and proc.go. If the
toolchain's source does not have one of them (another Go release), the
build goes on with the runtime as it is, says so, and the engine behaves
as before: the change is an optimisation, not a dependency. Returns the
extra go flags and the build tag (grpcgo_rt) that tells pyext the hooks
exist.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "grpcgo_rt"

# (file in GOROOT/src/runtime, [(old, new), ...]); each old occurs once.
EDITS = [
    ("cgocall.go", [(
        "\t// going back to cgo call\n"
        "\treentersyscall(savedpc, uintptr(savedsp), uintptr(savedbp))\n",
        "\t// going back to cgo call (grpcgo: maybe without the P)\n"
        "\tgrpcgoReturnToC(savedpc, uintptr(savedsp), uintptr(savedbp))\n",
    )]),
    ("proc.go", [
        # findRunnable: the network poller readied goroutines and no P is
        # idle: take one that a Python thread holds while it runs Python.
        ("\t\tlock(&sched.lock)\n\t\tpp, _ := pidleget(now)\n\t\tunlock(&sched.lock)\n"
         "\t\tif pp == nil {\n\t\t\tinjectglist(&list)\n",
         "\t\tlock(&sched.lock)\n\t\tpp, _ := pidleget(now)\n\t\tunlock(&sched.lock)\n"
         "\t\tif pp == nil && !list.empty() {\n\t\t\tpp = grpcgoTakeFromC()\n\t\t}\n"
         "\t\tif pp == nil {\n\t\t\tinjectglist(&list)\n"),
        # exitsyscall: no P of its own and none idle: the same.
        ("\t\tif pp != nil {\n\t\t\tdecGSyscallNoP(getg().m) // We got a P for ourselves.\n"
         "\t\t\treturn pp\n\t\t}\n\t}\n\treturn nil\n}\n",
         "\t\tif pp != nil {\n\t\t\tdecGSyscallNoP(getg().m) // We got a P for ourselves.\n"
         "\t\t\treturn pp\n\t\t}\n\t}\n"
         "\tif pp := grpcgoTakeFromC(); pp != nil {\n"
         "\t\tdecGSyscallNoP(getg().m)\n\t\treturn pp\n\t}\n"
         "\treturn nil\n}\n"),
        # runqgrab: a thread about to steal a running P's runnext waits
        # for that P first; grpcgoStealNap may wait without sleeping.
        ("\t\t\t\t\t\t\t\tif !osHasLowResTimer {\n\t\t\t\t\t\t\t\t\tusleep(3)\n",
         "\t\t\t\t\t\t\t\tif grpcgoStealNap(pp, next) {\n"
         "\t\t\t\t\t\t\t\t} else if !osHasLowResTimer {\n\t\t\t\t\t\t\t\t\tusleep(3)\n"),
    ]),
]


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
    # A module of its own, so that `go vet ./...` and the like in the
    # repository do not take the copies for one of its packages.
    _write(os.path.join(out_dir, "go.mod"), "module grpcgo.invalid/go-runtime-patch\n")
    goroot = subprocess.check_output([go, "env", "GOROOT"], text=True).strip()
    replace = {}
    for name, edits in EDITS:
        src = os.path.join(goroot, "src", "runtime", name)
        text = _read(src)
        for old, new in edits:
            if text.count(old) != 1:
                sys.stderr.write("grpcgo: %s has no single copy of a snippet patches/go_runtime_patch.py "
                                 "edits; building with the runtime unchanged\n" % src)
                return [], []
            text = text.replace(old, new)
        patched = os.path.join(out_dir, "runtime", name)
        _write(patched, text)
        replace[src] = patched
    extra = os.path.join(out_dir, "runtime", "grpcgo_return.go")
    _write(extra, _read(os.path.join(HERE, "go-runtime", "grpcgo_return.go.in")))
    replace[os.path.join(goroot, "src", "runtime", "grpcgo_return.go")] = extra
    overlay = os.path.join(out_dir, "overlay.json")
    _write(overlay, json.dumps({"Replace": replace}, indent=1))
    return ["-overlay=" + overlay], [TAG]


if __name__ == "__main__":
    flags, tags = prepare(sys.argv[1] if len(sys.argv) > 1 else "build/go-runtime-patch")
    print(" ".join(flags + ["-tags=" + ",".join(tags)] if tags else flags))
