package main

/*
#include "hot.h"
*/
import "C"

import (
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"grpcgo/core"
)

// The asyncio side of the hot module (grpc.aio). An event loop's thread must
// never block, so every function here either answers at once or starts an
// operation that completes on a goroutine and reports through the loop's
// completion queue (cq.h): the goroutine leaves its result in Go, pushes
// the operation's token, and the loop, once woken, asks for the result with
// hotAioResult. Nothing here waits or releases the GIL.
//
// An operation (aioOp) travels to Python in a capsule of kind HOT_OP. If
// Python drops it before it completed, its stop channel closes and the
// goroutine ends without a result; a result nobody took is freed
// (messages go back to their pool, never leak).

// aioResult is what a completed operation leaves for the loop.
type aioResult interface {
	py() pyObj // the Python value (GIL held); called at most once
	free()     // gives back what py would have used, if py is never called
}

type aioOp struct {
	stop   chan struct{}
	result atomic.Pointer[aioResult]
	taken  atomic.Bool
}

// startOp runs work on a goroutine and completes token on q when it
// returns; work must return promptly once stop closes.
func startOp(q *C.hot_cq, token C.uint64_t, work func(stop <-chan struct{}) aioResult) pyObj {
	op := &aioOp{stop: make(chan struct{})}
	C.hot_cq_ref(q)
	go func() {
		r := work(op.stop)
		op.result.Store(&r)
		C.hot_cq_complete(q, token)
	}()
	return capsule(op, C.HOT_OP)
}

// cancel ends the operation's wait, if any, and frees a result not taken.
func (op *aioOp) release() {
	select {
	case <-op.stop:
	default:
		close(op.stop)
	}
	if r := op.result.Load(); r != nil && !op.taken.Swap(true) {
		(*r).free()
	}
}

// hotAioResult is the result of a completed operation (raises if it has
// not completed or was already taken).
//
//export hotAioResult
func hotAioResult(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	op := value[*aioOp](h)
	r := op.result.Load()
	if r == nil {
		return raise(C.HOT_RUNTIME, "the operation has not completed")
	}
	if op.taken.Swap(true) {
		return raise(C.HOT_RUNTIME, "the operation's result was already taken")
	}
	return (*r).py()
}

// Results.

type pyValue struct{ make func() pyObj }

func (v pyValue) py() pyObj { return v.make() }
func (pyValue) free()       {}

type msgBatch []core.Msg

func (b msgBatch) py() pyObj {
	l := C.hot_list(C.Py_ssize_t(len(b)))
	for i, m := range b {
		C.hot_list_set(l, C.Py_ssize_t(i), pyBytesMsg(m))
	}
	return C.hot_complete(l)
}

func (b msgBatch) free() {
	for _, m := range b {
		m.Free()
	}
}

