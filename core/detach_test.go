//go:build grpcgo_patched

package core

import (
	"runtime"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
)

// handlerGoroutines counts goroutines inside the server's grpc-go handler.
func handlerGoroutines() int {
	buf := make([]byte, 1<<22)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "core.(*Server).handle(")
}

// With grpcgo's change to grpc-go a call is detached: no goroutine waits in
// the handler while the binding holds the call, and the call still ends
// with its response then its status, written by whoever finishes it.
func TestDetachedCallsHoldNoHandlerGoroutine(t *testing.T) {
	checkLeaks(t)
	srv, target := newTestServer(t, nil)
	ch := dial(t, target)
	const n = 40
	var calls []*UnaryCall
	for i := 0; i < n; i++ {
		calls = append(calls, ch.StartUnary(spec("/x/U"), BytesMsg([]byte("q"))))
	}
	var held []*ServerCall
	for len(held) < n {
		c, ok := srv.Next(testCtx(t).Done())
		if !ok || c == nil {
			t.Fatalf("took %d of %d calls", len(held), n)
		}
		held = append(held, c)
	}
	// The last handlers may still be on their way out after queueing
	// (Next can take a call before its handler returns); a handler that
	// waited for its call would never leave.
	waitFor(t, "no goroutine in the handler for the held calls", func() bool {
		return handlerGoroutines() == 0
	})
	for i, c := range held {
		m, err := c.RecvOne()
		if err != nil || string(m.Materialize()) != "q" {
			t.Fatalf("call %d: request %q, %v", i, m.Materialize(), err)
		}
		c.SetTrailer(map[string][]string{"k": {"v"}})
		fin := c.Finish // the goroutine-started end (what grpc.aio uses)
		if i%2 == 0 {
			fin = c.FinishHere // ended on this goroutine (the sync server)
		}
		if err := fin(codes.OK, "", BytesMsg([]byte("r"))); err != nil {
			t.Fatal(err)
		}
		if fin(codes.Internal, "again", nil) != ErrCallOver {
			t.Fatal("a second Finish counted")
		}
	}
	for i, u := range calls {
		closed(t, "call", u.Done)
		if u.Status.Code != codes.OK || string(u.Response.Materialize()) != "r" ||
			len(u.Status.Trailer["k"]) != 1 {
			t.Fatalf("call %d: %v %q %v", i, u.Status, u.Response.Materialize(), u.Status.Trailer)
		}
	}
}

// A detached call ends exactly once when its finish races with its death
// (the client cancels it): one server-ended record per call, and every
// counter back to zero.
func TestDetachedCallEndsOnceWhenFinishRacesDeath(t *testing.T) {
	checkLeaks(t)
	SetMetrics(true)
	defer SetMetrics(false)
	srv, target := newTestServer(t, nil)
	ch := dial(t, target)
	TakeMetrics()
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		u := ch.StartUnary(spec("/x/R"), BytesMsg([]byte("q")))
		c, ok := srv.Next(testCtx(t).Done())
		if !ok || c == nil {
			t.Fatal("no call")
		}
		wg.Add(2)
		go func() { defer wg.Done(); u.Cancel() }()
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				c.FinishHere(codes.OK, "", BytesMsg([]byte("r")))
			} else {
				c.Finish(codes.Aborted, "x", nil)
			}
		}()
		closed(t, "call", u.Done)
	}
	wg.Wait()
	ended := 0
	waitFor(t, "every server call to end", func() bool {
		batch, _ := TakeMetrics()
		for _, r := range batch {
			if r.Kind == MetricServerEnded {
				ended++
			}
		}
		return ended >= n && ReadCounters().ServerCalls == 0
	})
	if ended != n {
		t.Fatalf("%d server-ended records for %d calls", ended, n)
	}
}
