"""Call credentials: metadata plugins, access tokens, composites, per-call
credentials, and their refusal on insecure channels, over loopback TLS.

The expectations are grpcio 1.85's observed behaviour: run this file against
grpcio with GRPCGO_TEST_ALLOW_GRPCIO=1 to check them.
"""

import logging
import threading

import pytest

import grpc

import certs
from certs import CALL_TIMEOUT, STREAM, UNARY, failure, serving, unary

INSUFFICIENT = ("Established channel does not have a sufficient security level to "
                "transfer call credential.")
PLUGIN_FAILED = "Getting metadata from plugin failed with error: "


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki):
    """A TLS server on localhost and a plaintext one; yields (recorder,
    tls port, plaintext port)."""
    tls = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])
    with serving(("localhost:0", tls), ("127.0.0.1:0", None)) as (rec, [port, plain]):
        yield rec, port, plain


@pytest.fixture
def server(tls_server):
    rec, port, plain = tls_server
    before = rec.count()
    return rec, port, plain, lambda: rec.count() - before


def tls(pki, *call_credentials):
    channel = grpc.ssl_channel_credentials(pki.ca.cert)
    if call_credentials:
        channel = grpc.composite_channel_credentials(channel, *call_credentials)
    return channel


class Plugin(grpc.AuthMetadataPlugin):
    """Answers with fixed metadata, or with an error, or later, or never."""

    def __init__(self, metadata=(("x-plugin", "v1"),), error=None, delay=None, answer=True):
        self.metadata = metadata
        self.error = error
        self.delay = delay
        self.answer = answer
        self.contexts = []
        self.threads = []
        self.callback_results = []
        self.answered = threading.Event()

    def __call__(self, context, callback):
        self.contexts.append(context)
        self.threads.append(threading.current_thread())
        if not self.answer:
            return

        def respond():
            callback(self.metadata if self.error is None else None, self.error)
            self.answered.set()

        if self.delay is None:
            respond()
        else:
            threading.Timer(self.delay, respond).start()


# -- metadata plugins ------------------------------------------------------------
def test_plugin_metadata_reaches_the_server(pki, server):
    rec, port, _, calls = server
    plugin = Plugin(metadata=(("x-plugin", "v1"), ("x-plugin-bin", b"\x00\x01\xff")))
    creds = grpc.metadata_call_credentials(plugin, name="test plugin")
    assert isinstance(creds, grpc.CallCredentials)
    assert unary(f"localhost:{port}", tls(pki, creds), metadata=(("x-user", "u"),)) == b"ping"
    assert rec.values("x-plugin") == ["v1"]
    assert rec.values("x-plugin-bin") == [b"\x00\x01\xff"]
    assert rec.values("x-user") == ["u"]


def test_plugin_context_names_service_and_method(pki, server):
    rec, port, _, _ = server
    plugin = Plugin()
    caller = threading.current_thread()
    assert unary(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin))) == b"ping"
    [context] = plugin.contexts
    assert isinstance(context, grpc.AuthMetadataContext)
    assert context.service_url == f"https://localhost:{port}/grpcgo.sec.Sec"
    assert context.method_name == "Unary"
    # grpcio runs plugins on a thread of its own, never the caller's.
    assert plugin.threads[0] is not caller


def test_plugin_context_service_url_follows_authority(pki, server):
    rec, port, _, _ = server
    plugin = Plugin()
    creds = tls(pki, grpc.metadata_call_credentials(plugin))
    assert unary(f"127.0.0.1:{port}", creds) == b"ping"
    assert unary(f"127.0.0.1:{port}", creds,
                 [("grpc.ssl_target_name_override", "localhost")]) == b"ping"
    assert unary(f"127.0.0.1:{port}", creds,
                 [("grpc.default_authority", "localhost:9999")]) == b"ping"
    assert [c.service_url for c in plugin.contexts] == [
        f"https://127.0.0.1:{port}/grpcgo.sec.Sec",
        "https://localhost/grpcgo.sec.Sec",
        "https://localhost:9999/grpcgo.sec.Sec",
    ]


def test_plugin_answering_later_from_another_thread(pki, server):
    rec, port, _, _ = server
    plugin = Plugin(metadata=(("x-later", "yes"),), delay=0.2)
    with grpc.secure_channel(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin))) as ch:
        future = ch.unary_unary(UNARY).future(b"later", timeout=CALL_TIMEOUT)
        assert future.result(timeout=CALL_TIMEOUT) == b"later"
    assert plugin.answered.is_set()
    assert rec.values("x-later") == ["yes"]


