package core

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// holdHandler finishes "/x/Quick" at once; every other call is reported on
// calls and held until released (finished OK) or dead.
type holdHandler struct {
	calls chan *ServerCall
	ended chan error // per held call: its context error once it is over
}

func newHold() *holdHandler {
	return &holdHandler{calls: make(chan *ServerCall, 16), ended: make(chan error, 16)}
}

func (h *holdHandler) serve(c *ServerCall) {
	if c.Method == "/x/Quick" {
		c.RecvOne()
		c.Finish(codes.OK, "", BytesMsg([]byte("quick")))
		return
	}
	h.calls <- c
	<-c.Context().Done()
	h.ended <- c.Context().Err()
}

// release finishes a held call with OK.
func release(c *ServerCall) {
	c.RecvOne()
	c.Finish(codes.OK, "", BytesMsg([]byte("released")))
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// stopBegun waits until srv refuses new calls: Next reports the stop.
func stopBegun(t *testing.T, srv *Server) {
	t.Helper()
	waitFor(t, "the stop to begin", func() bool {
		c, ok := srv.Next(closedChan)
		if c != nil {
			t.Fatalf("Next handed out a call during stop: %s", c.Method)
		}
		return !ok
	})
}

func TestAddPortZero(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	defer srv.Stop(0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 || port > 65535 {
		t.Fatalf("AddPort returned port %d", port)
	}
	port2, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil || port2 == port || port2 <= 0 {
		t.Fatalf("second AddPort = %d, %v (first %d)", port2, err, port)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := dispatch(srv, coreEcho)
	defer func() { srv.Stop(0); <-done }()
	for _, p := range []int{port, port2} {
		ch := dial(t, "127.0.0.1:"+itoa(p))
		resp, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("hi")))
		wantStatus(t, st, codes.OK, "")
		wantBytes(t, "response", resp.Materialize(), []byte("hi"))
	}
}

// TestAddPortInUse: a port some other socket holds without SO_REUSEPORT
// cannot be bound, whatever our own setting.
func TestAddPortInUse(t *testing.T) {
	checkLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	for _, opts := range [][]Option{nil, {{Key: "grpc.so_reuseport", Int: 0, IsInt: true}}} {
		srv := NewServer(opts, 0)
		if port, err := srv.AddPort(addr, nil); err == nil {
			t.Errorf("AddPort(%s) with %v = %d, want an error", addr, opts, port)
		} else if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name the address", err)
		}
		srv.Stop(0)
	}
}

// TestAddPortReusePort: grpcio sets SO_REUSEPORT by default, so two servers
// may share a port; grpc.so_reuseport=0 turns that off.
func TestAddPortReusePort(t *testing.T) {
	checkLeaks(t)
	a := NewServer(nil, 0)
	defer a.Stop(0)
	port, err := a.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + itoa(port)
	b := NewServer(nil, 0)
	defer b.Stop(0)
	if _, err := b.AddPort(addr, nil); err != nil {
		t.Fatalf("second server with SO_REUSEPORT on %s: %v", addr, err)
	}
	c := NewServer([]Option{{Key: "grpc.so_reuseport", Int: 0, IsInt: true}}, 0)
	defer c.Stop(0)
	if _, err := c.AddPort(addr, nil); err == nil {
		t.Fatalf("server without SO_REUSEPORT bound %s, which two others hold", addr)
	}
	// And a port bound without it refuses everyone else.
	d := NewServer([]Option{{Key: "grpc.so_reuseport", Int: 0, IsInt: true}}, 0)
	defer d.Stop(0)
	port, err = d.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := NewServer(nil, 0)
	defer e.Stop(0)
	if _, err := e.AddPort("127.0.0.1:"+itoa(port), nil); err == nil {
		t.Fatalf("bound a port held without SO_REUSEPORT")
	}
}

