package core

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// What grpc.aio builds on, raced under -race: a watch (OnDone) set while
// the handler finishes the call and the client cancels it, and a receiver
// whose waiter is set while its reading goroutine queues messages.

// TestOnDoneRunsExactlyOnceWhateverComesFirst: OnDone, Finish and the
// client's cancellation race; the watch runs exactly once for every call,
// died or not, and never again.
func TestOnDoneRunsExactlyOnceWhateverComesFirst(t *testing.T) {
	checkLeaks(t)
	const calls = 200
	var bad, handled, watched atomic.Int32
	_, target := newTestServer(t, func(c *ServerCall) {
		handled.Add(1)
		var runs atomic.Int32
		start := make(chan struct{})
		var both sync.WaitGroup
		both.Add(2)
		go func() {
			defer both.Done()
			<-start
			c.OnDone(func(bool) {
				if runs.Add(1) == 1 {
					watched.Add(1)
				} else {
					bad.Add(1)
				}
			})
		}()
		go func() {
			defer both.Done()
			<-start
			c.Finish(codes.OK, "", nil)
		}()
		close(start)
		both.Wait()
	})
	ch := dial(t, target)
	var started []*UnaryCall
	for i := 0; i < calls; i++ {
		c := ch.StartUnary(spec(mUnary), BytesMsg([]byte{byte(i)}))
		if i%2 == 0 {
			time.Sleep(time.Duration(i%7) * 10 * time.Microsecond)
			c.Cancel()
		}
		started = append(started, c)
	}
	for _, c := range started {
		recvChan(t, "the call's end", c.Done)
	}
	// A call cancelled before it was handed over never reaches the handler.
	waitFor(t, "a watch for every handled call", func() bool {
		return handled.Load() > 0 && watched.Load() == handled.Load()
	})
	time.Sleep(50 * time.Millisecond) // a second run would come now
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d watches ran more than once", n)
	}
	waitFor(t, "a watch for every handled call", func() bool { return watched.Load() == handled.Load() })
}

// chanStream is a msgStream whose RecvMsg returns what arrives on in, then
// io.EOF-like end when in closes.
type chanStream struct{ in chan Msg }

func (s chanStream) SendMsg(any) error { return nil }

func (s chanStream) RecvMsg(m any) error {
	v, ok := <-s.in
	if !ok {
		return errAbandoned
	}
	*(m.(*Msg)) = v
	return nil
}

// TestReceiverWaiterNeverMissesAMessage does what aio_stream_recv and
// aio_call_recv do, against a reading goroutine queueing messages at the
// same time: take what is queued; if nothing, set a waiter and look again;
// if still nothing, wait for the waiter. Every message arrives and no wait
// is left hanging (a lost wake-up fails after longWait).
func TestReceiverWaiterNeverMissesAMessage(t *testing.T) {
	const messages = 20000
	r := newReceiver()
	in := make(chan Msg)
	go r.run(chanStream{in}, nil, nil)
	go func() {
		for i := 0; i < messages; i++ {
			in <- BytesMsg([]byte{byte(i)})
			if i%64 == 0 {
				time.Sleep(time.Microsecond)
			}
		}
		close(in)
	}()
	got := 0
	for {
		select {
		case _, ok := <-r.q:
			if !ok {
				if got != messages {
					t.Fatalf("got %d messages, want %d", got, messages)
				}
				return
			}
			got++
			continue
		default:
		}
		woken := make(chan struct{})
		w := func() { close(woken) }
		r.setWaiter(&w)
		select {
		case _, ok := <-r.q:
			r.clearWaiter(&w)
			if !ok {
				if got != messages {
					t.Fatalf("got %d messages, want %d", got, messages)
				}
				return
			}
			got++
			continue
		default:
		}
		recvChan(t, "the waiter (a lost wake-up)", woken)
	}
}
