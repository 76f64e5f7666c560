package echo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A Case checks one part of a peer's Echo service over conn. It returns nil
// on success and an error that says what differed otherwise.
type Case struct {
	Name string
	Run  func(ctx context.Context, conn grpc.ClientConnInterface) error
}

// Cases are the client cases, in the order "all" runs them.
var Cases = []Case{
	{"unary", caseUnary},
	{"server_stream", caseServerStream},
	{"client_stream", caseClientStream},
	{"bidi", caseBidi},
	{"metadata", caseMetadata},
	{"status", caseStatus},
	{"deadline", caseDeadline},
	{"unimplemented", caseUnimplemented},
	{"compression", caseCompression},
}

// GrpcioCases check what grpcio's server does and grpc-go's does not; they
// run only by name, against grpcgo's server (not in "all").
var GrpcioCases = []Case{
	{"accept_encoding", caseAcceptEncoding},
}

// CaseNames lists the case names, "all" after Cases and before ExtraCases
// and GrpcioCases.
func CaseNames() []string {
	names := make([]string, 0, len(Cases)+len(ExtraCases)+len(GrpcioCases)+1)
	for _, c := range Cases {
		names = append(names, c.Name)
	}
	names = append(names, "all")
	for _, c := range append(ExtraCases[:len(ExtraCases):len(ExtraCases)], GrpcioCases...) {
		names = append(names, c.Name)
	}
	return names
}

// FindCase returns the case called name, in Cases, ExtraCases or GrpcioCases.
func FindCase(name string) (Case, bool) {
	all := append(Cases[:len(Cases):len(Cases)], ExtraCases...)
	for _, c := range append(all, GrpcioCases...) {
		if c.Name == name {
			return c, true
		}
	}
	return Case{}, false
}

// ---- call helpers -------------------------------------------------------

var (
	serverStreamDesc = grpc.StreamDesc{StreamName: "ServerStream", ServerStreams: true}
	clientStreamDesc = grpc.StreamDesc{StreamName: "ClientStream", ClientStreams: true}
	bidiStreamDesc   = grpc.StreamDesc{StreamName: "BidiStream", ServerStreams: true, ClientStreams: true}
)

// result is what one call brought back.
type result struct {
	texts   []string
	header  metadata.MD
	trailer metadata.MD
	err     error // the RPC's status as an error; nil for OK
}

func unary(ctx context.Context, conn grpc.ClientConnInterface, text string) result {
	var r result
	out := new(msg)
	r.err = conn.Invoke(ctx, UnaryEchoMethod, wrapperspb.String(text), out,
		grpc.Header(&r.header), grpc.Trailer(&r.trailer))
	if r.err == nil {
		r.texts = []string{out.GetValue()}
	}
	return r
}

// drain receives until the stream ends, recording messages, metadata and
// the final status.
func drain(stream grpc.ClientStream, r *result) {
	for {
		out := new(msg)
		err := stream.RecvMsg(out)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.err = err
			}
			break
		}
		r.texts = append(r.texts, out.GetValue())
	}
	r.header, _ = stream.Header()
	r.trailer = stream.Trailer()
}

func serverStream(ctx context.Context, conn grpc.ClientConnInterface, text string) result {
	var r result
	stream, err := conn.NewStream(ctx, &serverStreamDesc, ServerStreamMethod)
	if err != nil {
		r.err = err
		return r
	}
	if err := stream.SendMsg(wrapperspb.String(text)); err != nil && !errors.Is(err, io.EOF) {
		r.err = err
		return r
	}
	if err := stream.CloseSend(); err != nil {
		r.err = err
		return r
	}
	drain(stream, &r)
	return r
}

