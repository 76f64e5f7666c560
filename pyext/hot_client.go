package main

/*
#include "hot.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"google.golang.org/grpc/codes"

	"grpcgo/core"
)

// Client side of the hot module: channels, unary calls and streams.

//export hotChannelNew
func hotChannelNew(target *C.char, tn C.Py_ssize_t, opts *C.char, on C.Py_ssize_t, creds pyObj) (ret pyObj) {
	defer guard(&ret)
	options, err := core.ParseOptions(goBytes(unsafe.Pointer(opts), on))
	if err != nil {
		return raise(C.HOT_VALUE, "%v", err)
	}
	cc, ok := optCreds[*core.ChannelCredentials](creds, "ChannelCredentials")
	if !ok {
		return nil
	}
	ch, err := core.Dial(goStr(target, tn), options, cc)
	if err != nil {
		return raise(C.HOT_VALUE, "cannot create a channel to %q: %v", goStr(target, tn), err)
	}
	return capsule(ch, C.HOT_CHANNEL)
}

//export hotChannelClose
func hotChannelClose(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	value[*core.Channel](h).Close() // does not wait
	return C.hot_none()
}

// callSpec reads the arguments every call takes. mdRaised: a Python
// exception is set; mdInvalid: the call must fail with INTERNAL.
func callSpec(method *C.char, mn C.Py_ssize_t, timeout C.double, md pyObj, wfr, compression C.int,
	creds pyObj) (*core.CallSpec, mdResult) {
	m, r := mdFromPy(md)
	if r == mdRaised {
		return nil, r
	}
	cc, ok := optCreds[*core.CallCredentials](creds, "CallCredentials")
	if !ok {
		return nil, mdRaised
	}
	spec := &core.CallSpec{Method: goStr(method, mn), Metadata: m, WaitForReady: int(wfr), Credentials: cc}
	if d := seconds(timeout); d >= 0 { // NaN: 0, expired at once, as in grpcio
		spec.Timeout = max(d, time.Nanosecond)
	}
	switch {
	case compression == 0:
		spec.Compressor = "identity"
	case compression > 0:
		spec.Compressor = core.CompressorName(int(compression))
	}
	return spec, r
}

// invalidMetadata is how a call with metadata gRPC forbids ends, as in
// grpcio: before anything is sent.
var invalidMetadata = &core.Status{Code: codes.Internal, Details: "Invalid metadata"}

// unaryCall is a unary call as Python holds it. Its response becomes a
// bytes object once, under the GIL, and every later fetch shares it (two
// threads may both ask a future for its result).
type unaryCall struct {
	*core.UnaryCall
	resp pyObj // owned; released with the handle
}

func startedUnary(c *core.UnaryCall) pyObj { return capsule(&unaryCall{UnaryCall: c}, C.HOT_UNARY) }

// response is the call's response as a new reference, or None.
func (c *unaryCall) response() pyObj {
	if c.Response == nil {
		return C.hot_none()
	}
	if c.resp == nil {
		// The buffers are given back only once the bytes exist: after a
		// MemoryError the next fetch tries again with them.
		if c.resp = pyBytesOf(c.Response); c.resp == nil {
			return nil
		}
		c.Response.Free()
		c.Response = core.Msg{}
	}
	C.hot_incref(c.resp)
	return c.resp
}

// unaryResult is (code, details, response or None, initial md, trailing md).
func unaryResult(c *unaryCall) pyObj {
	resp := c.response()
	if resp == nil {
		return nil
	}
	t := C.hot_tuple(5)
	C.hot_tuple_set(t, 0, C.hot_int(C.longlong(c.Status.Code)))
	C.hot_tuple_set(t, 1, pyStr(c.Status.Details))
	C.hot_tuple_set(t, 2, resp)
	C.hot_tuple_set(t, 3, mdToPy(c.Header))
	C.hot_tuple_set(t, 4, mdToPy(c.Status.Trailer))
	return C.hot_complete(t)
}

// hotUnaryBegin starts a unary call for a future, which waits for it with
// hotUnaryWait.
//
//export hotUnaryBegin
func hotUnaryBegin(h C.uintptr_t, method *C.char, mn C.Py_ssize_t, req unsafe.Pointer, rn C.Py_ssize_t, reqObj pyObj,
	timeout C.double, md pyObj, wfr, compression C.int, creds pyObj) (ret pyObj) {
	defer guard(&ret)
	ch := value[*core.Channel](h)
	spec, r := callSpec(method, mn, timeout, md, wfr, compression, creds)
	switch r {
	case mdRaised:
		return nil
	case mdInvalid:
		return startedUnary(core.FailedUnary(invalidMetadata))
	}
	return startedUnary(ch.StartUnaryNotify(spec, goMsg(req, rn, reqObj), nil))
}

// hotUnaryCall starts a unary call whose caller blocks in C until the call
// posts w (see hot_wait): waiting in C, not in Go, spares Go a locked
// thread's park and hand-back on every call.
//
// With responseOnly, an OK call whose response is small and that brought
// no metadata leaves just the response's bytes in w: the caller then makes
// no further call into Go (no result to fetch, no handle to release).
// Otherwise w carries a handle to the ended call, read with hotUnaryResult
// and released with hotRelease. isMain says whether the caller is the main
// thread, the only one a signal handler interrupts (Ctrl-C): only its wait
// can be cancelled (hotCancelWait). Returns None once started, or NULL with
// an exception set (nothing will be posted).
//
//export hotUnaryCall
func hotUnaryCall(h C.uintptr_t, method *C.char, mn C.Py_ssize_t, req unsafe.Pointer, rn C.Py_ssize_t, reqObj pyObj,
	timeout C.double, md pyObj, wfr, compression C.int, creds pyObj, w *C.hot_wait,
	responseOnly, isMain C.int) (ret pyObj) {
	defer guard(&ret)
	ch := value[*core.Channel](h)
	spec, r := callSpec(method, mn, timeout, md, wfr, compression, creds)
	if r == mdRaised {
		return nil
	}
	cancellable := isMain != 0
	done := func(c *core.UnaryCall) {
		if cancellable {
			interruptible.forget(w)
		}
		if responseOnly == 0 || !takeResponse(c, w) {
			w.call = newHandle(&unaryCall{UnaryCall: c})
		}
		C.hot_post(unsafe.Pointer(&w.sem))
	}
	if r == mdInvalid {
		done(core.FailedUnary(invalidMetadata))
		return C.hot_none()
	}
	if cancellable {
		interruptible.reserve(w)
	}
	c := ch.StartUnaryOn(spec, goMsg(req, rn, reqObj), done, withoutGIL)
	if cancellable {
		interruptible.set(w, c.Cancel)
	}
	return C.hot_none()
}

// takeResponse leaves c's response in w if c ended OK with a small response
// and no metadata Python would see (so nothing but the response is lost),
// and reports whether it did.
func takeResponse(c *core.UnaryCall, w *C.hot_wait) bool {
	if c.Status.Code != codes.OK || c.Response == nil || visibleMetadata(c.Header) ||
		visibleMetadata(c.Status.Trailer) || !copyOut(c.Response, w) {
		return false
	}
	c.Response = nil // freed by copyOut
	return true
}

// hotUnaryResult is the result tuple of an ended call (see unaryResult).
//
//export hotUnaryResult
func hotUnaryResult(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	return unaryResult(value[*unaryCall](h))
}

// hotUnaryWait returns the result tuple, or None if timeout passed first.
//
//export hotUnaryWait
func hotUnaryWait(h C.uintptr_t, timeout C.double) (ret pyObj) {
	defer guard(&ret)
	c := value[*unaryCall](h)
	switch _, _, r := await(c.Done, seconds(timeout)); r {
	case waitInterrupted:
		return nil
	case waitTimeout:
		return C.hot_none()
	}
	return unaryResult(c)
}

//export hotUnaryCancel
func hotUnaryCancel(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	value[*unaryCall](h).Cancel()
	return C.hot_none()
}

//export hotStreamStart
func hotStreamStart(h C.uintptr_t, method *C.char, mn C.Py_ssize_t, timeout C.double, md pyObj, wfr, compression C.int,
	creds pyObj, serverStreams, clientStreams C.int, first unsafe.Pointer, fn C.Py_ssize_t, firstObj pyObj,
	hasFirst, closeAfter C.int) (ret pyObj) {
	defer guard(&ret)
	ch := value[*core.Channel](h)
	spec, r := callSpec(method, mn, timeout, md, wfr, compression, creds)
	switch r {
	case mdRaised:
		return nil
	case mdInvalid:
		return capsule(core.FailedStream(invalidMetadata), C.HOT_STREAM)
	}
	var msg core.Msg
	if hasFirst != 0 {
		msg = goMsg(first, fn, firstObj)
	}
	s := ch.StartStream(spec, serverStreams != 0, clientStreams != 0, msg, closeAfter != 0)
	return capsule(s, C.HOT_STREAM)
}

// hotStreamSend queues a request; it returns False once the call can take
// no more (it ended), True otherwise.
//
//export hotStreamSend
func hotStreamSend(h C.uintptr_t, p unsafe.Pointer, n C.Py_ssize_t, obj pyObj) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	msg := goMsg(p, n, obj)
	if r, done := sendNow(s, msg); done {
		return r
	}
	queued, alive := s.Offer(msg)
	for !queued && alive {
		// The queue is full: wait for room without the GIL, in slices on
		// the main thread so Ctrl-C still works.
		tick := make(chan struct{})
		var stop *time.Timer
		if isMainThread() {
			stop = time.AfterFunc(signalSlice, func() { close(tick) })
		}
		withoutGIL(func() { queued, alive = s.Put(msg, tick) })
		if stop != nil {
			stop.Stop()
			if !queued && alive && C.hot_check_signals() != 0 {
				msg.Free()
				return nil
			}
		}
	}
	if !queued {
		msg.Free() // never reached grpc-go: give its buffer back now
	}
	return C.hot_bool(C.int(b2i(queued)))
}

//export hotStreamCloseSend
func hotStreamCloseSend(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	withoutGIL(s.CloseSend)
	return C.hot_none()
}

// hotStreamRecv returns a list of up to max responses: at least one unless
// the call ended (empty list) or timeout passed (None).
//
//export hotStreamRecv
func hotStreamRecv(h C.uintptr_t, maxN C.Py_ssize_t, timeout C.double) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	return recvBatch(s.Responses(), s.TookResponses, int(maxN), seconds(timeout))
}

// Every reader of a stream's queue here (recvBatch, aioRecv) calls its
// took function after each take, so the engine's receive queues may be
// deep (core.ReadersTake).
func init() { core.ReadersTake = true }

// recvBatch takes what is queued (at least one message, waiting for it)
// into a list.
func recvBatch(q <-chan core.Msg, took func(), maxN int, timeout time.Duration) pyObj {
	first, ok, r := await(q, timeout)
	switch {
	case r == waitInterrupted:
		return nil
	case r == waitTimeout:
		return C.hot_none()
	case !ok:
		return C.hot_list(0)
	}
	batch := []core.Msg{first}
more:
	for len(batch) < maxN {
		select {
		case m, ok := <-q:
			if !ok {
				break more
			}
			batch = append(batch, m)
		default:
			break more
		}
	}
	took()
	if l, ok := smallBatch(batch); ok {
		return l
	}
	l := C.hot_list(C.Py_ssize_t(len(batch)))
	for i, m := range batch {
		C.hot_list_set(l, C.Py_ssize_t(i), pyBytesMsg(m))
	}
	return C.hot_complete(l)
}

// smallBatchMax is the largest message smallBatch takes.
const smallBatchMax = 1024

// smallBatch makes the list of a batch of small messages in one call into
// C (two per message otherwise: the bytes, the list item): their data is
// gathered into one pooled buffer and cut into bytes objects there. ok is
// false, and nothing is freed, if a message is larger than smallBatchMax.
func smallBatch(batch []core.Msg) (l pyObj, ok bool) {
	if len(batch) < 2 {
		return nil, false
	}
	total := 0
	for _, m := range batch {
		n := m.Len()
		if n > smallBatchMax {
			return nil, false
		}
		total += n
	}
	buf := core.BufferPool.Get(max(total, 1))
	defer core.BufferPool.Put(buf)
	lens := make([]C.uint32_t, len(batch))
	off := 0
	for i, m := range batch {
		n := m.Len()
		if len(m) == 1 {
			copy((*buf)[off:], m[0].ReadOnlyData())
		} else {
			m.CopyTo((*buf)[off : off+n])
		}
		m.Free()
		lens[i] = C.uint32_t(n)
		off += n
	}
	return C.hot_bytes_list((*C.char)(unsafe.Pointer(&(*buf)[0])), &lens[0], C.Py_ssize_t(len(batch))), true
}

// hotStreamHeader returns the initial metadata, or None if timeout passed.
//
//export hotStreamHeader
func hotStreamHeader(h C.uintptr_t, timeout C.double) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	switch _, _, r := await(s.HeaderReady, seconds(timeout)); r {
	case waitInterrupted:
		return nil
	case waitTimeout:
		return C.hot_none()
	}
	return mdToPy(s.Header)
}

// hotStreamStatus returns (code, details, trailing md) once the call has
// ended, or None if timeout passed first. Responses not yet taken stay
// queued.
//
//export hotStreamStatus
func hotStreamStatus(h C.uintptr_t, timeout C.double) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Stream](h)
	switch _, _, r := await(s.Ended(), seconds(timeout)); r {
	case waitInterrupted:
		return nil
	case waitTimeout:
		return C.hot_none()
	}
	t := C.hot_tuple(3)
	C.hot_tuple_set(t, 0, C.hot_int(C.longlong(s.Status.Code)))
	C.hot_tuple_set(t, 1, pyStr(s.Status.Details))
	C.hot_tuple_set(t, 2, mdToPy(s.Status.Trailer))
	return C.hot_complete(t)
}

//export hotStreamCancel
func hotStreamCancel(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	value[*core.Stream](h).Cancel()
	return C.hot_none()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

//export hotChannelState
func hotChannelState(h C.uintptr_t, connect C.int) (ret pyObj) {
	defer guard(&ret)
	return C.hot_int(C.longlong(value[*core.Channel](h).State(connect != 0)))
}

// hotChannelWatch waits for the state to change from `from`: the new state,
// or None if timeout passed (or the channel closed) first.
//
//export hotChannelWatch
func hotChannelWatch(h C.uintptr_t, from C.int, timeout C.double) (ret pyObj) {
	defer guard(&ret)
	stop := make(chan struct{})
	defer close(stop)
	state, ok, r := await(value[*core.Channel](h).WatchState(int(from), stop), seconds(timeout))
	switch {
	case r == waitInterrupted:
		return nil
	case !ok:
		return C.hot_none()
	}
	return C.hot_int(C.longlong(state))
}
