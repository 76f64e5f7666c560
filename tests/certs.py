"""Throwaway certificates for the security tests, made at test time, and
the small service those tests call.

Everything is generated with the `openssl` command-line tool into a
directory the caller owns (a pytest tmp dir): a CA, certificates it signs
(server, client, wrong host name, expired) and a second, unrelated CA.
Keys are ECDSA P-256 (fast to make). Every openssl run is bounded in time.

    pki = certs.make_pki(tmp_path)
    pki.ca.cert          # PEM bytes of the test CA
    pki.server.key, pki.server.cert
    pki.client.key, pki.client.cert
    ...

Expired certificates use `openssl ca` with an explicit -startdate/-enddate
in the past: OpenSSL 3.0's `x509 -req` accepts no negative -days below -1
and has no -not_before/-not_after (those arrived in 3.4).
"""

import contextlib
import os
import shutil
import subprocess
import threading
import types
from concurrent import futures

OPENSSL_TIMEOUT = 30  # seconds per openssl run

SERVER_SANS = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


class CertError(RuntimeError):
    """openssl is missing or failed."""


def _openssl(args, cwd):
    exe = shutil.which("openssl") or "/usr/bin/openssl"
    try:
        proc = subprocess.run([exe] + list(args), cwd=cwd, capture_output=True, text=True,
                              timeout=OPENSSL_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError as error:
        raise CertError(f"the openssl CLI is not installed: {error}") from error
    except subprocess.TimeoutExpired as error:
        raise CertError(f"openssl {' '.join(args)} took over {OPENSSL_TIMEOUT} s") from error
    if proc.returncode != 0:
        raise CertError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n"
                        f"{proc.stdout}{proc.stderr}")
    return proc


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class _Maker:
    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.serial = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", name + ".key"], self.dir)

    def ca(self, name, common_name):
        """A self-signed CA certificate."""
        self._key(name)
        _openssl(["req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem",
                  "-days", "2", "-subj", "/O=grpcgo tests/CN=" + common_name,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                  "-addext", "subjectKeyIdentifier=hash"], self.dir)
        # An `openssl ca` database, for certificates with explicit dates.
        db = self.path(name + "-db")
        os.makedirs(db, exist_ok=True)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.path(name + "-ca.cnf"), "w") as f:
            f.write(
                "[ ca ]\ndefault_ca = this\n"
                "[ this ]\n"
                f"database = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\n"
                "default_md = sha256\npolicy = anything\nunique_subject = no\n"
                "[ anything ]\norganizationName = optional\ncommonName = supplied\n"
            )
        return self.pair(name)

    def leaf(self, name, ca, common_name, sans=(), usage="serverAuth,clientAuth",
             startdate=None, enddate=None):
        """A certificate for common_name signed by the CA named ca."""
        self._key(name)
        _openssl(["req", "-new", "-key", name + ".key", "-out", name + ".csr",
                  "-subj", "/O=grpcgo tests/CN=" + common_name], self.dir)
        ext = [
            "[ leaf ]",
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage = " + usage,
            "authorityKeyIdentifier = keyid",
        ]
        if sans:
            ext.append("subjectAltName = " + ",".join(sans))
        with open(self.path(name + ".ext"), "w") as f:
            f.write("\n".join(ext) + "\n")
        args = ["ca", "-batch", "-notext", "-config", ca + "-ca.cnf",
                "-cert", ca + ".pem", "-keyfile", ca + ".key",
                "-in", name + ".csr", "-out", name + ".pem",
                "-extfile", name + ".ext", "-extensions", "leaf"]
        if startdate is None:
            args += ["-days", "2"]
        else:
            args += ["-startdate", startdate, "-enddate", enddate]
        _openssl(args, self.dir)
        return self.pair(name)

    def pair(self, name):
        return types.SimpleNamespace(
            key=_read(self.path(name + ".key")),
            cert=_read(self.path(name + ".pem")),
            key_path=self.path(name + ".key"),
            cert_path=self.path(name + ".pem"),
        )


