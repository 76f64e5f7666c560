//go:build grpcgo_patched

package core

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// onCaller is the binding's around without a GIL: the start runs here.
func onCaller(f func()) { f() }

// startOn starts a unary call alone on ch (the fast path: on the caller,
// frames written inline) and waits for its notification.
func startOn(t *testing.T, ch *Channel, s *CallSpec, req Msg) *UnaryCall {
	t.Helper()
	notified := make(chan *UnaryCall, 1)
	c := ch.StartUnaryOn(s, req, func(c *UnaryCall) { notified <- c }, onCaller)
	select {
	case n := <-notified:
		if n != c {
			t.Fatalf("notified with another call")
		}
	case <-time.After(longWait):
		t.Fatalf("the call never notified")
	}
	closed(t, "unary done", c.Done)
	return c
}

func TestStartUnaryOnCaller(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		if !ch.fastUnary {
			t.Skip("fast unary calls are off (GRPCGO_FAST_UNARY=0)")
		}
		warm, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("warm")))
		wantStatus(t, st, codes.OK, "")
		warm.Free()
		for i := 0; i < 50; i++ {
			c := startOn(t, ch, spec(mUnary, echoPairs...), BytesMsg([]byte{byte(i), 0xff}))
			wantStatus(t, c.Status, codes.OK, "")
			wantBytes(t, "response", c.Response.Materialize(), []byte{byte(i), 0xff})
			wantMD(t, "header", c.Header, echoedHeader())
			wantMD(t, "trailer", c.Status.Trailer, echoedTrailer())
			c.Response.Free()
		}
		c := startOn(t, ch, spec(mUnary, "x-code", "5", "x-details", "gone"), BytesMsg([]byte("x")))
		wantStatus(t, c.Status, codes.NotFound, "gone")
		if c.Response != nil {
			t.Fatalf("failed call has a response")
		}
		// Larger than the 4 KiB written inline: under grpcgoReadAt (half
		// the 4 MiB stream window), taken where the stream ends; and over
		// it, read by a goroutine of its own as it arrives.
		for _, size := range []int{300 << 10, 1 << 20, 3 << 20} {
			big := make([]byte, size)
			for i := range big {
				big[i] = byte(i * 7)
			}
			before := fastReceivers.Load()
			c = startOn(t, ch, spec(mUnary), BytesMsg(big))
			wantStatus(t, c.Status, codes.OK, "")
			wantBytes(t, "big response", c.Response.Materialize(), big)
			c.Response.Free()
			want := int64(0)
			if size > 2<<20 {
				want = 1 // over half the 4 MiB stream window
			}
			if got := fastReceivers.Load() - before; got != want {
				t.Fatalf("%d bytes: %d goroutines took the response, want %d", size, got, want)
			}
		}
	})
}

func TestStartUnaryOnCallerDeadlineAndCancel(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	defer close(release)
	_, target := newTestServer(t, func(c *ServerCall) {
		if c.Method == "/hold/Hold" {
			select {
			case <-c.Context().Done():
			case <-release:
			}
			c.Finish(codes.OK, "", nil)
			return
		}
		coreEcho(c)
	})
	ch := dial(t, target)
	_, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("warm")))
	wantStatus(t, st, codes.OK, "")

	s := spec("/hold/Hold")
	s.Timeout = 50 * time.Millisecond
	c := startOn(t, ch, s, BytesMsg([]byte("x")))
	wantStatus(t, c.Status, codes.DeadlineExceeded, "Deadline Exceeded")

	notified := make(chan *UnaryCall, 1)
	c = ch.StartUnaryOn(spec("/hold/Hold"), BytesMsg([]byte("x")), func(c *UnaryCall) { notified <- c }, onCaller)
	time.Sleep(20 * time.Millisecond)
	c.Cancel()
	select {
	case <-notified:
	case <-time.After(longWait):
		t.Fatalf("the cancelled call never notified")
	}
	if c.Status.Code != codes.Canceled {
		t.Fatalf("status %v, want CANCELLED", c.Status)
	}
}

