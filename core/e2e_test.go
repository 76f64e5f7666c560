package core

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// binValue is every byte value, for "-bin" metadata.
var binValue = func() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

// echoPairs is request metadata the echo service sends back: plain, -bin
// with arbitrary bytes, and a key with two values.
var echoPairs = []string{
	"x-plain", "hello world",
	"x-blob-bin", binValue,
	"x-empty-bin", "",
	"x-multi", "one",
	"x-multi", "two",
}

func echoedHeader() metadata.MD {
	return metadata.MD{
		"x-plain":     {"hello world"},
		"x-blob-bin":  {binValue},
		"x-empty-bin": {""},
		"x-multi":     {"one", "two"},
	}
}

func echoedTrailer() metadata.MD {
	return metadata.MD{
		"t-x-plain":     {"hello world"},
		"t-x-blob-bin":  {binValue},
		"t-x-empty-bin": {""},
		"t-x-multi":     {"one", "two"},
	}
}

func TestUnary(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		resp, header, st := ch.Unary(spec(mUnary, echoPairs...), BytesMsg([]byte("ping\x00\xff")))
		wantStatus(t, st, codes.OK, "")
		wantBytes(t, "response", resp.Materialize(), []byte("ping\x00\xff"))
		wantMD(t, "header", header, echoedHeader())
		wantMD(t, "trailer", st.Trailer, echoedTrailer())
	})
}

func TestUnaryEmptyMessages(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		resp, _, st := ch.Unary(spec(mUnary), nil)
		wantStatus(t, st, codes.OK, "")
		if resp == nil || resp.Len() != 0 {
			t.Fatalf("response = %#v, want empty non-nil", resp)
		}
		c := ch.StartUnary(spec(mUnary), BytesMsg([]byte{}))
		closed(t, "unary done", c.Done)
		wantStatus(t, c.Status, codes.OK, "")
		if c.Response == nil || c.Response.Len() != 0 {
			t.Fatalf("StartUnary response = %#v, want empty non-nil", c.Response)
		}
	})
}

func TestStartUnary(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		var calls []*UnaryCall
		for i := 0; i < 8; i++ {
			calls = append(calls, ch.StartUnary(spec(mUnary, echoPairs...), BytesMsg([]byte{byte(i)})))
		}
		for i, c := range calls {
			closed(t, "unary done", c.Done)
			wantStatus(t, c.Status, codes.OK, "")
			wantBytes(t, "response", c.Response.Materialize(), []byte{byte(i)})
			wantMD(t, "header", c.Header, echoedHeader())
			wantMD(t, "trailer", c.Status.Trailer, echoedTrailer())
			c.Cancel() // after the end: harmless
			wantStatus(t, c.Status, codes.OK, "")
		}
	})
}

func TestUnaryError(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		details := "it failed: ünïcödé ☃ \t and spaces"
		md := append([]string{"x-code", "9", "x-details-bin", details}, echoPairs...)
		resp, header, st := ch.Unary(spec(mUnary, md...), BytesMsg([]byte("req")))
		wantStatus(t, st, codes.FailedPrecondition, details)
		if resp != nil {
			t.Fatalf("response on error = %q, want nil", resp)
		}
		wantMD(t, "header", header, echoedHeader())
		wantMD(t, "trailer on error", st.Trailer, echoedTrailer())
		wantMD(t, "trailer on error", st.Trailer, metadata.MD{"t-x-details-bin": {details}})

		c := ch.StartUnary(spec(mUnary, md...), BytesMsg([]byte("req")))
		closed(t, "unary done", c.Done)
		wantStatus(t, c.Status, codes.FailedPrecondition, details)
		wantMD(t, "trailer on error", c.Status.Trailer, echoedTrailer())
		if c.Response != nil {
			t.Fatalf("response on error = %q, want nil", c.Response)
		}
	})
}

func TestEveryCodeCrossesTheWire(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
			details := "details for " + code.String()
			_, _, st := ch.Unary(spec(mUnary, "x-code", itoa(int(code)), "x-details", details), BytesMsg([]byte("x")))
			wantStatus(t, st, code, details)
		}
	})
}

func TestServerStreaming(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		s := ch.StartStream(spec(mServerStream, echoPairs...), true, false, BytesMsg([]byte("a,,b\x00,c")), true)
		got := drain(t, s)
		if want := msgs("a", "", "b\x00", "c"); !equalMsgs(got, want) {
			t.Fatalf("responses = %q, want %q", got, want)
		}
		closed(t, "header", s.HeaderReady)
		wantMD(t, "header", s.Header, echoedHeader())
		st := ended(t, s)
		wantStatus(t, st, codes.OK, "")
		wantMD(t, "trailer", st.Trailer, echoedTrailer())
	})
}

