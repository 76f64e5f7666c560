//go:build !grpcgo_patched

package core

import "context"

// withStreamInline needs grpcgo's patch to grpc-go (streaminline.go).
func withStreamInline(ctx context.Context) (context.Context, directInline) {
	return ctx, nil
}

// writeNoWait needs grpcgo's patch: never.
func (s *Stream) writeNoWait() bool { return false }