// takeQueued appends what q holds now to batch, up to maxN in all.
func takeQueued(q <-chan core.Msg, batch msgBatch, maxN int) msgBatch {
	for len(batch) < maxN {
		select {
		case m, ok := <-q:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// offerer is a stream messages are queued on (client or server side).
type offerer interface {
	Offer(core.Msg) (queued, alive bool)
	Put(core.Msg, <-chan struct{}) (queued, alive bool)
}

// aioSend queues msg: True/False (whether it was queued) at once, or an
// operation that completes with that once the queue had room.
func aioSend(s offerer, msg core.Msg, cq *C.hot_cq, token C.uint64_t) pyObj {
	queued, alive := s.Offer(msg)
	if queued || !alive {
		if !queued {
			msg.Free()
		}
		return C.hot_bool(C.int(b2i(queued)))
	}
	return startOp(cq, token, func(stop <-chan struct{}) aioResult {
		queued, _ := s.Put(msg, stop)
		if !queued {
			msg.Free()
		}
		return pyValue{func() pyObj { return C.hot_bool(C.int(b2i(queued))) }}
	})
}

// aioWhenClosed answers at once with done() if ch is closed, else starts an
// operation that completes with done() once it is (or with None if stopped).
func aioWhenClosed(ch <-chan struct{}, done func() pyObj, cq *C.hot_cq, token C.uint64_t) pyObj {
	select {
	case <-ch:
		return done()
	default:
	}
	return startOp(cq, token, func(stop <-chan struct{}) aioResult {
		select {
		case <-ch:
			return pyValue{done}
		case <-stop:
			return pyValue{func() pyObj { return C.hot_none() }}
		}
	})
}

// ---- client ----

// hotAioUnary starts a unary call that completes token on cq when it ends;
// the loop then reads it with unary_wait(call, 0). With a result record
// (rec, a hot_aio_rec: pyext/aio_unary.h's calls pass one), an OK call
// with a small response, no details and no metadata Python would see
// leaves its response there first (takeResponse), and the loop makes no
// call into Go to read it; the engine's count on rec is given back in
// every case.
//
//export hotAioUnary
func hotAioUnary(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, method *C.char, mn C.Py_ssize_t, req unsafe.Pointer,
	rn C.Py_ssize_t, reqObj pyObj, timeout C.double, md pyObj, wfr, compression C.int, creds pyObj,
	rec unsafe.Pointer) (ret pyObj) {
	defer guard(&ret)
	ch := value[*core.Channel](h)
	spec, r := callSpec(method, mn, timeout, md, wfr, compression, creds)
	switch r {
	case mdRaised:
		C.hot_aio_rec_unref(rec)
		return nil
	case mdInvalid:
		C.hot_aio_rec_unref(rec)
		C.hot_cq_ref(cq)
		C.hot_cq_complete(cq, token)
		return startedUnary(core.FailedUnary(invalidMetadata))
	}
	C.hot_cq_ref(cq)
	notify := func(c *core.UnaryCall) {
		if rec != nil {
			if c.Status.Details == "" {
				takeResponse(c, C.hot_aio_rec_wait(rec))
			}
			C.hot_aio_rec_unref(rec)
		}
		C.hot_cq_complete(cq, token)
	}
	if aioUnaryHere {
		// A call alone on its channel starts on the loop's thread, GIL
		// kept: the start never waits (what would wait goes to a worker)
		// and its frames are written only by a write that never waits
		// (core/fastunary.go); notify then runs on grpc-go's reader.
		return startedUnary(ch.StartUnaryOn(spec, goMsg(req, rn, reqObj), notify, runHere))
	}
	return startedUnary(ch.StartUnaryNotify(spec, goMsg(req, rn, reqObj), notify))
}

// aioUnaryHere: GRPCGO_AIO_UNARY_HERE=0 starts every grpc.aio unary call on
// a worker goroutine (to measure the difference; docs/ARCHITECTURE.md,
// "The start on the loop's thread, ninth stop").
var aioUnaryHere = os.Getenv("GRPCGO_AIO_UNARY_HERE") != "0"

func runHere(f func()) { f() }

// hotUnaryStarts is how many unary calls started on their caller's thread
// since the process started (core.CallerStarts), for the tests.
//
//export hotUnaryStarts
func hotUnaryStarts() (ret pyObj) {
	defer guard(&ret)
	return C.hot_int(C.longlong(core.CallerStarts()))
}

// aioRecv is a receive from q for the loop: the list of what is queued
// now ([] at the end), or None after setting a waiter (set/clear: the
// stream's or call's) that completes token once something is queued. The
// queue is checked again after the waiter is set, so nothing queued in
// between is missed; a waiter taken back that ran completes for nobody.
//
// next, if not 0, is a second token for a reader that alternates with its
// peer (a ping-pong: its last read waited): when this receive takes
// messages (not the end), next is armed the same way before returning, so
// the loop's next read, which would find nothing and arm a wait, awaits
// next without calling in (one crossing fewer per message). next then
// completes once something is queued or the queue ended, at once if
// something already is; a receive that arms token instead (nothing
// queued) leaves next unused. GRPCGO_AIO_RECV_ARM=0 ignores next (the
// caller sees aio_recv_arm() False and does not pass it).
func aioRecv(q <-chan core.Msg, took func(), set func(*func()) *func(), clear func(*func()) bool, maxN int,
	cq *C.hot_cq, token, next C.uint64_t) pyObj {
	take := func(m core.Msg, ok bool) pyObj {
		if !ok {
			return C.hot_list(0)
		}
		batch := takeQueued(q, msgBatch{m}, maxN)
		if next != 0 && aioRecvArm {
			batch = armAfterTake(q, batch, set, clear, cq, next)
		}
		took() // the reading goroutine may wait for room (core's receiver.took)
		return batch.py()
	}
	select {
	case m, ok := <-q:
		return take(m, ok)
	default:
	}
	w := newCqWaiter(cq, token)
	dropCqWaiter(set(&w.run))
	select {
	case m, ok := <-q:
		if clear(&w.run) {
			dropCqWaiter(&w.run)
		}
		return take(m, ok)
	default:
	}
	return C.hot_none()
}

// armAfterTake arms next after a take of batch (see aioRecv) and returns
// batch: the waiter is set, then q looked at once more, as aioRecv does,
// since a message queued (or the queue closed) just before the waiter was
// set found none. If something is there, next completes at once (the next
// read calls in and finds it), and a message found is added to batch.
func armAfterTake(q <-chan core.Msg, batch msgBatch, set func(*func()) *func(), clear func(*func()) bool,
	cq *C.hot_cq, next C.uint64_t) msgBatch {
	w := newCqWaiter(cq, next)
	dropCqWaiter(set(&w.run))
	select {
	case m, ok := <-q:
		if ok {
			batch = append(batch, m)
		}
		if clear(&w.run) {
			dropCqWaiter(&w.run)
			C.hot_cq_push(cq, next) // the caller's queue: no count of ours to give back
		}
	default:
	}
	return batch
}

// aioRecvArm: GRPCGO_AIO_RECV_ARM=0 turns the armed next read off (A/B).
var aioRecvArm = os.Getenv("GRPCGO_AIO_RECV_ARM") != "0"

//export hotAioRecvArm
func hotAioRecvArm() C.int { return C.int(b2i(aioRecvArm)) }

// hotAioStreamRecv is the list of up to maxN responses queued now ([] at
// the end), or None: then token completes on cq once a response is queued
// or the responses ended, and the loop asks again. No goroutine waits: the
// stream's reading goroutine completes the token (core.Stream's response
// waiter), and a response stays queued in Go until a receive takes it, so
// none is lost whatever became of the wait (a later call replaces it).
//
//export hotAioStreamRecv
func hotAioStreamRecv(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, maxN C.Py_ssize_t,
	next C.uint64_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	s.AioRead()
	if r, ok := aioRecvDirect(s, cq, token, next); ok {
		return r
	}
	return aioRecv(s.Responses(), s.TookResponses, s.SetResponseWaiter, s.ClearResponseWaiter, int(maxN), cq, token, next)
}

//export hotAioStreamSend
func hotAioStreamSend(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, p unsafe.Pointer, n C.Py_ssize_t,
	obj pyObj) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	s.AioSent()
	msg := goMsg(p, n, obj)
	if sent, alive := s.SendNowNoWait(msg); sent || !alive {
		if !sent {
			msg.Free()
		}
		return C.hot_bool(C.int(b2i(sent)))
	}
	return aioSend(s, msg, cq, token)
}

//export hotAioStreamHeader
func hotAioStreamHeader(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	return aioWhenClosed(s.HeaderReady, func() pyObj { return mdToPy(s.Header) }, cq, token)
}

//export hotAioStreamStatus
func hotAioStreamStatus(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	return aioWhenClosed(s.Ended(), func() pyObj {
		t := C.hot_tuple(3)
		C.hot_tuple_set(t, 0, C.hot_int(C.longlong(s.Status.Code)))
		C.hot_tuple_set(t, 1, pyStr(s.Status.Details))
		C.hot_tuple_set(t, 2, mdToPy(s.Status.Trailer))
		return C.hot_complete(t)
	}, cq, token)
}

// hotAioStreamOpened is True/False (opened on a connection or not) at once
// if the stream has opened or failed to, else an operation that completes
// with that.
//
//export hotAioStreamOpened
func hotAioStreamOpened(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	return aioWhenClosed(s.Opened(), func() pyObj { return C.hot_bool(C.int(b2i(s.Open()))) }, cq, token)
}

// hotAioStreamCloseSend half-closes the stream after the requests already
// queued, without waiting: the end marker may wait for room in the send
// queue, so it is queued from a goroutine (it ends when queued or when the
// call ends).
//
//export hotAioStreamCloseSend
func hotAioStreamCloseSend(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	go value[*core.Stream](h).CloseSend()
	return C.hot_none()
}

// hotAioChannelWatch starts an operation that completes with the channel's
// new state once it leaves `from`, or None if the channel closed first or
// the operation was dropped.
//
//export hotAioChannelWatch
func hotAioChannelWatch(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, from C.int) (ret pyObj) {
	defer guard(&ret)
	ch := value[*core.Channel](h)
	return startOp(cq, token, func(stop <-chan struct{}) aioResult {
		state, ok := <-ch.WatchState(int(from), stop)
		return pyValue{func() pyObj {
			if !ok {
				return C.hot_none()
			}
			return C.hot_int(C.longlong(state))
		}}
	})
}

// ---- server ----

// hotAioServerStop stops the server on a goroutine (see core.Server.Stop)
// and completes once it has stopped.
//
//export hotAioServerStop
func hotAioServerStop(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, grace C.double) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Server](h)
	g := seconds(grace)
	return startOp(cq, token, func(<-chan struct{}) aioResult {
		s.Stop(g)
		return pyValue{func() pyObj { return C.hot_none() }}
	})
}

