//go:build !grpcgo_patched

package core

// nextBuffered needs grpcgo's patch to grpc-go (nextbuf_patched.go):
// without it, a receiver wakes its reader for every message.
func nextBuffered(msgStream) bool { return false }
