package main

// grpc.aio's ping-pong read on the loop's thread (core/loopread.go): a
// stream's direct reads, and the loop's reading of its connection.

/*
#include "hot.h"
*/
import "C"

import "grpcgo/core"

func init() { core.SetWaiterDrop(dropCqWaiter) }

// directTaker is a server call or a client stream.
type directTaker interface {
	AioRecvDirect(w *func()) (core.Msg, error, bool, bool)
	AioArmDirect(w *func()) bool
}

// aioRecvDirect is a receive by direct read (see aioRecv for token and
// next): ok false, the call reads through its queue (use aioRecv).
func aioRecvDirect(r directTaker, cq *C.hot_cq, token, next C.uint64_t) (ret pyObj, ok bool) {
	m, err, got, direct := r.AioRecvDirect(nil)
	if !direct {
		return nil, false
	}
	if !got {
		w := newCqWaiter(cq, token)
		m, err, got, direct = r.AioRecvDirect(&w.run)
		switch {
		case !got && direct:
			return C.hot_none(), true // armed: token completes
		case !got:
			// Left direct reads meanwhile: w ran (token completes), the
			// queue is the way from now on.
			return nil, false
		}
		dropCqWaiter(&w.run) // never set, or taken back: it will not run
	}
	if err != nil {
		return C.hot_list(0), true // the end ([]), as the queue's close
	}
	if next != 0 && aioRecvArm {
		w := newCqWaiter(cq, next)
		r.AioArmDirect(&w.run) // runs at once if something is queued
	}
	return msgBatch{m}.py(), true
}

// hotAioCallLoopRead turns the loop's reading of a server call's connection
// on (a dup of its socket for loop.add_reader, which the caller closes;
// -1: not now) or off.
//
//export hotAioCallLoopRead
func hotAioCallLoopRead(h C.uintptr_t, on C.int) (ret pyObj) {
	defer guard(&ret)
	return C.hot_int(C.longlong(value[*core.ServerCall](h).AioLoopRead(on != 0)))
}

// hotAioCallPump reads and handles the frames the call's connection has,
// here (its socket readable): False once the reading went back to the
// connection's goroutine (stop watching the socket).
//
//export hotAioCallPump
func hotAioCallPump(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	return C.hot_bool(C.int(b2i(value[*core.ServerCall](h).AioPump())))
}

//export hotAioStreamLoopRead
func hotAioStreamLoopRead(h C.uintptr_t, on C.int) (ret pyObj) {
	defer guard(&ret)
	return C.hot_int(C.longlong(value[*core.Stream](h).AioLoopRead(on != 0)))
}

//export hotAioStreamPump
func hotAioStreamPump(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	return C.hot_bool(C.int(b2i(value[*core.Stream](h).AioPump())))
}

// hotAioLoopReadCounts is (messages read directly, loop pumps) so far
// (tests, A/B runs).
//
//export hotAioLoopReadCounts
func hotAioLoopReadCounts() (ret pyObj) {
	defer guard(&ret)
	direct, pumps := core.LoopReadCounts()
	t := C.hot_tuple(2)
	C.hot_tuple_set(t, 0, C.hot_int(C.longlong(direct)))
	C.hot_tuple_set(t, 1, C.hot_int(C.longlong(pumps)))
	return C.hot_complete(t)
}
