package core

import (
	"runtime"

	"google.golang.org/grpc"
)

// Version is the engine's own version (the grpcgo distribution version).
const Version = "0.1.0"

// GrpcGoVersion is the version of google.golang.org/grpc compiled in.
func GrpcGoVersion() string { return grpc.Version }

// GoVersion is the Go toolchain that built the engine.
func GoVersion() string { return runtime.Version() }
