package core

import (
	"testing"

	"google.golang.org/grpc/codes"
)

// TestCounters: every live object is counted while it lives, and the
// counts go back to zero once channels, servers and calls are gone.
func TestCounters(t *testing.T) {
	countersZero(t) // nothing left over from earlier tests
	h := newHold()
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	done := dispatch(srv, h.serve)
	defer func() { srv.Stop(0); <-done }()
	ch, err := Dial("127.0.0.1:"+itoa(port), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	ch2, err := Dial("127.0.0.1:"+itoa(port), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := func(c Counters) {
		t.Helper()
		waitFor(t, "counters "+fmtCounters(c), func() bool { return ReadCounters() == c })
	}
	want(Counters{Channels: 2, Servers: 1})
	ch2.Close()
	ch2.Close()
	want(Counters{Channels: 1, Servers: 1})

	u := ch.StartUnary(spec("/x/U"), nil)
	cu, _ := recvChan(t, "unary", h.calls)
	s := ch.StartStream(spec("/x/S"), true, true, nil, false)
	cs, _ := recvChan(t, "stream", h.calls)
	blocking := run(func() { ch.Unary(spec("/x/B"), nil) })
	cb, _ := recvChan(t, "blocking unary", h.calls)
	want(Counters{Channels: 1, Servers: 1, ClientCalls: 3, ServerCalls: 3})

	release(cu)
	closed(t, "unary", u.Done)
	want(Counters{Channels: 1, Servers: 1, ClientCalls: 2, ServerCalls: 2})
	s.Cancel()
	ended(t, s)
	want(Counters{Channels: 1, Servers: 1, ClientCalls: 1, ServerCalls: 1})
	cb.Finish(codes.Aborted, "x", nil)
	closed(t, "blocking unary", blocking)
	want(Counters{Channels: 1, Servers: 1})
	_ = cs

	// Calls that fail before reaching a server are counted and uncounted
	// too.
	dead := dial(t, deadAddress(t))
	dead.Unary(spec("/x/D"), nil)
	ds := dead.StartStream(spec("/x/D"), true, true, nil, false)
	ended(t, ds)
	want(Counters{Channels: 2, Servers: 1})
	dead.Close()

	ch.Close()
	srv.Stop(0)
	want(Counters{})
	// A server that never started counts until stopped.
	idle := NewServer(nil, 0)
	want(Counters{Servers: 1})
	idle.Stop(0)
	want(Counters{})
}

func fmtCounters(c Counters) string {
	return "channels=" + itoa(int(c.Channels)) + " servers=" + itoa(int(c.Servers)) +
		" client calls=" + itoa(int(c.ClientCalls)) + " server calls=" + itoa(int(c.ServerCalls))
}

// TestStreamThatFailedToOpenHasItsStatus: when Opened closes on a stream
// that could not open, its Status is already set (-race sees the order).
func TestStreamThatFailedToOpenHasItsStatus(t *testing.T) {
	checkLeaks(t)
	ch := dial(t, "127.0.0.1:1")
	for i := 0; i < 20; i++ {
		s := ch.StartStream(spec("/x/S"), true, true, nil, false)
		<-s.Opened()
		if s.Open() {
			t.Fatal("a stream to a closed port opened")
		}
		if s.Status == nil || s.Status.Code != codes.Unavailable {
			t.Fatalf("stream %d: Status %v at Opened, want UNAVAILABLE", i, s.Status)
		}
		<-s.Ended()
	}
}
