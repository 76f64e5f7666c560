//go:build !grpcgo_patched

package core

import "google.golang.org/grpc"

// readerOptions needs grpcgo's patch to grpc-go (reader_patched.go):
// without it, every call's handler runs on a stream worker.
func readerOptions(*Server, bool) []grpc.ServerOption { return nil }
