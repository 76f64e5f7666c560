package core

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ServerCall is one incoming call, handed to the binding by Server.Next.
// The binding reads requests, sends responses and finally calls Finish
// (or FinishHere); then the status is written, by the finisher or a
// goroutine started for it when the call is detached (Server.handle),
// else by grpc-go's handler goroutine, which waits for that (or for the
// call to die).
type ServerCall struct {
	// aioWrote: a response was written on the loop's thread and the
	// handler has not read since (SendNowNoWait).
	aioWrote atomic.Bool

	Method      string
	Metadata    metadata.MD
	Peer        string
	Deadline    time.Time
	HasDeadline bool
	// First is the request read before the call was handed over (for
	// methods marked unary-request), or nil. The call holds it until the
	// binding takes it (serverEvent) or Server.queue frees it because
	// nobody will take the call.
	First Msg
	// Here is the binding's note that whoever finishes the call may write
	// and wait on its goroutine (FinishHere); core does not read it.
	Here bool
	// Loop is the binding's note that the call is finished on an event
	// loop's thread, which must not wait (FinishNoWait); core does not
	// read it.
	Loop bool

	ctx context.Context
	ss  grpc.ServerStream

	inOnce sync.Once
	in     atomic.Pointer[receiver]

	// A sync handler's thread reads requests itself while the call
	// alternates requests and responses (RecvDirect): rd is held around
	// such a read, rdN counts them, rdErr keeps how the requests ended,
	// and sent is set by every response (sender) since the last one.
	rd    sync.Mutex
	rdN   int
	rdErr error
	sent  atomic.Bool
	// A grpc.aio handler's direct reads, and its loop's reading of the
	// connection (loopread.go), under rd.
	dr directReader

	// mu guards writes to the stream against the handler's return: writers
	// (which run without the GIL) hold it shared and check over; the handler
	// holds it exclusively to set over. Nothing called with the GIL held may
	// wait for mu: a writer blocked on flow control can hold it until a
	// Python thread reads, and that thread may need the GIL.
	mu   sync.RWMutex
	over atomic.Bool

	plainNext atomic.Bool // the next response goes out uncompressed

	// fmu guards out, trailer and final; it is never held across a wait.
	fmu     sync.Mutex
	out     *sender
	trailer metadata.MD
	final   *finish
	// done is closed by Finish; made (by Server.handle, before the call is
	// queued) only for a call a handler goroutine waits for (wait): a
	// detached call, the rule, costs no channel.
	done    chan struct{}
	unwatch []func() // OnDone's watches, stopped by Finish

	// detached is grpc-go's stream when no handler goroutine waits for
	// the call (Server.handle): whoever finishes the call ends it (end).
	detached     detacher
	srv          *Server
	unwatchDeath func() bool // stops died's watch on the context
	ended        atomic.Bool // end ran
}

// detacher is grpc-go's server stream in a build with grpcgo's change
// (patches/grpc-go/grpc_grpcgo.go.in): its handler may return before the
// call ends, and GrpcgoEnd then ends it as the handler's return would have.
type detacher interface {
	GrpcgoDetach()
	GrpcgoEnd(appErr error)
}

type finish struct {
	code    codes.Code
	details string
	last    Msg
}

// ErrCallOver is returned by operations on a call that has ended.
var ErrCallOver = errors.New("the RPC has ended")

// incomingMD is a call's metadata. Nothing changes it (the binding reads
// it once, into Python), so the patched build takes the context's own MD
// without grpc-go's copy (metadata.GrpcgoIncoming).
var incomingMD = metadata.FromIncomingContext

func newServerCall(ss grpc.ServerStream) *ServerCall {
	ctx := ss.Context()
	c := &ServerCall{ctx: ctx, ss: ss}
	c.Method, _ = grpc.MethodFromServerStream(ss)
	c.Metadata, _ = incomingMD(ctx)
	c.Peer = peerString(ctx)
	c.Deadline, c.HasDeadline = ctx.Deadline()
	return c
}

