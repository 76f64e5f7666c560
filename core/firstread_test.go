//go:build grpcgo_patched

package core

import (
	"bytes"
	"testing"
	"time"
)

// A request read before its call is handed over (ServerCall.First, for a
// unary-request method) that fails ends the call there (firstReadFailed in
// server.go): grpc-go's RecvMsg wrote the status, and the call is never
// handed over. It used to be handed over without a request, and the
// binding's read of its own then took the payload grpc-go leaves unread
// after a request over the size limit for the next message: here the
// refused request carries a whole gRPC message ("abc") at its start, which
// that read returned as the call's request. On a stream worker and on the
// connection's reader (GRPCGO_SERVER_READER=1).
func TestFirstReadFailureEndsTheCall(t *testing.T) {
	for _, onReader := range []bool{false, true} {
		t.Run(map[bool]string{false: "worker", true: "reader"}[onReader], func(t *testing.T) {
			if onReader {
				t.Setenv("GRPCGO_SERVER_READER", "1")
			}
			srv, target := newTestServer(t, nil,
				Option{Key: "grpc.max_receive_message_length", Int: 1024, IsInt: true})
			srv.MarkUnaryRequest("/x/U")
			raw := frameDial(t, target)
			refused := grpcFrame(append(grpcFrame([]byte("abc")), bytes.Repeat([]byte("z"), 4096)...))
			for i, end := range []bool{true, false} { // half-closed or not
				id := uint32(1 + 2*i)
				raw.headers(id, "/x/U", false)
				raw.data(id, refused, end)
				if s := raw.waitStatus(id); s.code != "8" {
					t.Fatalf("stream %d: status %q, want 8 (RESOURCE_EXHAUSTED)", id, s.code)
				}
				time.Sleep(shortWait) // a call would be queued by now
				if c, _ := srv.Take(); c != nil {
					m, err := c.RecvOne()
					t.Fatalf("stream %d: a call whose request was refused was handed over; "+
						"its read gives %q, %v", id, m.Materialize(), err)
				}
			}
			// The server serves on.
			raw.headers(5, "/x/U", false)
			raw.data(5, grpcFrame([]byte("ok")), true)
			c, ok := srv.Next(testCtx(t).Done())
			if !ok || c == nil {
				t.Fatal("no call")
			}
			if got := c.First.Materialize(); string(got) != "ok" {
				t.Fatalf("request %q", got)
			}
			c.First = nil
			c.FinishHere(0, "", BytesMsg([]byte("r")))
			if s := raw.waitStatus(5); s.code != "0" {
				t.Fatalf("status %q", s.code)
			}
		})
	}
}
