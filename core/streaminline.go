//go:build grpcgo_patched

package core

import (
	"context"
	"os"

	"google.golang.org/grpc"
)

// A client stream's message that the sending thread writes itself
// (sender.sendNow: nothing queued before it) also goes out to the socket
// on that thread when grpc-go's writer (loopy) is idle, as a fast unary
// call's frames do (fastunary.go): its data frame is queued "quiet" (loopy
// is not woken for it), then GrpcgoCall.Flush does loopy's round in its
// place with a write that never waits, leaving loopy whatever the socket
// does not take at once (and waking it for that). So a peer that stops
// reading never holds the sending thread in a socket write (it may still
// wait for flow control in SendMsg, as before), frames keep their order
// (loopy's work is done under one lock, by one of them at a time), and a
// ping-pong request costs no wake-up of loopy's thread. Messages larger
// than the patch's inline bound (4 KiB) are loopy's as before; a fast
// stream's messages are batched by the binding's held sends before they
// get here, so most of them are not written one system call each.
//
// GRPCGO_STREAM_INLINE=0 turns it off (A/B runs).
var streamInlineOn = os.Getenv("GRPCGO_STREAM_INLINE") != "0"

type streamInline struct{ gc grpc.GrpcgoCall }

// withStreamInline returns a client stream's context and what brackets
// its direct writes (nil: write as grpc-go does).
func withStreamInline(ctx context.Context) (context.Context, directInline) {
	if !streamInlineOn {
		return ctx, nil
	}
	si := &streamInline{}
	si.gc.Done = func(bool) {} // the stream's own reader learns its end
	return grpc.GrpcgoWithCall(ctx, &si.gc), si
}

// begin and end bracket direct writes (under the sender's writing lock,
// so Quiet covers those messages' frames only): their small data frames
// are queued quietly, then flushed once, in loopy's place if it is idle.
func (si *streamInline) begin(int) { si.gc.Quiet.Store(true) }
func (si *streamInline) end()      { si.gc.Flush() }

// writeNoWait: grpc-go's SendMsg on the stream would not wait now
// (grpc.GrpcgoWriteNoWait; the caller holds the sender's writing lock).
func (s *Stream) writeNoWait() bool {
	return streamInlineOn && aioClientInline && s.cs != nil && grpc.GrpcgoWriteNoWait(s.cs)
}

var aioClientInline = os.Getenv("GRPCGO_AIO_CLIENT_INLINE") != "0"