// Context is the call's context: done when the call is cancelled, its
// deadline passes or it has ended.
func (c *ServerCall) Context() context.Context { return c.ctx }

// Cancel ends the call with CANCELLED now, as the client's cancellation
// would: a handler blocked reading requests or writing responses (even to
// a client that stopped reading) is released.
func (c *ServerCall) Cancel() {
	c.Finish(codes.Canceled, "Cancelled", nil) // no response goes out after this
	if s, ok := grpc.ServerTransportStreamFromContext(c.ctx).(interface{ GrpcgoCancel() }); ok {
		s.GrpcgoCancel() // the patched transport's stream (patched.go)
	} else if cancel, ok := c.ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

// Active reports whether the call can still make progress.
func (c *ServerCall) Active() bool {
	return !c.over.Load() && c.ctx.Err() == nil
}

// RecvOne reads a single request on the calling goroutine (for handlers
// that take one request). It returns io.EOF if the client sent none.
func (c *ServerCall) RecvOne() (Msg, error) {
	var m Msg
	if err := c.ss.RecvMsg(&m); err != nil {
		return nil, err
	}
	return emptyIfNil(m), nil
}

// Requests returns the queue of incoming requests, reading ahead from the
// first use on. The queue closes when the client half-closes or the call
// ends.
func (c *ServerCall) Requests() <-chan Msg {
	c.inOnce.Do(func() {
		r := newReceiver()
		c.in.Store(r)
		go r.run(c.ss, nil, nil)
	})
	return c.in.Load().q
}

// RecvDirect reads the next request on the calling goroutine (a sync
// handler's thread, GIL released) instead of through the read-ahead
// goroutine of Requests(), while the call reads one request at a time
// between responses (a bidi ping-pong): the first read, and every read
// with a response sent since the one before. So the transport's reader
// readies the waiting thread itself, with no receiver goroutine between
// them. Two reads in a row with no response between (a stream of
// requests) start the read-ahead goroutine instead, for good, so requests
// keep coming in batches: ok is then false and the caller reads
// Requests(). err is the requests' end (io.EOF at the client's
// half-close), then the same on every later call. It waits as RecvMsg
// does: until a request, the half-close or the call's end.
// GRPCGO_SERVER_RECV_DIRECT=0 turns it off (ok always false).
func (c *ServerCall) RecvDirect() (m Msg, err error, ok bool) {
	if !serverRecvDirect || c.in.Load() != nil {
		return nil, nil, false
	}
	c.rd.Lock()
	defer c.rd.Unlock()
	if c.in.Load() != nil {
		return nil, nil, false
	}
	if c.rdErr != nil {
		return nil, c.rdErr, true
	}
	if c.rdN > 0 && !c.sent.Load() {
		c.Requests() // under rd: no direct read is under way
		return nil, nil, false
	}
	c.sent.Store(false)
	if err := c.ss.RecvMsg(&m); err != nil {
		c.rdErr = err
		return nil, err, true
	}
	c.rdN++
	return emptyIfNil(m), nil, true
}

var serverRecvDirect = os.Getenv("GRPCGO_SERVER_RECV_DIRECT") != "0"

// MayRecvDirect reports whether RecvDirect may read (no read-ahead
// goroutine yet): the binding asks before it releases the GIL for it.
func (c *ServerCall) MayRecvDirect() bool { return serverRecvDirect && c.in.Load() == nil }

// TookRequests is Stream.TookResponses for the requests (after Requests()).
func (c *ServerCall) TookRequests() { c.in.Load().took() }

// SetRequestWaiter makes w run once, on the goroutine reading requests,
// after the next request is queued on Requests() or the queue closes; it
// returns the waiter it replaced (which will never run). ClearRequestWaiter
// takes w back if it has not run. See receiver.setWaiter.
func (c *ServerCall) SetRequestWaiter(w *func()) (old *func()) {
	c.Requests()
	return c.in.Load().setWaiter(w)
}

// ClearRequestWaiter removes w if it is still set; false if it ran or was
// replaced.
func (c *ServerCall) ClearRequestWaiter(w *func()) bool {
	return c.in.Load().clearWaiter(w)
}

func (c *ServerCall) sender() (*sender, error) {
	if !c.sent.Load() {
		c.sent.Store(true) // a response since the last direct read
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.over.Load() || c.final != nil {
		return nil, ErrCallOver
	}
	if c.out == nil {
		c.out = newSender()
		if sendMsgs != nil {
			c.out.many = c.guardedSendMany
		}
		c.out.inline = c.streamInline()
		c.out.startWith(func() func(Msg) error { return c.guardedSend }, nil)
	}
	return c.out, nil
}

// guardedSend writes m unless the call is over; either way m is given on
// (grpc-go frees what it was handed) or freed here.
func (c *ServerCall) guardedSend(m Msg) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.over.Load() {
		m.Free()
		return ErrCallOver
	}
	return c.sendMsg(m)
}

// guardedSendMany is guardedSend for several messages, written as one
// (see sender.many).
func (c *ServerCall) guardedSendMany(ms []Msg) (taken int, err error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.over.Load() {
		freeMsgs(ms)
		return len(ms), ErrCallOver
	}
	as := make([]any, len(ms))
	for i, m := range ms {
		if n := len(m); n > 0 && isPlainMark(m[n-1]) {
			as[i] = plainMsg{m[:n-1]}
		} else {
			as[i] = m
		}
	}
	return sendMsgs(c.ss, as)
}

// sendMsg writes m, uncompressed if MarkNext marked it.
func (c *ServerCall) sendMsg(m Msg) error {
	if n := len(m); n > 0 && isPlainMark(m[n-1]) {
		return c.ss.SendMsg(plainMsg{m[:n-1]})
	}
	return c.ss.SendMsg(m)
}

// DisableNextCompression makes the next response MarkNext sees go out
// uncompressed (grpcio's context.disable_next_message_compression()).
func (c *ServerCall) DisableNextCompression() { c.plainNext.Store(true) }

// MarkNext returns m marked to go out uncompressed if
// DisableNextCompression was called since the last response; the binding
// passes every response through it once, before offering it.
func (c *ServerCall) MarkNext(m Msg) Msg {
	if m != nil && c.plainNext.CompareAndSwap(true, false) {
		return append(m[:len(m):len(m)], plainMark)
	}
	return m
}

// plainMsg is a response to send uncompressed: grpc-go with grpcgo's change
// (patches/grpc_go_patch.py) asks it; a plain grpc-go compresses it as usual.
type plainMsg struct{ Msg }

func (plainMsg) GrpcgoUncompressed() bool { return true }

// plainMark, an empty buffer after a message's own, marks it for plainMsg
// on its way through the send queue.
var (
	plainMarkBytes = make([]byte, 1)
	plainMark      = mem.SliceBuffer(plainMarkBytes[:0])
)

func isPlainMark(b mem.Buffer) bool {
	sb, ok := b.(mem.SliceBuffer)
	return ok && len(sb) == 0 && cap(sb) > 0 && unsafe.SliceData(sb) == unsafe.SliceData(plainMarkBytes)
}

// Offer queues a response without waiting (see sender.offer).
func (c *ServerCall) Offer(m Msg) (queued, alive bool) {
	w, err := c.sender()
	if err != nil {
		return false, false
	}
	return w.offer(m)
}

// CanSendNow reports whether SendNow would likely write at once.
func (c *ServerCall) CanSendNow() bool {
	c.fmu.Lock()
	w := c.out
	c.fmu.Unlock()
	return w != nil && w.idle()
}

// SendNow writes a response on the calling goroutine if none is queued
// before it (see sender.sendNow); otherwise the caller offers it.
func (c *ServerCall) SendNow(m Msg) (sent, alive bool) {
	w, err := c.sender()
	if err != nil {
		return false, false
	}
	return w.sendNow(m)
}

// SendNowMany is SendNow for several responses (see sender.sendNowMany).
func (c *ServerCall) SendNowMany(ms []Msg) (sent int, alive bool) {
	w, err := c.sender()
	if err != nil {
		return 0, false
	}
	return w.sendNowMany(ms)
}

// Put queues a response, waiting for room until wait fires.
func (c *ServerCall) Put(m Msg, wait <-chan struct{}) (queued, alive bool) {
	w, err := c.sender()
	if err != nil {
		return false, false
	}
	return w.put(m, wait)
}

// SendHeader sends the initial metadata now.
func (c *ServerCall) SendHeader(md metadata.MD) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.over.Load() {
		return ErrCallOver
	}
	return c.ss.SendHeader(md)
}

