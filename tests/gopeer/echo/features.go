package echo

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Wire observations: a client dialled with WithStatsHandler(ClientStats{})
// records, for each call whose context carries a *wire (withWire), what
// grpc-go saw on the wire: the response's grpc-encoding and each message's
// length before and after compression.

// ClientStats is the stats.Handler the client cases need (the compression
// case reads the wire through it); it does nothing for other calls.
type ClientStats struct{}

type wireKey struct{}

type wire struct {
	mu       sync.Mutex
	respEnc  string
	sent     []sizes // requests: Length, CompressedLength
	received []sizes // responses
}

type sizes struct{ length, compressed int }

func withWire(ctx context.Context) (context.Context, *wire) {
	w := new(wire)
	return context.WithValue(ctx, wireKey{}, w), w
}

func (ClientStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (ClientStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (ClientStats) HandleConn(context.Context, stats.ConnStats) {}

func (ClientStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	w, ok := ctx.Value(wireKey{}).(*wire)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s := s.(type) {
	case *stats.InHeader:
		w.respEnc = s.Compression
	case *stats.InPayload:
		w.received = append(w.received, sizes{s.Length, s.CompressedLength})
	case *stats.OutPayload:
		w.sent = append(w.sent, sizes{s.Length, s.CompressedLength})
	}
}

// compressed reports whether every message in ss went smaller on the wire.
func compressed(ss []sizes) bool {
	for _, s := range ss {
		if s.compressed >= s.length {
			return false
		}
	}
	return len(ss) > 0
}

func plain(ss []sizes) bool {
	for _, s := range ss {
		if s.compressed != s.length {
			return false
		}
	}
	return len(ss) > 0
}

// caseCompression: requests compressed by this client reach the server's
// handler intact; the server compresses responses when asked
// (x-compress-response), and only then.
func caseCompression(ctx context.Context, conn grpc.ClientConnInterface) error {
	text := strings.Repeat("compressible ", 5000) // 65 kB
	gzip := grpc.UseCompressor("gzip")
	askGzip := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, CompressResponseKey, "gzip")
	}

	// Gzip both ways.
	wctx, w := withWire(askGzip(ctx))
	out := new(msg)
	if err := conn.Invoke(wctx, UnaryEchoMethod, wrapperspb.String(text), out, gzip); err != nil {
		return fmt.Errorf("UnaryEcho gzip both ways: %v", err)
	}
	if out.GetValue() != text {
		return fmt.Errorf("UnaryEcho gzip both ways: got %d bytes back, want %d", len(out.GetValue()), len(text))
	}
	if !compressed(w.sent) {
		return fmt.Errorf("UnaryEcho gzip both ways: request not compressed: %v", w.sent)
	}
	if w.respEnc != "gzip" || !compressed(w.received) {
		return fmt.Errorf("UnaryEcho gzip both ways: response encoding %q, sizes %v; want gzip, smaller", w.respEnc, w.received)
	}

	// Compressed requests only: the server answers plainly.
	wctx, w = withWire(ctx)
	if err := conn.Invoke(wctx, UnaryEchoMethod, wrapperspb.String(text), out, gzip); err != nil {
		return fmt.Errorf("UnaryEcho gzip request: %v", err)
	}
	if out.GetValue() != text || !compressed(w.sent) {
		return fmt.Errorf("UnaryEcho gzip request: %d bytes back, request sizes %v", len(out.GetValue()), w.sent)
	}

	// Plain requests, compressed responses, on a server stream.
	wctx, w = withWire(askGzip(ctx))
	r := serverStream(wctx, conn, "3:"+text)
	if err := expectOK("ServerStream gzip responses", r, text+"-0", text+"-1", text+"-2"); err != nil {
		return err
	}
	if !plain(w.sent) || w.respEnc != "gzip" || !compressed(w.received) {
		return fmt.Errorf("ServerStream gzip responses: request %v, response encoding %q, sizes %v",
			w.sent, w.respEnc, w.received)
	}

	// Nothing asked, nothing compressed.
	wctx, w = withWire(ctx)
	if err := conn.Invoke(wctx, UnaryEchoMethod, wrapperspb.String(text), out); err != nil {
		return fmt.Errorf("UnaryEcho plain: %v", err)
	}
	// (grpc-go's server sends no grpc-encoding then, grpcgo's "identity".)
	if out.GetValue() != text || !plain(w.sent) || !plain(w.received) || (w.respEnc != "" && w.respEnc != "identity") {
		return fmt.Errorf("UnaryEcho plain: request %v, response encoding %q, sizes %v", w.sent, w.respEnc, w.received)
	}

	// A bidi stream with gzip both ways, message by message.
	wctx, w = withWire(askGzip(ctx))
	stream, err := conn.NewStream(wctx, &bidiStreamDesc, BidiStreamMethod, gzip)
	if err != nil {
		return fmt.Errorf("BidiStream gzip: %v", err)
	}
	for i := 0; i < 3; i++ {
		want := fmt.Sprintf("%d %s", i, text)
		if err := stream.SendMsg(wrapperspb.String(want)); err != nil {
			return fmt.Errorf("BidiStream gzip send %d: %v", i, err)
		}
		if err := stream.RecvMsg(out); err != nil || out.GetValue() != want {
			return fmt.Errorf("BidiStream gzip answer %d: %d bytes, %v", i, len(out.GetValue()), err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("BidiStream gzip: CloseSend: %v", err)
	}
	var rest result
	drain(stream, &rest)
	if rest.err != nil || len(rest.texts) != 0 {
		return fmt.Errorf("BidiStream gzip end: %v, extra %s", rest.err, short(rest.texts))
	}
	if !compressed(w.sent) || w.respEnc != "gzip" || !compressed(w.received) {
		return fmt.Errorf("BidiStream gzip: requests %v, response encoding %q, sizes %v", w.sent, w.respEnc, w.received)
	}
	return nil
}

// ExtraCases need a server set up for them by the test that runs them (see
// tests/test_gopeer.py), so "all" leaves them out.
var ExtraCases = []Case{
	{"interceptor", caseInterceptor},
	{"stop_in_grace", caseStopInGrace},
	{"stop_after_grace", caseStopAfterGrace},
}

// RejectKey is the request metadata key the interceptor case's server
// refuses calls for: PERMISSION_DENIED with the value as details, before
// any handler runs.
const RejectKey = "x-reject"

// caseInterceptor: the server's interceptors refuse calls carrying
// x-reject, on every shape, and let the others through.
func caseInterceptor(ctx context.Context, conn grpc.ClientConnInterface) error {
	rctx := metadata.AppendToOutgoingContext(ctx, RejectKey, "go away")
	if err := expectStatus("UnaryEcho rejected", unary(rctx, conn, "x").err, codes.PermissionDenied, "go away"); err != nil {
		return err
	}
	if err := expectStatus("ServerStream rejected", serverStream(rctx, conn, "2:x").err, codes.PermissionDenied, "go away"); err != nil {
		return err
	}
	if err := expectStatus("ClientStream rejected", clientStream(rctx, conn, []string{"a", "b"}).err, codes.PermissionDenied, "go away"); err != nil {
		return err
	}
	if err := expectOK("UnaryEcho let through", unary(ctx, conn, "fine"), "fine"); err != nil {
		return err
	}
	return expectOK("ServerStream let through", serverStream(ctx, conn, "2:s"), "s-0", "s-1")
}

// caseStopInGrace: the server is stopped with a long grace while this call
// is in its handler, and lets the handler finish (it returns the text); a
// call made after that is refused.
func caseStopInGrace(ctx context.Context, conn grpc.ClientConnInterface) error {
	if err := expectOK("UnaryEcho during grace", unary(ctx, conn, "in grace"), "in grace"); err != nil {
		return err
	}
	return expectStatus("UnaryEcho after stop", unary(ctx, conn, "late").err, codes.Unavailable, "")
}

// caseStopAfterGrace: the server is stopped with a short grace while this
// call is in a handler that never returns by itself: the call ends
// UNAVAILABLE when the grace runs out.
func caseStopAfterGrace(ctx context.Context, conn grpc.ClientConnInterface) error {
	return expectStatus("UnaryEcho past the grace", unary(ctx, conn, "hold").err, codes.Unavailable, "")
}
