//go:build grpcgo_patched

package core

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// An event loop's thread writes a stream message itself only when that
// cannot wait (SendNowNoWait: nothing queued before it, grpc-go's stream
// ready to take it at once); otherwise it queues it (Offer, Put) as
// before. These pin what must hold: the messages written there and those
// queued keep their order both ways, a response so written goes out to
// the socket on that thread (the server's inline counter), and a peer
// that stops reading never makes SendNowNoWait wait: it says "not sent"
// instead, once the stream's write quota is spent.

// sendNoWaitOrQueue writes m with SendNowNoWait, or queues it if that
// declined; it reports whether m went out on the calling goroutine.
func sendNoWaitOrQueue(t *testing.T, noWait func(Msg) (bool, bool), put func(Msg) (bool, bool), m []byte) bool {
	t.Helper()
	start := time.Now()
	sent, alive := noWait(BytesMsg(m))
	if d := time.Since(start); d > longWait/2 {
		t.Fatalf("SendNowNoWait took %v", d)
	}
	if sent {
		return true
	}
	if !alive {
		t.Fatalf("the stream died sending %q", trunc(m))
	}
	if q, alive := put(BytesMsg(m)); !q {
		t.Fatalf("Put(%q) = queued false, alive %v", trunc(m), alive)
	}
	return false
}

func TestSendNowNoWaitKeepsOrderBothWays(t *testing.T) {
	serverInline := make(chan int, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		inline := 0
		for m := range c.Requests() {
			c.AioRead() // as hotAioCallRecv does
			b := m.Materialize()
			m.Free()
			if bytes.HasPrefix(b, []byte("q")) { // this one queued
				if !put(c, b) {
					t.Error("server Put failed")
				}
				continue
			}
			if sendNoWaitOrQueue(t, c.SendNowNoWait, func(m Msg) (bool, bool) {
				return c.Put(m, timeoutChan(longWait))
			}, b) {
				inline++
			}
		}
		serverInline <- inline
		c.Finish(codes.OK, "", nil)
	})
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	waitFor(t, "the stream to open", s.CanSendNow)
	before, _ := grpc.GrpcgoServerInline()
	var want [][]byte
	clientInline := 0
	send := func(m []byte, queue bool) {
		want = append(want, m)
		if queue {
			sendAll(t, s, m)
			return
		}
		if sendNoWaitOrQueue(t, s.SendNowNoWait, func(m Msg) (bool, bool) {
			return s.Put(m, timeoutChan(longWait))
		}, m) {
			clientInline++
		}
	}
	var got [][]byte
	recv := func() {
		m, ok := recvChan(t, "a response", s.Responses())
		if !ok {
			t.Fatalf("the stream ended after %d responses: %v", len(got), s.Status)
		}
		got = append(got, m.Materialize())
		m.Free()
		s.TookResponses()
		s.AioRead() // as hotAioStreamRecv does
	}
	for i := 0; i < 400; i++ {
		switch {
		case i%100 < 40: // ping-pong: each written alone, on idle writers
			send([]byte(fmt.Sprintf("p%d", i)), false)
			recv()
		case i%100 < 80: // a burst, written and queued by turns both ways
			for j := 0; j < 8; j++ {
				prefix := "b"
				if j%3 == 1 {
					prefix = "q"
				}
				send([]byte(fmt.Sprintf("%s%d.%d", prefix, i, j)), j%4 == 2)
			}
			for j := 0; j < 8; j++ {
				recv()
			}
		default: // past the inline bound: grpc-go's writer writes them
			send(append([]byte(fmt.Sprintf("L%d:", i)), bytes.Repeat([]byte{'x'}, 8<<10)...), false)
			recv()
		}
	}
	s.CloseSend()
	if rest := drain(t, s); len(rest) != 0 {
		t.Fatalf("%d responses too many", len(rest))
	}
	wantCode(t, ended(t, s), codes.OK)
	if !equalMsgs(got, want) {
		for i := range got {
			if i >= len(want) || !bytes.Equal(got[i], want[i]) {
				t.Fatalf("response %d is %q, want %q (of %d/%d)", i, trunc(got[i]), trunc(want[i]), len(got), len(want))
			}
		}
		t.Fatalf("got %d responses, want %d", len(got), len(want))
	}
	srv, _ := recvChan(t, "the handler's count", serverInline)
	after, _ := grpc.GrpcgoServerInline()
	t.Logf("written by the sender: client %d, server %d of %d; server uncorks inline +%d", clientInline, srv, len(want), after-before)
	if clientInline == 0 || srv == 0 {
		t.Fatal("SendNowNoWait never wrote")
	}
	if after == before {
		t.Fatal("no response went out to the socket on its sender's goroutine")
	}
}