// SetCompressor sets how responses are compressed from now on ("" for
// none); it has no effect once headers went out, or if the client cannot
// decode it.
func (c *ServerCall) SetCompressor(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over.Load() {
		return ErrCallOver
	}
	return setServerCompressor(c.ss, name)
}

// SetTrailer adds trailing metadata to send with the status.
func (c *ServerCall) SetTrailer(md metadata.MD) {
	c.fmu.Lock()
	c.trailer = metadata.Join(c.trailer, md)
	c.fmu.Unlock()
}

// Finish ends the call: last (if non-nil) is sent after every queued
// response, then the status with the trailing metadata. Only the first
// Finish counts; later ones return ErrCallOver. It never waits: what is
// left to write is written by grpc-go's handler goroutine, or for a
// detached call by a goroutine started for it.
func (c *ServerCall) Finish(code codes.Code, details string, last Msg) error {
	return c.finish(code, details, last, false)
}

// FinishHere is Finish for a caller that may write and wait for the call's
// lock (no GIL held): a detached call with no response queued is ended on
// the calling goroutine, so no goroutine is woken for it. Its first
// response never waits for flow control (a stream starts with write quota),
// and the status only queues a frame for grpc-go's writer.
func (c *ServerCall) FinishHere(code codes.Code, details string, last Msg) error {
	return c.finish(code, details, last, true)
}