// hotAioServerStopped is True at once if the server has stopped, else an
// operation that completes with True once it has (None if dropped first).
//
//export hotAioServerStopped
func hotAioServerStopped(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Server](h)
	return aioWhenClosed(s.Stopped(), func() pyObj { return C.hot_bool(1) }, cq, token)
}

// cqWaiter completes a token on a loop's completion queue, once, when the
// engine has something for the loop (see core's receiver waiters); it
// holds a count on the queue until then. run is its first field, so a
// *func() handed to core leads back to it.
type cqWaiter struct {
	run   func()
	cq    *C.hot_cq
	token C.uint64_t
}

func newCqWaiter(cq *C.hot_cq, token C.uint64_t) *cqWaiter {
	C.hot_cq_ref(cq)
	w := &cqWaiter{cq: cq, token: token}
	w.run = func() { C.hot_cq_complete(w.cq, w.token) }
	return w
}

// drop gives back the count of a waiter that will never run.
func dropCqWaiter(f *func()) {
	if f != nil {
		C.hot_cq_unref((*cqWaiter)(unsafe.Pointer(f)).cq)
	}
}

// hotAioCallRecv is the list of up to maxN requests queued now ([] at the
// end), or None: then token completes on cq once a request is queued or
// the requests ended, and the loop calls again. No goroutine waits: the
// call's own reading goroutine completes the token (core.ServerCall's
// request waiter). A request is never lost: it stays queued in Go until a
// receive takes it, whatever became of the wait (a later call replaces it).
//
//export hotAioCallRecv
func hotAioCallRecv(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, maxN C.Py_ssize_t,
	next C.uint64_t) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	c.AioRead()
	if r, ok := aioRecvDirect(c, cq, token, next); ok {
		return r
	}
	return aioRecv(c.Requests(), c.TookRequests, c.SetRequestWaiter, c.ClearRequestWaiter, int(maxN), cq, token, next)
}

