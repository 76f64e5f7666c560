//go:build grpcgo_patched

package core

import (
	"context"
	"io"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A unary call started on the caller's own goroutine (StartUnaryOn), with
// no goroutine waiting for its response. The caller opens the stream and
// sends the request itself (grpc-go's newClientStream and SendMsg wait for
// nothing in the common case; where they would, the patch makes them fail
// with a "would block" error instead, and the call starts on a worker as
// before). grpc-go's reader goroutine ends the stream when the server's
// trailers arrive; the patch's hook on that end (GrpcgoCall.Done) then
// takes the response with RecvMsg, which no longer waits, on that same
// goroutine, and notifies. So a call costs one hand-off fewer at each end:
// no worker is woken to start it, and the reader does not wake a worker
// blocked in RecvMsg to finish it.
//
// Where RecvMsg could still wait (the stream may be retried: a retry
// policy; or the stream ended by something other than the peer's end of
// stream: a reset, the connection's loss, a transparent retry's refusal),
// it runs on a goroutine of its own. Nothing watches a stream that no one
// reads, so a context watcher (context.AfterFunc: deadline, cancel, the
// channel's close) collects the call too; whichever comes last of "the
// request was sent" and "the stream ended" (or the watcher) collects it,
// exactly once.

// fastUnaryOn: GRPCGO_FAST_UNARY=0 starts every unary call on a worker
// (to measure the difference).
var fastUnaryOn = os.Getenv("GRPCGO_FAST_UNARY") != "0"

// fastInline: the caller writes its frames itself when the writer is idle.
var fastInline = os.Getenv("GRPCGO_FAST_UNARY") != "1"

const (
	fcSent    = 1 << iota // the caller is done sending
	fcEnded               // a stream of the call ended
	fcFinal               // ... by the peer's end of stream
	fcClaimed             // someone collects (or collected) the call
)

type fastCall struct {
	gc       grpc.GrpcgoCall
	state    atomic.Uint32
	mayRetry bool
	ch       *Channel
	c        *UnaryCall
	ctx      context.Context
	cs       grpc.ClientStream
	notify   func(*UnaryCall)
	unwatch  func() bool
	md       [2]metadata.MD // the headers and trailers (mdOptions)
}

// startFast starts c on the calling goroutine inside around, and reports
// whether it did (false: nothing happened, start it the usual way).
func (ch *Channel) startFast(base context.Context, c *UnaryCall, spec *CallSpec, req Msg,
	notify func(*UnaryCall), around func(func())) bool {
	fc := &fastCall{ch: ch, c: c, notify: notify}
	fc.gc.Done = fc.ended
	fc.gc.NoWait.Store(true)
	fc.gc.Quiet.Store(fastInline)
	fc.ctx = grpc.GrpcgoWithCall(base, &fc.gc)
	started := true
	around(func() {
		liveClientCalls.Add(1)
		out := &outgoing{msg: req}
		o1, o2 := mdOptions(&fc.md)
		cs, mayRetry, err := grpc.GrpcgoUnaryStream(fc.ctx, ch.cc, spec.Method, ch.options(spec, o1, o2)...)
		fc.gc.NoWait.Store(false)
		if err != nil {
			fc.gc.Flush()
			if grpc.GrpcgoIsWouldBlock(err) || err == grpc.ErrGrpcgoIntercepted {
				liveClientCalls.Add(-1)
				started = false // req untouched: the worker sends it
				return
			}
			out.freeUntaken()
			fc.state.Store(fcSent | fcClaimed)
			fc.finish(err, nil)
			return
		}
		fc.cs, fc.mayRetry = cs, mayRetry
		err = cs.SendMsg(out)
		fc.gc.Flush()
		out.freeUntaken()
		if err != nil && err != io.EOF {
			fc.state.Store(fcSent | fcClaimed)
			fc.finish(err, nil)
			return
		}
		// io.EOF: the stream ended; its status comes from RecvMsg.
		fc.unwatch = context.AfterFunc(fc.ctx, fc.watched)
		// The watcher may have run before fcSent was set: then the
		// context is done, and this collects.
		if old := fc.state.Or(fcSent); old&fcEnded != 0 || fc.ctx.Err() != nil {
			fc.collect(old&fcFinal != 0)
		}
	})
	return started
}

// ended is the patch's hook: a stream of the call ended.
func (fc *fastCall) ended(final bool) {
	bits := uint32(fcEnded)
	if final {
		bits |= fcFinal
	}
	if old := fc.state.Or(bits); old&fcSent != 0 {
		fc.collect(final)
	}
}

// watched runs once the call's context is done (its own goroutine).
func (fc *fastCall) watched() {
	if fc.state.Load()&fcSent != 0 {
		fc.collect(false)
	}
}

// collect takes the response and ends the call, unless someone else does:
// here when RecvMsg cannot wait (final, and no retry may follow), else on
// a goroutine of its own.
func (fc *fastCall) collect(final bool) {
	if fc.state.Or(fcClaimed)&fcClaimed != 0 {
		return
	}
	if final && !fc.mayRetry {
		fc.receive()
	} else {
		fastReceivers.Add(1)
		go fc.receive()
	}
}

// fastReceivers counts the calls whose response a goroutine of its own
// took (tests).
var fastReceivers atomic.Int64

func (fc *fastCall) receive() {
	var resp Msg
	if fc.ch.wakeFirst && fc.notify != nil {
		err, header, trailer, end := grpc.GrpcgoRecvUnary(fc.cs, &resp)
		if end != nil {
			fc.wakeFirst(err, resp, header, trailer, end)
			return
		}
		fc.finish(err, resp)
		return
	}
	err := fc.cs.RecvMsg(&resp)
	fc.finish(err, resp)
}

func (fc *fastCall) finish(err error, resp Msg) {
	if fc.unwatch != nil {
		fc.unwatch()
	}
	c := fc.c
	c.Response, c.Header, c.Status = fc.ch.unaryOutcome(fc.ctx, err, resp, fc.md[0], fc.md[1])
	liveClientCalls.Add(-1)
	c.cancel(nil)
	c.settled.Store(true)
	fc.ch.unaryLive.Add(-1)
	close(c.Done)
	if fc.notify != nil {
		fc.notify(c)
	}
}

// wakeFirst is finish for a response taken with grpc-go's end of call
// (end) still to run: the caller is notified first, and the rest runs
// after, off the round trip's path, while the caller's thread wakes. The
// counters a caller may read, or that say whether its next call is alone
// on the channel, are settled before it is notified, and c.Done is closed
// before it too: a notified caller may read the outcome through Done
// (grpc.aio's loop does, for a call that did not end OK).
func (fc *fastCall) wakeFirst(err error, resp Msg, header, trailer metadata.MD, end func()) {
	c := fc.c
	c.Response, c.Header, c.Status = fc.ch.unaryOutcome(fc.ctx, err, resp, header, trailer)
	liveClientCalls.Add(-1)
	fc.ch.unaryLive.Add(-1)
	close(c.Done)
	fc.notify(c)
	if fc.unwatch != nil {
		fc.unwatch()
	}
	end()
	c.cancel(nil)
	c.settled.Store(true)
}
