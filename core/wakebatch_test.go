//go:build grpcgo_patched

package core

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// A receiver wakes its reader (the waiter an event loop arms) once the
// messages that arrived together are queued, up to wakeBatch, not on the
// first of them: a batch the peer sent at once (one DATA frame) costs the
// reader one wake-up, not one per message. A message that came alone
// wakes it at once (a ping-pong's latency). The waiter runs on the
// receiving goroutine right after a message is queued, so what it sees
// queued is exact.
func TestReceiverWakesOncePerBatch(t *testing.T) {
	sendBatch := make(chan int)
	_, target := newTestServer(t, func(c *ServerCall) {
		for n := range sendBatch {
			ms := make([]Msg, n)
			for i := range ms {
				ms[i] = BytesMsg([]byte(fmt.Sprintf("m%d", i)))
			}
			// One write: one DATA frame holding the n messages (the first
			// call starts the call's sender, which takes a moment).
			sent, alive := c.SendNowMany(ms)
			for deadline := time.Now().Add(longWait); sent == 0 && alive && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
				sent, alive = c.SendNowMany(ms)
			}
			if sent != n || !alive {
				t.Errorf("SendNowMany(%d) = %d, %v", n, sent, alive)
			}
		}
		c.Finish(codes.OK, "", nil)
	})
	ch := dial(t, target)
	s := ch.StartStream(spec(mServerStream), true, false, BytesMsg([]byte("x")), true)

	// One batch of n messages; the waiter reports how many were queued
	// when it ran. Everything is then taken, as a reader would.
	batch := func(n int) int {
		t.Helper()
		seen := make(chan int, 1)
		w := func() { seen <- len(s.Responses()) }
		s.SetResponseWaiter(&w)
		sendBatch <- n
		queued, _ := recvChan(t, "the waiter", seen)
		for got := 0; got < n; got++ {
			m, ok := recvChan(t, "a response", s.Responses())
			if !ok {
				t.Fatalf("the stream ended after %d of %d: %v", got, n, s.Status)
			}
			if want := fmt.Sprintf("m%d", got); string(m.Materialize()) != want {
				t.Fatalf("response %d is %q, want %q", got, m.Materialize(), want)
			}
			m.Free()
			s.TookResponses()
		}
		return queued
	}

	if q := batch(1); q != 1 {
		t.Errorf("a lone message: the waiter saw %d queued, want 1", q)
	}
	if q := batch(10); q != 10 {
		t.Errorf("a batch of 10: the waiter saw %d queued, want 10 (woken on the first it was 1)", q)
	}
	if q := batch(200); q != wakeBatch {
		t.Errorf("a batch of 200: the waiter saw %d queued, want %d", q, wakeBatch)
	}
	if q := batch(1); q != 1 {
		t.Errorf("a lone message after batches: the waiter saw %d queued, want 1", q)
	}
	close(sendBatch)
	closed(t, "the end of the stream", s.Responses())
}
