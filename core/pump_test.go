package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// Small fixed flow-control windows (they also turn off grpc-go's dynamic
// window), so that a peer that stops reading stalls the sender after a
// few messages and the queues fill up.
var smallWindow = Option{Key: "grpc.http2.initial_window_size", Int: 64 << 10, IsInt: true}

const chunk = 64 << 10

var chunkMsg = make([]byte, chunk)

// fillServer offers chunks until the call's queue is full (Offer says
// queued=false, alive=true). It must get there: Offer never waits.
func fillServer(c *ServerCall) (n int, alive bool) {
	for {
		q, alive := c.Offer(BytesMsg(chunkMsg))
		if !q {
			return n, alive
		}
		n++
	}
}

// TestServerOfferDoesNotBlock: with a client that does not read, the
// server's Offer reports a full queue instead of waiting for the network,
// Put gives up when its wait fires, and SetTrailer, Active and Finish do
// not wait for the network either.
func TestServerOfferDoesNotBlock(t *testing.T) {
	checkLeaks(t)
	type report struct {
		offered    int
		alive      bool
		putQ, putA bool
	}
	reports := make(chan report, 1)
	finished := make(chan error, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		c.RecvOne()
		var r report
		r.offered, r.alive = fillServer(c)
		// The pipeline may still take a few; a Put whose wait fires on a
		// queue that stays full gives up, still alive.
		for r.alive {
			r.putQ, r.putA = c.Put(BytesMsg(chunkMsg), timeoutChan(20*time.Millisecond))
			if !r.putQ {
				break
			}
			r.offered++
		}
		reports <- r
		if !r.alive {
			return
		}
		c.SetTrailer(metadata.Pairs("t", "1"))
		c.Active()
		finished <- c.Finish(codes.OK, "", BytesMsg([]byte("last")))
	}, smallWindow)
	ch := dial(t, target, smallWindow)
	s := ch.StartStream(spec("/x/Flood"), true, false, BytesMsg([]byte("go")), true)
	defer s.Cancel()

	var r report
	select {
	case r = <-reports:
	case <-time.After(longWait):
		s.Cancel() // unblock the server before failing
		t.Fatal("the server's Offer blocked on a client that does not read")
	}
	if !r.alive || r.offered == 0 {
		t.Fatalf("Offer: %d queued, alive %v; want some, then full and alive", r.offered, r.alive)
	}
	if r.putQ || !r.putA {
		t.Fatalf("Put with a firing wait = %v, %v; want false, true", r.putQ, r.putA)
	}
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
	case <-time.After(longWait):
		s.Cancel()
		t.Fatal("SetTrailer/Active/Finish blocked on a client that does not read")
	}
	// Now read everything: every queued response, the last one, the trailer.
	got := drain(t, s)
	st := ended(t, s)
	wantStatus(t, st, codes.OK, "")
	wantMD(t, "trailer", st.Trailer, metadata.MD{"t": {"1"}})
	if len(got) != r.offered+1 || string(got[len(got)-1]) != "last" {
		t.Fatalf("got %d responses, want %d then \"last\"", len(got), r.offered+1)
	}
}

// TestClientStopsReadingThenCancels: a client that stops reading a
// server stream and cancels leaves no goroutine behind on either side.
func TestClientStopsReadingThenCancels(t *testing.T) {
	checkLeaks(t)
	handlerOut := make(chan int, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		c.RecvOne()
		n := 0
		for put(c, chunkMsg) {
			n++
		}
		handlerOut <- n
		c.Finish(codes.OK, "", nil)
	}, smallWindow)
	ch := dial(t, target, smallWindow)
	s := ch.StartStream(spec("/x/Flood"), true, false, BytesMsg([]byte("go")), true)
	for i := 0; i < 3; i++ {
		if _, ok := recvChan(t, "response", s.Responses()); !ok {
			t.Fatal("stream ended early")
		}
	}
	// Let the queues fill up, then walk away.
	waitFor(t, "the client's queue to fill", func() bool { return len(s.Responses()) == queueDepth })
	s.Cancel()
	wantStatus(t, ended(t, s), codes.Canceled, "Locally cancelled by application!")
	recvChan(t, "handler end", handlerOut)
	// Responses already queued stay readable; the queue closes after them.
	n := 0
	for range s.Responses() {
		n++
	}
	if n == 0 {
		t.Error("queued responses were dropped")
	}
}

