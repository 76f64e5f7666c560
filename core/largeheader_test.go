//go:build grpcgo_patched

package core

import (
	"bytes"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// A header block larger than what is left of the writer's 512 KiB buffer,
// written in the writer's place (a unary call's caller alone on its
// channel, a server's FinishHere alone on its connection), is framed whole
// and left to the writer (grpcgoHeaderByRef,
// patches/grpc-go/transport_inline_grpcgo.go.in) instead of being flushed
// half-way with a write that waits; it arrives whole, on a unix socket
// and on TCP. tests/test_large_headers.py has the peers that stop reading.
func TestLargeHeaderBlocksLeftToTheWriterArriveWhole(t *testing.T) {
	limits := []Option{
		{Key: "grpc.max_metadata_size", Int: 4 << 20, IsInt: true},
		{Key: "grpc.absolute_max_metadata_size", Int: 4 << 20, IsInt: true},
	}
	big := make([]byte, 600<<10)
	for i := range big {
		big[i] = byte(i*13 + i>>9)
	}
	h := func(c *ServerCall) {
		c.SetTrailer(metadata.Pairs("x-back-bin", c.Metadata.Get("x-big-bin")[0]))
		c.FinishHere(codes.OK, "", BytesMsg([]byte("r")))
	}
	for _, addr := range []string{"unix:" + unixSocket(t, "big.sock"), "127.0.0.1:0"} {
		_, target := newTestServerOn(t, addr, 0, h, limits...)
		ch := dial(t, target, limits...)
		mustBeReady(t, ch)
		before := grpc.GrpcgoHeadersByRef()
		for i := 0; i < 3; i++ {
			c := startOn(t, ch, spec(mUnary, "x-big-bin", string(big)), BytesMsg([]byte("q")))
			wantStatus(t, c.Status, codes.OK, "")
			if got := c.Status.Trailer.Get("x-back-bin"); len(got) != 1 || !bytes.Equal([]byte(got[0]), big) {
				t.Fatalf("%s: the trailer did not come back whole", addr)
			}
			c.Response.Free()
		}
		// Both ends' blocks (the request's headers, the trailers) went
		// to their writer whole at least once.
		if n := grpc.GrpcgoHeadersByRef() - before; n < 2 {
			t.Fatalf("%s: %d header blocks left to the writer whole, want 2 or more", addr, n)
		} else {
			t.Logf("%s: %d of 6 header blocks left to the writer whole", addr, n)
		}
	}
}
