//go:build grpcgo_patched

package core

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
)

// A grpc.aio stream's ping-pong, read by its event loop's thread
// (docs/ARCHITECTURE.md, "The loop reads its ping-pong's connection").
//
// Direct reads: while a stream alternates reads and writes, its reader
// (the loop's thread, which must never wait) takes each message with
// grpc-go's RecvMsg itself, only once the transport says a whole message
// (or the end) is queued (grpc.GrpcgoDirectReady); when none is, it arms a
// hook the transport runs after the next thing queued for the stream. No
// receiving goroutine sits between the connection's reader and the loop.
// A server call reads so from its first request; a client stream's first
// responses come through its receiver goroutine (which reads the headers,
// and after which the stream is committed: RecvMsg can no longer retry on
// another attempt), which hands the reading over between two messages.
// A message already queued when a read comes with no write since the
// previous read (a stream of messages: a ping-pong's next message comes
// only after the write), or a message split over frames, ends direct
// reading for good: the read-ahead goroutine, which batches and may wait,
// takes over.
//
// Loop reading: while the stream reads directly and is alone on its
// connection (plaintext TCP or unix), the loop may take the connection's
// reading over (LoopRead: a dup of the socket for loop.add_reader; Pump:
// the frames the socket has, handled on the loop's thread). The
// transport's reader goroutine parks meanwhile, and gets the reading back
// at anything the loop leaves to it (another stream, an error, a
// throttled control buffer) or when the loop gives it back.

// aioDirect: GRPCGO_AIO_DIRECT=0 turns direct reads (and so loop reading)
// off; GRPCGO_AIO_LOOP_READ=0 only loop reading (A/B runs).
var (
	aioDirect   = os.Getenv("GRPCGO_AIO_DIRECT") != "0"
	aioLoopRead = aioDirect && os.Getenv("GRPCGO_AIO_LOOP_READ") != "0"
)

// Counts for tests and A/B runs (LoopReadCounts).
var directReads, loopPumps atomic.Int64

// LoopReadCounts is how many messages were read directly, and how many
// times an event loop read a connection (Pump), so far.
func LoopReadCounts() (direct, pumps int64) { return directReads.Load(), loopPumps.Load() }

// directReader is a stream's direct reading state; its owner's rd mutex
// (ServerCall.rd, Stream.rd) is held around a direct read and the
// hand-overs ("rd held" below).
type directReader struct {
	on     atomic.Bool
	hook   func()                 // the transport's hook (runs waiter)
	waiter atomic.Pointer[func()] // the read's wait, run once
	reads  int                    // direct reads so far (rd held)
	err    error                  // how the messages ended (rd held)

	ctx     context.Context // the stream's
	unwatch func() bool     // stops the context's watch (init)

	lr   *grpc.GrpcgoLoopRead // the connection's loop reading, once asked
	lrOn bool                 // the loop reads (rd held)
}

func (d *directReader) init(ctx context.Context, s any) bool {
	d.ctx = ctx
	d.hook = func() {
		if w := d.waiter.Swap(nil); w != nil {
			(*w)()
		}
	}
	if !grpc.GrpcgoDirectHook(s, &d.hook) {
		return false
	}
	// The stream's end by its context (a cancel, the deadline, a reset)
	// queues nothing on a server stream: the read learns it from the
	// context, as RecvMsg does.
	d.unwatch = context.AfterFunc(ctx, d.hook)
	return true
}

// ready reports whether a RecvMsg now returns without waiting; split, that
// direct reads must stop.
func (d *directReader) ready(s any) (ready, split bool) {
	ready, split = grpc.GrpcgoDirectReady(s)
	return ready || d.ctx.Err() != nil, split
}

// arm sets w to run once after the next thing queued, or at once if
// something is (ready): a wait armed after a take (rd held).
func (d *directReader) arm(s any, w *func()) (fired bool) {
	dropCqWaiterFunc(d.waiter.Swap(w))
	if ready, split := d.ready(s); !ready && !split {
		return false // (split: the reader comes back, and leaves)
	}
	if d.waiter.CompareAndSwap(w, nil) {
		(*w)()
	}
	return true
}

// stop ends direct reading (rd held): the hook goes, a wait armed fires
// (its reader then reads the queue), the loop's reading goes back.
func (d *directReader) stop(s any) {
	d.on.Store(false)
	grpc.GrpcgoDirectHook(s, nil)
	if d.unwatch != nil {
		d.unwatch()
	}
	if w := d.waiter.Swap(nil); w != nil {
		(*w)()
	}
	d.loopOff()
}