//export hotAioCallSend
func hotAioCallSend(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, p unsafe.Pointer, n C.Py_ssize_t,
	obj pyObj) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	msg := c.MarkNext(goMsg(p, n, obj))
	// Written on the loop's thread when that cannot wait: out to the
	// socket here, as a sync handler's response is, with no goroutine
	// woken (core.ServerCall.SendNowNoWait).
	if sent, alive := c.SendNowNoWait(msg); sent || !alive {
		if !sent {
			msg.Free()
		}
		return C.hot_bool(C.int(b2i(sent)))
	}
	return aioSend(c, msg, cq, token)
}

// aioServer is what an asyncio server's notify shares with its takes:
// armed is set by a take that found the queue empty, and the next queued
// call (alone) pushes the token, so a burst of calls costs the loop one
// token and one take, not one of each per call.
type aioServer struct{ armed atomic.Bool }

var aioServers sync.Map // *core.Server -> *aioServer

// hotAioServerAttach makes the server announce its calls on cq instead of
// its dispatcher (dispatch.h): token completes when a call is queued after
// a take found none (see aio_server_take), and once when the server stops.
// So the loop takes calls itself and no goroutine waits for them. Call it
// before the server starts; the server holds a count on cq until it stops
// (its last notify).
//
//export hotAioServerAttach
func hotAioServerAttach(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Server](h)
	a := &aioServer{}
	a.armed.Store(true)
	aioServers.Store(s, a)
	C.hot_cq_ref(cq)
	s.SetNotify(func(stopped bool) {
		if stopped {
			aioServers.Delete(s)
			C.hot_cq_complete(cq, token)
		} else if a.armed.Swap(false) {
			C.hot_cq_push(cq, token)
		}
	})
	return C.hot_none()
}

