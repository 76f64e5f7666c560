package core

import (
	"bytes"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
)

func TestCodecKeepsReceivedBuffers(t *testing.T) {
	pool := scribblePool{}
	in := mem.BufferSlice{mem.NewBuffer(fill(pool, 4096, 'a'), pool), mem.NewBuffer(fill(pool, 2048, 'b'), pool)}
	var got Msg
	if err := (rawCodec{}).Unmarshal(in, &got); err != nil {
		t.Fatal(err)
	}
	in.Free() // what grpc-go does once Unmarshal returns
	want := append(bytes.Repeat([]byte{'a'}, 4096), bytes.Repeat([]byte{'b'}, 2048)...)
	if !bytes.Equal(got.Materialize(), want) {
		t.Fatal("received message changed after grpc-go freed its reference")
	}
	got.Free()

	var b []byte
	if err := (rawCodec{}).Unmarshal(BytesMsg([]byte("xy")), &b); err != nil || string(b) != "xy" {
		t.Fatalf("Unmarshal into *[]byte = %q, %v", b, err)
	}
	if err := (rawCodec{}).Unmarshal(BytesMsg(nil), new(string)); err == nil {
		t.Fatal("Unmarshal into *string succeeded")
	}
}

func TestCodecMarshalPassesMsgThrough(t *testing.T) {
	m := BytesMsg([]byte("hello"))
	out, err := (rawCodec{}).Marshal(m)
	if err != nil || string(out.Materialize()) != "hello" {
		t.Fatalf("Marshal(Msg) = %q, %v", out.Materialize(), err)
	}
	if _, err := (rawCodec{}).Marshal("nope"); err == nil {
		t.Fatal("Marshal(string) succeeded")
	}
}

// scribblePool overwrites every buffer given back, so a buffer used after
// its last Free shows.
type scribblePool struct{}

func (scribblePool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (scribblePool) Put(b *[]byte) {
	for i := range *b {
		(*b)[i] = 'X'
	}
}

func fill(pool mem.BufferPool, n int, c byte) *[]byte {
	b := pool.Get(n)
	for i := range *b {
		(*b)[i] = c
	}
	return b
}

func TestBufferPoolSizeClasses(t *testing.T) {
	for _, n := range []int{1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 1, 16 << 20} {
		b := BufferPool.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d) has length %d", n, len(*b))
		}
		if c := cap(*b); c < n || c&(c-1) != 0 {
			t.Fatalf("Get(%d) has capacity %d, want a power of two >= n", n, c)
		}
		BufferPool.Put(b)
	}
	// Beyond the largest class: a plain allocation, not kept.
	big := BufferPool.Get((16 << 20) + 1)
	if len(*big) != (16<<20)+1 {
		t.Fatalf("Get(16 MiB + 1) has length %d", len(*big))
	}
	BufferPool.Put(big)
	// A foreign buffer is not adopted into a class it does not fill.
	odd := make([]byte, 5000)
	BufferPool.Put(&odd)
	if b := BufferPool.Get(5000); cap(*b) == 5000 {
		t.Fatal("pool handed out a buffer it did not make")
	}
}

func TestBufferPoolBuffersRoundTripThroughGRPC(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		buf := BufferPool.Get(len(payload))
		copy(*buf, payload)
		resp, _, st := ch.Unary(spec(mUnary), Msg{mem.NewBuffer(buf, BufferPool)})
		wantStatus(t, st, codes.OK, "")
		if !bytes.Equal(resp.Materialize(), payload) {
			t.Fatal("1 MiB echo differs")
		}
		resp.Free()
	})
}

// countingPool counts the buffers grpc-go takes from the pool it was given.
type countingPool struct {
	mem.BufferPool
	gets atomic.Int64
}

func (p *countingPool) Get(n int) *[]byte {
	p.gets.Add(1)
	return p.BufferPool.Get(n)
}

func TestGRPCReadsIntoBufferPool(t *testing.T) {
	counting := &countingPool{BufferPool: BufferPool}
	saved := BufferPool
	BufferPool = counting
	t.Cleanup(func() { BufferPool = saved })

	_, target := newTestServer(t, func(c *ServerCall) {
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		c.Finish(codes.OK, "", req)
	})
	ch := dial(t, target)
	payload := bytes.Repeat([]byte("grpcgo!!"), 8<<10) // 64 KiB: one frame each way between grpcgo ends
	before := counting.gets.Load()
	resp, _, st := ch.Unary(spec(mUnary), BytesMsg(payload))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "echo", resp.Materialize(), payload)
	resp.Free()
	// Each side reads the message's frames into buffers from the pool.
	if got := counting.gets.Load() - before; got < 2 {
		t.Fatalf("grpc-go took %d buffers from BufferPool for a 64 KiB echo, want at least 2", got)
	}
}