// take is a direct read (rd held): got a message, or the end (err), or
// nothing whole queued yet (then w, if set, runs once something is).
func (d *directReader) take(s msgStream, w *func()) (m Msg, err error, got bool) {
	if d.err != nil {
		return nil, d.err, true
	}
	ready, _ := d.ready(s)
	if !ready {
		if w == nil {
			return nil, nil, false
		}
		dropCqWaiterFunc(d.waiter.Swap(w))
		if ready, _ = d.ready(s); !ready || !d.waiter.CompareAndSwap(w, nil) {
			return nil, nil, false // armed (or it ran already)
		}
	}
	d.reads++
	directReads.Add(1)
	if err := s.RecvMsg(&m); err != nil {
		d.err = err
		return nil, err, true
	}
	return emptyIfNil(m), nil, true
}

// loopOn turns the connection's loop reading on: a dup of its socket for
// the loop to watch (the loop closes it), or -1 (rd held).
func (d *directReader) loopOn(s any) int {
	if !aioLoopRead || d.lrOn {
		return -1
	}
	if d.lr == nil {
		d.lr = grpc.GrpcgoLoopReader(s)
		if d.lr == nil {
			return -1
		}
	}
	if d.lr.Fd < 0 || !d.lr.On(true) {
		return -1
	}
	fd, err := syscall.Dup(d.lr.Fd)
	if err != nil {
		d.lr.On(false)
		return -1
	}
	syscall.CloseOnExec(fd)
	d.lrOn = true
	return fd
}

// armNext arms w for the message after the one just taken directly (rd
// the owner's, not held): fired, it ran at once (something is queued
// already, or reading is no longer direct: the next read finds out).
func (d *directReader) armNext(rd *sync.Mutex, s any, w *func()) (fired bool) {
	rd.Lock()
	defer rd.Unlock()
	if !d.on.Load() {
		(*w)()
		return true
	}
	return d.arm(s, w)
}

// loopSwitch turns the loop's reading on (a dup of the socket, or -1: not
// now; only while reading directly and, if set, may says so) or off (rd
// the owner's, not held).
func (d *directReader) loopSwitch(rd *sync.Mutex, s any, on bool, may func() bool) int {
	rd.Lock()
	defer rd.Unlock()
	if !on {
		d.loopOff()
		return -1
	}
	if !d.on.Load() || may != nil && !may() {
		return -1
	}
	return d.loopOn(s)
}

// loopOff gives the connection's reading back to its goroutine (rd held).
func (d *directReader) loopOff() {
	if d.lrOn {
		d.lrOn = false
		d.lr.On(false)
	}
}

// pump is the loop's turn (the socket readable): false once the reading
// went back to the goroutine (the loop stops watching). rd is the owner's
// (not held: the frames handled may end the stream, whose end takes it).
func (d *directReader) pump(rd *sync.Mutex) bool {
	rd.Lock()
	on := d.lrOn
	rd.Unlock()
	if !on {
		return false
	}
	loopPumps.Add(1)
	if d.lr.Pump() {
		return true
	}
	rd.Lock()
	d.lrOn = false
	rd.Unlock()
	return false
}

// dropCqWaiterFunc gives back a replaced waiter's count (see the binding's
// dropCqWaiter); set by the binding.
var dropCqWaiterFunc = func(*func()) {}

// SetWaiterDrop sets what gives back the count of a waiter that will never
// run (the binding's completion queue references).
func SetWaiterDrop(f func(*func())) { dropCqWaiterFunc = f }

// streamDone is closed once the client stream cs is over (nil: never).
func streamDone(cs grpc.ClientStream) <-chan struct{} { return grpc.GrpcgoClientStreamDone(cs) }

// ---- server calls ---------------------------------------------------------

// AioRecvDirect takes the call's next request on the loop's thread:
// direct false: the call reads through Requests() (a stream of requests,
// or no direct reading here), use that. Else got a request or the end
// (err: io.EOF at the half-close), or nothing yet: w (if set) then runs
// once something is queued (the loop's completion).
func (c *ServerCall) AioRecvDirect(w *func()) (m Msg, err error, got, direct bool) {
	if !aioDirect || c.in.Load() != nil {
		return nil, nil, false, false
	}
	c.rd.Lock()
	defer c.rd.Unlock()
	d := &c.dr
	if c.in.Load() != nil {
		return nil, nil, false, false
	}
	if !d.on.Load() {
		if d.reads > 0 || !d.init(c.ctx, c.ss) {
			c.leaveDirect()
			return nil, nil, false, false
		}
		d.on.Store(true)
	}
	if ready, split := d.ready(c.ss); split || ready && d.reads > 0 && !c.sent.Load() {
		// A request already queued when the last was read with no
		// response since (a stream of requests: a ping-pong's next
		// request comes only after the response), or one split over
		// frames: the read-ahead goroutine, for good.
		c.leaveDirect()
		return nil, nil, false, false
	}
	m, err, got = d.take(c.ss, w)
	if got {
		c.sent.Store(false)
	}
	return m, err, got, true
}

