package core

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// CallSpec is what a client call needs besides its messages.
type CallSpec struct {
	Method   string
	Metadata metadata.MD
	Timeout  time.Duration // 0: no deadline
	// WaitForReady: 0 unset (fail fast), 1 wait, -1 explicitly fail fast.
	WaitForReady int
	// Compressor overrides the channel's compression: "" keeps it,
	// "identity" turns it off, else a registered compressor's name.
	Compressor string
	// Credentials are this call's own call credentials, if any.
	Credentials *CallCredentials
}

func (ch *Channel) callContext(spec *CallSpec) (context.Context, context.CancelCauseFunc) {
	ctx := ch.ctx
	var stop context.CancelFunc
	if spec.Timeout > 0 {
		ctx, stop = context.WithTimeout(ctx, spec.Timeout)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	if len(spec.Metadata) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, spec.Metadata)
	}
	if stop == nil {
		return ctx, cancel
	}
	return ctx, func(cause error) { cancel(cause); stop() }
}

func (ch *Channel) options(spec *CallSpec, extra ...grpc.CallOption) []grpc.CallOption {
	opts := append(append(make([]grpc.CallOption, 0, len(ch.callOpts)+len(extra)+1), ch.callOpts...), extra...)
	if spec.WaitForReady > 0 {
		opts = append(opts, grpc.WaitForReady(true))
	}
	if spec.Compressor != "" {
		opts = append(opts, grpc.UseCompressor(spec.Compressor))
	}
	if spec.Credentials != nil {
		opts = append(opts, grpc.PerRPCCredentials(spec.Credentials))
	}
	return opts
}

// UnaryCall is a unary-response call under way. Done is closed when it has
// ended; then Response, Header and Status are set.
type UnaryCall struct {
	Done     chan struct{}
	Response Msg
	Header   metadata.MD
	Status   *Status
	cancel   context.CancelCauseFunc
	// settled is set once the call's own bookkeeping (grpc-go's end of
	// call, the context's cancel) has run: after its notify when the
	// caller is woken first (fastCall.wakeFirst), before it otherwise.
	settled atomic.Bool
}

// Unary performs a unary call on the calling goroutine.
func (ch *Channel) Unary(spec *CallSpec, req Msg) (resp Msg, header metadata.MD, st *Status) {
	if ch.refuse != nil {
		req.Free()
		return nil, nil, ch.refuse
	}
	ctx, cancel := ch.callContext(spec)
	defer cancel(nil)
	return ch.invoke(ctx, spec, req)
}

// invoke performs a unary call under ctx: the response (empty when empty,
// nil on failure), the initial metadata and the status.
func (ch *Channel) invoke(ctx context.Context, spec *CallSpec, req Msg) (resp Msg, header metadata.MD, st *Status) {
	var md [2]metadata.MD
	liveClientCalls.Add(1)
	out := &outgoing{msg: req}
	o1, o2 := mdOptions(&md)
	err := ch.cc.Invoke(ctx, spec.Method, out, &resp, ch.options(spec, o1, o2)...)
	out.freeUntaken() // the call failed before sending: give a lent buffer back now
	liveClientCalls.Add(-1)
	return ch.unaryOutcome(ctx, err, resp, md[0], md[1])
}

// mdOptions are the call options that set md[0] to a unary call's
// response headers and md[1] to its trailers when it ends: grpc.Header and
// grpc.Trailer, or in the patched build grpc.GrpcgoStreamMD, which sets
// the transport stream's own MDs, not copies (patched.go). Either way the
// engine only reads them (their size for the limits, then once into
// Python), and they are nil or empty when none came.
var mdOptions = func(md *[2]metadata.MD) (grpc.CallOption, grpc.CallOption) {
	return grpc.Header(&md[0]), grpc.Trailer(&md[1])
}

