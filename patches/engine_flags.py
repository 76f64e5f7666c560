"""The `go build` flags of the engine users get: grpc-go with grpcgo's change
(grpc_go_patch.py) and Go's runtime with grpcgo's overlay
(go_runtime_patch.py, its build tag added to grpc_go_patch's tags).
setup.py (so `pip install .`) and bench/profile.py's build with symbols take
them from here, so a profile runs the engine users run.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def go_flags(root, go="go"):
    """Prepares root/build/grpc-go-patch and root/build/go-runtime-patch (if
    not current) and returns the flags that build with both."""
    sys.path.insert(0, HERE)
    try:
        import go_runtime_patch
        import grpc_go_patch
    finally:
        sys.path.pop(0)
    flags = grpc_go_patch.prepare(root, os.path.join(root, "build", "grpc-go-patch"), go)
    rt_flags, rt_tags = go_runtime_patch.prepare(os.path.join(root, "build", "go-runtime-patch"), go)
    return [f + "," + ",".join(rt_tags) if f.startswith("-tags=") and rt_tags else f
            for f in flags] + rt_flags
