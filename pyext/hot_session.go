package main

/*
#include "hot.h"
*/
import "C"

import "grpcgo/core"

// hotSessionCacheNew makes a TLS session cache of up to capacity sessions
// and returns its number (see core.NewSessionCache).
//
//export hotSessionCacheNew
func hotSessionCacheNew(capacity C.int) (ret pyObj) {
	defer guard(&ret)
	return C.hot_int(C.longlong(core.NewSessionCache(int(capacity))))
}

// hotSessionCacheRelease forgets a session cache's number.
//
//export hotSessionCacheRelease
func hotSessionCacheRelease(id C.longlong) (ret pyObj) {
	defer guard(&ret)
	core.ReleaseSessionCache(uint64(id))
	return C.hot_none()
}