// TestClientPutUnblocksWhenStreamDies: a client Put waiting for room in
// a full queue (with no wait of its own) returns when the call ends.
func TestClientPutUnblocksWhenStreamDies(t *testing.T) {
	checkLeaks(t)
	calls := make(chan *ServerCall, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		calls <- c // never reads
		<-c.Context().Done()
	}, smallWindow)
	ch := dial(t, target, smallWindow)
	s := ch.StartStream(spec("/x/Sink"), false, true, nil, false)
	c, _ := recvChan(t, "server call", calls)
	for {
		q, alive := s.Offer(BytesMsg(chunkMsg))
		if !alive {
			t.Fatal("stream died")
		}
		if !q {
			break
		}
	}
	// A Put whose wait fires on a queue that stays full gives up, alive.
	for {
		q, alive := s.Put(BytesMsg(chunkMsg), timeoutChan(20*time.Millisecond))
		if !alive {
			t.Fatal("stream died")
		}
		if !q {
			break
		}
	}
	// Puts with no wait of their own, until one is refused.
	var alive bool
	var queued atomic.Int64
	putDone := run(func() {
		for {
			var q bool
			if q, alive = s.Put(BytesMsg(chunkMsg), nil); !q {
				return
			}
			queued.Add(1)
		}
	})
	notYet(t, "Put returning while the queue is full", putDone)
	closeDone := run(s.CloseSend)
	c.Finish(codes.Aborted, "enough", nil)
	closed(t, "Put after the call ended", putDone)
	if alive {
		t.Fatalf("Put refused with alive=true after the call ended")
	}
	closed(t, "CloseSend after the call ended", closeDone)
	wantStatus(t, ended(t, s), codes.Aborted, "enough")
	if q, alive := s.Offer(BytesMsg(chunkMsg)); q || alive {
		t.Fatalf("Offer after the end = %v, %v", q, alive)
	}
}

// TestServerPutUnblocksWhenClientCancels: the server's Put waiting for
// room returns when the client cancels, and the call's goroutines go.
func TestServerPutUnblocksWhenClientCancels(t *testing.T) {
	checkLeaks(t)
	var sent atomic.Int64
	result := make(chan bool, 1) // alive, when Put gave up
	_, target := newTestServer(t, func(c *ServerCall) {
		c.RecvOne()
		for {
			q, alive := c.Put(BytesMsg(chunkMsg), nil)
			if !q {
				result <- alive
				break
			}
			sent.Add(1)
		}
		c.Finish(codes.OK, "", nil)
	}, smallWindow)
	ch := dial(t, target, smallWindow)
	s := ch.StartStream(spec("/x/Flood"), true, true, BytesMsg([]byte("go")), false)
	// Wait for the pipeline to fill: our queue full, the server's count
	// steady.
	waitFor(t, "the client's queue to fill", func() bool { return len(s.Responses()) == queueDepth })
	waitFor(t, "the server to stall", func() bool {
		n := sent.Load()
		time.Sleep(50 * time.Millisecond)
		return sent.Load() == n
	})
	notYet(t, "server Put returning while the queue is full", result)
	s.Cancel()
	if alive, _ := recvChan(t, "server Put", result); alive {
		t.Fatal("server Put gave up with alive=true after the client cancelled")
	}
	wantStatus(t, ended(t, s), codes.Canceled, "Locally cancelled by application!")
}

// TestServerRequestsReaderStops: a server that stops reading its Requests
// queue does not keep a goroutine once the call is over.
func TestServerRequestsReaderStops(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, func(c *ServerCall) {
		<-c.Requests() // read one, ignore the rest
		c.Finish(codes.OK, "", BytesMsg([]byte("done")))
	}, smallWindow)
	ch := dial(t, target, smallWindow)
	s := ch.StartStream(spec("/x/Sink"), false, true, nil, false)
	for i := 0; i < 2*queueDepth; i++ {
		if q, _ := s.Put(BytesMsg(chunkMsg), timeoutChan(longWait)); !q {
			break // the call ended under us: fine
		}
	}
	s.CloseSend()
	drain(t, s)
	wantStatus(t, ended(t, s), codes.OK, "")
}

