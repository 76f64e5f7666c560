package main

/*
#include "hot.h"
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"grpcgo/core"

	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// pyObj is a Python object pointer as the Go side sees it.
type pyObj = *C.PyObject

// mainThread is the ident of Python's main thread, set by setup. Only the
// main thread sees signals, so only it waits in slices.
var mainThread atomic.Uint64

// exiting is set when the interpreter finalizes (grpc's atexit hook): the
// engine then schedules no more pending calls into Python.
var exiting atomic.Bool

// metadatum is grpcio's _Metadatum namedtuple type (a strong reference,
// set once by setup); metadata pairs are made of it.
var metadatum pyObj

//export hotSetup
func hotSetup(mainIdent C.ulong, metadatumType pyObj) {
	mainThread.Store(uint64(mainIdent))
	metadatum = metadatumType
	setupRecv()
	startTuning()
	go trimAfterInit() // trim.go; off the caller's path
}

// hotExiting is called by exiting() (hotmodule.c), which then closes the
// exit gate (hot.h).
//
//export hotExiting
func hotExiting() { exiting.Store(true) }

func isMainThread() bool {
	return uint64(C.PyThread_get_thread_ident()) == mainThread.Load()
}

// release gives up the GIL; acquire takes it back, through the exit gate
// (hot.h): a thread other than the main one that comes back once the
// interpreter finalizes parks for good instead, since CPython would end it
// with Go frames on its stack.
func release() *C.PyThreadState { return C.hot_release() }

func acquire(ts *C.PyThreadState) { C.hot_acquire(ts) }

// withoutGIL runs f with the GIL released.
func withoutGIL(f func()) {
	ts := release()
	defer acquire(ts)
	f()
}

// raise sets a Python exception and returns NULL for the caller to return.
func raise(kind C.int, format string, args ...any) pyObj {
	msg := C.CString(fmt.Sprintf(format, args...))
	defer C.free(unsafe.Pointer(msg))
	return C.hot_raise(kind, msg)
}

// guard turns a Go panic in an exported function into a Python
// RuntimeError. Use as: defer guard(&ret).
func guard(ret *pyObj) {
	if r := recover(); r != nil {
		*ret = raise(C.HOT_RUNTIME, "grpcgo engine error: %v", r)
	}
}

type waitResult int

const (
	waitReady       waitResult = iota
	waitTimeout                // the timeout passed first
	waitInterrupted            // a signal handler raised; the exception is set
)

// signalSlice is how long the main thread waits between signal checks, so
// Ctrl-C interrupts any blocking call promptly.
const signalSlice = 50 * time.Millisecond

// await takes a value from q (or sees it closed), waiting with the GIL
// released. timeout < 0 waits indefinitely; 0 only polls. On the main
// thread it wakes every signalSlice to run Python's signal handlers.
func await[T any](q <-chan T, timeout time.Duration) (v T, ok bool, r waitResult) {
	select {
	case v, ok = <-q:
		return v, ok, waitReady
	default:
	}
	if timeout == 0 {
		return v, false, waitTimeout
	}
	main := isMainThread()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if !main && timeout < 0 {
		ts := release()
		v, ok = <-q
		acquire(ts)
		return v, ok, waitReady
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		step := signalSlice
		if !main {
			step = time.Until(deadline)
		} else if timeout > 0 {
			step = min(step, time.Until(deadline))
		}
		timer.Reset(max(step, 0))
		got := false
		ts := release()
		select {
		case v, ok = <-q:
			got = true
		case <-timer.C:
		}
		acquire(ts)
		if got {
			return v, ok, waitReady
		}
		if main && C.hot_check_signals() != 0 {
			return v, false, waitInterrupted
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return v, false, waitTimeout
		}
	}
}

// seconds converts Python's optional float seconds (negative: none). A
// time beyond what a Duration holds (about 292 years; inf) is none too;
// NaN is 0, as grpcio's deadline for it has passed at once.
func seconds(s C.double) time.Duration {
	f := float64(s)
	switch {
	case f != f:
		return 0
	case f < 0 || f >= maxSeconds:
		return -1
	}
	return time.Duration(f * float64(time.Second))
}

// maxSeconds is the first float of seconds a Duration cannot hold.
const maxSeconds = float64(math.MaxInt64) / float64(time.Second)

// handles: every Go object Python holds travels as a handle (core.NewHandle:
// cgo.Handle's contract, cheaper), most in a capsule; hotRelease deletes
// them. core counts them for introspection.
func newHandle(v any) C.uintptr_t {
	core.CountHandles(1)
	return C.uintptr_t(core.NewHandle(v))
}

func capsule(v any, kind C.int) pyObj { return C.hot_capsule(newHandle(v), kind) }

func value[T any](h C.uintptr_t) T { return core.HandleValue(uintptr(h)).(T) }

// goBytes copies a Python buffer into Go memory: grpc-go may still be
// writing it after the call returns.
func goBytes(p unsafe.Pointer, n C.Py_ssize_t) []byte {
	if n <= 0 {
		return []byte{}
	}
	return append([]byte(nil), unsafe.Slice((*byte)(p), int(n))...)
}

// goStr copies a C string of n bytes into Go. Lengths are never narrowed
// to a C int (C.GoStringN would wrap a 4 GiB + 5 byte value to 5 bytes).
func goStr(p *C.char, n C.Py_ssize_t) string {
	if n <= 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
}

// maxMetadataLen is the longest metadata key or value HTTP/2 can carry: a
// peer's header list limit is a 32-bit number.
const maxMetadataLen = math.MaxUint32

// goMsg makes a Python buffer a message grpc-go can own and keep after the
// call returns. A large bytes object (owner, when the buffer is one) is lent
// (see hot_lend.go); other large messages are copied into a pooled buffer
// that grpc-go returns to the pool once written, so sending them leaves
// nothing for the garbage collector. The GIL must be held.
func goMsg(p unsafe.Pointer, n C.Py_ssize_t, owner pyObj) core.Msg {
	returns.drain()
	if owner != nil && n >= lendMin {
		return lend(owner, p, int(n))
	}
	if mem.IsBelowBufferPoolingThreshold(int(n)) {
		return core.BytesMsg(goBytes(p, n))
	}
	buf := core.BufferPool.Get(int(n))
	copy(*buf, unsafe.Slice((*byte)(p), int(n)))
	return core.Msg{mem.NewBuffer(buf, core.BufferPool)}
}

// pyBytesMsg copies a received message straight from grpc-go's buffers into
// a new bytes object, then gives the buffers back. m must not be used after.
func pyBytesMsg(m core.Msg) pyObj {
	defer m.Free()
	return pyBytesOf(m)
}

// pyBytesOf is the bytes object of m (NULL with MemoryError set if it could
// not be made); m is left as it is.
func pyBytesOf(m core.Msg) pyObj {
	n := m.Len()
	if obj := adoptRecv(m, n); obj != nil {
		return obj
	}
	if len(m) == 1 {
		return pyBytes(m[0].ReadOnlyData())
	}
	obj := C.hot_bytes(nil, C.Py_ssize_t(n))
	if obj != nil && n > 0 {
		m.CopyTo(unsafe.Slice((*byte)(unsafe.Pointer(C.hot_bytes_data(obj))), n))
	}
	return obj
}

// directSender is a stream a thread may write a message to itself (client
// requests, server responses).
type directSender interface {
	CanSendNow() bool
	SendNow(core.Msg) (sent, alive bool)
}

// sendNow writes msg on this thread, GIL released, when nothing is queued
// before it, rather than wake the stream's sender goroutine. done reports
// whether that settled the send (r is then its result). Not on the main
// thread: a write waiting for flow control would hold off Ctrl-C, which the
// queued path keeps responsive.
func sendNow(s directSender, msg core.Msg) (r pyObj, done bool) {
	if !s.CanSendNow() || isMainThread() {
		return nil, false
	}
	var sent, alive bool
	withoutGIL(func() { sent, alive = s.SendNow(msg) })
	if !sent && alive {
		return nil, false
	}
	if !sent {
		msg.Free() // never reached grpc-go: give its buffer back now
	}
	return C.hot_bool(C.int(b2i(sent))), true
}

func pyBytes(b []byte) pyObj {
	if len(b) == 0 {
		return C.hot_bytes(nil, 0)
	}
	return C.hot_bytes((*C.char)(unsafe.Pointer(&b[0])), C.Py_ssize_t(len(b)))
}

func pyStr(s string) pyObj {
	if s == "" {
		return C.hot_str(nil, 0)
	}
	return C.hot_str((*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.Py_ssize_t(len(s)))
}

// mdResult says how reading metadata went.
type mdResult int

const (
	mdOK      mdResult = iota
	mdRaised           // a Python exception is set (wrong types or shapes)
	mdInvalid          // well-formed, but a key or value gRPC does not allow
)

// mdFromPy reads a metadata sequence of (key, value) pairs.
func mdFromPy(obj pyObj) (metadata.MD, mdResult) {
	if C.hot_is_none(obj) != 0 {
		return nil, mdOK
	}
	var n C.Py_ssize_t
	seq := C.hot_md_open(obj, &n)
	if seq == nil {
		return nil, mdRaised
	}
	defer C.hot_decref(seq)
	md := make(metadata.MD, n)
	order := make([]string, 0, n)
	result := mdOK
	for i := C.Py_ssize_t(0); i < n; i++ {
		var pair pyObj
		var k, v *C.char
		var kn, vn C.Py_ssize_t
		rc := C.hot_md_item(seq, i, &pair, &k, &kn, &v, &vn)
		if rc < 0 {
			C.hot_decref(pair)
			return nil, mdRaised
		}
		if rc > 0 { // a None key: grpcio fails the call
			C.hot_decref(pair)
			result = mdInvalid
			continue
		}
		if kn > maxMetadataLen || vn > maxMetadataLen {
			C.hot_decref(pair)
			raise(C.HOT_VALUE, "metadata entry of %d bytes is larger than HTTP/2 can carry (%d bytes at most)",
				kn+vn, maxMetadataLen)
			return nil, mdRaised
		}
		key := goStr(k, kn)
		value := goStr(v, vn)
		C.hot_decref(pair)
		if !validKey(key) || (!strings.HasSuffix(key, "-bin") && !validValue(value)) {
			result = mdInvalid
		}
		md[key] = append(md[key], value)
		order = append(order, key)
	}
	if len(md) > 1 {
		md[core.MDOrderKey] = order // grpcio sends pairs in the caller's order
	}
	return md, result
}

// validKey: gRPC metadata keys are non-empty lowercase ASCII letters,
// digits, '-', '_' and '.'.
func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validValue: text values are printable ASCII.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// hiddenKey reports transport headers and the "grpc-" keys gRPC's core
// consumes, which grpcio does not show as metadata; other "grpc-" keys
// (grpc-status-details-bin, grpc-retry-pushback-ms, unknown ones) it shows.
func hiddenKey(k string) bool {
	if k == "" || k[0] == ':' || k == "content-type" || k == "te" {
		return true
	}
	if !strings.HasPrefix(k, "grpc-") {
		return false
	}
	switch k {
	case "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-status",
		"grpc-message", "grpc-previous-rpc-attempts", "grpc-tags-bin", "grpc-trace-bin",
		"grpc-internal-encoding-request", "grpc-internal-stream-encoding-request":
		return true
	}
	return false
}

// visibleMetadata reports whether md holds a key Python would see.
func visibleMetadata(md metadata.MD) bool {
	for k := range md {
		if !hiddenKey(k) {
			return true
		}
	}
	return false
}

// mdToPy builds grpcio's metadata form: a tuple of _Metadatum (key, value)
// pairs, the value bytes for "-bin" keys and str otherwise, in the order
// they came (core.OrderedPairs; by key when the order is not known).
func mdToPy(md metadata.MD) pyObj {
	var buf [8]core.MDPair
	pairs := core.AppendOrderedPairs(buf[:0], md)
	n := 0
	for _, p := range pairs {
		if !hiddenKey(p.Key) {
			n++
		}
	}
	t := C.hot_tuple(C.Py_ssize_t(n))
	if t == nil {
		return nil
	}
	i := 0
	for _, p := range pairs {
		if hiddenKey(p.Key) {
			continue
		}
		var val pyObj
		if strings.HasSuffix(p.Key, "-bin") {
			val = pyBytes([]byte(p.Value))
		} else {
			val = pyStr(p.Value)
		}
		C.hot_tuple_set(t, C.Py_ssize_t(i), C.hot_metadatum(metadatum, pyStr(p.Key), val))
		i++
	}
	return C.hot_complete(t)
}

// goHandle is a handle as cgo.Handle's methods read it.
type goHandle uintptr

func (h goHandle) Value() any { return core.HandleValue(uintptr(h)) }
func (h goHandle) Delete()    { core.DeleteHandle(uintptr(h)) }

func cgoHandle(h C.uintptr_t) goHandle { return goHandle(h) }
