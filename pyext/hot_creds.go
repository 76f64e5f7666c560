package main

/*
#include "hot.h"
*/
import "C"

import (
	"unsafe"

	"grpcgo/core"
)

// Credentials: the cold path that builds them. Every credentials object
// travels in a "grpcgo.Credentials" capsule; credsOf checks its Go type.

func credsOf[T any](obj pyObj, what string) (T, bool) {
	var zero T
	h := C.hot_handle(obj, C.HOT_CREDENTIALS)
	if h == 0 {
		return zero, false
	}
	v, ok := cgoHandle(h).Value().(T)
	if !ok {
		raise(C.HOT_TYPE, "expected %s", what)
		return zero, false
	}
	return v, true
}

// optCreds reads optional credentials (None: nil).
func optCreds[T any](obj pyObj, what string) (v T, ok bool) {
	if C.hot_is_none(obj) != 0 {
		return v, true
	}
	return credsOf[T](obj, what)
}

// bytesArg reads bytes or None; ok=false means an exception is set.
func bytesArg(obj pyObj, what string) (b []byte, present, ok bool) {
	var p *C.char
	var n C.Py_ssize_t
	cwhat := C.CString(what)
	defer C.free(unsafe.Pointer(cwhat))
	switch C.hot_bytes_arg(obj, cwhat, &p, &n) {
	case -1:
		return nil, false, false
	case 0:
		return nil, false, true
	}
	return goBytes(unsafe.Pointer(p), n), true, true
}

// seqEach calls f with each item of a Python sequence; false: exception set.
func seqEach(obj pyObj, f func(item pyObj) bool) bool {
	var n C.Py_ssize_t
	seq := C.hot_seq(obj, &n)
	if seq == nil {
		return false
	}
	defer C.hot_decref(seq)
	for i := C.Py_ssize_t(0); i < n; i++ {
		if !f(C.hot_seq_item(seq, i)) {
			return false
		}
	}
	return true
}

func strArg(obj pyObj) (string, bool) {
	var n C.Py_ssize_t
	p := C.hot_str_arg(obj, &n)
	if p == nil {
		return "", false
	}
	return goStr(p, n), true
}

//export hotCredsSSLChannel
func hotCredsSSLChannel(roots, key, chain pyObj) (ret pyObj) {
	defer guard(&ret)
	r, hasRoots, ok1 := bytesArg(roots, "root_certificates")
	k, _, ok2 := bytesArg(key, "private_key")
	c, _, ok3 := bytesArg(chain, "certificate_chain")
	if !ok1 || !ok2 || !ok3 {
		return nil
	}
	creds, err := core.TLSChannel(r, hasRoots, k, c)
	if err != nil {
		return raise(C.HOT_VALUE, "%v", err)
	}
	return capsule(creds, C.HOT_CREDENTIALS)
}

//export hotCredsLocalChannel
func hotCredsLocalChannel(uds C.int) (ret pyObj) {
	defer guard(&ret)
	return capsule(core.LocalChannel(uds != 0), C.HOT_CREDENTIALS)
}

//export hotCredsALTSChannel
func hotCredsALTSChannel(accounts pyObj) (ret pyObj) {
	defer guard(&ret)
	var names []string
	if !seqEach(accounts, func(item pyObj) bool {
		s, ok := strArg(item)
		names = append(names, s)
		return ok
	}) {
		return nil
	}
	return capsule(core.ALTSChannel(names), C.HOT_CREDENTIALS)
}

// callCredsList reads a sequence of call credentials capsules.
func callCredsList(obj pyObj) ([]*core.CallCredentials, bool) {
	var out []*core.CallCredentials
	ok := seqEach(obj, func(item pyObj) bool {
		c, ok := credsOf[*core.CallCredentials](item, "CallCredentials")
		out = append(out, c)
		return ok
	})
	return out, ok
}

//export hotCredsCompositeChannel
func hotCredsCompositeChannel(channel, calls pyObj) (ret pyObj) {
	defer guard(&ret)
	ch, ok := optCreds[*core.ChannelCredentials](channel, "ChannelCredentials")
	if !ok {
		return nil
	}
	cs, ok := callCredsList(calls)
	if !ok {
		return nil
	}
	return capsule(ch.WithCall(cs...), C.HOT_CREDENTIALS)
}

//export hotCredsAccessToken
func hotCredsAccessToken(token pyObj) (ret pyObj) {
	defer guard(&ret)
	t, ok := strArg(token)
	if !ok {
		return nil
	}
	return capsule(core.AccessToken(t), C.HOT_CREDENTIALS)
}

//export hotCredsPlugin
func hotCredsPlugin(id C.longlong) (ret pyObj) {
	defer guard(&ret)
	return capsule(core.PluginCredentials(pluginFetcher(int64(id))), C.HOT_CREDENTIALS)
}

