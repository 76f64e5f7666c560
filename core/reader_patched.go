//go:build grpcgo_patched

package core

import (
	"os"

	"google.golang.org/grpc"
)

// readerOptions has grpc-go run the handler of a unary-request method's
// calls on the connection's reader (see Server.awaitRequest); not on an
// xDS-enabled server, whose interceptors run before the handler.
// GRPCGO_SERVER_READER=0 turns it off (to measure).
func readerOptions(s *Server, xds bool) []grpc.ServerOption {
	if xds || os.Getenv("GRPCGO_SERVER_READER") == "0" {
		return nil
	}
	return []grpc.ServerOption{grpc.GrpcgoInlineStreams(s.onReader)}
}
