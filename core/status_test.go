package core

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// hangHandler never finishes a call on its own: it reports the call and
// waits for it to die, then reports how its context ended.
type hangHandler struct {
	calls chan *ServerCall
	died  chan error // context error of each call, once it died
}

func newHang() *hangHandler {
	return &hangHandler{calls: make(chan *ServerCall, 16), died: make(chan error, 16)}
}

func (h *hangHandler) serve(c *ServerCall) {
	h.calls <- c
	<-c.Context().Done()
	h.died <- c.Context().Err()
	c.Finish(codes.OK, "", BytesMsg([]byte("too late"))) // must not matter
}

func TestDeadlineExceeded(t *testing.T) {
	checkLeaks(t)
	h := newHang()
	_, target := newTestServer(t, h.serve)
	ch := dial(t, target)
	// Each call must reach the server before its deadline: connect first,
	// and leave a loaded machine (load 20 missed 50 ms) a margin.
	mustBeReady(t, ch)
	short := func(m string) *CallSpec { return &CallSpec{Method: m, Timeout: 250 * time.Millisecond} }

	resp, _, st := ch.Unary(short("/x/Unary"), BytesMsg([]byte("x")))
	wantStatus(t, st, codes.DeadlineExceeded, "Deadline Exceeded")
	if resp != nil {
		t.Errorf("response = %q", resp)
	}
	if c, _ := recvChan(t, "server call", h.calls); !c.HasDeadline {
		t.Errorf("server call has no deadline")
	}
	if err, _ := recvChan(t, "server side end", h.died); err == nil {
		t.Errorf("server call context not done")
	}

	u := ch.StartUnary(short("/x/StartUnary"), BytesMsg([]byte("x")))
	closed(t, "unary done", u.Done)
	wantStatus(t, u.Status, codes.DeadlineExceeded, "Deadline Exceeded")
	recvChan(t, "server call", h.calls)
	recvChan(t, "server side end", h.died)

	for _, shape := range []struct {
		name     string
		ss, cs   bool
		first    []byte
		closeAft bool
	}{
		{"server-streaming", true, false, []byte("x"), true},
		{"client-streaming", false, true, nil, false},
		{"bidi", true, true, []byte("x"), false},
	} {
		s := ch.StartStream(short("/x/"+shape.name), shape.ss, shape.cs, BytesMsg(shape.first), shape.closeAft)
		drain(t, s)
		wantStatus(t, ended(t, s), codes.DeadlineExceeded, "Deadline Exceeded")
		closed(t, "header ready", s.HeaderReady)
		recvChan(t, "server call", h.calls)
		recvChan(t, "server side end", h.died)
	}
}

// TestDeadlineFromGrpcGoServer: the deadline wording is grpcio's even when
// the server is plain grpc-go.
func TestDeadlineAgainstGrpcGo(t *testing.T) {
	checkLeaks(t)
	block := make(chan struct{})
	defer close(block)
	desc := grpcGoEcho
	desc.Streams = append(desc.Streams[:0:0], desc.Streams...)
	desc.Streams = append(desc.Streams, grpcGoStream("Hang", func(ss serverStream) error {
		select {
		case <-ss.Context().Done():
		case <-block:
		}
		return ss.Context().Err()
	}))
	ch := dial(t, newGrpcGoServer(t, &desc))
	s := ch.StartStream(&CallSpec{Method: "/test.Echo/Hang", Timeout: 50 * time.Millisecond}, true, true, nil, false)
	drain(t, s)
	wantStatus(t, ended(t, s), codes.DeadlineExceeded, "Deadline Exceeded")
}

func TestCancel(t *testing.T) {
	checkLeaks(t)
	h := newHang()
	_, target := newTestServer(t, h.serve)
	ch := dial(t, target)

	u := ch.StartUnary(spec("/x/Unary"), BytesMsg([]byte("x")))
	recvChan(t, "server call", h.calls)
	u.Cancel()
	closed(t, "unary done", u.Done)
	wantStatus(t, u.Status, codes.Canceled, "Locally cancelled by application!")
	if err, _ := recvChan(t, "server side end", h.died); !errors.Is(err, context.Canceled) {
		t.Errorf("server call context: %v, want canceled", err)
	}
	u.Cancel() // again: harmless

	for _, shape := range []struct {
		name   string
		ss, cs bool
	}{{"server", true, false}, {"client", false, true}, {"bidi", true, true}} {
		s := ch.StartStream(spec("/x/"+shape.name), shape.ss, shape.cs, BytesMsg([]byte("x")), !shape.cs)
		recvChan(t, "server call", h.calls)
		s.Cancel()
		drain(t, s)
		wantStatus(t, ended(t, s), codes.Canceled, "Locally cancelled by application!")
		closed(t, "header ready", s.HeaderReady)
		recvChan(t, "server side end", h.died)
		if q, alive := s.Offer(BytesMsg([]byte("y"))); q || alive {
			t.Errorf("Offer after Cancel = %v, %v", q, alive)
		}
		if q, alive := s.Put(BytesMsg([]byte("y")), nil); q || alive {
			t.Errorf("Put after Cancel = %v, %v", q, alive)
		}
		s.CloseSend() // must not block
		s.Cancel()
	}
}