func TestStartUnaryOnCallerConcurrent(t *testing.T) {
	// Calls from several goroutines at once: one alone starts on its
	// caller, the others on workers, all on one connection.
	forBackends(t, func(t *testing.T, ch *Channel) {
		_, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("warm")))
		wantStatus(t, st, codes.OK, "")
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					done := make(chan struct{})
					c := ch.StartUnaryOn(spec(mUnary), BytesMsg([]byte{byte(g), byte(i)}), func(*UnaryCall) { close(done) }, onCaller)
					<-done
					if c.Status.Code != codes.OK || string(c.Response.Materialize()) != string([]byte{byte(g), byte(i)}) {
						t.Errorf("call %d/%d: %v %v", g, i, c.Status, c.Response.Materialize())
					}
					c.Response.Free()
				}
			}()
		}
		wg.Wait()
	})
}

func TestStartUnaryOnCallerBesideAStream(t *testing.T) {
	// A bidi stream's frames, queued for loopy, and unary calls' frames,
	// written by their callers in loopy's place, share one connection:
	// every message of both arrives whole and in order.
	forBackends(t, func(t *testing.T, ch *Channel) {
		_, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("warm")))
		wantStatus(t, st, codes.OK, "")
		const n = 1000
		s := ch.StartStream(spec(mBidi), true, true, nil, false)
		var got [][]byte
		readDone := run(func() { got = drain(t, s) })
		sent := run(func() {
			for i := 0; i < n; i++ {
				sendAll(t, s, bytes.Repeat([]byte{byte(i)}, 1+i%3000))
			}
			s.CloseSend()
		})
		for i := 0; i < 300; i++ {
			req := bytes.Repeat([]byte{byte(i), 0x5a}, 1+i%2500)
			c := startOn(t, ch, spec(mUnary), BytesMsg(req))
			wantStatus(t, c.Status, codes.OK, "")
			wantBytes(t, "response", c.Response.Materialize(), req)
			c.Response.Free()
		}
		closed(t, "sender", sent)
		closed(t, "reader", readDone)
		if len(got) != n {
			t.Fatalf("got %d responses, want %d", len(got), n)
		}
		for i, m := range got {
			wantBytes(t, "stream response", m, bytes.Repeat([]byte{byte(i)}, 1+i%3000))
		}
		wantStatus(t, ended(t, s), codes.OK, "")
	})
}

// A call alone on its channel wakes its caller before the call's
// bookkeeping (grpc-go's end of call, the context's cancel) runs,
// which then runs while the caller goes on; GRPCGO_UNARY_WAKE_FIRST=0 keeps
// it first. The response, header and trailer are the same either way.
func TestStartUnaryOnCallerWakesFirst(t *testing.T) {
	for _, b := range backends {
		for _, first := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/first=%v", b.name, first), func(t *testing.T) {
				if !fastUnaryOn {
					t.Skip("fast unary calls are off (GRPCGO_FAST_UNARY=0)")
				}
				if !first {
					t.Setenv("GRPCGO_UNARY_WAKE_FIRST", "0")
				}
				checkLeaks(t)
				ch := dial(t, b.start(t))
				warm, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("warm")))
				wantStatus(t, st, codes.OK, "")
				warm.Free()
				early := 0
				for i := 0; i < 20; i++ {
					notified := make(chan bool, 1)
					req := []byte{byte(i), 0xfe}
					c := ch.StartUnaryOn(spec(mUnary, echoPairs...), BytesMsg(req), func(c *UnaryCall) {
						select {
						case <-c.Done:
						default:
							t.Error("notified before Done closed")
						}
						notified <- !c.settled.Load() // not settled yet: woken first
					}, onCaller)
					if wasEarly, _ := recvChan(t, "notification", notified); wasEarly {
						early++
					}
					closed(t, "unary done", c.Done)
					wantStatus(t, c.Status, codes.OK, "")
					wantBytes(t, "response", c.Response.Materialize(), req)
					wantMD(t, "header", c.Header, echoedHeader())
					wantMD(t, "trailer", c.Status.Trailer, echoedTrailer())
					c.Response.Free()
				}
				if want := map[bool]int{true: 20, false: 0}[first]; early != want {
					t.Fatalf("%d of 20 callers woken before the call's end, want %d", early, want)
				}
			})
		}
	}
}