// A client that stops reading: the handler's SendNowNoWait writes until
// the stream's quota is spent, then declines at once (never waits); the
// call is still alive then, and its end frees the handler.
func TestServerSendNowNoWaitPeerStopsReading(t *testing.T) {
	result := make(chan [2]int, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		c.RecvOne()
		sent, declined := 0, 0
		deadline := time.Now().Add(longWait)
		for declined < 50 && time.Now().Before(deadline) {
			c.AioRead() // as if each response answered a request
			ok, alive := c.SendNowNoWait(BytesMsg(bytes.Repeat([]byte{'p'}, 1000)))
			if !alive {
				break
			}
			if ok {
				sent++
				declined = 0
			} else {
				declined++
				time.Sleep(time.Millisecond)
			}
		}
		result <- [2]int{sent, declined}
		<-c.Context().Done()
	})
	c := dialRaw(t, target, 4096)
	c.call("/x/pour", 1)
	r, _ := recvChan(t, "SendNowNoWait to decline with the peer not reading", result)
	if r[1] < 50 || r[0] < 64 {
		t.Fatalf("sent %d, then declined %d times in a row", r[0], r[1])
	}
	t.Logf("sent %d responses on the handler's goroutine before the quota ran out", r[0])
	c.conn.Close()
}

// A server that stops reading its requests: the client's SendNowNoWait
// writes until the stream's quota is spent (or the server's window),
// then declines at once; a cancel ends the call.
func TestStreamSendNowNoWaitPeerStopsReading(t *testing.T) {
	_, target := newTestServer(t, func(c *ServerCall) {
		c.SendHeader(nil)
		<-c.Context().Done()
	})
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	// Committed to its attempt once the headers came (no retry can
	// replay it): SendNowNoWait writes from then on.
	closed(t, "the response headers", s.HeaderReady)
	sent, declined := 0, 0
	deadline := time.Now().Add(longWait)
	for declined < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("SendNowNoWait still writing after %d", sent)
		}
		s.AioRead() // as if each request answered a response
		ok, alive := s.SendNowNoWait(BytesMsg(bytes.Repeat([]byte{'r'}, 1000)))
		if !alive {
			t.Fatalf("the stream died after %d: %v", sent, s.Status)
		}
		if ok {
			sent++
			declined = 0
		} else {
			declined++
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("sent %d requests on the caller before the quota ran out", sent)
	if sent < 64 {
		t.Fatalf("SendNowNoWait wrote only %d requests", sent)
	}
	s.Cancel()
	wantCode(t, ended(t, s), codes.Canceled)
}

// Back-to-back requests (client streaming): only the first since Python
// read is written on the caller; the rest decline, to be queued for the
// sender goroutine, which batches them. A read makes the next one written
// on the caller again.
func TestStreamSendNowNoWaitOnlyAnswers(t *testing.T) {
	_, target := newTestServer(t, func(c *ServerCall) {
		c.SendHeader(nil)
		for m := range c.Requests() {
			m.Free()
		}
		c.Finish(codes.OK, "", nil)
	})
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	closed(t, "the response headers", s.HeaderReady)
	try := func() bool {
		deadline := time.Now().Add(longWait)
		for {
			ok, alive := s.SendNowNoWait(BytesMsg([]byte("x")))
			if !alive {
				t.Fatalf("the stream died: %v", s.Status)
			}
			if ok || time.Now().After(deadline) {
				return ok
			}
			if !s.aioWrote.Load() {
				time.Sleep(time.Millisecond) // the writer was busy: again
				continue
			}
			return false
		}
	}
	if !try() {
		t.Fatal("the first request was not written on the caller")
	}
	for i := 0; i < 5; i++ {
		if ok, _ := s.SendNowNoWait(BytesMsg([]byte("y"))); ok {
			t.Fatalf("back-to-back request %d written on the caller", i)
		}
	}
	s.AioRead()
	if !try() {
		t.Fatal("after a read, the next request was not written on the caller")
	}
	s.CloseSend()
	wantCode(t, ended(t, s), codes.OK)
}
