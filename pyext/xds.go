package main

// grpc-go's xDS support: the xds: resolver, the xDS balancers and cluster
// specifiers, xDS credentials and the xDS client, registered by the
// package's init. Targets "xds:///name" resolve through the management
// server named by GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG (read when
// the engine loads).
import (
	_ "google.golang.org/grpc/xds"

	"google.golang.org/grpc/grpclog"
)

var xdsLogger = grpclog.Component("xds")
