package main

/*
#include "hot.h"
*/
import "C"

import (
	"sync/atomic"
	"unsafe"

	"grpcgo/core"
)

// Large received messages handed to Python without a copy.
//
// grpc-go's reader reads a large message (64 KiB to 16 MiB, uncompressed)
// straight into memory laid out as a bytes object (hot.h,
// hot_recv_alloc), and pyBytesOf makes that memory the message's bytes
// object (hot_adopt_bytes) instead of copying the message out of grpc-go's
// buffers into a new one: one copy of every large message fewer at each
// end (the kernel's copy out of the socket lands where Python reads it).
//
// Ownership, in one place (see also mem.GrpcgoDest in the grpc-go patch):
// the memory belongs to its destination in Go while grpc-go reads into it
// and while the message's buffers hold it; the one holder of a received
// message (core.Msg's rule) may take it over whole with the GIL held
// (core.TakeWhole), and from that moment it is a Python object, freed by
// CPython like any bytes object, and the message's buffers no longer own
// it (freeing them only drops them). Memory never taken is freed by its
// last buffer's Free, or, if grpc-go dropped a buffer without freeing it,
// by a cleanup once the destination is unreachable: never by Python.

// setupRecv turns receiving into bytes objects on where CPython's
// allocators allow it (hot_recv_ok). GIL held, once.
func setupRecv() {
	if C.hot_recv_ok() == 0 {
		return
	}
	core.SetReceiveDests(int(C.hot_bytes_lead()), recvAlloc, recvFree)
}

func recvAlloc(size int) unsafe.Pointer { return C.hot_recv_alloc(C.size_t(size)) }
func recvFree(p unsafe.Pointer)         { C.hot_recv_free(p) }

// adoptRecv is m as a bytes object made of the memory it was read into,
// or nil if m was not read so (then nothing changed). The caller still
// frees m. GIL held.
func adoptRecv(m core.Msg, n int) pyObj {
	if n < recvMin || C.hot_adopt_ok() == 0 {
		return nil
	}
	base := core.TakeWhole(m)
	if base == nil {
		return nil
	}
	adopted.Add(1)
	return C.hot_adopt_bytes(base, C.Py_ssize_t(n))
}

const recvMin = 64 << 10

// adopted counts the messages handed to Python without a copy (tests).
var adopted atomic.Int64

// hotRecvStats is (on, adopted, memories neither taken nor freed) for
// the tests.
//
//export hotRecvStats
func hotRecvStats() (ret pyObj) {
	defer guard(&ret)
	t := C.hot_tuple(3)
	C.hot_tuple_set(t, 0, C.hot_bool(C.int(b2i(core.ReceiveDestsOn()))))
	C.hot_tuple_set(t, 1, C.hot_int(C.longlong(adopted.Load())))
	C.hot_tuple_set(t, 2, C.hot_int(C.longlong(core.ReceiveDestsLive())))
	return C.hot_complete(t)
}