// leaveDirect ends direct reading for good (rd held): Requests() from now.
func (c *ServerCall) leaveDirect() {
	c.dr.stop(c.ss)
	c.Requests()
}

// AioArmDirect arms w for the request after the one just taken directly:
// fired, it ran at once (something is queued already).
func (c *ServerCall) AioArmDirect(w *func()) (fired bool) { return c.dr.armNext(&c.rd, c.ss, w) }

// AioLoopRead turns the loop's reading of the call's connection on (a dup
// of its socket, which the caller watches and closes; -1: not now) or off.
func (c *ServerCall) AioLoopRead(on bool) int {
	return c.dr.loopSwitch(&c.rd, c.ss, on, func() bool { return c.in.Load() == nil })
}

// AioPump reads and handles the frames the call's connection has (the
// loop's thread, its socket readable): false once the reading went back to
// the connection's goroutine.
func (c *ServerCall) AioPump() bool { return c.dr.pump(&c.rd) }

// ---- client streams ---------------------------------------------------------

// AioSent notes a request written by Python (a ping-pong's read follows).
func (s *Stream) AioSent() { s.aioSent.Store(true) }

// AioRecvDirect is ServerCall.AioRecvDirect for a client stream's
// responses: direct false: read Responses(). While the receiver goroutine
// still reads, a read that follows a write asks it to hand over.
func (s *Stream) AioRecvDirect(w *func()) (m Msg, err error, got, direct bool) {
	if !s.dr.on.Load() {
		if aioDirect && s.bidi && s.aioSent.Swap(false) {
			s.pingPongs++
			if s.pingPongs >= 2 {
				s.toDirect.Store(true)
			}
		}
		return nil, nil, false, false
	}
	s.rd.Lock()
	defer s.rd.Unlock()
	d := &s.dr
	if !d.on.Load() {
		return nil, nil, false, false
	}
	// What the receiver queued before it handed over comes first.
	select {
	case m, ok := <-s.in.q:
		if ok {
			s.aioSent.Store(false)
			return m, nil, true, true
		}
	default:
	}
	if ready, split := d.ready(s.cs); split || ready && d.reads > 0 && !s.aioSent.Load() {
		s.resumeReceiver()
		return nil, nil, false, false
	}
	m, err, got = d.take(s.cs, w)
	if got {
		s.aioSent.Store(false)
		if err != nil {
			s.directEnd(err)
		}
	}
	return m, err, got, true
}

// AioArmDirect: ServerCall.AioArmDirect for a client stream.
func (s *Stream) AioArmDirect(w *func()) (fired bool) { return s.dr.armNext(&s.rd, s.cs, w) }

// AioLoopRead: ServerCall.AioLoopRead for a client stream.
func (s *Stream) AioLoopRead(on bool) int { return s.dr.loopSwitch(&s.rd, s.cs, on, nil) }

// AioPump: ServerCall.AioPump for a client stream.
func (s *Stream) AioPump() bool { return s.dr.pump(&s.rd) }

// handOff is the receiver's question after each response it queued
// (receiver.handoff): true, and the reading is the loop's from now on.
func (s *Stream) handOff() bool {
	if !s.toDirect.Load() {
		return false
	}
	s.rd.Lock()
	defer s.rd.Unlock()
	if s.dr.reads > 0 || !s.dr.init(s.ctx, s.cs) {
		// Once left (or not possible): never again.
		s.toDirect.Store(false)
		return false
	}
	s.dr.on.Store(true)
	return true
}

// resumeReceiver ends direct reading for good (rd held): the stream's
// goroutine runs the receiver again, reads go through Responses().
func (s *Stream) resumeReceiver() {
	s.dr.stop(s.cs)
	s.toDirect.Store(false)
	select {
	case s.resume <- struct{}{}:
	default:
	}
}

// directEnd ends the stream after its direct reads met the end (rd held),
// as the receiver's end does.
func (s *Stream) directEnd(err error) {
	s.dr.loopOff()
	s.dr.on.Store(false)
	grpc.GrpcgoDirectHook(s.cs, nil)
	s.dr.unwatch()
	s.finish(err)
	close(s.in.q)
	s.in.wake()
}
