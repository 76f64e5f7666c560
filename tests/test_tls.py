"""TLS and mutual TLS between grpc channels and servers, over loopback.

Certificates come from a throwaway CA made at test time (tests/certs.py).
The expectations are grpcio 1.85's observed behaviour: run this file against
grpcio with GRPCGO_TEST_ALLOW_GRPCIO=1 to check them. Where grpcio and
crypto/tls word a failure differently, the test accepts either wording but
insists the message says why (hostname, unknown CA, expiry).
"""

import logging
import re
import threading

import pytest

import grpc

import certs
from certs import CALL_TIMEOUT, STREAM, failure, serving, unary

LOCAL = "127.0.0.1:0"

# Why a handshake failed, in grpcio's words | in crypto/x509's words.
HOSTNAME_MISMATCH = re.compile(
    r"Hostname Verification Check failed"
    r"|certificate is valid for .*, not "
    r"|cannot validate certificate for .* because it doesn't contain any IP SANs"
)
UNKNOWN_CA = re.compile(
    r"unable to get local issuer certificate|certificate signed by unknown authority"
)
EXPIRED = re.compile(r"certificate has expired")

SERVER_TLS_KEYS = {
    "transport_security_type", "security_level", "ssl_session_reused",
    "ssl_tls_version", "ssl_negotiated_key_exchange_group",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


def server_tls(pki, pair=None, client_roots=None, require_client_auth=False):
    pair = pair or pki.server
    return grpc.ssl_server_credentials([(pair.key, pair.cert)], client_roots, require_client_auth)


def trust(pki, ca=None, client=None):
    ca = ca or pki.ca
    if client is None:
        return grpc.ssl_channel_credentials(ca.cert)
    return grpc.ssl_channel_credentials(ca.cert, client.key, client.cert)


def check_unavailable(error, why=None):
    assert error.code() is grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    if why is not None:
        assert why.search(error.details() or ""), error.details()


# -- TLS -----------------------------------------------------------------------
def test_tls_unary_and_auth_context(pki):
    with serving((LOCAL, server_tls(pki))) as (rec, [port]):
        assert unary(f"127.0.0.1:{port}", trust(pki), request=b"\x00tls\xff") == b"\x00tls\xff"
        seen = rec.last
    # No client certificate: no identity; no SNI either (the target is an IP).
    assert set(seen.auth_context) == SERVER_TLS_KEYS
    assert seen.auth_context["transport_security_type"] == [b"ssl"]
    assert seen.auth_context["security_level"] == [b"TSI_PRIVACY_AND_INTEGRITY"]
    assert seen.auth_context["ssl_session_reused"] == [b"false"]
    assert seen.auth_context["ssl_tls_version"][0] in (b"TLSv1.2", b"TLSv1.3")
    assert seen.peer_identities is None
    assert seen.peer_identity_key is None
    assert seen.peer.startswith("ipv4:127.0.0.1:")


def test_tls_by_host_name_sends_sni(pki):
    with serving(("localhost:0", server_tls(pki))) as (rec, [port]):
        assert unary(f"localhost:{port}", trust(pki)) == b"ping"
        assert rec.last.auth_context["ssl_requested_server_name"] == [b"localhost"]


def test_tls_stream_and_reuse_of_connection(pki):
    with serving((LOCAL, server_tls(pki))) as (rec, [port]):
        with grpc.secure_channel(f"127.0.0.1:{port}", trust(pki)) as channel:
            stream = channel.stream_stream(STREAM)
            requests = [b"a", b"\x00" * 70000, b"c"]
            assert list(stream(iter(requests), timeout=CALL_TIMEOUT)) == requests
            call = channel.unary_unary(certs.UNARY)
            for i in range(3):
                assert call(b"%d" % i, timeout=CALL_TIMEOUT) == b"%d" % i
            assert channel.unary_unary(certs.UNARY).future(b"f", timeout=CALL_TIMEOUT).result() == b"f"
        assert rec.count() == 5


def test_plaintext_and_tls_do_not_mix(pki):
    with serving((LOCAL, None), (LOCAL, server_tls(pki))) as (rec, [plain, tls]):
        check_unavailable(failure(f"127.0.0.1:{plain}", trust(pki)))
        check_unavailable(failure(f"127.0.0.1:{tls}", None))
        assert rec.count() == 0


# -- failures that say why -----------------------------------------------------
def test_hostname_mismatch_is_unavailable(pki):
    with serving((LOCAL, server_tls(pki, pki.wrong_host))) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", trust(pki)), HOSTNAME_MISMATCH)
        assert rec.count() == 0


def test_unknown_ca_is_unavailable(pki):
    with serving((LOCAL, server_tls(pki, pki.other_server))) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", trust(pki)), UNKNOWN_CA)
        assert rec.count() == 0


def test_expired_certificate_is_unavailable(pki):
    with serving((LOCAL, server_tls(pki, pki.expired))) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", trust(pki)), EXPIRED)
        assert rec.count() == 0


def test_default_roots_do_not_trust_the_test_ca(pki):
    # root_certificates=None: the runtime's default roots, which do not hold
    # our throwaway CA.
    with serving((LOCAL, server_tls(pki))) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", grpc.ssl_channel_credentials()), UNKNOWN_CA)


def test_unusable_root_pem_fails_calls_not_creation(pki):
    # grpcio accepts any bytes here; connection attempts then fail.
    credentials = grpc.ssl_channel_credentials(b"not a certificate")
    assert isinstance(credentials, grpc.ChannelCredentials)
    with serving((LOCAL, server_tls(pki))) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", credentials))
        assert rec.count() == 0


def test_unusable_client_key_pem_fails_calls_not_creation(pki):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert, b"junk key", b"junk chain")
    with serving((LOCAL, server_tls(pki))) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", credentials))
        assert rec.count() == 0


