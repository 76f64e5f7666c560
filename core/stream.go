package core

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Stream is a client call with a streaming request, a streaming response,
// or both. Creating it never blocks: the stream opens on its own goroutine
// and the queues in both directions fill as the network allows.
type Stream struct {
	ctx    context.Context
	cancel context.CancelCauseFunc

	// aioWrote: a request was written on the loop's thread and Python has
	// not read since (SendNowNoWait).
	aioWrote atomic.Bool

	// HeaderReady is closed once the response headers arrived or the call
	// ended without them; Header is valid after that.
	HeaderReady chan struct{}
	Header      metadata.MD

	out    *sender
	in     *receiver
	opened chan struct{} // closed when NewStream returned
	cs     grpc.ClientStream

	// Status is set before ended and the response queue close.
	Status *Status
	ended  chan struct{}
	finish func(error) // sets Status and closes ended (the receiver's end)

	// A grpc.aio stream's ping-pong read directly (loopread.go): on a
	// stream of requests (bidi), a read after a write (aioSent) counts as
	// a ping-pong, and the second asks the receiver (toDirect) to hand
	// the reading over (dr on); resume hands it back.
	bidi      bool
	aioSent   atomic.Bool
	pingPongs int // the loop's thread only
	toDirect  atomic.Bool
	rd        sync.Mutex
	dr        directReader
	resume    chan struct{} // 1 deep
}

// StartStream opens a streaming call. If first is non-nil it is queued as
// the first request, and with closeAfter the request side is then
// half-closed (the shape of a server-streaming call).
func (ch *Channel) StartStream(spec *CallSpec, serverStreams, clientStreams bool, first Msg, closeAfter bool) *Stream {
	if ch.refuse != nil {
		first.Free()
		return FailedStream(ch.refuse)
	}
	ctx, cancel := ch.callContext(spec)
	ctx, inline := withStreamInline(ctx)
	s := &Stream{
		ctx:         ctx,
		cancel:      cancel,
		HeaderReady: make(chan struct{}),
		out:         newSender(),
		in:          newReceiver(),
		opened:      make(chan struct{}),
		ended:       make(chan struct{}),
		resume:      make(chan struct{}, 1),
		bidi:        clientStreams,
	}
	s.in.handoff = s.handOff
	liveClientCalls.Add(1)
	if sendMsgs != nil {
		s.out.many = func(ms []Msg) (int, error) { return sendMsgs(s.cs, msgsAny(ms)) }
	}
	s.out.inline = inline
	s.out.start(func() msgStream {
		<-s.opened
		if s.cs == nil {
			return nil
		}
		return s.cs
	}, func() error { return s.cs.CloseSend() })
	if first != nil {
		if queued, _ := s.out.offer(first); !queued {
			first.Free()
		}
		if closeAfter {
			s.out.end()
		}
	}
	// grpc-go is told every call may stream responses: the binding counts
	// them as grpcio does (an OK call without a response gives None, where
	// grpc-go would fail it with INTERNAL).
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: clientStreams}
	go func() {
		defer liveClientCalls.Add(-1)
		defer cancel(nil)
		cs, err := ch.cc.NewStream(ctx, desc, spec.Method, ch.options(spec)...)
		if err != nil {
			// Status first: whoever sees Opened closed with Open() false
			// reads it next (aio's wait_for_connection).
			s.Status = statusFrom(ctx, err)
			close(s.opened)
			close(s.HeaderReady)
			close(s.ended)
			close(s.in.q)
			s.in.wake()
			return
		}
		s.cs = cs
		close(s.opened)
		var over *Status // headers over the metadata limits
		before := func() {
			s.Header, _ = cs.Header()
			if over = ch.overLimit(s.Header); over != nil {
				s.Header = nil
				cancel(errMetadataOverLimit)
				s.in.abandon()
			}
			close(s.HeaderReady)
		}
		s.finish = func(err error) {
			switch {
			case over != nil:
				s.Status = over
			case err == errAbandoned:
				cancel(errCallCancelled)
				s.Status = statusFrom(ctx, ctx.Err())
			default:
				s.Status = statusFrom(ctx, err)
				s.Status.Trailer = cs.Trailer()
				if st := ch.overLimit(s.Status.Trailer); st != nil {
					s.Status = st
				}
			}
			close(s.ended)
			s.out.abandon()
		}
		for s.in.run(cs, before, s.finish) {
			// The receiver handed the reading to the loop's direct reads
			// (loopread.go): until they end the stream, hand it back, or
			// the stream is over with nobody reading it.
			before = nil
			select {
			case <-s.ended:
				return
			case <-s.resume:
			case <-streamDone(cs):
			case <-s.in.stop:
			}
			s.rd.Lock()
			if s.dr.err != nil {
				s.rd.Unlock()
				return // the direct reads met the end (directEnd)
			}
			if s.dr.on.Load() {
				s.resumeReceiver()
			}
			s.rd.Unlock()
		}
	}()
	return s
}

