package core

import "google.golang.org/grpc/mem"

// Msg is one message as grpc-go's transport holds it: a list of buffers,
// usually from grpc-go's buffer pool. Received messages keep the transport's
// own buffers (no copy into a fresh slice), so the binding copies each
// message once, straight into its own object; large messages then cost no
// Go heap allocation and no garbage collection.
//
// A nil Msg means "no message"; an empty message is a non-nil Msg of
// length 0. Whoever ends up with a received Msg may Free it once done with
// it, which returns its buffers to the pool; one never freed is collected
// by the garbage collector like any other value.
type Msg = mem.BufferSlice

// BytesMsg wraps b, without copying, as a message.
func BytesMsg(b []byte) Msg {
	if b == nil {
		b = []byte{}
	}
	return Msg{mem.SliceBuffer(b)}
}

// emptyIfNil turns "no message" into the empty message: grpc-go hands a
// zero-length message to the codec as nil.
func emptyIfNil(m Msg) Msg {
	if m == nil {
		return Msg{}
	}
	return m
}
