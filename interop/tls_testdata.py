"""Where grpc-go's interop test certificates are.

The interop suite's TLS material (ca.pem, the test CA; server1.pem and
server1.key, a certificate for *.test.google.fr signed by it) ships in
grpc-go's module as testdata/. We use it from the Go module cache:
$GRPCGO_INTEROP_TESTDATA if set, else the module directory that
`go mod download -json google.golang.org/grpc@VERSION` reports (which also
fetches the module if the cache lacks it).
"""

import functools
import json
import os
import subprocess

GRPC_GO_VERSION = "v1.85.0"
_MODULE = "google.golang.org/grpc"


@functools.lru_cache(maxsize=None)
def directory():
    """The testdata directory; raises RuntimeError if it cannot be found."""
    override = os.environ.get("GRPCGO_INTEROP_TESTDATA")
    if override:
        return override
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{_MODULE}@{GRPC_GO_VERSION}"],
            capture_output=True, text=True, timeout=300, check=True,
            stdin=subprocess.DEVNULL, cwd="/",  # outside any module: go.mod stays untouched
        ).stdout
        module_dir = json.loads(out)["Dir"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
        raise RuntimeError(
            f"cannot locate grpc-go {GRPC_GO_VERSION}'s testdata (needs `go` on "
            f"PATH, or GRPCGO_INTEROP_TESTDATA): {error}"
        ) from error
    return os.path.join(module_dir, "testdata")


def path(name):
    """The path of one file of grpc-go's testdata (e.g. "ca.pem")."""
    return os.path.join(directory(), name)
