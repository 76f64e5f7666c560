package core

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// Every wait in this package's tests is bounded by one of these; none of
// them is an assertion about speed, only about progress.
const (
	// longWait bounds anything that must eventually happen.
	longWait = 20 * time.Second
	// shortWait is how long we watch for something that must NOT happen.
	shortWait = 150 * time.Millisecond
)

// testCtx is a context bounded by longWait, cancelled when the test ends.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), longWait)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after longWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(longWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recvChan waits for a value on ch (or its close), failing after longWait.
func recvChan[T any](t *testing.T, what string, ch <-chan T) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(longWait):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero, false
}

// closed waits until ch is closed or yields, failing after longWait.
func closed[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	recvChan(t, what, ch)
}

// notYet checks that ch does not yield during shortWait.
func notYet[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s happened too early", what)
	case <-time.After(shortWait):
	}
}

// run runs f on its own goroutine and returns a channel closed when it
// returns.
func run(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// countersZero fails the test unless every live counter drops back to zero
// within longWait.
func countersZero(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(longWait)
	for {
		c := ReadCounters()
		if c == (Counters{}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("live counters did not drop to zero: %+v", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkLeaks registers, first, a cleanup that runs after every other
// cleanup of the test: counters back to zero and the goroutine count back
// near where it was.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		countersZero(t)
		goroutinesBackTo(t, before)
	})
}

// goroutineSlack tolerates grpc-go's and the runtime's own background
// goroutines that come and go.
const goroutineSlack = 4

func goroutinesBackTo(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(longWait)
	for {
		n := runtime.NumGoroutine()
		if n <= before+goroutineSlack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before, still %d after:\n%s", before, n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- servers ----

// handler serves one call taken from Server.Next.
type handler func(c *ServerCall)

// newTestServer creates a core server on addr (127.0.0.1:0 when empty),
// starts it and dispatches every call to h on its own goroutine. It
// returns the server and a target a channel can dial. The server is
// stopped when the test ends.
func newTestServer(t testing.TB, h handler, opts ...Option) (*Server, string) {
	t.Helper()
	return newTestServerOn(t, "127.0.0.1:0", 0, h, opts...)
}

func newTestServerOn(t testing.TB, addr string, maxConcurrent int, h handler, opts ...Option) (*Server, string) {
	t.Helper()
	srv := NewServer(opts, maxConcurrent)
	port, err := srv.AddPort(addr, nil)
	if err != nil {
		srv.Stop(0)
		t.Fatalf("AddPort(%q): %v", addr, err)
	}
	if err := srv.Start(); err != nil {
		srv.Stop(0)
		t.Fatalf("Start: %v", err)
	}
	if h == nil { // the test takes the calls from srv.Next itself
		t.Cleanup(func() { srv.Stop(0) })
	} else {
		done := dispatch(srv, h)
		t.Cleanup(func() {
			srv.Stop(0)
			<-done
		})
	}
	network, address := splitAddress(addr)
	if network == "unix" {
		return srv, "unix:" + address
	}
	host, _, _ := net.SplitHostPort(address)
	return srv, net.JoinHostPort(host, fmt.Sprint(port))
}

// dispatch takes calls from srv until it stops, each to h on its own
// goroutine; the returned channel closes when Next reported the stop and
// every handler returned.
func dispatch(srv *Server, h handler) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, ok := srv.Next(nil)
			if !ok {
				return
			}
			if c == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h(c)
			}()
		}
	}()
	return done
}

// dial creates a channel closed when the test ends.
func dial(t testing.TB, target string, opts ...Option) *Channel {
	t.Helper()
	ch, err := Dial(target, opts, nil)
	if err != nil {
		t.Fatalf("Dial(%q): %v", target, err)
	}
	t.Cleanup(ch.Close)
	return ch
}

// mustBeReady connects ch and waits (at most longWait) until its state is
// READY.
func mustBeReady(t testing.TB, ch *Channel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), longWait)
	defer cancel()
	ch.cc.Connect()
	for st := ch.cc.GetState(); st.String() != "READY"; st = ch.cc.GetState() {
		if !ch.cc.WaitForStateChange(ctx, st) {
			t.Fatalf("channel state %v, never READY", st)
		}
	}
}

// spec is a CallSpec bounded by longWait so no call can hang a test.
func spec(method string, md ...string) *CallSpec {
	s := &CallSpec{Method: method, Timeout: longWait}
	if len(md) > 0 {
		s.Metadata = metadata.Pairs(md...)
	}
	return s
}

// unixSocket returns a unix socket path short enough for sun_path.
func unixSocket(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if len(p) < 100 {
		return p
	}
	dir, err := os.MkdirTemp("", "gg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// needIPv6 skips the test unless the IPv6 loopback can be bound.
func needIPv6(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
}

// ---- assertions ----

func wantStatus(t *testing.T, st *Status, code codes.Code, details string) {
	t.Helper()
	if st == nil {
		t.Fatalf("status is nil, want %v %q", code, details)
	}
	if st.Code != code || st.Details != details {
		t.Fatalf("status = %v %q, want %v %q", st.Code, st.Details, code, details)
	}
}

func wantCode(t *testing.T, st *Status, code codes.Code) {
	t.Helper()
	if st == nil {
		t.Fatalf("status is nil, want %v", code)
	}
	if st.Code != code {
		t.Fatalf("status = %v %q, want code %v", st.Code, st.Details, code)
	}
}

func wantBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, trunc(got), trunc(want))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return append(append([]byte{}, b[:64]...), "..."...)
	}
	return b
}

// wantMD checks that md holds exactly the values want gives for each key.
func wantMD(t *testing.T, what string, md metadata.MD, want metadata.MD) {
	t.Helper()
	for k, vs := range want {
		got := md.Get(k)
		if len(got) != len(vs) {
			t.Fatalf("%s[%q] = %q, want %q (all: %v)", what, k, got, vs, md)
		}
		for i := range vs {
			if got[i] != vs[i] {
				t.Fatalf("%s[%q] = %q, want %q", what, k, got, vs)
			}
		}
	}
}

// drain reads the responses of a stream until it ends.
func drain(t *testing.T, s *Stream) [][]byte {
	t.Helper()
	var out [][]byte
	timeout := time.After(longWait)
	for {
		select {
		case m, ok := <-s.Responses():
			if !ok {
				return out
			}
			out = append(out, m.Materialize())
		case <-timeout:
			t.Fatalf("stream did not end; got %d responses", len(out))
		}
	}
}

// ended waits for the stream to end and returns its status.
func ended(t *testing.T, s *Stream) *Status {
	t.Helper()
	closed(t, "stream end", s.Ended())
	return s.Status
}

// requests reads a server call's requests until the client half-closes.
func requests(c *ServerCall) [][]byte {
	var out [][]byte
	for m := range c.Requests() {
		out = append(out, m.Materialize())
	}
	return out
}

// put queues m on a server call, waiting at most longWait.
func put(c *ServerCall, m []byte) bool {
	q, _ := c.Put(BytesMsg(m), timeoutChan(longWait))
	return q
}

// timeoutChan is closed after d. (No goroutine lingers: AfterFunc.)
func timeoutChan(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// sendAll queues ms on a client stream, waiting at most longWait each.
func sendAll(t *testing.T, s *Stream, ms ...[]byte) {
	t.Helper()
	for _, m := range ms {
		if q, alive := s.Put(BytesMsg(m), timeoutChan(longWait)); !q {
			t.Fatalf("Put(%q) = queued false, alive %v", trunc(m), alive)
		}
	}
}

func msgs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func equalMsgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
