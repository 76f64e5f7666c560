package main

/*
#include "hot.h"
*/
import "C"

import (
	"os"
	"sync"
	"time"
	"unsafe"

	"google.golang.org/grpc/codes"

	"grpcgo/core"
)

// Server side of the hot module: servers, and the calls they hand over.

//export hotServerNew
func hotServerNew(opts *C.char, on C.Py_ssize_t, maxConcurrent C.longlong, xds C.int) (ret pyObj) {
	defer guard(&ret)
	options, err := core.ParseOptions(goBytes(unsafe.Pointer(opts), on))
	if err != nil {
		return raise(C.HOT_VALUE, "%v", err)
	}
	var srv *core.Server
	if xds != 0 {
		// As grpcio: an xDS server that cannot get its configuration (no
		// bootstrap, or no server listener template in it) says so and
		// serves as a plain server.
		if srv, err = core.NewXDSServer(options, int(maxConcurrent)); err != nil {
			xdsLogger.Errorf("grpc.server(xds=True) serves without xDS: %v", err)
		}
	}
	if srv == nil {
		srv = core.NewServer(options, int(maxConcurrent))
	}
	// Takers sleep outside Go (dispatch.h). The dispatcher is freed once
	// the capsule is gone and the server stopped (see releaseServer).
	d := unsafe.Pointer(C.hot_dispatch_new())
	if d == nil {
		return raise(C.HOT_RUNTIME, "out of memory")
	}
	servers.Store(srv, d)
	srv.SetNotify(func(stopped bool) {
		if stopped {
			C.hot_dispatch_stop(d)
		} else {
			C.hot_dispatch_post(d)
		}
	})
	return capsule(srv, C.HOT_SERVER)
}

// servers maps each live server to the dispatcher its calls are announced
// on; releaseServer deletes its entry.
var servers sync.Map

// releaseServer stops a server Python dropped, then forgets it and frees its
// dispatcher: no Python thread waits on the dispatcher any more (each holds
// the capsule while it does) and, once stopped, no call is announced.
func releaseServer(s *core.Server) {
	s.Stop(0)
	if d, ok := servers.LoadAndDelete(s); ok {
		C.hot_dispatch_free((*C.hot_dispatch)(d.(unsafe.Pointer)))
	}
}

// hotServerDispatch is the server's dispatcher (a hot_dispatch).
//
//export hotServerDispatch
func hotServerDispatch(h C.uintptr_t) unsafe.Pointer {
	v, _ := servers.Load(value[*core.Server](h))
	return v.(unsafe.Pointer)
}

// hotServerTake returns the next queued call without waiting (see
// serverEvent), False if none is queued, None once the server stopped.
//
//export hotServerTake
func hotServerTake(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	c, more := value[*core.Server](h).Take()
	if !more {
		return C.hot_none()
	}
	if c == nil {
		return C.hot_bool(0)
	}
	c.Here = true // a pool thread finishes it (hotCallFinish)
	return serverEventMD(c, !lazyMetadata)
}

// lazyMetadata: a pool thread's event carries None for the call's
// metadata, which Python asks for (hotCallMetadata) only when something
// reads it; most handlers never do. GRPCGO_SERVER_LAZY_MD=0: in the event,
// as grpc.aio's events have it.
var lazyMetadata = os.Getenv("GRPCGO_SERVER_LAZY_MD") != "0"

// hotCallMetadata is a server call's invocation metadata, as the event
// would have carried it.
//
//export hotCallMetadata
func hotCallMetadata(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	return mdToPy(value[*core.ServerCall](h).Metadata)
}

//export hotServerAddPort
func hotServerAddPort(h C.uintptr_t, addr *C.char, an C.Py_ssize_t, creds pyObj) (ret pyObj) {
	defer guard(&ret)
	sc, ok := optCreds[*core.ServerCredentials](creds, "ServerCredentials")
	if !ok {
		return nil
	}
	port, err := value[*core.Server](h).AddPort(goStr(addr, an), sc)
	if err != nil {
		return raise(C.HOT_RUNTIME, "%v", err)
	}
	return C.hot_int(C.longlong(port))
}

//export hotServerStart
func hotServerStart(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	if err := value[*core.Server](h).Start(); err != nil {
		return raise(C.HOT_VALUE, "%v", err)
	}
	return C.hot_none()
}

// serverEvent is what the binding gets for an incoming call: (call, method,
// invocation metadata, peer, seconds left or None, request or None).
func serverEvent(c *core.ServerCall) pyObj { return serverEventMD(c, true) }

