"""Metadata order across keys and the metadata size limits, against grpcio.

grpcio keeps the order of metadata pairs across keys in both directions:
the server sees the request metadata in the caller's order (its user-agent
first), and the client sees initial and trailing metadata in the order the
server gave. grpc-go stores metadata in a map; grpcgo builds it with a small
change that keeps the order (patches/grpc_go_patch.py). tests/metadata_peer.py
runs on our grpc and, as the other side, on grpcio 1.85.1 in its own venv
(interop/peers.py). grpcgo with grpcgo: tests/test_fuzz.py.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, TESTS_DIR

sys.path.insert(0, os.path.join(REPO_ROOT, "interop"))
import peers  # noqa: E402

import metadata_peer  # noqa: E402

PEER = os.path.join(TESTS_DIR, "metadata_peer.py")
TIMEOUT = 60


def _plain(metadata):
    return [[k, v.hex() if isinstance(v, bytes) else v] for k, v in metadata]


@pytest.fixture(scope="module")
def grpcio_python():
    try:
        return peers.grpcio_python()
    except peers.PeerError as error:
        pytest.fail(f"no grpcio venv: {error}", pytrace=False)


def _serve(python):
    proc = subprocess.Popen([python, PEER, "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd="/")
    port = proc.stdout.readline().strip()
    assert port.isdigit(), f"{python} {PEER} serve printed {port!r}"
    return proc, port


def _call(python, port, *how):
    how = how or ("call", port)
    out = subprocess.run([python, PEER, *how], capture_output=True, text=True,
                         timeout=TIMEOUT, cwd="/", stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout) if how[0] == "call" else out.stdout.strip()


def _stop(proc):
    proc.stdin.close()
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def _check(seen):
    assert seen["server_saw"][0][0] == "user-agent", seen["server_saw"]
    assert [p for p in seen["server_saw"] if p[0].startswith("x-")] == \
        _plain(metadata_peer.SENT)
    assert seen["initial"] == _plain(metadata_peer.INITIAL)
    assert seen["trailing"] == _plain(metadata_peer.TRAILING)


@pytest.mark.parametrize("client,server", [("grpcgo", "grpcio"), ("grpcio", "grpcgo"),
                                           ("grpcgo", "grpcgo"), ("grpcio", "grpcio")])
def test_order_across_keys_both_ways(grpcio_python, client, server):
    python = {"grpcgo": sys.executable, "grpcio": grpcio_python}
    proc, port = _serve(python[server])
    try:
        _check(_call(python[client], port))
    finally:
        _stop(proc)


@pytest.mark.parametrize("client,server", [("grpcgo", "grpcio"), ("grpcio", "grpcgo"),
                                           ("grpcgo", "grpcgo"), ("grpcio", "grpcio")])
def test_request_metadata_over_16_kib_is_resource_exhausted(grpcio_python, client, server):
    # grpcio's server refuses request headers over its hard limit (16 KiB);
    # grpc-go's client, told that limit by the server's SETTINGS, refuses to
    # send them: the caller sees RESOURCE_EXHAUSTED either way.
    python = {"grpcgo": sys.executable, "grpcio": grpcio_python}
    proc, port = _serve(python[server])
    try:
        for size in (20000, 100000):
            assert _call(python[client], port, "big", port, str(size)) == \
                "RESOURCE_EXHAUSTED", size
        assert _call(python[client], port, "big", port, "100") == "OK"
    finally:
        _stop(proc)