// ---- the pumps on their own ----

// fakeStream is a msgStream whose sends block until released.
type fakeStream struct {
	mu      sync.Mutex
	sent    [][]byte
	gate    chan struct{} // each SendMsg takes one token
	entered chan struct{} // if set, SendMsg signals here on entry
	failing atomic.Bool
	recv    chan []byte // closed: RecvMsg returns io.EOF
}

func (f *fakeStream) SendMsg(m any) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	<-f.gate
	if f.failing.Load() {
		return errors.New("broken")
	}
	f.mu.Lock()
	f.sent = append(f.sent, m.(Msg).Materialize())
	f.mu.Unlock()
	return nil
}

func (f *fakeStream) RecvMsg(m any) error {
	b, ok := <-f.recv
	if !ok {
		return io.EOF
	}
	*(m.(*Msg)) = BytesMsg(b)
	return nil
}

func (f *fakeStream) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func TestSender(t *testing.T) {
	f := &fakeStream{gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
	w := newSender()
	lastCalled := make(chan struct{})
	w.start(func() msgStream { return f }, func() error { close(lastCalled); return nil })

	// Fill with large messages: one in SendMsg, queueDepth queued, then
	// full (small ones go deeper: TestSenderDeepSmall).
	w.offer(bigMsg(0))
	recvChan(t, "the first send", f.entered)
	n := 1
	for {
		q, alive := w.offer(bigMsg(byte(n)))
		if !alive {
			t.Fatal("not alive")
		}
		if !q {
			break
		}
		n++
	}
	if n != queueDepth+1 {
		t.Fatalf("queued %d before full, want %d", n, queueDepth+1)
	}
	if q, alive := w.put(bigMsg('x'), closedChan); q || !alive {
		t.Fatalf("put(fired wait) = %v, %v", q, alive)
	}
	putDone := run(func() {
		if q, alive := w.put(bigMsg('l'), nil); !q || !alive {
			t.Errorf("put = %v, %v; want queued", q, alive)
		}
	})
	notYet(t, "put with a full queue", putDone)
	f.gate <- struct{}{} // one send: room for one
	closed(t, "put", putDone)
	endDone := run(w.end)
	releaseSends(f, w)
	closed(t, "end", endDone)
	closed(t, "last()", lastCalled)
	closed(t, "sender goroutine", w.done)
	if got := f.count(); got != n+1 {
		t.Fatalf("sent %d, want %d", got, n+1)
	}
	if q, alive := w.offer(BytesMsg([]byte("after end"))); q || alive {
		t.Fatalf("offer after end = %v, %v", q, alive)
	}
	w.end() // twice: no-op
}

// A large message waiting for room in a sender whose stream never opens
// is told when the goroutine gives up: put returns, not alive.
func TestSenderLargeWaitStreamNeverOpens(t *testing.T) {
	w := newSender()
	release := make(chan struct{})
	w.start(func() msgStream { <-release; return nil }, nil)
	for i := 0; i < queueDepth; i++ {
		if q, _ := w.offer(bigMsg(byte(i))); !q {
			t.Fatalf("large message %d refused below queueDepth", i)
		}
	}
	putDone := make(chan [2]bool, 1)
	go func() {
		q, alive := w.put(bigMsg('w'), nil)
		putDone <- [2]bool{q, alive}
	}()
	select {
	case r := <-putDone:
		t.Fatalf("put returned %v with queueDepth queued", r)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case r := <-putDone:
		if r[0] || r[1] {
			t.Fatalf("put = %v, %v; want not queued, not alive", r[0], r[1])
		}
	case <-time.After(longWait):
		t.Fatal("put still waiting after the sender gave up")
	}
	closed(t, "sender goroutine", w.done)
}

// releaseSends lets every send of f through until w's goroutine exits.
func releaseSends(f *fakeStream, w *sender) {
	go func() {
		for {
			select {
			case f.gate <- struct{}{}:
			case <-w.done:
				return
			}
		}
	}()
}

// bigMsg is a message larger than smallMsgMax, filled with b.
func bigMsg(b byte) Msg { return BytesMsg(bytes.Repeat([]byte{b}, smallMsgMax+1)) }

// A deep sender's queue takes small messages up to its capacity (a batch
// of a grpc.aio writer's is queued whole), a large one only while fewer
// than queueDepth are queued: offered, it is refused; put, it waits until
// the goroutine took enough, and everything is written in order.
func TestSenderDeepSmall(t *testing.T) {
	if !StreamDeep {
		t.Skip("GRPCGO_STREAM_DEEP=0")
	}
	f := &fakeStream{gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
	w := newSender()
	w.start(func() msgStream { return f }, nil)
	var want [][]byte
	offer := func(m Msg) bool {
		b := m.Materialize()
		q, alive := w.offer(m)
		if !alive {
			t.Fatal("not alive")
		}
		if q {
			want = append(want, b)
		}
		return q
	}
	offer(BytesMsg([]byte{0}))
	recvChan(t, "the first send", f.entered)
	n := 1
	for offer(BytesMsg([]byte{byte(n)})) {
		n++
	}
	if n != smallQueueDepth+1 {
		t.Fatalf("queued %d small messages before full, want %d", n, smallQueueDepth+1)
	}
	// Let the goroutine take all but queueDepth of them.
	for len(w.q) > queueDepth {
		f.gate <- struct{}{}
		recvChan(t, "a send", f.entered)
	}
	if offer(bigMsg('a')) {
		t.Fatalf("a large message was queued behind %d", len(w.q))
	}
	if !offer(BytesMsg([]byte("small"))) {
		t.Fatal("a small message was refused with room for small ones")
	}
	want = append(want, bigMsg('b').Materialize())
	putDone := run(func() {
		if q, alive := w.put(bigMsg('b'), nil); !q || !alive {
			t.Errorf("put = %v, %v; want queued", q, alive)
		}
	})
	notYet(t, "put of a large message with queueDepth queued", putDone)
	releaseSends(f, w)
	closed(t, "put", putDone)
	w.end()
	closed(t, "sender goroutine", w.done)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) != len(want) {
		t.Fatalf("sent %d messages, want %d", len(f.sent), len(want))
	}
	for i := range want {
		if !bytes.Equal(f.sent[i], want[i]) {
			t.Fatalf("message %d: sent %q, want %q", i, f.sent[i], want[i])
		}
	}
}

func TestSenderSendNow(t *testing.T) {
	f := &fakeStream{gate: make(chan struct{}, 100), entered: make(chan struct{}, 100)}
	w := newSender()
	lastCalled := make(chan struct{})
	w.start(func() msgStream { return f }, func() error { close(lastCalled); return nil })
	waitFor(t, "the stream to open", w.idle)

	// Nothing queued: written on the calling goroutine.
	f.gate <- struct{}{}
	if sent, alive := w.sendNow(BytesMsg([]byte("a"))); !sent || !alive {
		t.Fatalf("sendNow on an idle sender = %v, %v", sent, alive)
	}
	if f.count() != 1 {
		t.Fatalf("sent %d, want 1", f.count())
	}

	// A queued message is never overtaken: while "b" waits in the
	// goroutine's write, sendNow declines and the caller queues.
	w.offer(BytesMsg([]byte("b")))
	recvChan(t, "the direct write of a", f.entered)
	recvChan(t, "the goroutine's write of b", f.entered)
	if w.idle() {
		t.Fatal("idle while a message is being written")
	}
	if sent, alive := w.sendNow(BytesMsg([]byte("c"))); sent || !alive {
		t.Fatalf("sendNow behind a queued message = %v, %v", sent, alive)
	}
	w.offer(BytesMsg([]byte("c")))
	f.gate <- struct{}{}
	f.gate <- struct{}{}
	waitFor(t, "the queue to drain", w.idle)
	f.mu.Lock()
	got := fmt.Sprintf("%q", f.sent)
	f.mu.Unlock()
	if got != `["a" "b" "c"]` {
		t.Fatalf("sent %s, want a, b, c in order", got)
	}

	// After the end, nothing more is written directly.
	w.end()
	closed(t, "last()", lastCalled)
	if sent, alive := w.sendNow(BytesMsg([]byte("late"))); sent || alive {
		t.Fatalf("sendNow after end = %v, %v", sent, alive)
	}

	// A failing write: the message counts as sent, the stream is dead.
	f2 := &fakeStream{gate: make(chan struct{}, 1)}
	f2.failing.Store(true)
	w2 := newSender()
	w2.start(func() msgStream { return f2 }, nil)
	waitFor(t, "the stream to open", w2.idle)
	f2.gate <- struct{}{}
	if sent, alive := w2.sendNow(BytesMsg([]byte("x"))); !sent || alive {
		t.Fatalf("sendNow failing = %v, %v", sent, alive)
	}
	if q, alive := w2.offer(BytesMsg([]byte("y"))); q || alive {
		t.Fatalf("offer after a failed write = %v, %v", q, alive)
	}
	w2.abandon()
}

func TestSenderFailureAndAbandon(t *testing.T) {
	f := &fakeStream{gate: make(chan struct{}, 1000)}
	f.failing.Store(true)
	w := newSender()
	lastCalled := atomic.Bool{}
	w.start(func() msgStream { return f }, func() error { lastCalled.Store(true); return nil })
	f.gate <- struct{}{}
	w.offer(BytesMsg([]byte("fails")))
	waitFor(t, "the failure", w.failed.Load)
	if q, alive := w.offer(BytesMsg([]byte("x"))); q || alive {
		t.Fatalf("offer after a failed send = %v, %v", q, alive)
	}
	if q, alive := w.put(BytesMsg([]byte("x")), nil); q || alive {
		t.Fatalf("put after a failed send = %v, %v", q, alive)
	}
	w.end()
	closed(t, "sender goroutine", w.done)
	if lastCalled.Load() {
		t.Error("last() ran after a failed send")
	}

	// A stream that never opens.
	w = newSender()
	w.start(func() msgStream { return nil }, nil)
	closed(t, "sender goroutine", w.done)
	if q, alive := w.offer(BytesMsg([]byte("x"))); q || alive {
		t.Fatalf("offer on a stream that never opened = %v, %v", q, alive)
	}

	// Abandon unblocks a waiting put and end, and stops the goroutine.
	f = &fakeStream{gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
	w = newSender()
	w.start(func() msgStream { return f }, nil)
	w.offer(BytesMsg([]byte("m")))
	recvChan(t, "the first send", f.entered)
	for {
		if q, _ := w.offer(BytesMsg([]byte("m"))); !q {
			break
		}
	}
	var q, alive bool
	putDone := run(func() { q, alive = w.put(BytesMsg([]byte("x")), nil) })
	notYet(t, "put on a full queue", putDone)
	endDone := run(w.end)
	notYet(t, "end on a full queue", endDone)
	w.abandon()
	w.abandon()
	closed(t, "put", putDone)
	closed(t, "end", endDone)
	if q || alive {
		t.Fatalf("put after abandon = %v, %v", q, alive)
	}
	close(f.gate) // release the send in progress
	closed(t, "sender goroutine", w.done)

	// After an abandon, nothing is accepted even with room in the queue.
	w = newSender()
	w.start(func() msgStream { return &fakeStream{gate: make(chan struct{})} }, nil)
	w.abandon()
	for i := 0; i < 200; i++ {
		if q, alive := w.offer(BytesMsg([]byte("x"))); q || alive {
			t.Fatalf("offer after abandon = %v, %v", q, alive)
		}
		if q, alive := w.put(BytesMsg([]byte("x")), nil); q || alive {
			t.Fatalf("put after abandon = %v, %v", q, alive)
		}
	}
	closed(t, "sender goroutine", w.done)
}

// TestServerRequestsEndOnCancel: a handler reading Requests sees the
// queue close when the client cancels, and the call is no longer active.
func TestServerRequestsEndOnCancel(t *testing.T) {
	checkLeaks(t)
	type out struct {
		n      int
		active bool
	}
	res := make(chan out, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		n := 0
		for range c.Requests() {
			n++
		}
		<-c.Context().Done()
		res <- out{n, c.Active()}
		c.Finish(codes.OK, "", nil)
	})
	ch := dial(t, target)
	s := ch.StartStream(spec("/x/Sink"), false, true, nil, false)
	sendAll(t, s, []byte("1"), []byte("2"))
	waitFor(t, "the server to take the call", func() bool { return ReadCounters().ServerCalls == 1 })
	s.Cancel()
	r, _ := recvChan(t, "handler", res)
	if r.active || r.n > 2 {
		t.Fatalf("handler saw %d requests, active %v", r.n, r.active)
	}
	wantStatus(t, ended(t, s), codes.Canceled, "Locally cancelled by application!")
}

func TestReceiver(t *testing.T) {
	f := &fakeStream{recv: make(chan []byte)}
	r := newReceiver()
	var before atomic.Bool
	var afterErr error
	done := run(func() {
		r.run(f, func() { before.Store(true) }, func(err error) { afterErr = err })
	})
	f.recv <- []byte("a")
	f.recv <- nil // an empty message comes out non-nil
	if m, _ := recvChan(t, "a", r.Queue()); string(m.Materialize()) != "a" {
		t.Fatalf("got %q", m)
	}
	if m, _ := recvChan(t, "empty", r.Queue()); m == nil || m.Len() != 0 {
		t.Fatalf("got %#v, want empty non-nil", m)
	}
	close(f.recv)
	if _, ok := recvChan(t, "close", r.Queue()); ok {
		t.Fatal("queue not closed at EOF")
	}
	closed(t, "run", done)
	if !before.Load() || afterErr != io.EOF || r.err != io.EOF {
		t.Fatalf("before %v, after(%v), err %v", before.Load(), afterErr, r.err)
	}

	// Abandoned with a full queue: run returns, after sees errAbandoned.
	f = &fakeStream{recv: make(chan []byte, 2*queueDepth)}
	for i := 0; i < 2*queueDepth; i++ {
		f.recv <- []byte{byte(i)}
	}
	r = newReceiver()
	done = run(func() { r.run(f, nil, func(err error) { afterErr = err }) })
	waitFor(t, "a full queue", func() bool { return len(r.Queue()) == queueDepth })
	notYet(t, "run returning with a full queue", done)
	r.abandon()
	r.abandon()
	closed(t, "run", done)
	if afterErr != errAbandoned {
		t.Fatalf("after(%v), want errAbandoned", afterErr)
	}
	n := 0
	for range r.Queue() {
		n++
	}
	if n != queueDepth {
		t.Fatalf("%d messages left queued, want %d", n, queueDepth)
	}
}

// TestClientPutUnblocksWhenChannelCloses: Put waiting for room returns
// when the channel closes under it.
func TestClientPutUnblocksWhenChannelCloses(t *testing.T) {
	checkLeaks(t)
	calls := make(chan *ServerCall, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		calls <- c // never reads
		<-c.Context().Done()
	}, smallWindow)
	ch := dial(t, target, smallWindow)
	s := ch.StartStream(spec("/x/Sink"), false, true, nil, false)
	recvChan(t, "server call", calls)
	var alive bool
	putDone := run(func() {
		for {
			var q bool
			if q, alive = s.Put(BytesMsg(chunkMsg), nil); !q {
				return
			}
		}
	})
	notYet(t, "Put returning on a stalled stream", putDone)
	ch.Close()
	closed(t, "Put after Close", putDone)
	if alive {
		t.Fatal("Put refused with alive=true after the channel closed")
	}
	wantStatus(t, ended(t, s), codes.Canceled, "Channel closed!")
}