// sendAll sends every text then half-closes. An io.EOF from SendMsg means
// the server has already ended the RPC: the status comes from RecvMsg.
func sendAll(stream grpc.ClientStream, texts []string) error {
	for _, t := range texts {
		if err := stream.SendMsg(wrapperspb.String(t)); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	return stream.CloseSend()
}

func clientStream(ctx context.Context, conn grpc.ClientConnInterface, texts []string) result {
	var r result
	stream, err := conn.NewStream(ctx, &clientStreamDesc, ClientStreamMethod)
	if err != nil {
		r.err = err
		return r
	}
	if err := sendAll(stream, texts); err != nil {
		r.err = err
		return r
	}
	drain(stream, &r)
	return r
}

// ---- checks ---------------------------------------------------------------

func expectOK(what string, r result, want ...string) error {
	if r.err != nil {
		return fmt.Errorf("%s: unexpected error %v", what, r.err)
	}
	if !slices.Equal(r.texts, want) && !(len(r.texts) == 0 && len(want) == 0) {
		return fmt.Errorf("%s: got messages %s, want %s", what, short(r.texts), short(want))
	}
	return nil
}

func expectStatus(what string, err error, code codes.Code, details string) error {
	if err == nil {
		return fmt.Errorf("%s: succeeded, want status %v %q", what, code, details)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: error %v is not a gRPC status", what, err)
	}
	if st.Code() != code {
		return fmt.Errorf("%s: got code %v (details %q), want %v", what, st.Code(), st.Message(), code)
	}
	if details != "" && st.Message() != details {
		return fmt.Errorf("%s: got details %q, want %q", what, st.Message(), details)
	}
	return nil
}

// short renders messages for an error text without flooding it.
func short(texts []string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, t := range texts {
		if i == 8 {
			fmt.Fprintf(&b, " ... %d in all", len(texts))
			break
		}
		if i > 0 {
			b.WriteString(" ")
		}
		if len(t) > 40 {
			t = fmt.Sprintf("%s...(%d bytes)", t[:40], len(t))
		}
		b.WriteString(strconv.Quote(t))
	}
	b.WriteString("]")
	return b.String()
}

// ---- cases ----------------------------------------------------------------

func caseUnary(ctx context.Context, conn grpc.ClientConnInterface) error {
	large := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	for _, text := range []string{"hello", "", "héllo ✓ 世界", large} {
		if err := expectOK("UnaryEcho", unary(ctx, conn, text), text); err != nil {
			return err
		}
	}
	// Concurrent calls on one connection.
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := "concurrent-" + strconv.Itoa(i)
			errs[i] = expectOK("concurrent UnaryEcho", unary(ctx, conn, text), text)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func caseServerStream(ctx context.Context, conn grpc.ClientConnInterface) error {
	if err := expectOK(`ServerStream "3:abc"`, serverStream(ctx, conn, "3:abc"), "abc-0", "abc-1", "abc-2"); err != nil {
		return err
	}
	if err := expectOK(`ServerStream "0:none"`, serverStream(ctx, conn, "0:none")); err != nil {
		return err
	}
	want := make([]string, 200)
	for i := range want {
		want[i] = "many-" + strconv.Itoa(i)
	}
	return expectOK(`ServerStream "200:many"`, serverStream(ctx, conn, "200:many"), want...)
}

func caseClientStream(ctx context.Context, conn grpc.ClientConnInterface) error {
	if err := expectOK("ClientStream a,b,c", clientStream(ctx, conn, []string{"a", "b", "c"}), "a,b,c"); err != nil {
		return err
	}
	if err := expectOK("ClientStream with no requests", clientStream(ctx, conn, nil), ""); err != nil {
		return err
	}
	texts := make([]string, 200)
	for i := range texts {
		texts[i] = "m" + strconv.Itoa(i)
	}
	return expectOK("ClientStream 200 requests", clientStream(ctx, conn, texts), strings.Join(texts, JoinSeparator))
}

func caseBidi(ctx context.Context, conn grpc.ClientConnInterface) error {
	// Ping-pong: each answer must come before the next request is sent, so
	// a server that waited for the end of the requests would time out here.
	stream, err := conn.NewStream(ctx, &bidiStreamDesc, BidiStreamMethod)
	if err != nil {
		return fmt.Errorf("BidiStream: %v", err)
	}
	for i := range 20 {
		text := "ping-" + strconv.Itoa(i)
		if err := stream.SendMsg(wrapperspb.String(text)); err != nil {
			return fmt.Errorf("BidiStream send %d: %v", i, err)
		}
		out := new(msg)
		if err := stream.RecvMsg(out); err != nil {
			return fmt.Errorf("BidiStream receive %d: %v", i, err)
		}
		if out.GetValue() != text {
			return fmt.Errorf("BidiStream round %d: got %q, want %q", i, out.GetValue(), text)
		}
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("BidiStream CloseSend: %v", err)
	}
	if err := stream.RecvMsg(new(msg)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("BidiStream after CloseSend: got %v, want end of stream with OK", err)
	}

	// A stream the client closes at once ends with OK and no messages.
	var r result
	stream, err = conn.NewStream(ctx, &bidiStreamDesc, BidiStreamMethod)
	if err != nil {
		return fmt.Errorf("BidiStream: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("BidiStream CloseSend: %v", err)
	}
	drain(stream, &r)
	return expectOK("BidiStream with no requests", r)
}

// The metadata every metadata check sends; x-other must not come back.
func requestMetadata() metadata.MD {
	bin := make([]byte, 0, 512)
	for i := range 256 {
		bin = append(bin, byte(i))
	}
	bin = append(bin, 0, 0, 0xff, 0xfe, '\r', '\n')
	return metadata.MD{
		"x-echo-text":     {"hello world"},
		"x-echo-multi":    {"first", "second"},
		"x-echo-data-bin": {string(bin), ""},
		"x-echo-one-bin":  {"\x00"},
		"x-other":         {"not echoed"},
	}
}

// checkEcho compares the x-* keys of the metadata that came back with what
// the echo convention requires for sent.
func checkEcho(what string, sent, header, trailer metadata.MD) error {
	wantHeader, wantTrailer := echoMetadata(sent)
	if err := sameXKeys(what+" initial metadata", header, wantHeader); err != nil {
		return err
	}
	return sameXKeys(what+" trailing metadata", trailer, wantTrailer)
}

func sameXKeys(what string, got, want metadata.MD) error {
	keys := map[string]bool{}
	for k := range got {
		if strings.HasPrefix(k, "x-") {
			keys[k] = true
		}
	}
	for k := range want {
		keys[k] = true
	}
	for k := range keys {
		g, w := got[k], want[k]
		if len(g) != len(w) {
			return fmt.Errorf("%s: key %q has %d values %s, want %d %s", what, k, len(g), short(g), len(w), short(w))
		}
		for i := range g {
			if !bytes.Equal([]byte(g[i]), []byte(w[i])) {
				return fmt.Errorf("%s: key %q value %d is %q, want %q", what, k, i, g[i], w[i])
			}
		}
	}
	return nil
}

func caseMetadata(ctx context.Context, conn grpc.ClientConnInterface) error {
	md := requestMetadata()
	ctx = metadata.NewOutgoingContext(ctx, md)

	r := unary(ctx, conn, "md")
	if err := expectOK("UnaryEcho with metadata", r, "md"); err != nil {
		return err
	}
	if err := checkEcho("UnaryEcho", md, r.header, r.trailer); err != nil {
		return err
	}

	r = serverStream(ctx, conn, "2:md")
	if err := expectOK("ServerStream with metadata", r, "md-0", "md-1"); err != nil {
		return err
	}
	if err := checkEcho("ServerStream", md, r.header, r.trailer); err != nil {
		return err
	}

	r = clientStream(ctx, conn, []string{"m", "d"})
	if err := expectOK("ClientStream with metadata", r, "m,d"); err != nil {
		return err
	}
	if err := checkEcho("ClientStream", md, r.header, r.trailer); err != nil {
		return err
	}

	// Bidi: initial metadata must arrive before any response is asked for.
	stream, err := conn.NewStream(ctx, &bidiStreamDesc, BidiStreamMethod)
	if err != nil {
		return fmt.Errorf("BidiStream with metadata: %v", err)
	}
	header, err := stream.Header()
	if err != nil {
		return fmt.Errorf("BidiStream with metadata: Header(): %v", err)
	}
	r = result{}
	if err := sendAll(stream, []string{"x", "y"}); err != nil {
		return fmt.Errorf("BidiStream with metadata: %v", err)
	}
	drain(stream, &r)
	if err := expectOK("BidiStream with metadata", r, "x", "y"); err != nil {
		return err
	}
	if err := checkEcho("BidiStream", md, header, r.trailer); err != nil {
		return err
	}

	// No x-echo- keys: nothing x- comes back.
	r = unary(metadata.NewOutgoingContext(ctx, metadata.Pairs("x-other", "v")), conn, "plain")
	if err := expectOK("UnaryEcho without echo keys", r, "plain"); err != nil {
		return err
	}
	return checkEcho("UnaryEcho without echo keys", nil, r.header, r.trailer)
}

func caseStatus(ctx context.Context, conn grpc.ClientConnInterface) error {
	for _, tc := range []struct {
		text    string
		code    codes.Code
		details string
	}{
		{"status:5:not here", codes.NotFound, "not here"},
		{"status:INVALID_ARGUMENT:bad: value", codes.InvalidArgument, "bad: value"},
		{"status:9:héllo ✓ 100% done\nnext line", codes.FailedPrecondition, "héllo ✓ 100% done\nnext line"},
		{"status:16:who are you", codes.Unauthenticated, "who are you"},
		{"status:INTERNAL:", codes.Internal, ""},
		{"status:resource_exhausted:lower-case name", codes.ResourceExhausted, "lower-case name"},
	} {
		r := unary(ctx, conn, tc.text)
		if err := expectStatus(fmt.Sprintf("UnaryEcho %q", tc.text), r.err, tc.code, tc.details); err != nil {
			return err
		}
	}

	// Metadata still comes back with an error status.
	md := metadata.Pairs("x-echo-k", "v", "x-echo-k-bin", "\x00\x01\xff")
	r := unary(metadata.NewOutgoingContext(ctx, md), conn, "status:NOT_FOUND:with metadata")
	if err := expectStatus("UnaryEcho error with metadata", r.err, codes.NotFound, "with metadata"); err != nil {
		return err
	}
	if err := checkEcho("UnaryEcho error", md, r.header, r.trailer); err != nil {
		return err
	}

	// Server streaming: messages, then the status.
	r = serverStream(ctx, conn, "2:s|status:ABORTED:after two")
	if err := expectStatus("ServerStream status after messages", r.err, codes.Aborted, "after two"); err != nil {
		return err
	}
	if !slices.Equal(r.texts, []string{"s-0", "s-1"}) {
		return fmt.Errorf("ServerStream status after messages: got %s before the status, want [s-0 s-1]", short(r.texts))
	}
	r = serverStream(ctx, conn, "status:OUT_OF_RANGE:at once")
	if err := expectStatus("ServerStream status at once", r.err, codes.OutOfRange, "at once"); err != nil {
		return err
	}

	// Client streaming: a directive among the requests.
	r = clientStream(ctx, conn, []string{"a", "status:PERMISSION_DENIED:stop here", "never read"})
	if err := expectStatus("ClientStream status", r.err, codes.PermissionDenied, "stop here"); err != nil {
		return err
	}

	// Bidi: an answer, then the status.
	stream, err := conn.NewStream(ctx, &bidiStreamDesc, BidiStreamMethod)
	if err != nil {
		return fmt.Errorf("BidiStream: %v", err)
	}
	if err := stream.SendMsg(wrapperspb.String("fine")); err != nil {
		return fmt.Errorf("BidiStream send: %v", err)
	}
	out := new(msg)
	if err := stream.RecvMsg(out); err != nil || out.GetValue() != "fine" {
		return fmt.Errorf("BidiStream first answer: got %q, %v; want \"fine\"", out.GetValue(), err)
	}
	if err := stream.SendMsg(wrapperspb.String("status:DATA_LOSS:gone")); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("BidiStream send: %v", err)
	}
	r = result{}
	drain(stream, &r)
	if err := expectStatus("BidiStream status", r.err, codes.DataLoss, "gone"); err != nil {
		return err
	}
	if len(r.texts) != 0 {
		return fmt.Errorf("BidiStream status: got extra messages %s", short(r.texts))
	}
	return nil
}

// deadlineCheck runs f under a deadline d and checks that it ends with
// DEADLINE_EXCEEDED. The server sleeps far longer than d, so the status
// (not OK after the sleep) shows the deadline ended the call; how promptly
// is for benchmarks, not tests.
func deadlineCheck(ctx context.Context, what string, d time.Duration, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return expectStatus(what, f(cctx), codes.DeadlineExceeded, "")
}

func caseDeadline(ctx context.Context, conn grpc.ClientConnInterface) error {
	const d = 300 * time.Millisecond
	checks := []struct {
		what string
		f    func(ctx context.Context) error
	}{
		{"UnaryEcho sleep:5000", func(ctx context.Context) error { return unary(ctx, conn, "sleep:5000").err }},
		{"ServerStream sleep:5000", func(ctx context.Context) error { return serverStream(ctx, conn, "sleep:5000").err }},
		{"ClientStream sleep:5000", func(ctx context.Context) error {
			return clientStream(ctx, conn, []string{"a", "sleep:5000"}).err
		}},
		{"BidiStream sleep:5000", func(ctx context.Context) error {
			stream, err := conn.NewStream(ctx, &bidiStreamDesc, BidiStreamMethod)
			if err != nil {
				return err
			}
			if err := stream.SendMsg(wrapperspb.String("sleep:5000")); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			return stream.RecvMsg(new(msg))
		}},
	}
	for _, c := range checks {
		if err := deadlineCheck(ctx, c.what, d, c.f); err != nil {
			return err
		}
	}
	// A sleep shorter than the deadline succeeds.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := expectOK("UnaryEcho sleep:50", unary(sctx, conn, "sleep:50"), "sleep:50"); err != nil {
		return err
	}
	// The server is still serving after the expired calls.
	return expectOK("UnaryEcho after deadlines", unary(ctx, conn, "after"), "after")
}

func caseUnimplemented(ctx context.Context, conn grpc.ClientConnInterface) error {
	for _, method := range []string{
		"/" + ServiceName + "/NoSuchMethod",
		"/grpcgo.testing.NoSuchService/UnaryEcho",
	} {
		err := conn.Invoke(ctx, method, wrapperspb.String("x"), new(msg))
		if err := expectStatus("unary "+method, err, codes.Unimplemented, ""); err != nil {
			return err
		}
	}
	// A streaming call to an unknown method.
	method := "/" + ServiceName + "/NoSuchStream"
	stream, err := conn.NewStream(ctx, &bidiStreamDesc, method)
	if err != nil {
		return expectStatus("stream "+method, err, codes.Unimplemented, "")
	}
	if err := sendAll(stream, []string{"x"}); err != nil {
		return fmt.Errorf("stream %s: send: %v", method, err)
	}
	var r result
	drain(stream, &r)
	if err := expectStatus("stream "+method, r.err, codes.Unimplemented, ""); err != nil {
		return err
	}
	// The known methods still work on the same connection.
	return expectOK("UnaryEcho after unknown methods", unary(ctx, conn, "still here"), "still here")
}

// caseAcceptEncoding: grpcio's server names the compressions it accepts in
// its response headers ("identity, deflate, gzip"); trailers-only responses
// carry none.
func caseAcceptEncoding(ctx context.Context, conn grpc.ClientConnInterface) error {
	r := unary(ctx, conn, "plain")
	if err := expectOK("UnaryEcho", r, "plain"); err != nil {
		return err
	}
	if got := r.header["grpc-accept-encoding"]; len(got) != 1 || got[0] != "identity, deflate, gzip" {
		return fmt.Errorf("response headers' grpc-accept-encoding = %q, want [\"identity, deflate, gzip\"]", got)
	}
	return nil
}