def test_plugin_runs_for_every_call_and_every_kind(pki, server):
    rec, port, _, calls = server
    plugin = Plugin()
    with grpc.secure_channel(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin))) as ch:
        assert ch.unary_unary(UNARY)(b"u", timeout=CALL_TIMEOUT) == b"u"
        assert rec.values("x-plugin") == ["v1"]
        assert list(ch.stream_stream(STREAM)(iter([b"s1", b"s2"]), timeout=CALL_TIMEOUT)) == [b"s1", b"s2"]
        assert rec.values("x-plugin") == ["v1"]
        response, call = ch.unary_unary(UNARY).with_call(b"w", timeout=CALL_TIMEOUT)
        assert response == b"w" and call.code() is grpc.StatusCode.OK
    assert [c.method_name for c in plugin.contexts] == ["Unary", "Stream", "Unary"]
    assert calls() == 3


def test_plugin_error_fails_the_call_unavailable(pki, server):
    rec, port, _, calls = server
    plugin = Plugin(error=ValueError("plugin says no"))
    error = failure(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin)))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == PLUGIN_FAILED + "plugin says no"
    assert calls() == 0


def test_plugin_raising_fails_the_call_and_is_logged(pki, server, caplog):
    rec, port, _, calls = server
    raised = KeyError("boom")

    def plugin(context, callback):
        raise raised

    with caplog.at_level(logging.ERROR):
        error = failure(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin)))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == PLUGIN_FAILED + "'boom'"
    assert calls() == 0
    assert [r for r in caplog.records if r.exc_info and r.exc_info[1] is raised]


def test_plugin_callback_answers_once(pki, server):
    rec, port, _, _ = server
    second = []

    def plugin(context, callback):
        callback((("x-once", "first"),), None)
        try:
            callback((("x-once", "second"),), None)
        except RuntimeError as error:
            second.append(str(error))

    assert unary(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin))) == b"ping"
    assert rec.values("x-once") == ["first"]
    assert second == ["AuthMetadataPluginCallback invoked more than once!"]


def test_plugin_invalid_metadata_fails_the_call(pki, server):
    rec, port, _, calls = server
    plugin = Plugin(metadata=(("Not A Valid Key", "v"),))
    error = failure(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin)))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == "Illegal metadata"
    assert calls() == 0


def test_plugin_never_answering_meets_the_deadline(pki, server):
    rec, port, _, calls = server
    plugin = Plugin(answer=False)
    error = failure(f"localhost:{port}", tls(pki, grpc.metadata_call_credentials(plugin)),
                    timeout=0.5)
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details() == "Deadline Exceeded"
    assert calls() == 0


# -- access tokens and composites --------------------------------------------------
def test_access_token(pki, server):
    rec, port, _, _ = server
    creds = grpc.access_token_call_credentials("x")
    assert isinstance(creds, grpc.CallCredentials)
    assert unary(f"localhost:{port}", tls(pki, creds)) == b"ping"
    assert rec.values("authorization") == ["Bearer x"]


def test_composite_call_credentials(pki, server):
    rec, port, _, _ = server
    creds = grpc.composite_call_credentials(
        grpc.access_token_call_credentials("tok"), grpc.metadata_call_credentials(Plugin()))
    assert isinstance(creds, grpc.CallCredentials)
    assert unary(f"localhost:{port}", tls(pki, creds)) == b"ping"
    assert rec.values("authorization") == ["Bearer tok"]
    assert rec.values("x-plugin") == ["v1"]


def test_composite_call_credentials_of_one(pki, server):
    rec, port, _, _ = server
    creds = grpc.composite_call_credentials(grpc.access_token_call_credentials("solo"))
    assert unary(f"localhost:{port}", tls(pki, creds)) == b"ping"
    assert rec.values("authorization") == ["Bearer solo"]


def test_composite_sends_every_value_of_a_key(pki, server):
    rec, port, _, _ = server
    creds = tls(pki, grpc.access_token_call_credentials("one"),
                grpc.access_token_call_credentials("two"))
    assert unary(f"localhost:{port}", creds) == b"ping"
    assert rec.values("authorization") == ["Bearer one", "Bearer two"]


def test_call_credentials_metadata_follows_the_callers_in_order(pki, server):
    # grpcio 1.85.1's server sees: user-agent, the caller's metadata, then
    # each call credential's pairs in turn, duplicate keys and all.
    rec, port, _, _ = server
    creds = tls(pki, grpc.access_token_call_credentials("one"),
                grpc.access_token_call_credentials("two"),
                grpc.metadata_call_credentials(
                    Plugin(metadata=(("x-p", "1"), ("authorization", "p"), ("x-q", "2")))))
    assert unary(f"localhost:{port}", creds,
                 metadata=(("x-u1", "a"), ("x-u2", "b"))) == b"ping"
    assert [k for k, _ in rec.last.metadata][0] == "user-agent"
    assert list(rec.last.metadata[1:]) == [
        ("x-u1", "a"), ("x-u2", "b"), ("authorization", "Bearer one"),
        ("authorization", "Bearer two"), ("x-p", "1"), ("authorization", "p"), ("x-q", "2")]