# -- server name override and default authority -------------------------------
def test_ssl_target_name_override(pki):
    with serving((LOCAL, server_tls(pki, pki.override))) as (rec, [port]):
        target = f"127.0.0.1:{port}"
        check_unavailable(failure(target, trust(pki)), HOSTNAME_MISMATCH)
        options = [("grpc.ssl_target_name_override", "foo.test.example")]
        assert unary(target, trust(pki), options) == b"ping"
        assert rec.last.auth_context["ssl_requested_server_name"] == [b"foo.test.example"]
        wrong = [("grpc.ssl_target_name_override", "nope.example")]
        check_unavailable(failure(target, trust(pki), wrong), HOSTNAME_MISMATCH)


def test_default_authority_is_the_name_checked(pki):
    with serving((LOCAL, server_tls(pki, pki.override))) as (rec, [port]):
        options = [("grpc.default_authority", "foo.test.example")]
        assert unary(f"127.0.0.1:{port}", trust(pki), options) == b"ping"


def test_default_authority_with_ssl_target_name_override(pki):
    # grpcio: the override names the certificate, the default authority
    # stays the :authority; both may differ. Here: the handshake takes the
    # override. A Python handler cannot see the :authority or the server
    # name the client sent: test_gopeer_features.py checks both with
    # grpc-go's server (test_authority_and_server_name_grpc_go_sees).
    with serving((LOCAL, server_tls(pki, pki.override))) as (rec, [port]):
        options = [("grpc.default_authority", "other.example"),
                   ("grpc.ssl_target_name_override", "foo.test.example")]
        assert unary(f"127.0.0.1:{port}", trust(pki), options) == b"ping"


# -- mutual TLS ----------------------------------------------------------------
def test_mtls_identity_is_the_common_name(pki):
    creds = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=True)
    with serving((LOCAL, creds)) as (rec, [port]):
        assert unary(f"127.0.0.1:{port}", trust(pki, client=pki.client)) == b"ping"
        seen = rec.last
    assert list(seen.auth_context) == [
        "transport_security_type", "x509_subject", "x509_common_name", "x509_pem_cert",
        "security_level", "ssl_session_reused", "ssl_tls_version",
        "ssl_negotiated_key_exchange_group",
    ]
    ctx = seen.auth_context
    assert ctx["transport_security_type"] == [b"ssl"]
    assert ctx["x509_subject"] == [b"CN=grpcgo-client,O=grpcgo tests"]
    assert ctx["x509_common_name"] == [b"grpcgo-client"]
    assert ctx["x509_pem_cert"] == [pki.client.cert]
    assert ctx["security_level"] == [b"TSI_PRIVACY_AND_INTEGRITY"]
    assert seen.peer_identity_key == "x509_common_name"
    assert seen.peer_identities == [b"grpcgo-client"]


def test_mtls_identity_is_the_subject_alternative_names(pki):
    creds = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=True)
    with serving((LOCAL, creds)) as (rec, [port]):
        assert unary(f"127.0.0.1:{port}", trust(pki, client=pki.client_sans)) == b"ping"
        seen = rec.last
    sans = [b"client.example", b"spiffe://grpcgo.test/client", b"127.0.0.1"]
    assert list(seen.auth_context) == [
        "transport_security_type", "x509_subject", "x509_common_name", "x509_pem_cert",
        "x509_subject_alternative_name", "peer_dns", "peer_uri", "peer_ip",
        "security_level", "ssl_session_reused", "ssl_tls_version",
        "ssl_negotiated_key_exchange_group", "peer_spiffe_id",
    ]
    ctx = seen.auth_context
    assert ctx["x509_subject_alternative_name"] == sans
    assert ctx["x509_common_name"] == [b"grpcgo-client-sans"]
    assert ctx["peer_dns"] == [b"client.example"]
    assert ctx["peer_uri"] == [b"spiffe://grpcgo.test/client"]
    assert ctx["peer_ip"] == [b"127.0.0.1"]
    assert ctx["peer_spiffe_id"] == [b"spiffe://grpcgo.test/client"]
    assert ctx["x509_pem_cert"] == [pki.client_sans.cert]
    assert seen.peer_identity_key == "x509_subject_alternative_name"
    assert seen.peer_identities == sans