func TestServerStreamingError(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		s := ch.StartStream(spec(mServerStream, "x-code", "10", "x-details", "aborted!", "x-k", "v"), true, false, BytesMsg([]byte("a,b,c")), true)
		got := drain(t, s)
		// The last response goes with the status, and a non-OK status drops it.
		if want := msgs("a", "b"); !equalMsgs(got, want) {
			t.Fatalf("responses = %q, want %q", got, want)
		}
		st := ended(t, s)
		wantStatus(t, st, codes.Aborted, "aborted!")
		wantMD(t, "trailer on error", st.Trailer, metadata.MD{"t-x-k": {"v"}})
	})
}

func TestClientStreaming(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		s := ch.StartStream(spec(mClientStream, echoPairs...), false, true, nil, false)
		if q, alive := s.Offer(BytesMsg([]byte("one"))); !q || !alive {
			t.Fatalf("Offer = %v, %v; want queued and alive", q, alive)
		}
		sendAll(t, s, []byte("two"), []byte{}, []byte("four"))
		s.CloseSend()
		s.CloseSend() // idempotent
		if q, alive := s.Offer(BytesMsg([]byte("late"))); q || alive {
			t.Fatalf("Offer after CloseSend = %v, %v; want not queued, not alive", q, alive)
		}
		if q, alive := s.Put(BytesMsg([]byte("late")), nil); q || alive {
			t.Fatalf("Put after CloseSend = %v, %v; want not queued, not alive", q, alive)
		}
		got := drain(t, s)
		if want := msgs("one,two,,four"); !equalMsgs(got, want) {
			t.Fatalf("responses = %q, want %q", got, want)
		}
		st := ended(t, s)
		wantStatus(t, st, codes.OK, "")
		wantMD(t, "header", s.Header, echoedHeader())
		wantMD(t, "trailer", st.Trailer, echoedTrailer())
	})
}

func TestClientStreamingNoRequests(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		s := ch.StartStream(spec(mClientStream), false, true, nil, false)
		s.CloseSend()
		got := drain(t, s)
		if want := msgs(""); !equalMsgs(got, want) {
			t.Fatalf("responses = %q, want %q", got, want)
		}
		wantStatus(t, ended(t, s), codes.OK, "")
	})
}

func TestClientStreamingFirstMessage(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		// first without closeAfter: more requests may follow.
		s := ch.StartStream(spec(mClientStream), false, true, BytesMsg([]byte("first")), false)
		sendAll(t, s, []byte("second"))
		s.CloseSend()
		if got, want := drain(t, s), msgs("first,second"); !equalMsgs(got, want) {
			t.Fatalf("responses = %q, want %q", got, want)
		}
		wantStatus(t, ended(t, s), codes.OK, "")
	})
}

func TestBidiPingPong(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		s := ch.StartStream(spec(mBidi, echoPairs...), true, true, nil, false)
		for i := 0; i < 20; i++ {
			m := bytes.Repeat([]byte{byte(i)}, i*100)
			sendAll(t, s, m)
			got, ok := recvChan(t, "echo", s.Responses())
			if !ok {
				t.Fatalf("stream ended early: %+v", s.Status)
			}
			wantBytes(t, "echo", got.Materialize(), m)
			if i == 0 {
				closed(t, "header", s.HeaderReady)
				wantMD(t, "header", s.Header, echoedHeader())
			}
		}
		s.CloseSend()
		if rest := drain(t, s); len(rest) != 0 {
			t.Fatalf("extra responses: %q", rest)
		}
		st := ended(t, s)
		wantStatus(t, st, codes.OK, "")
		wantMD(t, "trailer", st.Trailer, echoedTrailer())
	})
}

func TestBidiManyMessages(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		const n = 1000 // well past the queue depth in both directions
		s := ch.StartStream(spec(mBidi), true, true, nil, false)
		var got [][]byte
		readDone := run(func() { got = drain(t, s) })
		for i := 0; i < n; i++ {
			sendAll(t, s, []byte(itoa(i)))
		}
		s.CloseSend()
		closed(t, "reader", readDone)
		if len(got) != n {
			t.Fatalf("got %d responses, want %d", len(got), n)
		}
		for i, m := range got {
			if string(m) != itoa(i) {
				t.Fatalf("response %d = %q", i, m)
			}
		}
		wantStatus(t, ended(t, s), codes.OK, "")
	})
}

