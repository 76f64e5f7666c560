package core

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Status is how a call ended: a gRPC code, its details and the trailing
// metadata the peer sent.
type Status struct {
	Code    codes.Code
	Details string
	Trailer metadata.MD
}

// OK reports whether the call succeeded.
func (s *Status) OK() bool { return s.Code == codes.OK }

// statusFrom turns a grpc-go error into a Status, wording local deadline
// expiry and cancellation the way grpcio users see them.
func statusFrom(ctx context.Context, err error) *Status {
	if err == nil || errors.Is(err, io.EOF) {
		return &Status{Code: codes.OK}
	}
	if ctx != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = status.FromContextError(err).Err()
	}
	st := status.Convert(unwrapStatus(err))
	out := &Status{Code: st.Code(), Details: st.Message()}
	if out.Code > codes.Unauthenticated {
		// A code gRPC does not define (a peer's grpc-status: 17, say):
		// grpcio reports UNKNOWN.
		out.Code = codes.Unknown
	}
	if out.Code == codes.Internal && strings.HasPrefix(out.Details, "header list size to send violates") {
		// grpc-go checks the peer's SETTINGS_MAX_HEADER_LIST_SIZE before
		// sending; grpcio sends, and the server refuses it so.
		out.Code = codes.ResourceExhausted
	}
	if ctx != nil {
		switch {
		case (st.Code() == codes.DeadlineExceeded || st.Code() == codes.Canceled) && deadlinePassed(ctx):
			// The peer may reset the stream at the shared deadline a moment
			// before our own timer fires: it is our deadline all the same.
			out.Code, out.Details = codes.DeadlineExceeded, "Deadline Exceeded"
		case st.Code() == codes.Canceled && errors.Is(ctx.Err(), context.Canceled):
			out.Details = cancelReason(ctx)
		}
	}
	return out
}

// unwrapStatus returns the status error err wraps, if err is not one
// itself: grpc-go words some endings around the status that caused them
// ("max retries exhausted: failed after 3 attempts: rpc error: code =
// Unavailable desc = ...", once a retry policy gives up), and status.Convert
// would keep that whole text as the details; grpcio reports the last
// attempt's status as it came.
func unwrapStatus(err error) error {
	type grpcStatus interface{ GRPCStatus() *status.Status }
	if _, ok := err.(grpcStatus); ok {
		return err
	}
	var inner grpcStatus
	if errors.As(err, &inner) {
		if e, ok := inner.(error); ok {
			return e
		}
	}
	return err
}

// deadlinePassed reports whether ctx's deadline has passed, even if its
// timer has not fired yet: the server's deadline is never earlier than
// ours (grpc-timeout rounds up), so its DEADLINE_EXCEEDED can arrive a
// moment before our own timer fires, and is still our deadline.
func deadlinePassed(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// errCallCancelled and errChannelClosed are the causes a call's context is
// cancelled with, so the status can say which happened.
var (
	errCallCancelled = errors.New("Locally cancelled by application!")
	errChannelClosed = errors.New("Channel closed!")
	// errMetadataOverLimit cancels a stream whose response headers were
	// over the channel's metadata limits.
	errMetadataOverLimit = errors.New("received metadata over the limit")
)

func cancelReason(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil && c != context.Canceled {
		return c.Error()
	}
	return "Cancelled"
}
