//go:build grpcgo_patched

package core

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
)

// putCounter is a pool that only counts what comes back.
type putCounter struct{ puts atomic.Int32 }

func (*putCounter) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *putCounter) Put(*[]byte)     { p.puts.Add(1) }

// collected reports whether a cleanup registered on p ran within a few
// collections.
func collectedAfterGC(done <-chan struct{}) bool {
	for range 20 {
		runtime.GC()
		select {
		case <-done:
			return true
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// A lent buffer grpc-go drops without freeing is given back when it is
// collected, so it must be reachable only from its holders. Buffers freed
// earlier leave their objects in mem's pool while references to them may
// live on (grpc-go's framer keeps the last DATA frame's; a finished call
// kept its last response): a lent buffer on such a recycled object stayed
// reachable, and its Python object was never given back (the
// test_large_messages flake).
func TestLentBufferIsNotARecycledObject(t *testing.T) {
	// Freed buffers whose objects are still referenced here.
	stale := make([]mem.Buffer, 64)
	for i := range stale {
		stale[i] = mem.NewBuffer(BufferPool.Get(64<<10), BufferPool)
	}
	for _, b := range stale {
		b.Free()
	}
	done := make(chan struct{})
	func() {
		data := make([]byte, 64<<10)
		lent := &data
		runtime.AddCleanup(lent, func(done chan struct{}) { close(done) }, done)
		m := Msg{NewLentBuffer(lent, &putCounter{})}
		_ = m.Len() // dropped without Free, as grpc-go's writer did for a reset stream
	}()
	if !collectedAfterGC(done) {
		t.Fatal("a lent buffer dropped without Free stayed reachable: it was put on a recycled buffer object")
	}
	runtime.KeepAlive(stale)
}

// A freed lent buffer still goes back through its pool, once.
func TestLentBufferFreedGoesBackOnce(t *testing.T) {
	pool := &putCounter{}
	data := make([]byte, 64<<10)
	b := NewLentBuffer(&data, pool)
	b.Ref()
	b.Free()
	if pool.puts.Load() != 0 {
		t.Fatal("given back while a reference was held")
	}
	b.Free()
	if pool.puts.Load() != 1 {
		t.Fatalf("given back %d times, want 1", pool.puts.Load())
	}
}

// A finished server call keeps no reference to the last response it handed
// to grpc-go (the binding keeps finished calls for a while: their handles
// are released in batches).
func TestFinishedCallKeepsNoLastResponse(t *testing.T) {
	calls := make(chan *ServerCall, 1)
	payload := bytes.Repeat([]byte("z"), 100<<10)
	_, target := newTestServer(t, func(c *ServerCall) {
		buf := BufferPool.Get(len(payload))
		copy(*buf, payload)
		c.Finish(codes.OK, "", Msg{mem.NewBuffer(buf, BufferPool)})
		calls <- c
	})
	ch := dial(t, target)
	resp, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("x")))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "response", resp.Materialize(), payload)
	resp.Free()
	c, _ := recvChan(t, "the call", calls)
	// The status came after grpc-go's handler returned: wait() is done.
	c.fmu.Lock()
	last := c.final.last
	c.fmu.Unlock()
	if last != nil {
		t.Fatal("the finished call still references its last response, which grpc-go freed")
	}
}

// A response refused because the call is over is freed, not dropped.
func TestRefusedResponseIsFreed(t *testing.T) {
	pool := &putCounter{}
	c := &ServerCall{}
	c.over.Store(true)
	if err := c.guardedSend(Msg{mem.NewBuffer(pool.Get(64<<10), pool)}); err != ErrCallOver {
		t.Fatalf("guardedSend on a call that is over = %v", err)
	}
	if pool.puts.Load() != 1 {
		t.Fatal("a response refused by a call that is over was not freed")
	}
}