func TestBidiError(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		s := ch.StartStream(spec(mBidi, "x-code", "5", "x-details", "gone"), true, true, BytesMsg([]byte("m1")), false)
		got, _ := recvChan(t, "echo", s.Responses())
		wantBytes(t, "echo", got.Materialize(), []byte("m1"))
		s.CloseSend()
		drain(t, s)
		wantStatus(t, ended(t, s), codes.NotFound, "gone")
	})
}

func TestStreamHeaderWithoutExplicitSend(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		// No x- metadata: the server never sends headers explicitly; they
		// go out with the first message.
		s := ch.StartStream(spec(mServerStream), true, false, BytesMsg([]byte("a,b")), true)
		closed(t, "header", s.HeaderReady)
		if got := drain(t, s); !equalMsgs(got, msgs("a", "b")) {
			t.Fatalf("responses = %q", got)
		}
		wantStatus(t, ended(t, s), codes.OK, "")
	})
}

// TestUnimplementedOnGrpcGo: an unknown method on a plain grpc-go server.
func TestUnimplementedOnGrpcGo(t *testing.T) {
	checkLeaks(t)
	ch := dial(t, newGrpcGoServer(t, &grpcGoEcho))
	_, _, st := ch.Unary(spec("/test.Echo/Nope"), nil)
	wantCode(t, st, codes.Unimplemented)
	s := ch.StartStream(spec("/other.Service/Nope"), true, true, nil, false)
	drain(t, s)
	wantCode(t, ended(t, s), codes.Unimplemented)
	closed(t, "header", s.HeaderReady)
}

// ---- core server specifics ----

func TestServerCallInfo(t *testing.T) {
	checkLeaks(t)
	type seen struct {
		method, peer string
		md           metadata.MD
		deadline     time.Time
		hasDeadline  bool
		active       bool
	}
	got := make(chan seen, 2)
	_, target := newTestServer(t, func(c *ServerCall) {
		got <- seen{c.Method, c.Peer, c.Metadata, c.Deadline, c.HasDeadline, c.Active()}
		c.RecvOne()
		c.Finish(codes.OK, "", BytesMsg([]byte("ok")))
	})
	ch := dial(t, target, Option{Key: "grpc.primary_user_agent", Str: "agent-smith/1.0"})

	before := time.Now()
	_, _, st := ch.Unary(&CallSpec{Method: "/pkg.Svc/Method", Timeout: 30 * time.Second,
		Metadata: metadata.Pairs("k", "v", "k2-bin", "\x00\x01")}, BytesMsg([]byte("x")))
	wantStatus(t, st, codes.OK, "")
	s, _ := recvChan(t, "call info", got)
	if s.method != "/pkg.Svc/Method" {
		t.Errorf("Method = %q", s.method)
	}
	if !strings.HasPrefix(s.peer, "ipv4:127.0.0.1:") {
		t.Errorf("Peer = %q, want ipv4:127.0.0.1:port", s.peer)
	}
	wantMD(t, "server metadata", s.md, metadata.MD{"k": {"v"}, "k2-bin": {"\x00\x01"}})
	if ua := strings.Join(s.md.Get("user-agent"), " "); !strings.HasPrefix(ua, "agent-smith/1.0") {
		t.Errorf("user-agent = %q, want the primary_user_agent first", ua)
	}
	if !s.hasDeadline || s.deadline.Before(before) || s.deadline.After(before.Add(31*time.Second)) {
		t.Errorf("Deadline = %v (has %v), want about 30s after %v", s.deadline, s.hasDeadline, before)
	}
	if !s.active {
		t.Errorf("Active() = false on a fresh call")
	}

	// No timeout: no deadline.
	_, _, st = ch.Unary(&CallSpec{Method: "/pkg.Svc/Method"}, BytesMsg([]byte("x")))
	wantStatus(t, st, codes.OK, "")
	s, _ = recvChan(t, "call info", got)
	if s.hasDeadline {
		t.Errorf("HasDeadline on a call without timeout (deadline %v)", s.deadline)
	}
}

