"""Credentials on the Go engine: TLS, local, ALTS, call credentials.

Each function here builds the inner object that grpc's public credential
classes wrap. TLS handshakes and certificate checks run in Go (crypto/tls
through grpc-go's credentials); Python hands over PEM bytes, and runs the
user's AuthMetadataPlugins and certificate fetchers when Go asks for them
(see _Callbacks).
"""

import collections
import contextvars
import itertools
import logging
import threading
import weakref

import grpc
from grpc import _runtime

_LOGGER = logging.getLogger(__name__)


class Credentials:
    """An engine credentials object and the Python objects it relies on."""

    __slots__ = ("capsule", "keep", "__weakref__")

    def __init__(self, capsule, keep=()):
        self.capsule = capsule
        self.keep = tuple(keep)  # parts whose callables must stay registered


def capsule_of(credentials):
    """The engine object inside inner credentials (None stays None)."""
    return None if credentials is None else credentials.capsule


# -- channel credentials -------------------------------------------------------
def ssl_channel_credentials(root_certificates, private_key, certificate_chain):
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("private_key and certificate_chain must be given together")
    return Credentials(
        _runtime.hot().creds_ssl_channel(root_certificates, private_key, certificate_chain)
    )


def local_channel_credentials(local_connect_type):
    _check_local_type(local_connect_type)
    return Credentials(
        _runtime.hot().creds_local_channel(local_connect_type is grpc.LocalConnectionType.UDS)
    )


def alts_channel_credentials(service_accounts):
    return Credentials(_runtime.hot().creds_alts_channel(list(service_accounts)))


def xds_channel_credentials(fallback_credentials):
    # grpc-go's xDS credentials: TLS as the control plane's cluster
    # configuration says for xds: targets, the fallback where it says
    # nothing (and for every other target).
    from grpc.experimental import _insecure_channel_credentials

    if fallback_credentials is _insecure_channel_credentials:
        # Plaintext fallback: secure_channel takes these, as grpcio's does.
        return Credentials(_runtime.hot().creds_xds_channel(None))
    _fallback(fallback_credentials)
    return Credentials(_runtime.hot().creds_xds_channel(fallback_credentials.capsule),
                       (fallback_credentials,))


def compute_engine_channel_credentials(call_credentials):
    # TLS to Google with the system roots, carrying the given call
    # credentials (grpcio may pick ALTS on Google Cloud; TLS works there too).
    return composite_channel_credentials(
        ssl_channel_credentials(None, None, None), call_credentials
    )


def composite_channel_credentials(channel_credentials, *call_credentials):
    from grpc.experimental import _insecure_channel_credentials

    if not call_credentials:
        return channel_credentials
    # Insecure channel credentials may be composed; calls then fail with
    # UNAUTHENTICATED, as call credentials are never sent in the clear.
    base = None if channel_credentials is _insecure_channel_credentials else channel_credentials.capsule
    capsule = _runtime.hot().creds_composite_channel(base, [c.capsule for c in call_credentials])
    return Credentials(capsule, (channel_credentials,) + call_credentials)


# -- call credentials ----------------------------------------------------------
def access_token_call_credentials(access_token):
    return Credentials(_runtime.hot().creds_access_token(str(access_token)))


def metadata_call_credentials(metadata_plugin, name):
    if not callable(metadata_plugin):
        raise TypeError("metadata_plugin must be callable (a grpc.AuthMetadataPlugin)")
    # The plugin runs in a copy of the context it was given in, as in grpcio
    # (it runs on a thread of ours, whose own context is empty).
    ident = _callbacks.register(_InContext(metadata_plugin, contextvars.copy_context()))
    credentials = Credentials(_runtime.hot().creds_plugin(ident))
    weakref.finalize(credentials, _callbacks.unregister, ident)
    return credentials


class _InContext:
    """Calls fn in a fresh copy of a saved context (a copy per call, since
    calls may run at once on several threads)."""

    __slots__ = ("_fn", "_context")

    def __init__(self, fn, context):
        self._fn = fn
        self._context = context

    def __call__(self, *args):
        return self._context.copy().run(self._fn, *args)


def composite_call_credentials(*call_credentials):
    if not call_credentials:
        # grpcio accepts this but its calls then fail with StopIteration.
        raise ValueError("composite_call_credentials needs at least one CallCredentials")
    capsule = _runtime.hot().creds_composite_call([c.capsule for c in call_credentials])
    return Credentials(capsule, call_credentials)


# -- server credentials --------------------------------------------------------
def ssl_server_certificate_configuration(private_key_certificate_chain_pairs, root_certificates):
    return Credentials(
        _runtime.hot().creds_cert_config(
            [tuple(pair) for pair in private_key_certificate_chain_pairs], root_certificates
        )
    )


def ssl_server_credentials(private_key_certificate_chain_pairs, root_certificates,
                           require_client_auth):
    config = ssl_server_certificate_configuration(
        private_key_certificate_chain_pairs, root_certificates
    )
    return Credentials(_runtime.hot().creds_ssl_server(config.capsule, bool(require_client_auth)))


