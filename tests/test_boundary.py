"""The boundary between Python and the engine: what a program hands over, or a
peer sends, that the engine must not trust.

* user code may run in the middle of reading an argument (an entry's
  ``__iter__``): the engine must not keep borrowed references across it;
* a peer's status code outside 0-16 is UNKNOWN, never a KeyError;
* timeouts beyond what a deadline can hold (or inf) are no deadline; NaN
  has passed at once, as in grpcio;
* lengths are never narrowed to a C int;
* channel options are checked as grpcio checks them;
* a target with an unknown URI scheme is never looked up in DNS.
"""

import concurrent.futures
import glob
import os
import subprocess
import sys
import textwrap
import threading

import grpc
import pytest

import h2peer

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
BOUND = 20

IS_GRPCGO = bool(
    glob.glob(os.path.join(os.path.dirname(os.path.abspath(grpc.__file__)), "_engine*.so"))
)
grpcgo_only = pytest.mark.skipif(not IS_GRPCGO, reason="about grpcgo's engine")


@pytest.fixture(scope="module")
def echo_target():
    handler = grpc.method_handlers_generic_handler("t.B", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
        "Meta": grpc.unary_unary_rpc_method_handler(
            lambda request, context: repr(sorted(
                (k, v) for k, v in context.invocation_metadata() if k.startswith("x-"))).encode()),
    })
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield "127.0.0.1:%d" % port
    server.stop(None).wait(10)
    pool.shutdown(wait=False)


def run_child(body):
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True,
                          text=True, timeout=60, cwd=TESTS_DIR, env=env)
    assert proc.returncode == 0, "exit status %d\n%s\n%s" % (proc.returncode, proc.stdout,
                                                             proc.stderr[-3000:])
    return proc.stdout.splitlines()


# -- borrowed state across user code --------------------------------------------------


def test_metadata_changed_while_it_is_read_does_not_crash(echo_target):
    # An entry whose __iter__ empties the metadata list: the engine walked
    # the list it was reading, freed under it (a segmentation fault).
    lines = run_child("""
        import grpc
        md = []

        class Shrinking:
            def __len__(self):
                return 2
            def __getitem__(self, i):
                return ("x-a", "1")[i]
            def __iter__(self):
                md.clear()
                return iter(("x-a", "1"))

        md.extend([Shrinking()] + [("x-%%d" %% i, "v") for i in range(50)])
        with grpc.insecure_channel("%s") as channel:
            print(channel.unary_unary("/t.B/Meta")(b"", metadata=md, timeout=10)[:20])
        print("alive")
    """ % echo_target)
    assert lines[-1] == "alive"


@grpcgo_only
def test_sequences_changed_while_the_engine_reads_them_do_not_crash():
    # The public API copies credentials' lists before the engine sees them;
    # the engine must not rely on that (its readers hold no borrowed item
    # across code an item runs).
    lines = run_child("""
        from grpc import _runtime
        pairs = []

        class Shrinking:
            def __len__(self):
                return 2
            def __getitem__(self, i):
                return (b"key", b"cert")[i]
            def __iter__(self):
                pairs.clear()
                return iter((b"key", b"cert"))

        pairs.extend([Shrinking()] + [(b"key", b"cert")] * 20)
        try:
            _runtime.hot().creds_cert_config(pairs, None)
        except Exception as e:
            print(type(e).__name__)
        print("alive")
    """)
    assert lines[-1] == "alive"


# -- what peers send ------------------------------------------------------------------


@pytest.mark.parametrize("code", [17, 99, 1000])
def test_a_status_code_outside_the_known_ones_is_unknown(code):
    with h2peer.RawServer("status", status=code) as peer:
        with grpc.insecure_channel("127.0.0.1:%d" % peer.port) as channel:
            call = channel.unary_unary("/t.Raw/Call")
            with pytest.raises(grpc.RpcError) as failure:
                call(b"x", timeout=BOUND)
            assert failure.value.code() is grpc.StatusCode.UNKNOWN
            future = call.future(b"x", timeout=BOUND)
            assert future.exception(timeout=BOUND).code() is grpc.StatusCode.UNKNOWN
            # The done-callback thread survives to run the callback.
            called = threading.Event()
            call.future(b"x", timeout=BOUND).add_done_callback(lambda f: called.set())
            assert called.wait(BOUND)
            stream = channel.unary_stream("/t.Raw/Call")(b"x", timeout=BOUND)
            with pytest.raises(grpc.RpcError) as failure:
                list(stream)
            assert failure.value.code() is grpc.StatusCode.UNKNOWN