// hotAioServerTake is the list of up to maxN queued calls' events (as
// server_take makes them; [] if none is queued), or None once the server
// stopped. A take that comes back short arms the server's notify (see
// aioServer) and looks once more, so a call queued meanwhile is either
// taken now or announced. Each call taken is watched (watchCall), the
// i-th with token firstToken+i: taking and watching a burst of calls is one
// crossing, not one per call.
//
//export hotAioServerTake
func hotAioServerTake(h C.uintptr_t, maxN C.Py_ssize_t, cq *C.hot_cq, firstToken C.uint64_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Server](h)
	var a *aioServer
	if v, ok := aioServers.Load(s); ok {
		a = v.(*aioServer)
	}
	var calls []*core.ServerCall
	armed := a == nil
	for len(calls) < int(maxN) {
		c, more := s.Take()
		if !more {
			if len(calls) == 0 {
				return C.hot_none()
			}
			break
		}
		if c == nil {
			if armed {
				break
			}
			a.armed.Store(true)
			armed = true
			continue
		}
		c.Loop = true // the loop finishes it (hotCallFinish: FinishNoWait)
		calls = append(calls, c)
	}
	l := C.hot_list(C.Py_ssize_t(len(calls)))
	for i, c := range calls {
		C.hot_list_set(l, C.Py_ssize_t(i), serverEvent(c))
		watchCall(c, cq, firstToken+C.uint64_t(i))
	}
	return C.hot_complete(l)
}

// watchCall completes token on cq if c dies (the client cancels it, its
// deadline passes, the server stops) before it is finished; a call
// finished first completes nothing. No goroutine waits
// (core.ServerCall.OnDone).
func watchCall(c *core.ServerCall, cq *C.hot_cq, token C.uint64_t) {
	C.hot_cq_ref(cq)
	c.OnDone(func(died bool) {
		if died {
			C.hot_cq_complete(cq, token)
		} else {
			C.hot_cq_unref(cq)
		}
	})
}