def test_composite_channel_credentials_with_several(pki, server):
    rec, port, _, _ = server
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(pki.ca.cert),
        grpc.access_token_call_credentials("tok"),
        grpc.metadata_call_credentials(Plugin(metadata=(("x-a", "1"),))),
        grpc.metadata_call_credentials(Plugin(metadata=(("x-b", "2"),))),
    )
    assert isinstance(creds, grpc.ChannelCredentials)
    assert unary(f"localhost:{port}", creds) == b"ping"
    assert rec.values("authorization") == ["Bearer tok"]
    assert rec.values("x-a") == ["1"]
    assert rec.values("x-b") == ["2"]


def test_composite_channel_credentials_nested(pki, server):
    rec, port, _, _ = server
    inner = tls(pki, grpc.access_token_call_credentials("inner"))
    outer = grpc.composite_channel_credentials(inner, grpc.metadata_call_credentials(Plugin()))
    assert unary(f"localhost:{port}", outer) == b"ping"
    assert rec.values("authorization") == ["Bearer inner"]
    assert rec.values("x-plugin") == ["v1"]


# -- per-call credentials -------------------------------------------------------------
def test_per_call_credentials(pki, server):
    rec, port, _, _ = server
    with grpc.secure_channel(f"localhost:{port}", tls(pki)) as ch:
        token = grpc.access_token_call_credentials("percall")
        assert ch.unary_unary(UNARY)(b"u", timeout=CALL_TIMEOUT, credentials=token) == b"u"
        assert rec.values("authorization") == ["Bearer percall"]
        assert ch.unary_unary(UNARY)(b"n", timeout=CALL_TIMEOUT) == b"n"
        assert rec.values("authorization") == []
        responses = ch.stream_stream(STREAM)(iter([b"s"]), timeout=CALL_TIMEOUT, credentials=token)
        assert list(responses) == [b"s"]
        assert rec.values("authorization") == ["Bearer percall"]


def test_per_call_plugin_lives_as_long_as_the_call(pki, server):
    # The caller keeps no reference to the credentials: the call must.
    rec, port, _, _ = server
    with grpc.secure_channel(f"localhost:{port}", tls(pki)) as ch:
        future = ch.unary_unary(UNARY).future(
            b"f", timeout=CALL_TIMEOUT,
            credentials=grpc.metadata_call_credentials(Plugin(delay=0.1)))
        assert future.result() == b"f"
        assert rec.values("x-plugin") == ["v1"]
        responses = ch.stream_stream(STREAM)(
            iter([b"s"]), timeout=CALL_TIMEOUT,
            credentials=grpc.metadata_call_credentials(Plugin(metadata=(("x-s", "1"),), delay=0.1)))
        assert list(responses) == [b"s"]
        assert rec.values("x-s") == ["1"]


def test_per_call_credentials_add_to_the_channel_s(pki, server):
    rec, port, _, _ = server
    creds = tls(pki, grpc.access_token_call_credentials("chan"))
    with grpc.secure_channel(f"localhost:{port}", creds) as ch:
        per_call = grpc.access_token_call_credentials("percall")
        assert ch.unary_unary(UNARY)(b"u", timeout=CALL_TIMEOUT, credentials=per_call) == b"u"
    assert rec.values("authorization") == ["Bearer chan", "Bearer percall"]


def test_per_call_credentials_must_be_call_credentials(pki, server):
    rec, port, _, _ = server
    with grpc.secure_channel(f"localhost:{port}", tls(pki)) as ch:
        with pytest.raises(TypeError):
            ch.unary_unary(UNARY)(b"u", timeout=CALL_TIMEOUT, credentials=tls(pki))


# -- refused on insecure channels ----------------------------------------------------
def test_per_call_credentials_refused_on_insecure_channel(server):
    rec, _, plain, calls = server
    plugin = Plugin()
    for creds in (grpc.access_token_call_credentials("secret"),
                  grpc.metadata_call_credentials(plugin)):
        error = failure(f"127.0.0.1:{plain}", None, credentials=creds)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == INSUFFICIENT
    assert calls() == 0
    assert plugin.contexts == []  # never asked


def test_composite_with_insecure_channel_credentials_refused(server):
    rec, _, plain, calls = server
    creds = grpc.composite_channel_credentials(
        grpc.experimental.insecure_channel_credentials(),
        grpc.access_token_call_credentials("secret"))
    error = failure(f"127.0.0.1:{plain}", creds)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == INSUFFICIENT
    assert calls() == 0


def test_secure_channel_with_insecure_channel_credentials(server):
    # grpcio 1.85 means to refuse this with ValueError (its check compares the
    # wrong objects, so it creates a plaintext channel instead). Our contract,
    # reference/api-surface.md, is the intended behaviour: ValueError.
    rec, _, plain, _ = server
    creds = grpc.experimental.insecure_channel_credentials()
    with pytest.raises(ValueError):
        grpc.secure_channel(f"127.0.0.1:{plain}", creds)
