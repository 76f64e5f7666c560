//go:build !grpcgo_patched

package core

import "context"

// startFast needs grpcgo's patch to grpc-go (fastunary.go): without it,
// every unary call starts on a worker.
func (ch *Channel) startFast(context.Context, *UnaryCall, *CallSpec, Msg, func(*UnaryCall), func(func())) bool {
	return false
}

var fastUnaryOn = false
