package core

import (
	"io"
	"net"
	"testing"
)

// A write in the writer's place (GrpcgoTryWrite) allocates nothing: the
// socket is taken once, with the guard, and the write loop is pooled.
// Before, each write made a RawConn and a closure over its count.
func TestTryWriteAllocatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g := guardClientConn(c).(*h2guard)
	defer g.Close()
	frame := make([]byte, 64)
	write := func() {
		if n, ok := g.GrpcgoTryWrite(frame); !ok || n != len(frame) {
			t.Fatalf("GrpcgoTryWrite = %d, %v; want %d, true", n, ok, len(frame))
		}
	}
	write() // the pool's first loop
	if allocs := testing.AllocsPerRun(100, write); allocs != 0 {
		t.Fatalf("GrpcgoTryWrite allocates %.1f times per write, want 0", allocs)
	}
}