# -- timeouts -------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [9.3e9, 1e300, float("inf")])
def test_a_timeout_beyond_any_deadline_is_no_deadline(echo_target, timeout):
    # Its nanoseconds overflowed an int64: the call failed at once.
    if not IS_GRPCGO:
        pytest.skip("grpcgo's promise; grpcio 1.85's deadline overflows too")
    with grpc.insecure_channel(echo_target) as channel:
        assert channel.unary_unary("/t.B/Echo")(b"x", timeout=timeout) == b"x"
        future = channel.unary_unary("/t.B/Echo").future(b"y", timeout=timeout)
        assert future.result(timeout=timeout) == b"y"


def test_a_nan_timeout_has_passed_at_once(echo_target):
    with grpc.insecure_channel(echo_target) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            channel.unary_unary("/t.B/Echo")(b"x", timeout=float("nan"))
        assert failure.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


# -- lengths --------------------------------------------------------------------------


@grpcgo_only
def test_metadata_too_long_for_http2_is_refused_not_wrapped(echo_target):
    # 4 GiB + 5 bytes (zero pages the kernel maps lazily: never copied).
    # Narrowed to a C int it was sent as its first 5 bytes.
    value = bytes((4 << 30) + 5)
    with grpc.insecure_channel(echo_target) as channel:
        with pytest.raises(ValueError, match="larger than HTTP/2 can carry"):
            channel.unary_unary("/t.B/Echo")(b"x", metadata=[("x-big-bin", value)], timeout=BOUND)
    del value


# -- options --------------------------------------------------------------------------


def test_option_keys_and_values_are_checked_as_grpcio_checks_them(echo_target):
    with pytest.raises(TypeError):
        grpc.insecure_channel(echo_target, options=[(1, 2)])
    with pytest.raises(OverflowError):
        grpc.insecure_channel(echo_target, options=[("grpc.max_receive_message_length", 2**40)])
    with pytest.raises(OverflowError):
        grpc.server(None, options=[("grpc.max_receive_message_length", 2**31)])
    # A float is no integer: grpcio ignores it (it did not become 1 here).
    with grpc.insecure_channel(
            echo_target, options=[("grpc.max_receive_message_length", 1.5)]) as channel:
        assert channel.unary_unary("/t.B/Echo")(b"x" * 100, timeout=BOUND) == b"x" * 100


# -- targets --------------------------------------------------------------------------


def test_a_target_with_an_unknown_scheme_is_not_looked_up():
    # grpc-go handed "http://x" to its DNS resolver, which looked up "http".
    with grpc.insecure_channel("http://grpcgo-test.invalid") as channel:
        with pytest.raises(grpc.RpcError) as failure:
            channel.unary_unary("/t.B/Echo")(b"x", timeout=BOUND)
        assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
        # Named, as grpcio names it; grpc-go's "produced zero addresses"
        # came from looking "http" up.
        assert "http://grpcgo-test.invalid" in failure.value.details()


LOOKUP_PROBE = """
import sys, grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    try:
        channel.unary_unary("/t.B/Echo")(b"x", timeout=5)
    except grpc.RpcError as error:
        print(error.code().name)
"""


def _lookups(target):
    # Go's resolver says what it looks up when GODEBUG asks it to
    # (netdns=go+2 prints "hostLookupOrder(<name>)" on stderr per lookup).
    env = dict(os.environ, GODEBUG="netdns=go+2")
    out = subprocess.run([sys.executable, "-c", LOOKUP_PROBE, target], capture_output=True,
                         text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert out.stdout.strip() == "UNAVAILABLE", out.stdout + out.stderr
    return [line for line in out.stderr.splitlines() if "hostLookupOrder(" in line]


def test_no_dns_lookup_is_made_for_a_target_with_an_unknown_scheme():
    # The probe sees a real lookup (so it would see one made for "http")...
    assert any("grpcgo-test.invalid" in line for line in _lookups("dns:///grpcgo-test.invalid:1"))
    # ...and an unknown scheme makes none (d729aee looked up "http").
    assert _lookups("http://grpcgo-test.invalid") == []


# -- what a peer's refusal says -------------------------------------------------------


@grpcgo_only
def test_a_client_certificate_the_server_refuses_is_named(tmp_path):
    # TLS 1.3 finishes the client's handshake before the server checks the
    # client's certificate: the server's alert then came as "write: broken
    # pipe" on the client's first write.
    import certs
    from test_tls import LOCAL, server_tls, trust

    pki = certs.make_pki(str(tmp_path))
    creds = server_tls(pki, client_roots=pki.ca.cert, require_client_auth=True)
    with certs.serving((LOCAL, creds)) as (_, [port]):
        for _ in range(5):
            error = certs.failure("127.0.0.1:%d" % port, trust(pki, client=pki.other_client))
            assert error.code() is grpc.StatusCode.UNAVAILABLE
            assert "broken pipe" not in error.details()
            assert "tls:" in error.details(), error.details()