// serverEventMD is serverEvent, with None for the metadata unless withMD.
func serverEventMD(c *core.ServerCall, withMD bool) pyObj {
	t := C.hot_tuple(6)
	C.hot_tuple_set(t, 0, capsule(c, C.HOT_SERVER_CALL))
	C.hot_tuple_set(t, 1, pyStr(c.Method))
	if withMD {
		C.hot_tuple_set(t, 2, mdToPy(c.Metadata))
	} else {
		C.hot_tuple_set(t, 2, C.hot_none())
	}
	C.hot_tuple_set(t, 3, pyStr(c.Peer))
	if c.HasDeadline {
		C.hot_tuple_set(t, 4, C.hot_float(C.double(time.Until(c.Deadline).Seconds())))
	} else {
		C.hot_tuple_set(t, 4, C.hot_none())
	}
	if c.First != nil {
		C.hot_tuple_set(t, 5, pyBytesMsg(c.First))
		c.First = nil
	} else {
		C.hot_tuple_set(t, 5, C.hot_none())
	}
	return C.hot_complete(t)
}

// hotServerMarkUnary says method's handler takes one request (see
// core.Server.MarkUnaryRequest).
//
//export hotServerMarkUnary
func hotServerMarkUnary(h C.uintptr_t, method *C.char, mn C.Py_ssize_t) (ret pyObj) {
	defer guard(&ret)
	value[*core.Server](h).MarkUnaryRequest(goStr(method, mn))
	return C.hot_none()
}

// hotServerStop stops the server (see core.Server.Stop) and returns when it
// has stopped.
//
//export hotServerStop
func hotServerStop(h C.uintptr_t, grace C.double) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Server](h)
	withoutGIL(func() { s.Stop(seconds(grace)) })
	return C.hot_none()
}

// hotServerRefuse makes the server refuse new calls now, without waiting
// (see core.Server.Refuse): stop(grace) calls it before it returns, and
// waits out the grace on another thread.
//
//export hotServerRefuse
func hotServerRefuse(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	s := value[*core.Server](h)
	withoutGIL(s.Refuse)
	return C.hot_none()
}

// hotServerWait waits until the server has stopped: True, or False if
// timeout passed first.
//
//export hotServerWait
func hotServerWait(h C.uintptr_t, timeout C.double) (ret pyObj) {
	defer guard(&ret)
	switch _, _, r := await(value[*core.Server](h).Stopped(), seconds(timeout)); r {
	case waitInterrupted:
		return nil
	case waitTimeout:
		return C.hot_bool(0)
	}
	return C.hot_bool(1)
}

// hotCallRecvOne reads the single request of a unary-request call: bytes,
// or None if the client sent none.
//
//export hotCallRecvOne
func hotCallRecvOne(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	var m core.Msg
	var err error
	withoutGIL(func() { m, err = c.RecvOne() })
	if err != nil { // io.EOF, or the call ended: the handler sees no request
		return C.hot_none()
	}
	return pyBytesMsg(m)
}

// hotCallRecv returns a list of up to max requests, waiting for at least
// one; an empty list once the client is done sending.
//
//export hotCallRecv
func hotCallRecv(h C.uintptr_t, maxN C.Py_ssize_t) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	if c.MayRecvDirect() && !isMainThread() {
		// One request at a time between responses: read on this thread
		// (core.ServerCall.RecvDirect), else from the read-ahead queue.
		var m core.Msg
		var err error
		var ok bool
		withoutGIL(func() { m, err, ok = c.RecvDirect() })
		if ok {
			if err != nil {
				return C.hot_list(0) // the requests ended (half-close, or the call's end)
			}
			l := C.hot_list(1)
			C.hot_list_set(l, 0, pyBytesMsg(m))
			return C.hot_complete(l)
		}
	}
	return recvBatch(c.Requests(), c.TookRequests, int(maxN), -1)
}

// hotCallSend queues a response; False once the call can take no more.
//
//export hotCallSend
func hotCallSend(h C.uintptr_t, p unsafe.Pointer, n C.Py_ssize_t, obj pyObj) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	msg := c.MarkNext(goMsg(p, n, obj))
	if r, done := sendNow(c, msg); done {
		return r
	}
	queued, alive := c.Offer(msg)
	if !queued && alive {
		withoutGIL(func() { queued, _ = c.Put(msg, c.Context().Done()) })
	}
	if !queued {
		msg.Free() // never reached grpc-go: give its buffer back now
	}
	return C.hot_bool(C.int(b2i(queued)))
}

//export hotCallSendHeader
func hotCallSendHeader(h C.uintptr_t, md pyObj) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	m, r := mdFromPy(md)
	switch r {
	case mdRaised:
		return nil
	case mdInvalid:
		return C.hot_none() // the caller ends the call with INTERNAL
	}
	var err error
	withoutGIL(func() { err = c.SendHeader(m) })
	return C.hot_bool(C.int(b2i(err == nil)))
}