// unaryOutcome is what a unary call that ended with err (nil: resp came)
// gives the binding: the response (empty when empty, nil on failure), the
// initial metadata and the status.
func (ch *Channel) unaryOutcome(ctx context.Context, err error, resp Msg, header, trailer metadata.MD) (Msg, metadata.MD, *Status) {
	if err != nil && isNoResponse(err) {
		// The server ended the call OK without a response: grpcio hands
		// the application None, so the call is OK with no message (nil).
		return nil, header, &Status{Trailer: trailer}
	}
	st := statusFrom(ctx, err)
	st.Trailer = trailer
	if over := ch.overLimit(header, trailer); over != nil {
		resp.Free()
		return nil, nil, over
	}
	if err != nil {
		resp.Free()
		return nil, header, st
	}
	return emptyIfNil(resp), header, st
}

// noResponse is how grpc-go (v1.85, stream.go) fails a non-server-streaming
// call whose server sent status OK and no message; it has no other cause.
const noResponse = "cardinality violation: received no response message from non-server-streaming RPC"

func isNoResponse(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Internal && s.Message() == noResponse
}

// StartUnary begins a unary call on its own goroutine.
func (ch *Channel) StartUnary(spec *CallSpec, req Msg) *UnaryCall {
	return ch.StartUnaryNotify(spec, req, nil)
}

// StartUnaryNotify is StartUnary that also calls notify (if not nil) with
// the call once it has ended, on the call's goroutine (or before returning,
// for a call that cannot start): a waiter outside Go can sleep on its own
// primitive instead of a Go channel.
func (ch *Channel) StartUnaryNotify(spec *CallSpec, req Msg, notify func(*UnaryCall)) *UnaryCall {
	return ch.StartUnaryOn(spec, req, notify, nil)
}

// StartUnaryOn is StartUnaryNotify that, when around is not nil, starts
// the call on the calling goroutine inside around (the binding releases
// the GIL there) if that cannot wait, and then no goroutine waits for it:
// notify runs on the goroutine that saw the call end (fastunary.go).
func (ch *Channel) StartUnaryOn(spec *CallSpec, req Msg, notify func(*UnaryCall), around func(func())) *UnaryCall {
	if ch.refuse != nil {
		req.Free()
		c := FailedUnary(ch.refuse)
		if notify != nil {
			notify(c)
		}
		return c
	}
	c := &UnaryCall{Done: make(chan struct{})}
	ctx, cancel := ch.callContext(spec)
	c.cancel = cancel
	// Only a call alone on its channel starts on the caller: calls from
	// several threads at once are sent in fewer writes by grpc-go's writer
	// (fastunary.go).
	alone := ch.unaryLive.Add(1) == 1
	if alone && around != nil && ch.fastUnary && spec.Credentials == nil && ch.startFast(ctx, c, spec, req, notify, around) {
		callerStarts.Add(1)
		return c
	}
	goCall(func() {
		if notify != nil {
			defer notify(c)
		}
		defer close(c.Done)
		defer ch.unaryLive.Add(-1)
		defer cancel(nil)
		c.Response, c.Header, c.Status = ch.invoke(ctx, spec, req)
	})
	return c
}

// callerStarts counts the unary calls started on their caller's goroutine
// (StartUnaryOn), not on a worker.
var callerStarts atomic.Int64

// CallerStarts reports how many unary calls started on their caller since
// the process started (grpcgo's tests).
func CallerStarts() int64 { return callerStarts.Load() }

// Cancel ends the call with CANCELLED if it has not ended yet.
func (c *UnaryCall) Cancel() { c.cancel(errCallCancelled) }

// FailedUnary is a unary call that ended before it started, with st.
func FailedUnary(st *Status) *UnaryCall {
	c := &UnaryCall{Done: make(chan struct{}), Status: st, cancel: func(error) {}}
	close(c.Done)
	return c
}

// overLimit is grpcio's RESOURCE_EXHAUSTED for response headers or trailers
// over the channel's metadata limits, or nil.
func (ch *Channel) overLimit(mds ...metadata.MD) *Status {
	for _, md := range mds {
		if st := ch.mdLimits.checkReceived(md); st != nil {
			return st
		}
	}
	return nil
}
