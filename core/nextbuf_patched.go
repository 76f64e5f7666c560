//go:build grpcgo_patched

package core

import "google.golang.org/grpc"

// nextBuffered reports whether s's next RecvMsg returns without waiting,
// its message already received whole (grpc.GrpcgoNextBuffered).
func nextBuffered(s msgStream) bool { return grpc.GrpcgoNextBuffered(s) }