// hotCallFinish ends the call with a status, trailing metadata and an
// optional last response; False if it had already ended.
//
//export hotCallFinish
func hotCallFinish(h C.uintptr_t, code C.int, details *C.char, dn C.Py_ssize_t, trailer pyObj,
	last unsafe.Pointer, ln C.Py_ssize_t, lastObj pyObj, hasLast C.int) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	md, r := mdFromPy(trailer)
	switch r {
	case mdRaised:
		// The call must end whatever the metadata was; the exception
		// still tells the caller what was wrong.
		c.Finish(codes.Internal, "Invalid metadata", nil)
		return nil
	case mdInvalid:
		code, md = C.int(codes.Internal), nil
		details, dn = invalidMetadataDetails, C.Py_ssize_t(len("Invalid metadata"))
	}
	if len(md) > 0 {
		c.SetTrailer(md)
	}
	var msg core.Msg
	if hasLast != 0 {
		msg = c.MarkNext(goMsg(last, ln, lastObj))
	}
	var err error
	if st := goStr(details, dn); c.Here && c.QuickFinish(msg) && !c.WritesHere() {
		// A pool thread queues the response and the status itself: no
		// goroutine but grpc-go's writer is woken (core.ServerCall.FinishHere).
		// When it may write them to the socket too (alone on its
		// connection), it releases the GIL (docs/ARCHITECTURE.md, "Servers").
		err = c.FinishHere(codes.Code(code), st, msg)
	} else if c.Here {
		withoutGIL(func() { err = c.FinishHere(codes.Code(code), st, msg) })
	} else if c.Loop {
		// An event loop's thread: a quick finish is ended here, written to
		// the socket here when the call is alone on its connection, never
		// waiting; anything else goes to a goroutine
		// (core.ServerCall.FinishNoWait).
		err = c.FinishNoWait(codes.Code(code), st, msg)
	} else {
		err = c.Finish(codes.Code(code), st, msg)
	}
	if err != nil {
		msg.Free() // the call had ended: the response goes nowhere
	}
	return C.hot_bool(C.int(b2i(err == nil)))
}

var invalidMetadataDetails = C.CString("Invalid metadata")

// hotFinishStats is (calls an event loop's thread finished itself, unary
// finishes written to the socket by their finisher, finishes that left
// their frames to grpc-go's writer) since the process started, for the
// tests (core.LoopFinishes, core.ServerInlineWrites).
//
//export hotFinishStats
func hotFinishStats() (ret pyObj) {
	defer guard(&ret)
	inline, left := core.ServerInlineWrites()
	t := C.hot_tuple(3)
	C.hot_tuple_set(t, 0, C.hot_int(C.longlong(core.LoopFinishes())))
	C.hot_tuple_set(t, 1, C.hot_int(C.longlong(inline)))
	C.hot_tuple_set(t, 2, C.hot_int(C.longlong(left)))
	return C.hot_complete(t)
}

// hotCallDisableNextCompression: the call's next response goes out
// uncompressed (grpcio's context.disable_next_message_compression()).
//
//export hotCallDisableNextCompression
func hotCallDisableNextCompression(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	value[*core.ServerCall](h).DisableNextCompression()
	return C.hot_none()
}

// hotCallSetCompression sets the compression of the call's responses
// (grpcio's Compression value).
//
//export hotCallSetCompression
func hotCallSetCompression(h C.uintptr_t, algorithm C.int) (ret pyObj) {
	defer guard(&ret)
	c := value[*core.ServerCall](h)
	withoutGIL(func() { c.SetCompressor(core.CompressorName(int(algorithm))) })
	return C.hot_none()
}

// hotCallCancel cancels the call (the handler's context.cancel()).
//
//export hotCallCancel
func hotCallCancel(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	value[*core.ServerCall](h).Cancel()
	return C.hot_none()
}

//export hotCallActive
func hotCallActive(h C.uintptr_t) (ret pyObj) {
	defer guard(&ret)
	return C.hot_bool(C.int(b2i(value[*core.ServerCall](h).Active())))
}

// hotReleaseAll releases n handles at once (see hotRelease).
//
//export hotReleaseAll
func hotReleaseAll(hs *C.uintptr_t, n C.int) {
	for _, h := range unsafe.Slice(hs, int(n)) {
		hotRelease(h)
	}
}

// hotRelease frees a handle when Python drops the capsule holding it, ending
// whatever the object still has under way.
//
//export hotRelease
func hotRelease(h C.uintptr_t) {
	defer func() { recover() }()
	handle := cgoHandle(h)
	switch v := handle.Value().(type) {
	case *core.Channel:
		go v.Close()
	case *unaryCall:
		v.Cancel()
		if v.resp != nil {
			C.hot_decref(v.resp)
		}
	case *core.Stream:
		v.Cancel()
	case *core.Server:
		go releaseServer(v)
	case *core.ServerCall:
		v.Finish(codes.Unknown, "the handler ended without finishing the call", nil)
	case *aioOp:
		v.release()
	}
	handle.Delete()
	core.CountHandles(-1)
}