def dynamic_ssl_server_credentials(initial_certificate_configuration,
                                   certificate_configuration_fetcher,
                                   require_client_authentication):
    ident = _callbacks.register(certificate_configuration_fetcher)
    credentials = Credentials(
        _runtime.hot().creds_dynamic_server(
            initial_certificate_configuration.capsule,
            ident,
            bool(require_client_authentication),
        ),
        (initial_certificate_configuration,),
    )
    weakref.finalize(credentials, _callbacks.unregister, ident)
    return credentials


def local_server_credentials(local_connect_type):
    _check_local_type(local_connect_type)
    return Credentials(
        _runtime.hot().creds_local_server(local_connect_type is grpc.LocalConnectionType.UDS)
    )


def alts_server_credentials():
    return Credentials(_runtime.hot().creds_alts_server())


def insecure_server_credentials():
    return Credentials(_runtime.hot().creds_insecure_server())


def xds_server_credentials(fallback_credentials):
    # grpc-go's xDS credentials: on an xDS-enabled server, TLS as the matching
    # filter chain's DownstreamTlsContext says; else the fallback's.
    _fallback(fallback_credentials)
    return Credentials(_runtime.hot().creds_xds_server(fallback_credentials.capsule),
                       (fallback_credentials,))


def _fallback(credentials):
    if credentials is None:
        raise ValueError("xDS credentials need fallback credentials")
    return credentials


def _check_local_type(local_connect_type):
    if not isinstance(local_connect_type, grpc.LocalConnectionType):
        raise TypeError(
            "local_connect_type must be a grpc.LocalConnectionType, not %r" % (local_connect_type,)
        )


# -- callbacks from Go ---------------------------------------------------------
class _AuthMetadataContext(
    collections.namedtuple("AuthMetadataContext", ("service_url", "method_name")),
    grpc.AuthMetadataContext,
):
    pass


class _AuthMetadataPluginCallback(grpc.AuthMetadataPluginCallback):
    """Answers one plugin request; only the first answer counts."""

    def __init__(self, hot, request):
        self._hot = hot
        self._request = request
        self._lock = threading.Lock()
        self._called = False

    def __call__(self, metadata, error):
        with self._lock:
            if self._called:
                raise RuntimeError("AuthMetadataPluginCallback invoked more than once!")
            self._called = True
        if error is None:
            self._hot.callback_reply(self._request, tuple(metadata or ()), None, None)
        else:
            self._hot.callback_reply(self._request, None, str(error), None)


_METADATA, _CERTIFICATES = 0, 1


class _Callbacks:
    """Runs the Python side of credentials when Go asks: one daemon thread
    (grpcgo-callbacks) waits in Go for requests (pyext/hot_events.go);
    plugins run on threads of their own (they may block, and may answer
    later from anywhere). It is not the thread that runs add_callback
    callbacks and logging handlers (grpc/_events.py): those may make calls
    whose plugins this thread must start meanwhile."""

    def __init__(self):
        self._lock = threading.Lock()
        self._callables = {}
        self._ids = itertools.count(1)
        self._thread = None

    def register(self, fn):
        with self._lock:
            ident = next(self._ids)
            self._callables[ident] = fn
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="grpcgo-callbacks", daemon=True
                )
                self._thread.start()
        return ident

    def unregister(self, ident):
        with self._lock:
            self._callables.pop(ident, None)

    def _serve(self):
        hot = _runtime.hot()
        while True:
            try:
                requests = hot.callback_next(-1.0)
            except Exception:  # pragma: no cover - a forked child, or exiting
                return
            for request in requests or ():
                try:
                    self._dispatch(hot, *request)
                except Exception:  # the thread must go on serving
                    _LOGGER.exception("running a credentials callback failed")

    def _dispatch(self, hot, handle, kind, ident, service_url, method_name):
        fn = self._callables.get(ident)
        if fn is None:
            hot.callback_reply(handle, None, "the credentials were released", None)
        elif kind == _METADATA:
            threading.Thread(
                target=_run_plugin,
                args=(hot, handle, fn, service_url, method_name),
                name="grpcgo-auth-plugin",
                daemon=True,
            ).start()
        else:
            _run_fetcher(hot, handle, fn)


def _run_plugin(hot, handle, plugin, service_url, method_name):
    callback = _AuthMetadataPluginCallback(hot, handle)
    try:
        plugin(_AuthMetadataContext(service_url, method_name), callback)
    except Exception as error:  # the plugin's own failure fails the call
        _LOGGER.exception("AuthMetadataPlugin raised")
        try:
            callback(None, error)
        except RuntimeError:
            pass  # it had answered before raising


def _run_fetcher(hot, handle, fetcher):
    try:
        configuration = fetcher()
    except Exception as error:
        _LOGGER.exception("Certificate configuration fetcher raised; keeping the current certificates")
        hot.callback_reply(handle, None, str(error) or type(error).__name__, None)
        return
    hot.callback_reply(handle, None, None, capsule_of(configuration))


_callbacks = _Callbacks()