// TestSenderWritesQueuedAsOne: what the sender goroutine finds queued goes
// to many in one call, in order, up to the end marker; a failure in the
// middle stops the rest (those are freed, never sent), and sendNowMany
// writes a batch on the caller when nothing is queued.
func TestSenderWritesQueuedAsOne(t *testing.T) {
	f := &fakeStream{gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
	var mu sync.Mutex
	var batches [][]string
	failAt := -1
	w := newSender()
	w.many = func(ms []Msg) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		var b []string
		for i, m := range ms {
			if len(batches) == failAt {
				return i + 1, errors.New("broken")
			}
			b = append(b, string(m.Materialize()))
		}
		batches = append(batches, b)
		return len(ms), nil
	}
	w.start(func() msgStream { return f }, func() error { return nil })
	w.offer(BytesMsg([]byte("first"))) // one message: SendMsg
	recvChan(t, "the first send", f.entered)
	for i := 0; i < 10; i++ {
		if q, _ := w.offer(BytesMsg([]byte{'a' + byte(i)})); !q {
			t.Fatal("not queued")
		}
	}
	f.gate <- struct{}{}
	waitFor(t, "the batch", func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })
	if got := fmt.Sprint(batches); got != "[[a b c d e f g h i j]]" {
		t.Fatalf("batches %s", got)
	}
	if sent, alive := w.sendNowMany([]Msg{BytesMsg([]byte("x")), BytesMsg([]byte("y"))}); sent != 2 || !alive {
		t.Fatalf("sendNowMany = %d, %v", sent, alive)
	}
	mu.Lock()
	failAt = len(batches)
	mu.Unlock()
	if sent, alive := w.sendNowMany([]Msg{BytesMsg([]byte("p")), BytesMsg([]byte("q"))}); sent != 1 || alive {
		t.Fatalf("sendNowMany failing = %d, %v", sent, alive)
	}
	if q, alive := w.offer(BytesMsg([]byte("after"))); q || alive {
		t.Fatalf("offer after a failure = %v, %v", q, alive)
	}
	if got := fmt.Sprint(batches); got != "[[a b c d e f g h i j] [x y]]" {
		t.Fatalf("batches %s", got)
	}
	w.abandon()
	closed(t, "sender goroutine", w.done)
}