// TestCancelBeforeOpen: a stream cancelled at once, before it can have
// opened, still ends with the cancellation status.
func TestCancelImmediately(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, coreEcho)
	ch := dial(t, target)
	for i := 0; i < 20; i++ {
		s := ch.StartStream(spec(mBidi), true, true, BytesMsg([]byte("x")), false)
		s.Cancel()
		drain(t, s)
		wantStatus(t, ended(t, s), codes.Canceled, "Locally cancelled by application!")
		u := ch.StartUnary(spec(mUnary), BytesMsg([]byte("x")))
		u.Cancel()
		closed(t, "unary done", u.Done)
		// It may have completed before the cancel took; either is fine,
		// but a cancelled one says so.
		if u.Status.Code != codes.OK {
			wantStatus(t, u.Status, codes.Canceled, "Locally cancelled by application!")
		}
	}
}

func TestChannelClose(t *testing.T) {
	checkLeaks(t)
	h := newHang()
	_, target := newTestServer(t, h.serve)
	ch, err := Dial(target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	u := ch.StartUnary(spec("/x/Unary"), BytesMsg([]byte("x")))
	recvChan(t, "server call", h.calls)
	s := ch.StartStream(spec("/x/Bidi"), true, true, nil, false)
	recvChan(t, "server call", h.calls)
	var plain *Status
	plainDone := run(func() { _, _, plain = ch.Unary(spec("/x/Unary2"), BytesMsg([]byte("x"))) })
	recvChan(t, "server call", h.calls)
	if ch.Closed() {
		t.Fatal("Closed() before Close")
	}

	ch.Close()
	if !ch.Closed() {
		t.Fatal("Closed() = false after Close")
	}
	closed(t, "unary done", u.Done)
	wantStatus(t, u.Status, codes.Canceled, "Channel closed!")
	drain(t, s)
	wantStatus(t, ended(t, s), codes.Canceled, "Channel closed!")
	closed(t, "blocking unary", plainDone)
	wantStatus(t, plain, codes.Canceled, "Channel closed!")
	for i := 0; i < 3; i++ {
		recvChan(t, "server side end", h.died)
	}
	ch.Close() // idempotent

	// Calls on a closed channel end at once, cancelled.
	_, _, st := ch.Unary(spec("/x/After"), nil)
	wantCode(t, st, codes.Canceled)
	s = ch.StartStream(spec("/x/After"), true, true, nil, false)
	drain(t, s)
	wantCode(t, ended(t, s), codes.Canceled)
	u = ch.StartUnary(spec("/x/After"), nil)
	closed(t, "unary done", u.Done)
	wantCode(t, u.Status, codes.Canceled)
}

// TestNoServer: calls to an address nobody listens on fail UNAVAILABLE
// (fail fast), and a wait-for-ready call waits until its deadline.
func TestNoServer(t *testing.T) {
	checkLeaks(t)
	target := deadAddress(t)
	ch := dial(t, target)
	_, _, st := ch.Unary(spec("/x/Unary"), nil)
	wantCode(t, st, codes.Unavailable)
	s := ch.StartStream(spec("/x/S"), true, true, nil, false)
	drain(t, s)
	wantCode(t, ended(t, s), codes.Unavailable)
	closed(t, "header ready", s.HeaderReady)

	_, _, st = ch.Unary(&CallSpec{Method: "/x/Unary", Timeout: 100 * time.Millisecond, WaitForReady: 1}, nil)
	wantStatus(t, st, codes.DeadlineExceeded, "Deadline Exceeded")
	_, _, st = ch.Unary(&CallSpec{Method: "/x/Unary", Timeout: longWait, WaitForReady: -1}, nil)
	wantCode(t, st, codes.Unavailable)
}

// TestWaitForReady: a wait-for-ready call started before the server
// exists completes once it does.
func TestWaitForReady(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := dial(t, "127.0.0.1:"+itoa(port))
	u := ch.StartUnary(&CallSpec{Method: mUnary, Timeout: longWait, WaitForReady: 1}, BytesMsg([]byte("patient")))
	notYet(t, "call completion before the server started", u.Done)
	srv.Start()
	done := dispatch(srv, coreEcho)
	defer func() { srv.Stop(0); <-done }()
	closed(t, "unary done", u.Done)
	wantStatus(t, u.Status, codes.OK, "")
	wantBytes(t, "response", u.Response.Materialize(), []byte("patient"))
}

// ---- message size limits ----

const mib = 1 << 20

// sizeHandler answers a unary call with as many bytes as the request
// says (decimal), and a client-streaming call with the total size of what
// it received.
func sizeHandler(c *ServerCall) {
	switch c.Method {
	case "/size/Respond":
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		c.Finish(codes.OK, "", BytesMsg(make([]byte, atoi(string(req.Materialize())))))
	case "/size/Stream":
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		n := atoi(string(req.Materialize()))
		if !put(c, make([]byte, n)) {
			return
		}
		c.Finish(codes.OK, "", nil)
	default:
		n := 0
		for m := range c.Requests() {
			n += m.Len()
		}
		c.Finish(codes.OK, "", BytesMsg([]byte(itoa(n))))
	}
}

func TestReceiveLimitDefault(t *testing.T) {
	checkLeaks(t)
	for _, b := range []backend{
		{"core", func(t *testing.T) string { _, target := newTestServer(t, sizeHandler); return target }},
		{"grpc-go", func(t *testing.T) string { return newGrpcGoServer(t, sizeDesc()) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			ch := dial(t, b.start(t))
			// Client side: responses up to 4 MiB are fine, one byte more is not.
			resp, _, st := ch.Unary(spec("/size/Respond"), BytesMsg([]byte(itoa(4*mib))))
			wantStatus(t, st, codes.OK, "")
			if resp.Len() != 4*mib {
				t.Fatalf("response of %d bytes, want %d", resp.Len(), 4*mib)
			}
			_, _, st = ch.Unary(spec("/size/Respond"), BytesMsg([]byte(itoa(4*mib+1))))
			wantCode(t, st, codes.ResourceExhausted)
			s := ch.StartStream(spec("/size/Stream"), true, false, BytesMsg([]byte(itoa(4*mib+1))), true)
			drain(t, s)
			wantCode(t, ended(t, s), codes.ResourceExhausted)

			// Server side: the same for requests.
			_, _, st = ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 4*mib+1)))
			wantCode(t, st, codes.ResourceExhausted)
			s = ch.StartStream(spec("/size/Count"), false, true, nil, false)
			sendAll(t, s, []byte("abc"), make([]byte, 4*mib+1))
			s.CloseSend()
			drain(t, s)
			wantCode(t, ended(t, s), codes.ResourceExhausted)
			resp, _, st = ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 4*mib)))
			wantStatus(t, st, codes.OK, "")
			wantBytes(t, "count", resp.Materialize(), []byte(itoa(4*mib)))
		})
	}
}

