"""The gRPC interop cases against grpc-go's own interop client and server.

The plaintext grpc-go directions of `make interop`, fast cases only (the soak
cases, TLS and the other grpcio directions run in `make interop`):

* grpc-go's interop client (google.golang.org/grpc/interop/client at
  interop/peers.py's GRPC_GO_VERSION) -> interop/server.py on our grpc;
* interop/client.py on our grpc -> grpc-go's interop server;
* interop/aio_client.py (grpc.aio) on our grpc -> grpc-go's interop server;
* grpc-go's interop client -> interop/aio_server.py (grpc.aio) on our grpc.

and `make interop`'s compression cases in every plaintext direction with our
grpc at one end whose peer implements them: ours -> grpc-go's server
(server_compressed_unary), ours -> grpcio's interop/server.py and grpcio's
interop/client.py -> ours (both cases; grpcio 1.85.1 from PyPI in its own
venv under build/interop/, made once). interop/server.py and client.py
cannot see whether a message was compressed (docs/INTEROP.md, Notes), so
these show compressed calls work end to end; that they were compressed is
judged by grpc-go in test_gopeer_features.py and the Go client's
compression case (test_gopeer.py).

The grpc-go programs are built from the module proxy once and kept under
build/interop/ (a cold build takes a minute or two). Every process listens on
127.0.0.1 (grpc-go's server on all interfaces; only loopback connects) and
every wait is bounded.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "interop"))

import harness  # noqa: E402
import peers  # noqa: E402

CASE_TIMEOUT = 60
LOGS = os.path.join(peers.BUILD, "logs", "pytest")


@pytest.fixture(scope="session")
def go_interop():
    try:
        return peers.go_interop()
    except peers.PeerError as error:
        pytest.fail(f"could not build grpc-go's interop programs: {error}", pytrace=False)


@pytest.fixture(scope="session")
def grpcio_python():
    try:
        return peers.grpcio_python()
    except peers.PeerError as error:
        pytest.fail(f"could not make the grpcio venv: {error}", pytrace=False)


def _server(cmd_for_port, name):
    port = harness.free_port()
    server = harness.Server(cmd_for_port(port), port, os.path.join(LOGS, f"{name}.log"))
    if server.failure:
        server.stop()
        pytest.fail(f"{name} did not start: {server.failure}", pytrace=False)
    return server


@pytest.fixture(scope="module")
def our_server():
    """interop/server.py on our grpc (this interpreter), plaintext."""
    server = _server(lambda port: harness.python_server(sys.executable, port, False),
                     "grpcgo-server")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def our_aio_server():
    """interop/aio_server.py (grpc.aio) on our grpc, plaintext."""
    server = _server(lambda port: harness.python_aio_server(sys.executable, port, False),
                     "grpcgo-aio-server")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def go_server(go_interop):
    """grpc-go's interop server, plaintext."""
    server = _server(lambda port: harness.go_server(go_interop[1], port, False),
                     "grpc-go-server")
    yield server
    server.stop()


# grpc-go's interop client races itself in cancel_after_begin: it cancels
# the call's context, then CloseAndRecv still sends END_STREAM, because its
# cancellation is applied by a goroutine of its own. A server that answers
# that half-close at once (ours does, in well under 100 us) can get its OK
# status to the client's RecvMsg before that goroutine resets the stream,
# and the client then reports "got error code 0, want 1". The server did
# what the frames asked, so that one outcome is run again (at most twice);
# any other failure, or the same one three times, fails the test.
_PEER_RACES = {"cancel_after_begin": "got error code 0, want 1"}


def _run(cmd, server, name):
    assert server.alive(), f"the server died earlier:\n{server.log()[-3000:]}"
    race = next((text for case, text in _PEER_RACES.items()
                 if name.startswith("grpc-go-client") and name.endswith(case)), None)
    for _ in range(3):
        passed, detail = harness.run_client(cmd, CASE_TIMEOUT,
                                            os.path.join(LOGS, f"{name}.log"))
        if passed or race is None or race not in detail:
            break
    assert passed, f"{' '.join(cmd)}\n{detail}\n--- server log tail ---\n{server.log()[-2000:]}"
    assert server.alive(), f"the server died during the case:\n{server.log()[-3000:]}"


@pytest.mark.parametrize("case", harness.FAST_CASES)
def test_grpc_go_client_to_our_server(case, go_interop, our_server):
    _run(harness.go_client(go_interop[0], our_server.port, case, False),
         our_server, f"grpc-go-client-{case}")


@pytest.mark.parametrize("case", harness.FAST_CASES)
def test_our_client_to_grpc_go_server(case, go_server):
    _run(harness.python_client(sys.executable, go_server.port, case, False),
         go_server, f"grpcgo-client-{case}")


@pytest.mark.parametrize("case", harness.FAST_CASES)
def test_our_aio_client_to_grpc_go_server(case, go_server):
    _run(harness.python_aio_client(sys.executable, go_server.port, case, False),
         go_server, f"grpcgo-aio-client-{case}")


@pytest.fixture(scope="module")
def grpcio_server(grpcio_python):
    """interop/server.py on grpcio, plaintext."""
    server = _server(lambda port: harness.python_server(grpcio_python, port, False),
                     "grpcio-server")
    yield server
    server.stop()


@pytest.mark.parametrize("case", ["server_compressed_unary"])
def test_our_client_to_grpc_go_server_compressed(case, go_server):
    # grpc-go's server has no gzip decompressor registered: it cannot take
    # client_compressed_unary (docs/INTEROP.md).
    _run(harness.python_client(sys.executable, go_server.port, case, False),
         go_server, f"grpcgo-client-{case}")


@pytest.mark.parametrize("case", harness.COMPRESSION_CASES)
def test_our_client_to_grpcio_server_compressed(case, grpcio_server):
    _run(harness.python_client(sys.executable, grpcio_server.port, case, False),
         grpcio_server, f"grpcgo-client-grpcio-{case}")


@pytest.mark.parametrize("case", harness.COMPRESSION_CASES)
def test_grpcio_client_to_our_server_compressed(case, grpcio_python, our_server):
    _run(harness.python_client(grpcio_python, our_server.port, case, False),
         our_server, f"grpcio-client-{case}")


@pytest.mark.parametrize("case", harness.FAST_CASES)
def test_grpc_go_client_to_our_aio_server(case, go_interop, our_aio_server):
    _run(harness.go_client(go_interop[0], our_aio_server.port, case, False),
         our_aio_server, f"grpc-go-client-aio-{case}")


def test_our_aio_server_stops_on_sigterm(our_aio_server):
    assert our_aio_server.stop() == 0, our_aio_server.log()[-3000:]


def test_our_server_stops_on_sigterm(our_server):
    # Last in the module: the server we started must end by itself on SIGTERM.
    assert our_server.stop() == 0, our_server.log()[-3000:]