// TestSenderBatchesOnlySmallMessages: large messages are written alone
// (SendMsg), runs of small ones between them together.
func TestSenderBatchesOnlySmallMessages(t *testing.T) {
	f := &fakeStream{gate: make(chan struct{}, 100)}
	for i := 0; i < 100; i++ {
		f.gate <- struct{}{}
	}
	var batches []string
	w := newSender()
	w.many = func(ms []Msg) (int, error) {
		var b []string
		for _, m := range ms {
			b = append(b, string(m.Materialize()))
		}
		batches = append(batches, fmt.Sprint(b))
		return len(ms), nil
	}
	big := make([]byte, batchMsgMax+1)
	ms := []Msg{BytesMsg([]byte("a")), BytesMsg([]byte("b")), BytesMsg(big), BytesMsg([]byte("c")),
		BytesMsg(big), BytesMsg([]byte("d")), BytesMsg([]byte("e")), BytesMsg([]byte("f"))}
	if taken, err := w.writeMany(ms, func(m Msg) error { return f.SendMsg(m) }); taken != len(ms) || err != nil {
		t.Fatalf("writeMany = %d, %v", taken, err)
	}
	if got := fmt.Sprint(batches); got != "[[a b] [d e f]]" {
		t.Fatalf("batches %s", got)
	}
	if f.count() != 3 { // big, c, big
		t.Fatalf("%d sent alone, want 3", f.count())
	}
}

