package core

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
)

// TLS session caches for client connections, named by number: Python's
// grpc.experimental.session_cache.SSLSessionCache turns into its number
// (__int__) when given as the grpc.ssl_session_cache channel option, as
// grpcio's turns into a pointer. Numbers start far from small integers, so
// a number that names no cache (an option meant for grpcio) is ignored.
var (
	sessionCaches    sync.Map // uint64 -> tls.ClientSessionCache
	lastSessionCache atomic.Uint64
)

const sessionCacheBase = 0x5e55_1000_0000

// NewSessionCache makes an LRU cache of up to capacity TLS sessions (Go's
// default, 64, if capacity < 1) and returns its number.
func NewSessionCache(capacity int) uint64 {
	id := sessionCacheBase + lastSessionCache.Add(1)
	sessionCaches.Store(id, tls.NewLRUClientSessionCache(capacity))
	return id
}

// ReleaseSessionCache forgets the number; channels using the cache keep it.
func ReleaseSessionCache(id uint64) { sessionCaches.Delete(id) }

func sessionCache(id int64) tls.ClientSessionCache {
	if c, ok := sessionCaches.Load(uint64(id)); ok {
		return c.(tls.ClientSessionCache)
	}
	return nil
}