def test_mtls_client_without_certificate_is_rejected(pki):
    creds = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=True)
    with serving((LOCAL, creds)) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", trust(pki)))
        assert rec.count() == 0


def test_mtls_client_certificate_from_another_ca_is_rejected(pki):
    creds = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=True)
    with serving((LOCAL, creds)) as (rec, [port]):
        check_unavailable(failure(f"127.0.0.1:{port}", trust(pki, client=pki.other_client)))
        assert rec.count() == 0


def test_client_certificate_not_requested_unless_required(pki):
    # grpcio does not even ask for a client certificate when client auth is
    # not required, roots or not: no identity, any client gets in.
    creds = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=False)
    with serving((LOCAL, creds)) as (rec, [port]):
        for client in (None, pki.client, pki.other_client):
            assert unary(f"127.0.0.1:{port}", trust(pki, client=client)) == b"ping"
            assert rec.last.peer_identity_key is None
            assert rec.last.peer_identities is None
            assert "x509_common_name" not in rec.last.auth_context


# -- server credentials arguments -------------------------------------------------
def test_ssl_server_credentials_value_errors(pki):
    with pytest.raises(ValueError) as error:
        grpc.ssl_server_credentials([])
    assert str(error.value) == "At least one private key-certificate chain pair is required!"
    with pytest.raises(ValueError) as error:
        grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)], None, True)
    assert str(error.value) == (
        "Illegal to require client auth without providing root certificates!")
    with pytest.raises(ValueError) as error:
        grpc.ssl_server_certificate_configuration([])
    assert str(error.value) == "At least one private key-certificate chain pair is required!"


def test_unusable_server_pem_fails_add_secure_port(pki):
    # grpcio accepts the bytes; binding the port fails.
    credentials = grpc.ssl_server_credentials([(b"junk key", b"junk chain")])
    assert isinstance(credentials, grpc.ServerCredentials)
    server = grpc.server(certs.futures.ThreadPoolExecutor(max_workers=1))
    try:
        with pytest.raises(RuntimeError, match="Failed to bind to address"):
            server.add_secure_port(LOCAL, credentials)
    finally:
        server.stop(None)


def test_insecure_server_credentials(pki):
    with serving((LOCAL, grpc.insecure_server_credentials())) as (rec, [port]):
        assert unary(f"127.0.0.1:{port}", None) == b"ping"
        assert rec.last.auth_context == {
            "transport_security_type": [b"insecure"],
            "security_level": [b"TSI_SECURITY_NONE"],
        }
        assert rec.last.peer_identity_key is None
        check_unavailable(failure(f"127.0.0.1:{port}", trust(pki)))


def test_ports_with_different_credentials(pki):
    mtls = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=True)
    with serving((LOCAL, None), (LOCAL, server_tls(pki)), (LOCAL, mtls)) as (rec, ports):
        plain, tls, mutual = (f"127.0.0.1:{p}" for p in ports)
        assert unary(plain, None) == b"ping"
        assert rec.last.auth_context["transport_security_type"] == [b"insecure"]
        assert unary(tls, trust(pki)) == b"ping"
        assert rec.last.auth_context["transport_security_type"] == [b"ssl"]
        assert rec.last.peer_identity_key is None
        assert unary(mutual, trust(pki, client=pki.client)) == b"ping"
        assert rec.last.peer_identities == [b"grpcgo-client"]
        check_unavailable(failure(plain, trust(pki)))
        check_unavailable(failure(tls, None))
        check_unavailable(failure(mutual, trust(pki)))


def test_xds_credentials_use_their_fallback(pki):
    server_creds = grpc.xds_server_credentials(server_tls(pki))
    with serving((LOCAL, server_creds)) as (rec, [port]):
        channel_creds = grpc.xds_channel_credentials(trust(pki))
        assert unary(f"127.0.0.1:{port}", channel_creds) == b"ping"
        assert rec.last.auth_context["transport_security_type"] == [b"ssl"]