// TestReceiverRefillsInHalves: once its reader calls took, a receiver whose
// queue is full waits until half of it was taken before queueing more (one
// wake-up per half queue), loses nothing and keeps the order; abandoning it
// while it waits ends it.
func TestReceiverRefillsInHalves(t *testing.T) {
	const total = 3 * queueDepth
	f := &fakeStream{recv: make(chan []byte, total)}
	for i := 0; i < total; i++ {
		f.recv <- []byte{byte(i)}
	}
	close(f.recv)
	r := newReceiver()
	r.took() // the reader says it calls took
	done := run(func() { r.run(f, nil, nil) })
	waitFor(t, "a full queue", func() bool { return len(r.Queue()) == queueDepth })
	next := 0
	take := func(n int) {
		for i := 0; i < n; i++ {
			m := <-r.Queue()
			if got := int(m.Materialize()[0]); got != next%256 {
				t.Fatalf("message %d, want %d", got, next%256)
			}
			next++
		}
		r.took()
	}
	take(1)
	time.Sleep(20 * time.Millisecond) // room for one: not refilled yet
	if n := len(r.Queue()); n != queueDepth-1 {
		t.Fatalf("%d queued after one was taken, want %d (no refill before half)", n, queueDepth-1)
	}
	take(queueDepth/2 - 1) // half taken: refilled
	waitFor(t, "the refill", func() bool { return len(r.Queue()) == queueDepth })
	for next < total {
		take(1)
	}
	if _, ok := <-r.Queue(); ok {
		t.Fatal("queue not closed at the end")
	}
	closed(t, "run", done)

	// Abandoned while it waits for room.
	f = &fakeStream{recv: make(chan []byte, total)}
	for i := 0; i < total; i++ {
		f.recv <- []byte{byte(i)}
	}
	r = newReceiver()
	r.took()
	var afterErr error
	done = run(func() { r.run(f, nil, func(err error) { afterErr = err }) })
	waitFor(t, "a full queue", func() bool { return len(r.Queue()) == queueDepth })
	<-r.Queue()
	r.took()
	notYet(t, "run returning while it waits for room", done)
	r.abandon()
	closed(t, "run", done)
	if afterErr != errAbandoned {
		t.Fatalf("after(%v), want errAbandoned", afterErr)
	}
}

