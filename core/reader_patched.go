//go:build grpcgo_patched

package core

import (
	"os"

	"google.golang.org/grpc"
)

// readerOptions has grpc-go run the handler of a unary-request method's
// calls on the connection's reader (see Server.awaitRequest) when
// GRPCGO_SERVER_READER=1: off by default, since it measured no better on
// a loaded 2-CPU machine (docs/benchmarks-history.md, "The reader queues the
// call"); never on an xDS-enabled server, whose interceptors run before
// the handler.
func readerOptions(s *Server, xds bool) []grpc.ServerOption {
	if xds || os.Getenv("GRPCGO_SERVER_READER") != "1" {
		return nil
	}
	return []grpc.ServerOption{grpc.GrpcgoInlineStreams(s.onReader)}
}