// Responses is the queue of response messages; it closes when the call
// ends, and Status is set by then.
func (s *Stream) Responses() <-chan Msg { return s.in.q }

// TookResponses tells the reading goroutine that responses were taken
// from Responses() (see receiver.took): a reader that calls it once calls
// it after every take.
func (s *Stream) TookResponses() { s.in.took() }

// SetResponseWaiter makes w run once, on the goroutine reading responses,
// after the next response is queued on Responses() or the queue closes; it
// returns the waiter it replaced (which will never run).
// ClearResponseWaiter takes w back if it has not run. See
// receiver.setWaiter.
func (s *Stream) SetResponseWaiter(w *func()) (old *func()) { return s.in.setWaiter(w) }

// ClearResponseWaiter removes w if it is still set; false if it ran or was
// replaced.
func (s *Stream) ClearResponseWaiter(w *func()) bool { return s.in.clearWaiter(w) }

// SendNowNoWait writes m on the calling goroutine, as SendNow does, but
// only if that cannot wait for anything (an event loop's thread):
// nothing queued before it, and grpc-go's stream ready to take it at once
// (streaminline.go). sent false and alive: the caller queues m.
//
// Only for a request that answers: the first, or the first since Python
// read responses (AioRead). Requests sent back to back (client streaming)
// go to the sender goroutine, which writes what it finds queued in one
// write; one write per 16-byte request from the loop's thread halved
// client streaming's messages/s.
func (s *Stream) SendNowNoWait(m Msg) (sent, alive bool) {
	if s.aioWrote.Load() {
		return false, !s.out.dead()
	}
	sent, alive = s.out.sendNowIf(m, s.writeNoWait)
	if sent {
		s.aioWrote.Store(true)
	}
	return sent, alive
}

// AioRead notes that Python reads responses: the next request may be
// written on the loop's thread again (SendNowNoWait).
func (s *Stream) AioRead() { s.aioWrote.Store(false) }

// Offer queues a request without waiting (see sender.offer).
func (s *Stream) Offer(m Msg) (queued, alive bool) { return s.out.offer(m) }

// CanSendNow reports whether SendNow would likely write at once.
func (s *Stream) CanSendNow() bool { return s.out.idle() }

// SendNow writes a request on the calling goroutine if none is queued
// before it (see sender.sendNow); otherwise the caller offers it.
func (s *Stream) SendNow(m Msg) (sent, alive bool) { return s.out.sendNow(m) }

// SendNowMany is SendNow for several requests (see sender.sendNowMany).
func (s *Stream) SendNowMany(ms []Msg) (sent int, alive bool) { return s.out.sendNowMany(ms) }

// Put queues a request, waiting for room until wait fires.
func (s *Stream) Put(m Msg, wait <-chan struct{}) (queued, alive bool) { return s.out.put(m, wait) }

// CloseSend half-closes the request side after the queued requests.
func (s *Stream) CloseSend() { s.out.end() }

// Cancel ends the call with CANCELLED.
func (s *Stream) Cancel() {
	s.cancel(errCallCancelled)
	s.out.abandon()
	s.in.abandon()
}

// Opened is closed once the stream was opened on a connection or failed to
// open; Open tells which, after that, and a stream that failed to open has
// its Status set by then.
func (s *Stream) Opened() <-chan struct{} { return s.opened }

// Open reports whether the stream was opened (valid once Opened is closed).
func (s *Stream) Open() bool { return s.cs != nil }

// Ended is closed when the call is over; Status is set by then. Responses
// not yet taken stay queued.
func (s *Stream) Ended() <-chan struct{} { return s.ended }

// FailedStream is a streaming call that ended before it started, with st.
func FailedStream(st *Status) *Stream {
	s := &Stream{
		cancel:      func(error) {},
		HeaderReady: make(chan struct{}),
		out:         newSender(),
		in:          newReceiver(),
		opened:      make(chan struct{}),
		ended:       make(chan struct{}),
		Status:      st,
	}
	s.out.abandon()
	close(s.HeaderReady)
	close(s.opened)
	close(s.ended)
	close(s.in.q)
	return s
}