// TestDeepReceiver: a deep receive queue (the binding's) takes up to
// smallQueueDepth small messages but no large one beyond queueDepth; it
// refills once its reader took half (of the channel for small messages, of
// queueDepth for a large one), and keeps the order across the sizes.
func TestDeepReceiver(t *testing.T) {
	big := bytes.Repeat([]byte{'B'}, smallMsgMax+1)
	msg := func(i int) []byte {
		// 300 small, then 100 large, then 300 small, then 10 large.
		if i >= 300 && i < 400 || i >= 700 {
			return append([]byte(fmt.Sprintf("%d:", i)), big...)
		}
		return []byte(fmt.Sprintf("%d:", i))
	}
	const total = 710
	f := &fakeStream{recv: make(chan []byte, total)}
	for i := 0; i < total; i++ {
		f.recv <- msg(i)
	}
	close(f.recv)
	r := newReceiverFor(true)
	if cap(r.Queue()) != smallQueueDepth {
		t.Fatalf("cap %d, want %d", cap(r.Queue()), smallQueueDepth)
	}
	done := run(func() { r.run(f, nil, nil) })
	next := 0
	take := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			m := <-r.Queue()
			if got, want := string(m.Materialize()), string(msg(next)); got != want {
				t.Fatalf("message %d: got %.10q, want %.10q", next, got, want)
			}
			next++
		}
		r.took()
	}
	settled := func(what string, want int) {
		t.Helper()
		waitFor(t, what, func() bool { return len(r.Queue()) == want })
		time.Sleep(20 * time.Millisecond)
		if n := len(r.Queue()); n != want {
			t.Fatalf("%s: %d queued, want %d", what, n, want)
		}
	}
	settled("the small messages filling the channel", smallQueueDepth)
	take(smallQueueDepth/2 - 1)
	settled("no refill before half was taken", smallQueueDepth/2+1)
	take(1) // half: refilled with the 44 small ones left; the first large one waits
	settled("the refill up to the first large message", smallQueueDepth/2+44)
	take(smallQueueDepth/2 + 44 - queueDepth/2 - 1) // down to 33 queued
	settled("a large message waiting for half of queueDepth", queueDepth/2+1)
	take(1) // 32 queued: large ones come, up to queueDepth
	settled("large messages up to queueDepth", queueDepth)
	for next < total {
		take(1)
	}
	if _, ok := <-r.Queue(); ok {
		t.Fatal("queue not closed at the end")
	}
	closed(t, "run", done)

	// Abandoned while a large message waits for room.
	f = &fakeStream{recv: make(chan []byte, 2*queueDepth)}
	for i := 0; i < 2*queueDepth; i++ {
		f.recv <- big
	}
	r = newReceiverFor(true)
	var afterErr error
	done = run(func() { r.run(f, nil, func(err error) { afterErr = err }) })
	settled("large messages up to queueDepth", queueDepth)
	notYet(t, "run returning while it waits for room", done)
	r.abandon()
	closed(t, "run", done)
	if afterErr != errAbandoned {
		t.Fatalf("after(%v), want errAbandoned", afterErr)
	}
}