func TestServerCallLifecycle(t *testing.T) {
	checkLeaks(t)
	type result struct {
		recvEOF       error
		finish2       error
		offerAfter    [2]bool
		putAfter      [2]bool
		sendHdrAfter  error
		activeAfter   bool
		ctxDoneAfter  bool
		activeBefore  bool
		finishedFirst error
	}
	res := make(chan result, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		var r result
		_, r.recvEOF = c.RecvOne() // the client sends nothing
		r.activeBefore = c.Active()
		c.SetTrailer(metadata.Pairs("a", "1"))
		c.SetTrailer(metadata.Pairs("a", "2", "b-bin", "\xff"))
		r.finishedFirst = c.Finish(codes.OK, "", BytesMsg([]byte("last")))
		r.finish2 = c.Finish(codes.Internal, "second finish", nil)
		r.offerAfter[0], r.offerAfter[1] = c.Offer(BytesMsg([]byte("x")))
		r.putAfter[0], r.putAfter[1] = c.Put(BytesMsg([]byte("x")), nil)
		<-c.Context().Done() // the handler goroutine wrote the status
		r.ctxDoneAfter = true
		r.sendHdrAfter = c.SendHeader(metadata.Pairs("late", "1"))
		r.activeAfter = c.Active()
		res <- r
	})
	ch := dial(t, target)
	s := ch.StartStream(spec("/x/ClientStream"), false, true, nil, false)
	s.CloseSend()
	got := drain(t, s)
	st := ended(t, s)
	wantStatus(t, st, codes.OK, "")
	if !equalMsgs(got, msgs("last")) {
		t.Fatalf("responses = %q, want [last]", got)
	}
	wantMD(t, "trailer", st.Trailer, metadata.MD{"a": {"1", "2"}, "b-bin": {"\xff"}})

	r, _ := recvChan(t, "handler result", res)
	if !errors.Is(r.recvEOF, io.EOF) {
		t.Errorf("RecvOne with no request = %v, want io.EOF", r.recvEOF)
	}
	if !r.activeBefore {
		t.Errorf("Active() = false before Finish")
	}
	if r.finishedFirst != nil {
		t.Errorf("first Finish = %v", r.finishedFirst)
	}
	if !errors.Is(r.finish2, ErrCallOver) {
		t.Errorf("second Finish = %v, want ErrCallOver", r.finish2)
	}
	if r.offerAfter != [2]bool{false, false} || r.putAfter != [2]bool{false, false} {
		t.Errorf("Offer/Put after Finish = %v / %v, want false,false", r.offerAfter, r.putAfter)
	}
	if !errors.Is(r.sendHdrAfter, ErrCallOver) {
		t.Errorf("SendHeader after the end = %v, want ErrCallOver", r.sendHdrAfter)
	}
	if r.activeAfter {
		t.Errorf("Active() = true after the end")
	}
}

// TestFinishErrorDropsLast: a non-OK Finish sends neither its last message
// but still sends what was queued before, and the trailer.
func TestFinishErrorDropsLast(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, func(c *ServerCall) {
		c.RecvOne()
		if c.Method == "/x/Unary" {
			c.Finish(codes.PermissionDenied, "denied", BytesMsg([]byte("never sent")))
			return
		}
		c.Offer(BytesMsg([]byte("queued-1")))
		put(c, []byte("queued-2"))
		c.SetTrailer(metadata.Pairs("why-bin", "\x00because"))
		c.Finish(codes.PermissionDenied, "denied", BytesMsg([]byte("never sent")))
	})
	ch := dial(t, target)
	s := ch.StartStream(spec("/x/ServerStream"), true, false, BytesMsg([]byte("go")), true)
	got := drain(t, s)
	if !equalMsgs(got, msgs("queued-1", "queued-2")) {
		t.Fatalf("responses = %q, want the two queued ones only", got)
	}
	st := ended(t, s)
	wantStatus(t, st, codes.PermissionDenied, "denied")
	wantMD(t, "trailer", st.Trailer, metadata.MD{"why-bin": {"\x00because"}})

	resp, _, st := ch.Unary(spec("/x/Unary"), BytesMsg([]byte("go")))
	wantStatus(t, st, codes.PermissionDenied, "denied")
	if resp != nil {
		t.Fatalf("unary response with an error status: %q", resp)
	}
}