func TestServerLifecycleErrors(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	if _, err := srv.AddPort("not an address", nil); err == nil {
		t.Error("AddPort accepted a bad address")
	}
	if _, err := srv.AddPort("unix:"+t.TempDir()+"/no/such/dir/sock", nil); err == nil {
		t.Error("AddPort accepted a socket in a missing directory")
	}
	if _, err := srv.AddPort("127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if _, err := srv.AddPort("127.0.0.1:0", nil); err == nil {
		t.Error("AddPort after Start succeeded")
	}
	srv.Stop(0)
	closed(t, "Stopped", srv.Stopped())
	if err := srv.Start(); !errors.Is(err, ErrServerStopped) {
		t.Errorf("Start after Stop = %v, want ErrServerStopped", err)
	}
	if _, err := srv.AddPort("127.0.0.1:0", nil); err == nil {
		t.Error("AddPort after Stop succeeded")
	}
	if c, ok := srv.Next(nil); c != nil || ok {
		t.Errorf("Next after Stop = %v, %v; want nil, false", c, ok)
	}
	if c, ok := srv.Next(closedChan); c != nil || ok {
		t.Errorf("Next(closed) after Stop = %v, %v; want nil, false", c, ok)
	}
}

// TestStopBeforeStart releases the ports of a server that never started.
func TestStopBeforeStart(t *testing.T) {
	checkLeaks(t)
	srv := NewServer([]Option{{Key: "grpc.so_reuseport", Int: 0, IsInt: true}}, 0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop(time.Hour) // nothing in flight: returns at once
	closed(t, "Stopped", srv.Stopped())
	l, err := net.Listen("tcp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatalf("port still held after Stop: %v", err)
	}
	l.Close()
}

func TestNextWait(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	defer srv.Stop(0)
	if _, err := srv.AddPort("127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if c, ok := srv.Next(closedChan); c != nil || !ok {
		t.Fatalf("Next(fired) = %v, %v; want nil, true", c, ok)
	}
	wait := make(chan struct{})
	var c *ServerCall
	var ok bool
	done := run(func() { c, ok = srv.Next(wait) })
	notYet(t, "Next returning with nothing to hand out", done)
	close(wait)
	closed(t, "Next", done)
	if c != nil || !ok {
		t.Fatalf("Next = %v, %v; want nil, true", c, ok)
	}
	// A Next waiting with no deadline returns (nil, false) on Stop.
	done = run(func() { c, ok = srv.Next(nil) })
	notYet(t, "Next returning early", done)
	srv.Stop(0)
	closed(t, "Next after Stop", done)
	if c != nil || ok {
		t.Fatalf("Next = %v, %v; want nil, false", c, ok)
	}
}

func TestMaxConcurrent(t *testing.T) {
	checkLeaks(t)
	h := newHold()
	srv, target := newTestServerOn(t, "127.0.0.1:0", 2, h.serve)
	ch := dial(t, target)
	a := ch.StartUnary(spec("/x/A"), BytesMsg([]byte("a")))
	ca, _ := recvChan(t, "call a", h.calls)
	b := ch.StartStream(spec("/x/B"), true, true, nil, false)
	recvChan(t, "call b", h.calls)

	_, _, st := ch.Unary(spec("/x/Quick"), BytesMsg([]byte("c")))
	wantStatus(t, st, codes.ResourceExhausted, "Concurrent RPC limit exceeded!")
	s := ch.StartStream(spec("/x/Quick"), true, true, nil, false)
	drain(t, s)
	wantStatus(t, ended(t, s), codes.ResourceExhausted, "Concurrent RPC limit exceeded!")

	release(ca)
	closed(t, "a", a.Done)
	wantStatus(t, a.Status, codes.OK, "")
	// A slot is free again.
	resp, _, st := ch.Unary(spec("/x/Quick"), BytesMsg([]byte("c")))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "response", resp.Materialize(), []byte("quick"))

	b.Cancel()
	recvChan(t, "b ended", h.ended)
	wantStatus(t, ended(t, b), codes.Canceled, "Locally cancelled by application!")
	// The slot frees when grpc-go's handler returns, a moment after the
	// call's context is done.
	waitFor(t, "the slots to free", func() bool { return srv.active.Load() == 0 })
	// Both slots free: two held calls at once are fine.
	x := ch.StartUnary(spec("/x/X"), nil)
	y := ch.StartUnary(spec("/x/Y"), nil)
	cx, _ := recvChan(t, "x", h.calls)
	cy, _ := recvChan(t, "y", h.calls)
	release(cx)
	release(cy)
	closed(t, "x", x.Done)
	closed(t, "y", y.Done)
	wantStatus(t, x.Status, codes.OK, "")
	wantStatus(t, y.Status, codes.OK, "")
}