def make_pki(directory):
    """Makes the whole set in directory; returns a namespace of key/cert pairs.

    ca           the test CA ("grpcgo test CA")
    server       CN=localhost, SANs localhost, 127.0.0.1, ::1; signed by ca
    override     CN=foo.test.example, SAN foo.test.example; signed by ca
    wrong_host   CN=wrong.example, SAN wrong.example; signed by ca
    expired      like server, valid only in January 2020; signed by ca
    client       CN=grpcgo-client, no SANs; signed by ca
    client_sans  CN=grpcgo-client-sans, SANs client.example, spiffe URI,
                 127.0.0.1; signed by ca
    other_ca     an unrelated CA ("grpcgo other CA")
    other_server like server, signed by other_ca
    other_client like client, signed by other_ca
    """
    m = _Maker(directory)
    pki = types.SimpleNamespace(dir=m.dir)
    pki.ca = m.ca("ca", "grpcgo test CA")
    pki.server = m.leaf("server", "ca", "localhost", SERVER_SANS)
    pki.override = m.leaf("override", "ca", "foo.test.example", ("DNS:foo.test.example",))
    pki.wrong_host = m.leaf("wrong_host", "ca", "wrong.example", ("DNS:wrong.example",))
    pki.expired = m.leaf("expired", "ca", "localhost", SERVER_SANS,
                         startdate="20200101000000Z", enddate="20200201000000Z")
    pki.client = m.leaf("client", "ca", "grpcgo-client", usage="clientAuth")
    pki.client_sans = m.leaf(
        "client_sans", "ca", "grpcgo-client-sans",
        ("DNS:client.example", "URI:spiffe://grpcgo.test/client", "IP:127.0.0.1"),
        usage="clientAuth")
    pki.other_ca = m.ca("other_ca", "grpcgo other CA")
    pki.other_server = m.leaf("other_server", "other_ca", "localhost", SERVER_SANS)
    pki.other_client = m.leaf("other_client", "other_ca", "grpcgo-client", usage="clientAuth")
    return pki


# -- a small service for the security tests ---------------------------------
#
# grpcgo.sec.Sec: Unary echoes its request; Stream echoes each request.
# Every call records what the servicer context says about its peer.

SERVICE = "grpcgo.sec.Sec"
UNARY = "/grpcgo.sec.Sec/Unary"
STREAM = "/grpcgo.sec.Sec/Stream"
CALL_TIMEOUT = 10  # seconds: every RPC in the security tests is bounded
STOP_TIMEOUT = 10


class Recorder:
    """What the server saw, call by call."""

    def __init__(self):
        self._lock = threading.Lock()
        self.calls = []

    def record(self, context):
        seen = types.SimpleNamespace(
            auth_context=context.auth_context(),
            peer_identities=context.peer_identities(),
            peer_identity_key=context.peer_identity_key(),
            metadata=tuple((k, v) for k, v in context.invocation_metadata()),
            peer=context.peer(),
        )
        with self._lock:
            self.calls.append(seen)

    @property
    def last(self):
        with self._lock:
            assert self.calls, "the server saw no call"
            return self.calls[-1]

    def count(self):
        with self._lock:
            return len(self.calls)

    def values(self, key):
        """The last call's values for a metadata key, in order."""
        return [v for k, v in self.last.metadata if k == key]


def _handler(recorder):
    import grpc

    def unary(request, context):
        recorder.record(context)
        return request

    def stream(requests, context):
        recorder.record(context)
        for request in requests:
            yield request

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
    })


@contextlib.contextmanager
def serving(*ports):
    """Runs a grpc.server with the Sec service on the given ports.

    Each port is (address, ServerCredentials or None for add_insecure_port).
    Yields (recorder, [bound port, ...]); stops the server afterwards.
    """
    import grpc

    recorder = Recorder()
    executor = futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(executor)
    server.add_generic_rpc_handlers((_handler(recorder),))
    try:
        bound = []
        for address, credentials in ports:
            if credentials is None:
                bound.append(server.add_insecure_port(address))
            else:
                bound.append(server.add_secure_port(address, credentials))
        server.start()
        yield recorder, bound
    finally:
        server.stop(None).wait(STOP_TIMEOUT)
        executor.shutdown(wait=False)


def unary(target, channel_credentials=None, options=None, request=b"ping", **kwargs):
    """One bounded Unary call on a fresh channel (insecure when
    channel_credentials is None). Returns the response, or raises the
    grpc.RpcError."""
    import grpc

    if channel_credentials is None:
        channel = grpc.insecure_channel(target, options)
    else:
        channel = grpc.secure_channel(target, channel_credentials, options)
    with channel:
        kwargs.setdefault("timeout", CALL_TIMEOUT)
        return channel.unary_unary(UNARY)(request, **kwargs)


def failure(target, channel_credentials=None, options=None, **kwargs):
    """Makes the call of unary() that must fail; returns its grpc.RpcError."""
    import grpc

    try:
        response = unary(target, channel_credentials, options, **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"the call to {target} succeeded ({response!r}); it must fail")