func TestReceiveLimitOptions(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, sizeHandler)

	ch := dial(t, target, Option{Key: "grpc.max_receive_message_length", Int: 1000, IsInt: true})
	_, _, st := ch.Unary(spec("/size/Respond"), BytesMsg([]byte("1000")))
	wantStatus(t, st, codes.OK, "")
	_, _, st = ch.Unary(spec("/size/Respond"), BytesMsg([]byte("1001")))
	wantCode(t, st, codes.ResourceExhausted)

	// The older name, and the limit given as a string.
	ch = dial(t, target, Option{Key: "grpc.max_message_length", Str: "10", Int: 10, IsInt: true})
	_, _, st = ch.Unary(spec("/size/Respond"), BytesMsg([]byte("11")))
	wantCode(t, st, codes.ResourceExhausted)

	// -1: unlimited.
	ch = dial(t, target, Option{Key: "grpc.max_receive_message_length", Int: -1, IsInt: true})
	resp, _, st := ch.Unary(spec("/size/Respond"), BytesMsg([]byte(itoa(5*mib))))
	wantStatus(t, st, codes.OK, "")
	if resp.Len() != 5*mib {
		t.Fatalf("response of %d bytes, want %d", resp.Len(), 5*mib)
	}

	// Sending limit on the channel.
	ch = dial(t, target, Option{Key: "grpc.max_send_message_length", Int: 100, IsInt: true})
	_, _, st = ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 101)))
	wantCode(t, st, codes.ResourceExhausted)
	s := ch.StartStream(spec("/size/Count"), false, true, BytesMsg(make([]byte, 101)), true)
	drain(t, s)
	wantCode(t, ended(t, s), codes.ResourceExhausted)
	resp, _, st = ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 100)))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "count", resp.Materialize(), []byte("100"))
}