// TestStopGraceLetsCallsFinish: Stop refuses new calls at once, and an
// in-flight call finishing within the grace completes normally; Stop
// returns once it has.
func TestStopGraceLetsCallsFinish(t *testing.T) {
	checkLeaks(t)
	h := newHold()
	srv, target := newTestServer(t, h.serve)
	ch := dial(t, target)
	u := ch.StartUnary(spec("/x/Held"), BytesMsg([]byte("x")))
	c, _ := recvChan(t, "held call", h.calls)
	s := ch.StartStream(spec("/x/HeldStream"), true, true, nil, false)
	cs, _ := recvChan(t, "held stream", h.calls)

	stopDone := run(func() { srv.Stop(time.Hour) })
	stopBegun(t, srv)

	// New calls are refused, on the existing channel and on a new one.
	_, _, st := ch.Unary(spec("/x/Quick"), nil)
	wantCode(t, st, codes.Unavailable)
	_, _, st = dial(t, target).Unary(spec("/x/Quick"), nil)
	wantCode(t, st, codes.Unavailable)

	// The calls in flight go on.
	notYet(t, "Stop returning with calls in flight", stopDone)
	if !c.Active() || !cs.Active() {
		t.Fatal("in-flight calls died at the start of the stop")
	}
	sendAll(t, s, []byte("still here"))
	m, _ := recvChan(t, "request during stop", cs.Requests())
	wantBytes(t, "request", m.Materialize(), []byte("still here"))
	if !put(cs, []byte("reply during stop")) {
		t.Fatal("Put during stop")
	}
	r, _ := recvChan(t, "response during stop", s.Responses())
	wantBytes(t, "response", r.Materialize(), []byte("reply during stop"))

	release(c)
	closed(t, "held unary", u.Done)
	wantStatus(t, u.Status, codes.OK, "")
	wantBytes(t, "response", u.Response.Materialize(), []byte("released"))
	cs.Finish(codes.OK, "", nil)
	s.CloseSend()
	drain(t, s)
	wantStatus(t, ended(t, s), codes.OK, "")

	closed(t, "Stop", stopDone)
	select {
	case <-srv.Stopped():
	default:
		t.Fatal("Stop returned before the server stopped")
	}
	recvChan(t, "held call ended", h.ended)
	recvChan(t, "held stream ended", h.ended)
}

// TestStopGraceExpires: calls still in flight when the grace runs out are
// cancelled.
func TestStopGraceExpires(t *testing.T) {
	checkLeaks(t)
	h := newHold()
	srv, target := newTestServer(t, h.serve)
	ch := dial(t, target)
	u := ch.StartUnary(spec("/x/Held"), BytesMsg([]byte("x")))
	c, _ := recvChan(t, "held call", h.calls)
	s := ch.StartStream(spec("/x/HeldStream"), true, true, nil, false)
	recvChan(t, "held stream", h.calls)

	srv.Stop(50 * time.Millisecond)
	select {
	case <-srv.Stopped():
	default:
		t.Fatal("Stop returned before the server stopped")
	}
	for i := 0; i < 2; i++ {
		if err, _ := recvChan(t, "held call ended", h.ended); err == nil {
			t.Error("held call not cancelled")
		}
	}
	if c.Active() {
		t.Error("call still active after the stop")
	}
	if err := c.Finish(codes.OK, "", BytesMsg([]byte("late"))); err == nil {
		t.Error("Finish after the stop succeeded")
	}
	closed(t, "unary", u.Done)
	if u.Status.OK() {
		t.Error("a call cut off by the stop ended OK")
	}
	t.Logf("cut-off unary: %v %q", u.Status.Code, u.Status.Details)
	drain(t, s)
	if st := ended(t, s); st.OK() {
		t.Error("a stream cut off by the stop ended OK")
	}
}

