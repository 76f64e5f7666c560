package main

/*
#include "hot.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"grpcgo/core"
)

// Lending large bytes objects to grpc-go instead of copying them.
//
// A `bytes` object is immutable, so grpc-go can write a large one straight
// from Python's memory: the binding keeps a reference to it until grpc-go
// frees the message, which saves copying the payload once more on every
// send. grpc-go frees messages on its own goroutines, where Python may not
// be touched, so the references are dropped later: by the next message
// handed to the engine, or by a pending call, which Python runs the next
// time its main thread executes Python code. A process that goes idle right
// after sending may keep the last few objects until one of those happens.

// lendMin is the size from which a bytes object is lent rather than copied:
// below it the copy is cheaper than the bookkeeping.
const lendMin = 64 << 10

// loan is one lent bytes object. b must stay the first field: grpc-go's
// pool interface hands back &loan.b.
type loan struct {
	b    []byte
	back *loanReturn
}

// loanReturn gives the reference back once: when grpc-go frees the message,
// or, for a message grpc-go dropped without freeing, when the loan is
// collected. (grpc-go 1.85's writer dropped a data frame queued for a
// stream that was reset meanwhile without freeing it; grpcgo's change to
// grpc-go frees it now, the collection stays the backstop.) The collection can only
// happen if nothing but the message's holders reaches the loan: the loan's
// buffer object is one made for it (core.NewLentBuffer), never a recycled
// one that code which freed it earlier may still reference, and no holder
// keeps a message it gave away (core.Msg).
type loanReturn struct {
	obj  pyObj
	done atomic.Bool
}

func (r *loanReturn) give() {
	if r.done.CompareAndSwap(false, true) {
		loansOut.Add(-1)
		returns.add(r.obj)
	}
}

// loansOut counts loans not given back yet.
var loansOut atomic.Int64

// collectStuckLoans runs the collector when loans have been out, with none
// made or given back, for stuckLoanTicks calls (tuning.go calls it every
// tuneEvery), then again after twice as long each time while they stay
// out: only a collection gives back the loans grpc-go dropped (once grpc-go
// no longer holds them), and an idle engine may not collect for minutes.
//
// Memory a received message was read into (hot_recv.go) is counted with
// the loans: grpc-go may drop its buffers too (a stream reset in the
// middle of a message), and only a collection frees it then.
func collectStuckLoans() {
	n := loansOut.Load() + core.ReceiveDestsLive()
	if n == 0 || n != stuck.last {
		stuck.last, stuck.ticks, stuck.wait = n, 0, stuckLoanTicks
		return
	}
	if stuck.ticks++; stuck.ticks >= stuck.wait {
		runtime.GC()
		stuck.ticks, stuck.wait = 0, min(2*stuck.wait, maxStuckLoanTicks)
	}
}

const (
	stuckLoanTicks    = 10  // 1 s
	maxStuckLoanTicks = 640 // 64 s
)

var stuck struct {
	last        int64
	ticks, wait int
}

// lenderPool is the mem.BufferPool of lent buffers: Put means grpc-go is done.
type lenderPool struct{}

func (lenderPool) Get(int) *[]byte { panic("grpcgo: lent buffers are never allocated") }
func (lenderPool) Put(b *[]byte)   { (*loan)(unsafe.Pointer(b)).back.give() }

// lend wraps obj's n bytes at p as a message, taking a reference to obj.
func lend(obj pyObj, p unsafe.Pointer, n int) core.Msg {
	C.hot_incref(obj)
	loansOut.Add(1)
	back := &loanReturn{obj: obj}
	l := &loan{b: unsafe.Slice((*byte)(p), n), back: back}
	runtime.AddCleanup(l, (*loanReturn).give, back)
	return core.Msg{core.NewLentBuffer(&l.b, lenderPool{})}
}

// returnQueue holds references to drop once a thread has the GIL.
type returnQueue struct {
	mu      sync.Mutex
	objs    []pyObj
	pending atomic.Bool // objs is not empty
	nudged  atomic.Bool // a pending call is scheduled
}

var returns returnQueue

func (q *returnQueue) add(obj pyObj) {
	q.mu.Lock()
	q.objs = append(q.objs, obj)
	q.mu.Unlock()
	q.pending.Store(true)
	if !exiting.Load() && q.nudged.CompareAndSwap(false, true) {
		if C.hot_schedule_returns() != 0 {
			q.nudged.Store(false) // Python's queue is full: the next call drains
		}
	}
}

// drain drops the queued references. The GIL must be held.
func (q *returnQueue) drain() {
	if !q.pending.Load() {
		return
	}
	q.mu.Lock()
	objs := q.objs
	q.objs = nil
	q.pending.Store(false)
	q.mu.Unlock()
	for _, obj := range objs {
		C.hot_decref(obj)
	}
}

// hotDrainReturns is the pending call Python runs (GIL held) after a
// return was queued.
//
//export hotDrainReturns
func hotDrainReturns() {
	returns.nudged.Store(false)
	returns.drain()
}
