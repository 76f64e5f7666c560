"""TLS session resumption for client channels.

A cache made here, given to a channel as the ``grpc.ssl_session_cache``
option, keeps the TLS sessions (tickets) of that channel's connections, so
later connections to the same server name resume them instead of doing a
full handshake (crypto/tls's LRU ClientSessionCache in the engine).
"""

import weakref

from grpc import _runtime


def ssl_session_cache_lru(capacity):
    """An SSLSessionCache holding up to capacity sessions, least recently
    used first out.

    Pass it as the value of the grpc.ssl_session_cache option of
    grpc.secure_channel; channels given the same cache share its sessions.
    """
    hot = _runtime.hot()
    number = hot.session_cache_new(int(capacity))
    cache = _EngineSessionCache(number)
    weakref.finalize(cache, hot.session_cache_release, number)
    return SSLSessionCache(cache)


class _EngineSessionCache:
    """The engine's cache, known by its number."""

    __slots__ = ("_number", "__weakref__")

    def __init__(self, number):
        self._number = number

    def __int__(self):
        return self._number


class SSLSessionCache:
    """A TLS session cache, to be given as the grpc.ssl_session_cache
    channel option (as an integer, it names the engine's cache)."""

    def __init__(self, cache):
        self._cache = cache

    def __int__(self):
        return int(self._cache)