//export hotCredsCompositeCall
func hotCredsCompositeCall(calls pyObj) (ret pyObj) {
	defer guard(&ret)
	cs, ok := callCredsList(calls)
	if !ok {
		return nil
	}
	return capsule(core.ComposeCall(cs...), C.HOT_CREDENTIALS)
}

// hotCredsCertConfig parses [(key, chain), ...] and optional client roots.
//
//export hotCredsCertConfig
func hotCredsCertConfig(pairs, roots pyObj) (ret pyObj) {
	defer guard(&ret)
	var keys, chains [][]byte
	if !seqEach(pairs, func(item pyObj) bool {
		ok := true
		i := 0
		seqEach(item, func(part pyObj) bool {
			b, _, good := bytesArg(part, "a private key or certificate chain")
			if !good {
				ok = false
				return false
			}
			if i == 0 {
				keys = append(keys, b)
			} else {
				chains = append(chains, b)
			}
			i++
			return true
		})
		if ok && i != 2 {
			raise(C.HOT_VALUE, "each pair must be (private key, certificate chain)")
			return false
		}
		return ok
	}) {
		return nil
	}
	r, hasRoots, ok := bytesArg(roots, "root_certificates")
	if !ok {
		return nil
	}
	cc, err := core.NewCertConfig(keys, chains, r, hasRoots)
	if err != nil {
		return raise(C.HOT_VALUE, "%v", err)
	}
	return capsule(cc, C.HOT_CREDENTIALS)
}

//export hotCredsSSLServer
func hotCredsSSLServer(config pyObj, require C.int) (ret pyObj) {
	defer guard(&ret)
	cc, ok := credsOf[*core.CertConfig](config, "a certificate configuration")
	if !ok {
		return nil
	}
	return capsule(core.TLSServer(cc, require != 0), C.HOT_CREDENTIALS)
}

//export hotCredsDynamicServer
func hotCredsDynamicServer(initial pyObj, fetcherID C.longlong, require C.int) (ret pyObj) {
	defer guard(&ret)
	cc, ok := credsOf[*core.CertConfig](initial, "a certificate configuration")
	if !ok {
		return nil
	}
	return capsule(core.DynamicTLSServer(cc, certFetcher(int64(fetcherID)), require != 0, nil), C.HOT_CREDENTIALS)
}

//export hotCredsLocalServer
func hotCredsLocalServer(uds C.int) (ret pyObj) {
	defer guard(&ret)
	return capsule(core.LocalServer(uds != 0), C.HOT_CREDENTIALS)
}

//export hotCredsALTSServer
func hotCredsALTSServer() (ret pyObj) {
	defer guard(&ret)
	return capsule(core.ALTSServer(), C.HOT_CREDENTIALS)
}

//export hotCredsInsecureServer
func hotCredsInsecureServer() (ret pyObj) {
	defer guard(&ret)
	return capsule(&core.ServerCredentials{}, C.HOT_CREDENTIALS)
}

// hotCredsXDSChannel wraps channel credentials (None: plaintext) as xDS
// credentials that fall back to them.
//
//export hotCredsXDSChannel
func hotCredsXDSChannel(fallback pyObj) (ret pyObj) {
	defer guard(&ret)
	fb, ok := optCreds[*core.ChannelCredentials](fallback, "ChannelCredentials")
	if !ok {
		return nil
	}
	return capsule(core.XDSChannel(fb), C.HOT_CREDENTIALS)
}

//export hotCredsXDSServer
func hotCredsXDSServer(fallback pyObj) (ret pyObj) {
	defer guard(&ret)
	fb, ok := credsOf[*core.ServerCredentials](fallback, "ServerCredentials")
	if !ok {
		return nil
	}
	return capsule(core.XDSServer(fb), C.HOT_CREDENTIALS)
}

// hotCallAuthContext returns (auth context dict, peer identity key or None).
//
//export hotCallAuthContext
func hotCallAuthContext(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	a := value[*core.ServerCall](h).AuthContext()
	d := C.hot_dict()
	for _, k := range a.Keys {
		vs := a.Values[k]
		l := C.hot_list(C.Py_ssize_t(len(vs)))
		for i, v := range vs {
			C.hot_list_set(l, C.Py_ssize_t(i), pyBytes(v))
		}
		if C.hot_dict_set(d, pyStr(k), l) != 0 {
			C.hot_decref(d)
			return nil
		}
	}
	t := C.hot_tuple(2)
	C.hot_tuple_set(t, 0, d)
	if a.IdentityKey == "" {
		C.hot_tuple_set(t, 1, C.hot_none())
	} else {
		C.hot_tuple_set(t, 1, pyStr(a.IdentityKey))
	}
	return t
}