// hotAioCallSendHeader is call_send_header for an event loop: it keeps the
// GIL, since sending headers never waits for the network (grpc-go queues
// them on its control buffer) and the call's lock is only held briefly
// (core.ServerCall.SendHeader); the binding sends headers before any
// response, so no writer can hold it across a flow-control wait.
//
//export hotAioCallSendHeader
func hotAioCallSendHeader(h C.uintptr_t, md pyObj) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	m, r := mdFromPy(md)
	switch r {
	case mdRaised:
		return nil
	case mdInvalid:
		return C.hot_none() // the caller ends the call with INTERNAL
	}
	return C.hot_bool(C.int(b2i(c.SendHeader(m) == nil)))
}

// hotAioCallSetCompression is call_set_compression for an event loop,
// keeping the GIL: the binding calls it only before the first response, when
// no writer can hold the call's lock.
//
//export hotAioCallSetCompression
func hotAioCallSetCompression(h C.uintptr_t, algorithm C.int) (ret pyObj) {
	defer guard(&ret)
	value[*core.ServerCall](h).SetCompressor(core.CompressorName(int(algorithm)))
	return C.hot_none()
}

// hotAioCallSendMany queues n responses in order, in one crossing (see
// aioSendMany).
//
//export hotAioCallSendMany
func hotAioCallSendMany(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, ptrs *unsafe.Pointer,
	lens *C.Py_ssize_t, objs *pyObj, n C.Py_ssize_t) (ret pyObj) {
	defer guard(&ret)
	return aioSendMany(value[*core.ServerCall](h), cq, token, ptrs, lens, objs, n)
}

// hotAioStreamSendMany queues n requests in order, in one crossing (see
// aioSendMany): a client's request iterator's batch.
//
//export hotAioStreamSendMany
func hotAioStreamSendMany(cq *C.hot_cq, token C.uint64_t, h C.uintptr_t, ptrs *unsafe.Pointer,
	lens *C.Py_ssize_t, objs *pyObj, n C.Py_ssize_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	s.AioSent()
	return aioSendMany(s, cq, token, ptrs, lens, objs, n)
}

// aioManySender is a server call or a client stream, for aioSendMany.
type aioManySender interface {
	offerer
	SendNowNoWait(core.Msg) (sent, alive bool)
}

// aioSendMany queues n messages in order: True once all are queued, False
// if the stream can take no more (the rest are dropped), or an operation
// that queues the rest as room frees up and completes with that. Queueing
// a batch at once lets the sender goroutine, woken once, write them all.
func aioSendMany(c aioManySender, cq *C.hot_cq, token C.uint64_t, ptrs *unsafe.Pointer,
	lens *C.Py_ssize_t, objs *pyObj, n C.Py_ssize_t) pyObj {
	ps, ls, os := unsafe.Slice(ptrs, int(n)), unsafe.Slice(lens, int(n)), unsafe.Slice(objs, int(n))
	msgs := make([]core.Msg, int(n))
	for i := range msgs {
		msgs[i] = goMsg(ps[i], ls[i], os[i])
	}
	free := func(rest []core.Msg) {
		for _, m := range rest {
			m.Free()
		}
	}
	if len(msgs) == 1 {
		// One message (a bidi handler answering a request, a request
		// answering a response): written on the loop's thread when that
		// cannot wait, out to the socket here, with no goroutine woken
		// (SendNowNoWait).
		if sent, alive := c.SendNowNoWait(msgs[0]); sent || !alive {
			if !sent {
				msgs[0].Free()
			}
			return C.hot_bool(C.int(b2i(sent)))
		}
	}
	for i, m := range msgs {
		queued, alive := c.Offer(m)
		if queued {
			continue
		}
		if !alive {
			free(msgs[i:])
			return C.hot_bool(0)
		}
		rest := msgs[i:]
		return startOp(cq, token, func(stop <-chan struct{}) aioResult {
			for j, m := range rest {
				if queued, _ := c.Put(m, stop); !queued {
					free(rest[j:])
					return pyValue{func() pyObj { return C.hot_bool(0) }}
				}
			}
			return pyValue{func() pyObj { return C.hot_bool(1) }}
		})
	}
	return C.hot_bool(1)
}