// FinishNoWait is Finish for a caller that must never wait (an event
// loop's thread, GIL held): a quick finish (QuickFinish, and trailing
// metadata and details of at most quickTrailer bytes) is ended on the
// calling goroutine as FinishHere ends it, so no goroutine is started and
// woken for it: the response and the status are queued corked and, when
// the call is alone on its connection and grpc-go's writer is idle,
// written to the socket here with a write that never waits (the rest, if
// any, left to the writer, woken once for it). Anything else (responses
// queued, a large or compressed last response, large trailers) is
// Finish. GRPCGO_AIO_FINISH_HERE=0 makes it Finish always (A/B runs).
func (c *ServerCall) FinishNoWait(code codes.Code, details string, last Msg) error {
	if aioFinishHere && c.QuickFinish(last) && c.smallTrailer(details) {
		loopFinishes.Add(1) // before the frames go out: a peer may look at once
		err := c.finish(code, details, last, true)
		if err != nil {
			loopFinishes.Add(-1)
		}
		return err
	}
	return c.finish(code, details, last, false)
}

var aioFinishHere = os.Getenv("GRPCGO_AIO_FINISH_HERE") != "0"

// loopFinishes counts the finishes FinishNoWait ended on its caller.
var loopFinishes atomic.Int64

// LoopFinishes reports how many calls FinishNoWait ended on its caller's
// goroutine since the process started (grpcgo's tests).
func LoopFinishes() int64 { return loopFinishes.Load() }