// TestStopConcurrent: concurrent and repeated Stops are fine, the smallest
// grace wins, and every one returns only once the server stopped.
func TestStopConcurrent(t *testing.T) {
	checkLeaks(t)
	h := newHold()
	srv, target := newTestServer(t, h.serve)
	ch := dial(t, target)
	u := ch.StartUnary(spec("/x/Held"), nil)
	recvChan(t, "held call", h.calls)

	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Stop(time.Hour)
			select {
			case <-srv.Stopped():
			default:
				t.Error("Stop(1h) returned before the server stopped")
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Stop(-1) // waits for the calls, however long
	}()
	stopBegun(t, srv)
	notYet(t, "a Stop returning with a call in flight", run(wg.Wait))
	srv.Stop(0) // the smallest grace wins: every Stop returns
	if !waitGroup(&wg) {
		t.Fatal("the other Stops did not return after Stop(0)")
	}
	recvChan(t, "held call ended", h.ended)
	closed(t, "unary", u.Done)
	if u.Status.OK() {
		t.Error("call cut off by Stop(0) ended OK")
	}
	// Stopping a stopped server returns at once, whatever the grace.
	closed(t, "Stop again", run(func() { srv.Stop(time.Hour) }))
	closed(t, "Stop again", run(func() { srv.Stop(-1) }))
}

// TestStopWaitsIndefinitely: a negative grace waits for the calls.
func TestStopNegativeGrace(t *testing.T) {
	checkLeaks(t)
	h := newHold()
	srv, target := newTestServer(t, h.serve)
	ch := dial(t, target)
	u := ch.StartUnary(spec("/x/Held"), nil)
	c, _ := recvChan(t, "held call", h.calls)
	stopDone := run(func() { srv.Stop(-1) })
	stopBegun(t, srv)
	notYet(t, "Stop(-1) returning with a call in flight", stopDone)
	release(c)
	closed(t, "Stop", stopDone)
	closed(t, "unary", u.Done)
	wantStatus(t, u.Status, codes.OK, "")
}

// TestStopIdle: with nothing in flight, Stop returns without using its
// grace.
func TestStopIdle(t *testing.T) {
	checkLeaks(t)
	srv, target := newTestServer(t, coreEcho)
	ch := dial(t, target)
	_, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("x"))) // a live connection
	wantStatus(t, st, codes.OK, "")
	closed(t, "Stop(1h) of an idle server", run(func() { srv.Stop(time.Hour) }))
	_, _, st = ch.Unary(spec(mUnary), BytesMsg([]byte("x")))
	wantCode(t, st, codes.Unavailable)
}

// TestStopDuringDispatch: calls arriving while nobody takes them from Next
// are refused UNAVAILABLE by the stop, not stranded.
func TestStopWithUntakenCalls(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	ch := dial(t, "127.0.0.1:"+itoa(port))
	u := ch.StartUnary(spec(mUnary), BytesMsg([]byte("x")))
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	waitFor(t, "calls to reach the server", func() bool { return ReadCounters().ServerCalls == 2 })
	srv.Stop(-1)
	closed(t, "unary", u.Done)
	wantCode(t, u.Status, codes.Unavailable)
	drain(t, s)
	wantCode(t, ended(t, s), codes.Unavailable)
}
