"""Which ``grpc`` the tests import. grpcgo ships grpc/_engine*.so; grpcio
ships its compiled core as grpc/_cython/cygrpc*.so (grpcgo's grpc/_cython/
holds only a Python module of the names programs import from it)."""

import glob
import os


def has_engine(grpc_dir):
    return bool(glob.glob(os.path.join(grpc_dir, "_engine*.so")))


def has_grpcio_core(grpc_dir):
    return bool(glob.glob(os.path.join(grpc_dir, "_cython", "cygrpc*.so")))


def on_grpcio():
    """grpcio is under the tests (GRPCGO_TEST_ALLOW_GRPCIO=1): for the tests
    that differ on purpose."""
    import grpc

    return has_grpcio_core(os.path.dirname(os.path.abspath(grpc.__file__)))
