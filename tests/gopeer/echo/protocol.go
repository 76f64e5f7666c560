// Package echo is the test service grpcgo.testing.Echo, written by hand for
// grpc-go (no protoc): its service descriptor, a grpc-go implementation, and
// the client-side cases that check any implementation of it (the Python one
// in tests/echo_service.py must behave the same).
//
// Every message is a google.protobuf.StringValue. The conventions, shared by
// all four methods:
//
//   - Metadata echo: every request metadata key starting with "x-echo-" is
//     sent back as initial metadata unchanged, and as trailing metadata with
//     the prefix changed to "x-trailer-" ("x-echo-a-bin" -> "x-trailer-a-bin").
//     Binary ("-bin") values round-trip as arbitrary bytes. Repeated keys keep
//     their values in order. Initial metadata is sent at the start of the
//     handler only when there is at least one such key.
//   - "status:<code>:<details>" as a request text makes the handler end the
//     RPC with that status. <code> is a number (5) or a canonical name
//     (NOT_FOUND); <details> is everything after the second colon and may
//     itself contain colons.
//   - "sleep:<ms>" as a request text makes the handler sleep that long,
//     returning early (with the context's status) if the RPC ends first, then
//     go on as for any other text (the text is echoed).
//   - Response compression: request metadata "x-compress-response: gzip"
//     makes the handler compress its responses with gzip.
//
// One convention only the grpc-go server keeps (Python's ServicerContext
// has no view of these): request metadata "x-report" (any value) adds
// trailing metadata saying what the server saw of the call:
// "x-report-authority" (the :authority), "x-report-server-name" (the TLS
// server name the client sent, "" without TLS or SNI),
// "x-report-request-encoding" (the request's grpc-encoding, "" for none)
// and, when the call carried any, "x-report-authorization" (its
// authorization values).
//
// Per method:
//
//   - UnaryEcho: responds with the request text.
//   - ServerStream: request "<n>:<text>" gives n responses "<text>-0" ...
//     "<text>-<n-1>". An optional suffix "|status:<code>:<details>" ends the
//     stream with that status after the n responses. A request that is itself
//     a directive ("status:..." or "sleep:...") applies it and (for sleep)
//     then sends the request text once. Anything else: INVALID_ARGUMENT.
//   - ClientStream: applies each request's directive as it arrives, then
//     responds with all request texts joined with ",".
//   - BidiStream: answers each request as it arrives (a true ping-pong):
//     applies its directive and echoes its text.
package echo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Names on the wire.
const (
	ServiceName        = "grpcgo.testing.Echo"
	UnaryEchoMethod    = "/" + ServiceName + "/UnaryEcho"
	ServerStreamMethod = "/" + ServiceName + "/ServerStream"
	ClientStreamMethod = "/" + ServiceName + "/ClientStream"
	BidiStreamMethod   = "/" + ServiceName + "/BidiStream"

	EchoPrefix    = "x-echo-"
	TrailerPrefix = "x-trailer-"
	JoinSeparator = ","

	CompressResponseKey = "x-compress-response"
	ReportKey           = "x-report"
)

// ParseCode reads a status code given as a number (0-16) or a canonical name
// such as NOT_FOUND.
func ParseCode(s string) (codes.Code, error) {
	var c codes.Code
	js := strconv.Quote(strings.ToUpper(s))
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		js = s // a number: UnmarshalJSON also rejects codes past UNAUTHENTICATED
	}
	if err := c.UnmarshalJSON([]byte(js)); err != nil {
		return 0, fmt.Errorf("bad status code %q", s)
	}
	return c, nil
}

// directive applies the "status:" and "sleep:" conventions to one request
// text. It returns the error that must end the RPC, or nil to go on.
func directive(ctx context.Context, text string) error {
	switch {
	case strings.HasPrefix(text, "status:"):
		return statusDirective(text)
	case strings.HasPrefix(text, "sleep:"):
		ms, err := strconv.Atoi(strings.TrimPrefix(text, "sleep:"))
		if err != nil || ms < 0 {
			return status.Errorf(codes.InvalidArgument, "bad sleep directive %q", text)
		}
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return nil
}

func statusDirective(text string) error {
	parts := strings.SplitN(text, ":", 3)
	if len(parts) < 2 {
		return status.Errorf(codes.InvalidArgument, "bad status directive %q", text)
	}
	code, err := ParseCode(parts[1])
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "bad status directive %q: %v", text, err)
	}
	details := ""
	if len(parts) == 3 {
		details = parts[2]
	}
	return status.Error(code, details)
}

func isDirective(text string) bool {
	return strings.HasPrefix(text, "status:") || strings.HasPrefix(text, "sleep:")
}

// parseServerStream splits a ServerStream request "<n>:<text>[|status:...]".
func parseServerStream(text string) (n int, body, final string, err error) {
	spec, final, _ := strings.Cut(text, "|")
	count, body, ok := strings.Cut(spec, ":")
	if !ok {
		return 0, "", "", fmt.Errorf("want <n>:<text>, got %q", text)
	}
	n, err = strconv.Atoi(count)
	if err != nil || n < 0 {
		return 0, "", "", fmt.Errorf("bad count in %q", text)
	}
	if final != "" && !strings.HasPrefix(final, "status:") {
		return 0, "", "", fmt.Errorf("suffix must be |status:<code>:<details>, got %q", final)
	}
	return n, body, final, nil
}

// echoMetadata computes the initial and trailing metadata that answer the
// incoming metadata md.
func echoMetadata(md metadata.MD) (header, trailer metadata.MD) {
	header, trailer = metadata.MD{}, metadata.MD{}
	for k, vs := range md {
		if !strings.HasPrefix(k, EchoPrefix) {
			continue
		}
		header[k] = append([]string(nil), vs...)
		trailer[TrailerPrefix+strings.TrimPrefix(k, EchoPrefix)] = append([]string(nil), vs...)
	}
	return header, trailer
}