# -- dynamic certificates ----------------------------------------------------------
class Fetcher:
    """A certificate configuration fetcher the test steers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = 0
        self.next = None  # returned once, then None again
        self.error = None  # raised while set

    def __call__(self):
        with self.lock:
            self.calls += 1
            if self.error is not None:
                raise self.error
            config, self.next = self.next, None
            return config

    def count(self):
        with self.lock:
            return self.calls


def config(pair, client_roots=None):
    return grpc.ssl_server_certificate_configuration([(pair.key, pair.cert)], client_roots)


def test_dynamic_fetcher_runs_before_each_new_handshake(pki):
    fetcher = Fetcher()
    creds = grpc.dynamic_ssl_server_credentials(config(pki.server), fetcher)
    assert fetcher.count() == 0
    with serving((LOCAL, creds)) as (rec, [port]):
        assert fetcher.count() == 0  # not at bind or start: at handshakes
        target = f"127.0.0.1:{port}"
        with grpc.secure_channel(target, trust(pki)) as channel:
            call = channel.unary_unary(certs.UNARY)
            assert call(b"1", timeout=CALL_TIMEOUT) == b"1"
            after_first = fetcher.count()
            assert after_first >= 1
            for i in range(3):  # same connection: no new handshake
                assert call(b"again", timeout=CALL_TIMEOUT) == b"again"
            assert fetcher.count() == after_first
        for i in range(2):  # new channels, new connections, new handshakes
            before = fetcher.count()
            assert unary(target, trust(pki)) == b"ping"
            assert fetcher.count() > before


def test_dynamic_rotation_mid_run(pki):
    fetcher = Fetcher()
    creds = grpc.dynamic_ssl_server_credentials(config(pki.server), fetcher)
    with serving((LOCAL, creds)) as (rec, [port]):
        target = f"127.0.0.1:{port}"
        old_ca, new_ca = trust(pki), trust(pki, ca=pki.other_ca)
        check_unavailable(failure(target, new_ca), UNKNOWN_CA)
        with grpc.secure_channel(target, old_ca) as kept:
            assert kept.unary_unary(certs.UNARY)(b"k", timeout=CALL_TIMEOUT) == b"k"
            fetcher.next = config(pki.other_server)
            # New connections see the new certificate...
            assert unary(target, new_ca) == b"ping"
            check_unavailable(failure(target, old_ca), UNKNOWN_CA)
            assert unary(target, new_ca) == b"ping"
            # ...while a connection made before the rotation carries on.
            assert kept.unary_unary(certs.UNARY)(b"k2", timeout=CALL_TIMEOUT) == b"k2"


def test_dynamic_rotation_of_client_roots(pki):
    fetcher = Fetcher()
    creds = grpc.dynamic_ssl_server_credentials(
        config(pki.server, pki.ca.cert), fetcher, require_client_authentication=True)
    with serving((LOCAL, creds)) as (rec, [port]):
        target = f"127.0.0.1:{port}"
        check_unavailable(failure(target, trust(pki)))  # no client certificate
        assert unary(target, trust(pki, client=pki.client)) == b"ping"
        assert rec.last.peer_identities == [b"grpcgo-client"]
        check_unavailable(failure(target, trust(pki, client=pki.other_client)))
        fetcher.next = config(pki.server, pki.other_ca.cert)
        assert unary(target, trust(pki, client=pki.other_client)) == b"ping"
        check_unavailable(failure(target, trust(pki, client=pki.client)))


def test_dynamic_fetcher_exception_keeps_certificate_and_is_logged(pki, caplog):
    fetcher = Fetcher()
    creds = grpc.dynamic_ssl_server_credentials(config(pki.server), fetcher)
    with serving((LOCAL, creds)) as (rec, [port]):
        target = f"127.0.0.1:{port}"
        fetcher.error = RuntimeError("fetcher broke")
        with caplog.at_level(logging.ERROR):
            assert unary(target, trust(pki)) == b"ping"
        assert fetcher.count() >= 1
        logged = [r for r in caplog.records
                  if r.levelno >= logging.ERROR and r.exc_info and r.exc_info[1] is fetcher.error]
        assert logged, [r.getMessage() for r in caplog.records]
        check_unavailable(failure(target, trust(pki, ca=pki.other_ca)), UNKNOWN_CA)
        # Once the fetcher recovers, rotation works again.
        fetcher.error = None
        fetcher.next = config(pki.other_server)
        assert unary(target, trust(pki, ca=pki.other_ca)) == b"ping"


def test_dynamic_fetcher_bad_return_keeps_certificate_and_is_logged(pki, caplog):
    fetcher = Fetcher()
    creds = grpc.dynamic_ssl_server_credentials(config(pki.server), fetcher)
    with serving((LOCAL, creds)) as (rec, [port]):
        fetcher.next = "not a certificate configuration"
        with caplog.at_level(logging.ERROR):
            assert unary(f"127.0.0.1:{port}", trust(pki)) == b"ping"
        assert [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_dynamic_initial_configuration_must_be_one(pki):
    with pytest.raises(TypeError):
        grpc.dynamic_ssl_server_credentials(None, lambda: None)
