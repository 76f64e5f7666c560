package core

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// recvDirectOrQueued is the sync binding's read (pyext hotCallRecv): the
// handler's goroutine reads the request itself when RecvDirect may, else
// from the read-ahead queue. direct tells which; ok false at the end.
func recvDirectOrQueued(c *ServerCall) (b []byte, direct, ok bool) {
	if c.MayRecvDirect() {
		if m, err, took := c.RecvDirect(); took {
			if err != nil {
				return nil, true, false
			}
			b = m.Materialize()
			m.Free()
			return b, true, true
		}
	}
	m, more := <-c.Requests()
	if !more {
		return nil, false, false
	}
	c.TookRequests()
	b = m.Materialize()
	m.Free()
	return b, false, true
}

// A sync handler's requests are read on its own goroutine while it
// answers each before reading the next (ping-pong), and through the
// read-ahead queue, for good, from the first time it reads twice without
// answering between (a burst): every request arrives once and in order,
// the half-close ends both ways, and reads after the end see the end.
func TestServerRecvDirectThenQueued(t *testing.T) {
	type counts struct{ direct, queued, afterEnd int }
	result := make(chan counts, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		var n counts
		pending := 0
		for {
			b, direct, ok := recvDirectOrQueued(c)
			if !ok {
				break
			}
			if direct {
				n.direct++
			} else {
				n.queued++
			}
			// Bursts ("b...") are answered once the burst is in: the
			// handler reads twice in a row.
			if bytes.HasPrefix(b, []byte("b")) {
				pending++
				if !bytes.HasSuffix(b, []byte(".last")) {
					continue
				}
				put(c, []byte(fmt.Sprintf("burst of %d", pending)))
				pending = 0
				continue
			}
			put(c, b)
		}
		for i := 0; i < 3; i++ {
			if _, _, ok := recvDirectOrQueued(c); !ok {
				n.afterEnd++
			}
		}
		result <- n
		c.Finish(codes.OK, "", nil)
	})
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	expect := func(want string) {
		t.Helper()
		m, ok := recvChan(t, "a response", s.Responses())
		if !ok {
			t.Fatalf("the stream ended: %v", s.Status)
		}
		if got := string(m.Materialize()); got != want {
			t.Fatalf("response %q, want %q", got, want)
		}
		m.Free()
	}
	for i := 0; i < 50; i++ {
		sendAll(t, s, []byte(fmt.Sprintf("p%d", i)))
		expect(fmt.Sprintf("p%d", i))
	}
	for i := 0; i < 20; i++ {
		sendAll(t, s, []byte(fmt.Sprintf("b%d", i)))
	}
	sendAll(t, s, []byte("b.last"))
	expect("burst of 21")
	for i := 0; i < 20; i++ {
		sendAll(t, s, []byte(fmt.Sprintf("q%d", i)))
		expect(fmt.Sprintf("q%d", i))
	}
	s.CloseSend()
	if rest := drain(t, s); len(rest) != 0 {
		t.Fatalf("%d responses too many", len(rest))
	}
	wantCode(t, ended(t, s), codes.OK)
	n, _ := recvChan(t, "the handler's counts", result)
	t.Logf("read directly %d, from the queue %d", n.direct, n.queued)
	if n.direct < 50 {
		t.Fatalf("only %d of the 50 ping-pong requests read by the handler itself", n.direct)
	}
	if n.direct+n.queued != 50+21+20 || n.queued < 20 {
		t.Fatalf("read directly %d, from the queue %d", n.direct, n.queued)
	}
	if n.afterEnd != 3 {
		t.Fatalf("reads after the end: %d of 3 saw it", n.afterEnd)
	}
}

// A handler waiting in RecvDirect is released by the client's cancel.
func TestServerRecvDirectCancelled(t *testing.T) {
	waiting := make(chan struct{})
	released := make(chan error, 1)
	_, target := newTestServer(t, func(c *ServerCall) {
		b, direct, ok := recvDirectOrQueued(c)
		if !ok || !direct || string(b) != "one" {
			released <- fmt.Errorf("first read: %q direct %v ok %v", b, direct, ok)
			return
		}
		put(c, b)
		close(waiting)
		_, direct, ok = recvDirectOrQueued(c)
		if ok || !direct {
			released <- fmt.Errorf("after the cancel: direct %v ok %v", direct, ok)
			return
		}
		released <- nil
	})
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	sendAll(t, s, []byte("one"))
	recvChan(t, "the response", s.Responses())
	closed(t, "the handler to wait again", waiting)
	time.Sleep(20 * time.Millisecond) // in RecvMsg by now, most likely
	s.Cancel()
	if err, _ := recvChan(t, "the handler to be released", released); err != nil {
		t.Fatal(err)
	}
}