// ServerInlineWrites reports how many unary finishes (FinishHere and
// FinishNoWait) wrote their call's frames to the socket on the finisher's
// goroutine, and how many left them to grpc-go's writer; -1, -1 without
// grpcgo's patch to grpc-go (grpcgo's tests).
var ServerInlineWrites = func() (inline, left int64) { return -1, -1 }

// quickTrailer bounds the trailing metadata (and details) FinishNoWait
// writes on its caller: grpc-go's framer flushes a header block that does
// not fit what is left of its write buffer with a write that waits.
const quickTrailer = 8 << 10

func (c *ServerCall) smallTrailer(details string) bool {
	n := len(details)
	c.fmu.Lock()
	for k, vs := range c.trailer {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	c.fmu.Unlock()
	return n <= quickTrailer
}

// QuickFinish reports whether FinishHere with last would only queue frames
// for grpc-go's writer, without compressing a large message or waiting:
// a detached call with nothing queued and last small or nil, sent
// uncompressed. Its caller may then keep the GIL across it (releasing it
// would wake a thread waiting for it, and have this one wait to get it
// back).
func (c *ServerCall) QuickFinish(last Msg) bool {
	c.fmu.Lock()
	out := c.out
	c.fmu.Unlock()
	return out == nil && c.quick(last)
}

func (c *ServerCall) quick(last Msg) bool {
	if c.detached == nil || last.Len() > quickLast {
		return false
	}
	sc, ok := grpc.ServerTransportStreamFromContext(c.ctx).(interface{ SendCompress() string })
	return ok && (sc.SendCompress() == "" || sc.SendCompress() == "identity" || last.Len() == 0)
}

// WritesHere reports whether FinishHere may write the call's frames to the
// socket itself (a call alone on its connection: see inlineWriter), so a
// caller that keeps the GIL across a quick finish may release it then: a
// write also does the receiving side's work on loopback.
func (c *ServerCall) WritesHere() bool {
	a, ok := grpc.ServerTransportStreamFromContext(c.ctx).(interface{ GrpcgoAlone() bool })
	return serverInline && ok && a.GrpcgoAlone()
}

// corker is grpc-go's transport stream with grpcgo's change: the writer is
// woken once for the frames queued between GrpcgoCork and GrpcgoUncork.
type corker interface {
	GrpcgoCork()
	GrpcgoUncork()
}

// inlineWriter is grpc-go's transport stream with grpcgo's change: the
// frames held back since GrpcgoCork are written by the uncorking thread
// when the connection's writer is idle and the socket takes them at once;
// whatever is left is the writer's, woken once for it.
type inlineWriter interface {
	GrpcgoUncorkWrite()
}

// serverInline: GRPCGO_SERVER_INLINE=0 leaves every frame of a finished
// call to grpc-go's writer goroutine (to measure the difference).
var serverInline = os.Getenv("GRPCGO_SERVER_INLINE") != "0"

// quickLast is the largest last response QuickFinish lets go out with the
// GIL held.
const quickLast = 16 << 10

func (c *ServerCall) finish(code codes.Code, details string, last Msg, here bool) error {
	c.fmu.Lock()
	if c.over.Load() || c.final != nil {
		c.fmu.Unlock()
		return ErrCallOver
	}
	c.final = &finish{code: code, details: details, last: last}
	unwatch, out := c.unwatch, c.out
	c.unwatch = nil
	c.fmu.Unlock()
	if c.detached != nil {
		// Before anything is written: a status ends the stream, and its
		// context then, which would start died for nothing.
		c.unwatchDeath()
	}
	// The watches stop and the handler goroutine is woken only now that
	// fmu is free: woken under it, the handler ran at once on another
	// thread, found fmu held (wait takes it) and slept again until this
	// returned, a second wake-up per call. A watch registered after final
	// was set stops itself (OnDone), so each stops exactly once.
	for _, stop := range unwatch {
		stop()
	}
	if c.done != nil {
		close(c.done)
	}
	if c.detached != nil {
		if here && out == nil {
			// The response and the status wake grpc-go's writer once,
			// after both are queued (a woken writer took the queue's lock
			// between them): only when nothing here can take long.
			if k, ok := grpc.ServerTransportStreamFromContext(c.ctx).(corker); ok && c.quick(last) {
				k.GrpcgoCork()
				if w, ok := k.(inlineWriter); ok && serverInline {
					// ... and are written here while the writer is
					// idle, never waiting (docs/ARCHITECTURE.md,
					// "Servers").
					defer w.GrpcgoUncorkWrite()
				} else {
					defer k.GrpcgoUncork()
				}
			}
			c.end()
		} else {
			go c.end() // settle may wait for queued responses
		}
	}
	return nil
}

// end ends a detached call that was finished or died: what its handler
// goroutine would have done once woken, then what grpc-go does when a
// handler returns (the status, stats handlers' End). Exactly once: the
// finisher and died may both get here.
func (c *ServerCall) end() {
	if c.ended.Swap(true) {
		return
	}
	c.detached.GrpcgoEnd(c.settle())
	c.srv.callEnded()
}

// detach makes the call end without a handler goroutine: by its finisher,
// or, if it dies first (the client cancels, the deadline passes, the
// server stops), at once on a goroutine the context starts, as a waiting
// handler goroutine would have (what it ran is freed, later writers are
// refused, the call is counted out).
func (c *ServerCall) detach(d detacher, s *Server) {
	d.GrpcgoDetach()
	c.detached, c.srv = d, s
	c.unwatchDeath = context.AfterFunc(c.ctx, c.end)
}

// OnDone runs f exactly once, never on the caller's goroutine when the call
// is still live: f(true) if the call dies (the peer cancels it, its
// deadline passes, the server stops) before Finish, f(false) once Finish
// came first. So a watcher learns of a cancellation without a goroutine
// of its own, and a call that ends normally costs it nothing more.
func (c *ServerCall) OnDone(f func(died bool)) {
	var ran atomic.Bool
	run := func(died bool) {
		if ran.CompareAndSwap(false, true) {
			f(died)
		}
	}
	stop := context.AfterFunc(c.ctx, func() { run(true) })
	unwatch := func() {
		if stop() { // f was not started and never will be by the context
			run(false)
		}
	}
	c.fmu.Lock()
	if c.final == nil {
		c.unwatch = append(c.unwatch, unwatch)
		c.fmu.Unlock()
		return
	}
	c.fmu.Unlock()
	// Over already: f(false) unless the context runs f first.
	unwatch()
}

// wait runs on grpc-go's handler goroutine until the call is finished or
// dies, and returns what the handler returns to grpc-go.
func (c *ServerCall) wait() error {
	select {
	case <-c.done:
	case <-c.ctx.Done():
	}
	return c.settle()
}

// settle ends what the call has under way once it is finished or died
// (queued responses written or dropped, the request reader stopped, later
// writers refused) and returns the status for grpc-go to write, after
// writing the last response.
func (c *ServerCall) settle() error {
	c.fmu.Lock()
	out, fin := c.out, c.final
	var last Msg
	if fin == nil {
		// The call died first: refuse senders created from now on.
		c.final = &finish{code: codes.Canceled}
	} else {
		// Taken out, not left behind: it goes to grpc-go or is freed
		// below, and the call may outlive that by long (see Msg).
		last, fin.last = fin.last, nil
	}
	c.fmu.Unlock()
	if out != nil {
		if fin != nil {
			out.end()
		} else {
			out.abandon()
		}
		select {
		case <-out.done:
		case <-c.ctx.Done():
			out.abandon()
			<-out.done
		}
	}
	c.mu.Lock()
	c.over.Store(true)
	c.mu.Unlock()
	c.fmu.Lock()
	trailer := c.trailer
	c.fmu.Unlock()
	if in := c.in.Load(); in != nil {
		in.abandon()
	}
	if fin == nil || c.ctx.Err() != nil {
		last.Free() // never sent: give its buffers back now
		return status.FromContextError(c.ctx.Err()).Err()
	}
	if last != nil && fin.code == codes.OK && (out == nil || !out.failed.Load()) {
		if err := c.sendMsg(last); err != nil {
			return err
		}
	} else {
		last.Free() // never sent: give its buffers back now
	}
	if len(trailer) > 0 {
		c.ss.SetTrailer(trailer)
	}
	if fin.code == codes.OK {
		return nil
	}
	return status.Error(fin.code, fin.details)
}

// A server stream's response written by the thread that sends it (the
// sender's direct write: a sync handler's thread, GIL released) is written
// to the socket there too when grpc-go's writer is idle and the stream is
// alone on its connection, with the unary finish's mechanism: the frames
// are queued corked (the writer is not woken for them), then
// GrpcgoUncorkWrite writes them in the writer's place with a write that
// never waits, leaving it whatever the socket does not take (and waking it
// for that). A cork holds back every wake-up of the connection's writer,
// so it is taken only around a write that cannot wait: one message (one
// Write in grpc-go; a batch may be several), the stream open, write quota
// left (grpc-go's Write waits only for quota, and only when none is left).
// GRPCGO_SERVER_STREAM_INLINE=0 turns it off (A/B runs).
var serverStreamInline = os.Getenv("GRPCGO_SERVER_STREAM_INLINE") != "0"

// writeHere is grpc-go's transport stream with grpcgo's change (see above).
type writeHere interface {
	corker
	inlineWriter
	GrpcgoAlone() bool
	GrpcgoWriteNoWait() bool
}

type serverStreamWrite struct {
	st     writeHere
	corked bool
}

// streamInline is what brackets the call's direct writes (nil: none).
func (c *ServerCall) streamInline() directInline {
	if !serverInline || !serverStreamInline {
		return nil
	}
	if st, ok := grpc.ServerTransportStreamFromContext(c.ctx).(writeHere); ok {
		return &serverStreamWrite{st: st}
	}
	return nil
}

// AioRead notes that the handler reads requests: its next response may be
// written on the loop's thread again (SendNowNoWait).
func (c *ServerCall) AioRead() { c.aioWrote.Store(false) }

// SendNowNoWait writes m on the calling goroutine, as SendNow does, only
// if that cannot wait for anything (an event loop's thread, GIL held):
// nothing queued before it, and the write goes out to the socket here as
// a sync handler's does (alone on its connection, write quota left, so
// grpc-go's Write waits for nothing). sent false and alive: the caller
// queues m. GRPCGO_AIO_SERVER_INLINE=0 turns it off (A/B runs).
func (c *ServerCall) SendNowNoWait(m Msg) (sent, alive bool) {
	if !aioServerInline {
		return false, true
	}
	w, err := c.sender()
	if err != nil {
		return false, false
	}
	sw, ok := w.inline.(*serverStreamWrite)
	if !ok {
		return false, !w.dead()
	}
	// As the client's (Stream.SendNowNoWait): only a response that answers,
	// the first since the handler read; back-to-back responses (server
	// streaming) go to the sender goroutine, which batches them.
	if c.aioWrote.Load() {
		return false, !w.dead()
	}
	sent, alive = w.sendNowIf(m, func() bool { return sw.st.GrpcgoAlone() && sw.st.GrpcgoWriteNoWait() })
	if sent {
		c.aioWrote.Store(true)
	}
	return sent, alive
}

var aioServerInline = os.Getenv("GRPCGO_AIO_SERVER_INLINE") != "0"

func (w *serverStreamWrite) begin(n int) {
	w.corked = n == 1 && w.st.GrpcgoAlone() && w.st.GrpcgoWriteNoWait()
	if w.corked {
		w.st.GrpcgoCork()
	}
}

func (w *serverStreamWrite) end() {
	if w.corked {
		w.corked = false
		w.st.GrpcgoUncorkWrite()
	}
}