// TestSendHeaderOrdering: headers sent explicitly arrive before any
// response; once they went out, another SendHeader fails.
func TestSendHeaderOrdering(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	gotM := make(chan struct{})
	second := make(chan error, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		c.RecvOne()
		if err := c.SendHeader(metadata.Pairs("h", "1", "h-bin", binValue)); err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		<-release
		put(c, []byte("m"))
		<-gotM
		second <- c.SendHeader(metadata.Pairs("h", "2"))
		c.Finish(codes.OK, "", nil)
	})
	ch := dial(t, target)
	s := ch.StartStream(spec("/x/S"), true, false, BytesMsg([]byte("go")), true)
	closed(t, "header before any message", s.HeaderReady)
	wantMD(t, "header", s.Header, metadata.MD{"h": {"1"}, "h-bin": {binValue}})
	close(release)
	m, _ := recvChan(t, "response", s.Responses())
	wantBytes(t, "response", m.Materialize(), []byte("m"))
	close(gotM)
	if rest := drain(t, s); len(rest) != 0 {
		t.Fatalf("extra responses %q", rest)
	}
	wantStatus(t, ended(t, s), codes.OK, "")
	if err, _ := recvChan(t, "second SendHeader", second); err == nil {
		t.Errorf("second SendHeader succeeded")
	}
}

// TestConcurrentCalls: many calls of every shape at once on one channel.
func TestConcurrentCalls(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		var wg sync.WaitGroup
		errs := make(chan string, 100)
		for i := 0; i < 20; i++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				resp, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte(itoa(i))))
				if !st.OK() || string(resp.Materialize()) != itoa(i) {
					errs <- "unary: " + st.Details + " " + string(resp.Materialize())
				}
			}()
			go func() {
				defer wg.Done()
				s := ch.StartStream(spec(mBidi), true, true, nil, false)
				for j := 0; j < 10; j++ {
					if q, _ := s.Put(BytesMsg([]byte(itoa(j))), timeoutChan(longWait)); !q {
						errs <- "put failed"
						s.Cancel()
						return
					}
				}
				s.CloseSend()
				n := 0
				for range s.Responses() {
					n++
				}
				<-s.Ended()
				if n != 10 || !s.Status.OK() {
					errs <- "bidi: " + itoa(n) + " " + s.Status.Details
				}
			}()
		}
		if !waitGroup(&wg) {
			t.Fatal("calls did not finish")
		}
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}

func waitGroup(wg *sync.WaitGroup) bool {
	select {
	case <-run(wg.Wait):
		return true
	case <-time.After(longWait):
		return false
	}
}

// TestTrailersOnly: a call failed before any header or message has an
// empty initial metadata and its trailer on both call kinds.
func TestTrailersOnly(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, func(c *ServerCall) {
		c.SetTrailer(metadata.Pairs("t", "1", "t-bin", "\xfe"))
		c.Finish(codes.Aborted, "early", nil)
	})
	ch := dial(t, target)
	resp, header, st := ch.Unary(spec("/x/U"), nil)
	wantStatus(t, st, codes.Aborted, "early")
	wantMD(t, "trailer", st.Trailer, metadata.MD{"t": {"1"}, "t-bin": {"\xfe"}})
	if resp != nil || len(header.Get("t")) != 0 {
		t.Fatalf("response %q, header %v", resp, header)
	}
	s := ch.StartStream(spec("/x/S"), true, true, nil, false)
	drain(t, s)
	st = ended(t, s)
	wantStatus(t, st, codes.Aborted, "early")
	wantMD(t, "trailer", st.Trailer, metadata.MD{"t": {"1"}, "t-bin": {"\xfe"}})
	closed(t, "header", s.HeaderReady)
	if len(s.Header.Get("t")) != 0 {
		t.Fatalf("header %v", s.Header)
	}
}

// TestServerFinishesEarly: a server that answers a client stream before
// the client is done ends the call; the client's further requests are
// refused and its status is the server's.
func TestServerFinishesEarly(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, func(c *ServerCall) {
		m, _ := c.RecvOne()
		c.Finish(codes.OK, "", BytesMsg(append([]byte("early:"), m.Materialize()...)))
	})
	ch := dial(t, target)
	s := ch.StartStream(spec("/x/C"), false, true, BytesMsg([]byte("one")), false)
	got := drain(t, s)
	wantStatus(t, ended(t, s), codes.OK, "")
	if !equalMsgs(got, msgs("early:one")) {
		t.Fatalf("responses %q", got)
	}
	if q, alive := s.Offer(BytesMsg([]byte("two"))); q || alive {
		t.Fatalf("Offer after the end = %v, %v", q, alive)
	}
	if q, alive := s.Put(BytesMsg([]byte("two")), nil); q || alive {
		t.Fatalf("Put after the end = %v, %v", q, alive)
	}
	s.CloseSend()
}
