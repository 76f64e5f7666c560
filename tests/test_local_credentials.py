"""Local credentials (UDS and LOCAL_TCP) carrying call credentials, and what
can be tested here of ALTS and compute-engine credentials (no Google Cloud,
no ALTS handshaker: creation, and calls failing clearly and at once).

The expectations are grpcio 1.85's observed behaviour: run this file against
grpcio with GRPCGO_TEST_ALLOW_GRPCIO=1 to check them. Nothing here dials a
non-loopback address.
"""

import os

import pytest

import grpc

import certs
from certs import CALL_TIMEOUT, UNARY, failure, serving, unary

UDS = grpc.LocalConnectionType.UDS
LOCAL_TCP = grpc.LocalConnectionType.LOCAL_TCP

LOCAL_AUTH = {
    "transport_security_type": [b"local"],
    "security_level": [b"TSI_PRIVACY_AND_INTEGRITY"],
}


def on_google_cloud():
    try:
        with open("/sys/class/dmi/id/product_name") as f:
            return "Google" in f.read()
    except OSError:
        return False


@pytest.fixture
def socket_path(tmp_path):
    path = str(tmp_path / "sock")
    if len(path) > 100:  # sun_path is short
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="gg"), "sock")
    return path


def local(kind, *call_credentials):
    creds = grpc.local_channel_credentials(kind)
    if call_credentials:
        creds = grpc.composite_channel_credentials(creds, *call_credentials)
    return creds


def check_local_peer(seen):
    assert seen.auth_context == LOCAL_AUTH
    assert seen.peer_identity_key == "transport_security_type"
    assert seen.peer_identities == [b"local"]


def test_local_uds_carries_call_credentials(socket_path):
    address = "unix:" + socket_path
    with serving((address, grpc.local_server_credentials(UDS))) as (rec, [port]):
        token = grpc.access_token_call_credentials("over-uds")
        assert unary(address, local(UDS, token)) == b"ping"
        check_local_peer(rec.last)
        assert rec.values("authorization") == ["Bearer over-uds"]
        assert rec.last.peer.startswith("unix:")


def test_local_tcp_carries_call_credentials():
    with serving(("127.0.0.1:0", grpc.local_server_credentials(LOCAL_TCP))) as (rec, [port]):
        token = grpc.access_token_call_credentials("over-tcp")
        assert unary(f"127.0.0.1:{port}", local(LOCAL_TCP, token)) == b"ping"
        check_local_peer(rec.last)
        assert rec.values("authorization") == ["Bearer over-tcp"]
        assert rec.last.peer.startswith("ipv4:127.0.0.1:")


def test_local_tcp_is_the_default_kind():
    with serving(("127.0.0.1:0", grpc.local_server_credentials())) as (rec, [port]):
        creds = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(), grpc.access_token_call_credentials("default"))
        assert unary(f"127.0.0.1:{port}", creds) == b"ping"
        check_local_peer(rec.last)


def test_local_channel_per_call_and_plugin_credentials(socket_path):
    address = "unix:" + socket_path
    seen = []

    def plugin(context, callback):
        seen.append((context.service_url, context.method_name))
        callback((("x-local-plugin", "yes"),), None)

    with serving((address, grpc.local_server_credentials(UDS))) as (rec, [port]):
        with grpc.secure_channel(address, local(UDS)) as channel:
            call = channel.unary_unary(UNARY)
            creds = grpc.metadata_call_credentials(plugin)
            assert call(b"p", timeout=CALL_TIMEOUT, credentials=creds) == b"p"
        assert rec.values("x-local-plugin") == ["yes"]
        assert [m for _, m in seen] == ["Unary"]


def test_local_uds_credentials_refuse_tcp():
    with serving(("127.0.0.1:0", grpc.local_server_credentials(LOCAL_TCP))) as (rec, [port]):
        error = failure(f"127.0.0.1:{port}", local(UDS))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert rec.count() == 0


def test_local_tcp_credentials_refuse_uds(socket_path):
    address = "unix:" + socket_path
    with serving((address, grpc.local_server_credentials(UDS))) as (rec, [port]):
        error = failure(address, local(LOCAL_TCP))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert rec.count() == 0


def test_local_server_with_local_and_tls_ports(tmp_path, socket_path):
    pki = certs.make_pki(tmp_path / "pki")
    tls = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])
    address = "unix:" + socket_path
    with serving((address, grpc.local_server_credentials(UDS)), ("127.0.0.1:0", tls)) as (
            rec, [_, tls_port]):
        assert unary(address, local(UDS)) == b"ping"
        check_local_peer(rec.last)
        assert unary(f"127.0.0.1:{tls_port}", grpc.ssl_channel_credentials(pki.ca.cert)) == b"ping"
        assert rec.last.auth_context["transport_security_type"] == [b"ssl"]


# -- ALTS and compute engine: no Google Cloud here -------------------------------
no_gcp = pytest.mark.skipif(on_google_cloud(), reason="on Google Cloud ALTS would really dial "
                            "the metadata server's handshaker, which these tests must not do")


def test_alts_and_compute_engine_credentials_can_be_created():
    assert isinstance(grpc.alts_channel_credentials(), grpc.ChannelCredentials)
    assert isinstance(grpc.alts_channel_credentials(["sa@example.iam.gserviceaccount.com"]),
                      grpc.ChannelCredentials)
    assert isinstance(grpc.alts_server_credentials(), grpc.ServerCredentials)
    creds = grpc.compute_engine_channel_credentials(grpc.access_token_call_credentials("t"))
    assert isinstance(creds, grpc.ChannelCredentials)


@no_gcp
def test_alts_call_fails_at_once_without_a_handshaker():
    # A loopback plaintext server: the call must fail before any handshake
    # could reach out anywhere. grpcio cannot build ALTS credentials off
    # Google Cloud and fails the call INTERNAL, with or without
    # wait_for_ready.
    with serving(("127.0.0.1:0", None)) as (rec, [port]):
        for wait in (False, True):
            error = failure(f"127.0.0.1:{port}", grpc.alts_channel_credentials(),
                            wait_for_ready=wait, timeout=5)
            assert error.code() is grpc.StatusCode.INTERNAL, (error.code(), error.details())
            assert error.details()
        assert rec.count() == 0


@no_gcp
def test_alts_server_port_cannot_be_bound_without_a_handshaker():
    server = grpc.server(certs.futures.ThreadPoolExecutor(max_workers=1))
    try:
        with pytest.raises(RuntimeError, match="Failed to bind to address"):
            server.add_secure_port("127.0.0.1:0", grpc.alts_server_credentials())
    finally:
        server.stop(None)


@no_gcp
def test_compute_engine_credentials_are_tls_with_default_roots(tmp_path):
    # Off Google Cloud these are TLS with the default roots plus the call
    # credentials: a loopback server with a throwaway CA is not trusted,
    # and a plaintext one does not speak TLS.
    pki = certs.make_pki(tmp_path / "pki")
    tls = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])
    with serving(("127.0.0.1:0", tls), ("127.0.0.1:0", None)) as (rec, [tls_port, plain]):
        for port in (tls_port, plain):
            # Fresh credentials per channel: grpcio 1.85 crashes (SIGSEGV at
            # shutdown) when one compute-engine credentials object serves two
            # channels.
            creds = grpc.compute_engine_channel_credentials(grpc.access_token_call_credentials("t"))
            error = failure(f"127.0.0.1:{port}", creds)
            assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert rec.count() == 0
