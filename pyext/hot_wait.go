package main

/*
#include <stdlib.h>
#include "hot.h"
*/
import "C"

import (
	"sync"
	"unsafe"

	"grpcgo/core"
)

// Waiting in C: a thread that blocks for a unary call's end sleeps on a
// hot_wait's semaphore, GIL released, outside Go. Go fills the record in
// and posts it. A small response is copied into the record, so the thread
// builds its bytes in C and makes no second call into Go; anything else is
// left for the thread to ask Go for.
//
// Streams wait in Go instead (await): tried in C the same way, a bidi
// ping-pong lost 10% (the waiting thread keeps its P, which the request
// thread's wake-ups of grpc-go's writer then lack), for +10% on server
// streaming, which needs it least; with sysmon's slack (slack.go), which
// leaves a waiting thread its P for longer still, bidi lost 28%.

// copiedMax is the largest message copied out to C: beyond it, one more
// copy costs more than the call into Go it saves.
const copiedMax = 16 << 10

// copyOut copies m into w and frees it, if m is small enough; it reports
// whether it did (if not, m is untouched).
func copyOut(m core.Msg, w *C.hot_wait) bool {
	n := m.Len()
	if n > copiedMax {
		return false
	}
	dst := unsafe.Pointer(&w.small[0])
	if n > len(w.small) {
		dst = C.malloc(C.size_t(n))
	}
	m.CopyTo(unsafe.Slice((*byte)(dst), n))
	m.Free()
	w.data, w.len, w.has_data = (*C.char)(dst), C.Py_ssize_t(n), 1
	return true
}

// interruptible holds, by record, how to stop the waits of the main thread,
// so that a signal handler that raises while one waits can end it
// (hotCancelWait). A signal handler may itself block on a call, so there
// can be more than one.
var interruptible = waitRegistry{m: map[*C.hot_wait]func(){}}

type waitRegistry struct {
	mu sync.Mutex
	m  map[*C.hot_wait]func()
}

// reserve makes room for w's cancel before the wait starts: set fills it
// in unless the wait ended (forget) in between.
func (r *waitRegistry) reserve(w *C.hot_wait) {
	r.mu.Lock()
	r.m[w] = nil
	r.mu.Unlock()
}

func (r *waitRegistry) set(w *C.hot_wait, cancel func()) {
	r.mu.Lock()
	if _, ok := r.m[w]; ok {
		r.m[w] = cancel
	}
	r.mu.Unlock()
}

func (r *waitRegistry) forget(w *C.hot_wait) {
	r.mu.Lock()
	delete(r.m, w)
	r.mu.Unlock()
}

// hotCancelWait cancels the call w waits for, if it has not ended (it then
// posts w).
//
//export hotCancelWait
func hotCancelWait(w *C.hot_wait) {
	interruptible.mu.Lock()
	cancel := interruptible.m[w]
	interruptible.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