func TestServerMessageLimitOptions(t *testing.T) {
	checkLeaks(t)
	_, unlimited := newTestServer(t, sizeHandler, Option{Key: "grpc.max_receive_message_length", Int: -1, IsInt: true})
	ch := dial(t, unlimited)
	resp, _, st := ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 5*mib)))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "count", resp.Materialize(), []byte(itoa(5*mib)))

	_, small := newTestServer(t, sizeHandler,
		Option{Key: "grpc.max_receive_message_length", Int: 50, IsInt: true},
		Option{Key: "grpc.max_send_message_length", Int: 60, IsInt: true})
	ch = dial(t, small)
	_, _, st = ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 51)))
	wantCode(t, st, codes.ResourceExhausted)
	s := ch.StartStream(spec("/size/Count"), false, true, BytesMsg(make([]byte, 51)), true)
	drain(t, s)
	wantCode(t, ended(t, s), codes.ResourceExhausted)
	_, _, st = ch.Unary(spec("/size/Respond"), BytesMsg([]byte("61")))
	wantCode(t, st, codes.ResourceExhausted)
	// A streamed response over the server's send limit fails the call; it
	// does not vanish and leave an OK status.
	s = ch.StartStream(spec("/size/Stream"), true, false, BytesMsg([]byte("61")), true)
	if got := drain(t, s); len(got) != 0 {
		t.Fatalf("got %d responses", len(got))
	}
	wantCode(t, ended(t, s), codes.ResourceExhausted)
	_, _, st = ch.Unary(spec("/size/Respond"), BytesMsg([]byte("60")))
	wantStatus(t, st, codes.OK, "")
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

// ---- status conversion ----

func TestStatusFrom(t *testing.T) {
	if st := statusFrom(nil, nil); !st.OK() || st.Details != "" {
		t.Errorf("nil error: %+v", st)
	}
	bg := context.Background()
	st := statusFrom(bg, status.Error(codes.NotFound, "nope"))
	wantStatus(t, st, codes.NotFound, "nope")

	ctx, cancel := context.WithCancelCause(bg)
	cancel(errCallCancelled)
	wantStatus(t, statusFrom(ctx, ctx.Err()), codes.Canceled, "Locally cancelled by application!")
	wantStatus(t, statusFrom(ctx, status.Error(codes.Canceled, "context canceled")), codes.Canceled, "Locally cancelled by application!")

	ctx, cancel = context.WithCancelCause(bg)
	cancel(nil)
	wantStatus(t, statusFrom(ctx, ctx.Err()), codes.Canceled, "Cancelled")

	// A cancellation the peer reported is not ours to reword.
	wantStatus(t, statusFrom(bg, status.Error(codes.Canceled, "peer said so")), codes.Canceled, "peer said so")

	dctx, dcancel := context.WithTimeout(bg, -time.Second)
	defer dcancel()
	wantStatus(t, statusFrom(dctx, dctx.Err()), codes.DeadlineExceeded, "Deadline Exceeded")
	wantStatus(t, statusFrom(bg, status.Error(codes.DeadlineExceeded, "server's own")), codes.DeadlineExceeded, "server's own")
	// The server's DEADLINE_EXCEEDED arriving once our deadline passed but
	// before our timer fired is still our deadline.
	late := pastDeadline{bg, time.Now().Add(-time.Millisecond)}
	wantStatus(t, statusFrom(late, status.Error(codes.DeadlineExceeded, "context deadline exceeded")), codes.DeadlineExceeded, "Deadline Exceeded")
	early := pastDeadline{bg, time.Now().Add(time.Hour)}
	wantStatus(t, statusFrom(early, status.Error(codes.DeadlineExceeded, "server's own")), codes.DeadlineExceeded, "server's own")
	if !(&Status{}).OK() || (&Status{Code: codes.Unknown}).OK() {
		t.Error("Status.OK")
	}
}

// pastDeadline is a context whose deadline timer has not fired.
type pastDeadline struct {
	context.Context
	dl time.Time
}

func (p pastDeadline) Deadline() (time.Time, bool) { return p.dl, true }
