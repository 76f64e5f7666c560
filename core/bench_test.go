package core

import (
	"testing"

	"google.golang.org/grpc/codes"
)

// BenchmarkUnary measures one unary call through a core channel and a core
// server whose "binding" answers on a goroutine, as the Python one does:
// allocations and time per call of the engine alone.
//
//	go test -run - -bench Unary -benchmem ./core
func BenchmarkUnary(b *testing.B) {
	srv, target := newTestServer(b, func(c *ServerCall) {
		c.Finish(codes.OK, "", c.First)
	})
	srv.MarkUnaryRequest("/bench.B/U")
	ch := dial(b, target)
	req := BytesMsg([]byte("0123456789abcdef"))
	sp := &CallSpec{Method: "/bench.B/U"}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, st := ch.Unary(sp, req); st.Code != codes.OK {
			b.Fatal(st)
		}
	}
}
