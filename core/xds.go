package core

import (
	"crypto/tls"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/xds"
)

// xDS security and xDS-enabled servers, on grpc-go's credentials/xds and
// xds.GRPCServer. The xDS resolver, balancers and client are registered by
// importing google.golang.org/grpc/xds (pyext/xds.go); the bootstrap is
// read from GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG on first use.

var xdsLogger = grpclog.Component("xds")

// XDSChannel is grpcio's xds_channel_credentials: TLS configured by the
// control plane (a cluster's UpstreamTlsContext, with the bootstrap's
// certificate providers) where it sends some, the fallback's credentials
// where it sends none (nil fallback: plaintext). Only xds: targets get
// security configuration from the control plane; any other target uses the
// fallback.
func XDSChannel(fallback *ChannelCredentials) *ChannelCredentials {
	out := &ChannelCredentials{refuse: fallback.refusal()}
	if fallback != nil {
		out.Call = fallback.Call
	}
	out.newTransport = func(serverName string, sessions tls.ClientSessionCache) credentials.TransportCredentials {
		fb := fallback.transport(serverName, sessions)
		if serverName != "" && !fallback.Insecure() {
			// The endpoints the control plane sends name their cluster's
			// hostname, which grpc-go hands the handshake instead of the
			// channel's authority: ssl_target_name_override still wins.
			fb = privateServerName{fb, serverName}
		}
		c, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: fb})
		if err != nil { // only without fallback, which transport never returns
			return unavailableTransport{err: err, protocol: "tls"}
		}
		return c
	}
	return out
}

// XDSServer is grpcio's xds_server_credentials: on an xDS-enabled server,
// TLS as the matching filter chain's DownstreamTlsContext says; the
// fallback's credentials when the chain has none, and on a plain server.
func XDSServer(fallback *ServerCredentials) *ServerCredentials {
	if fallback != nil && fallback.err != nil {
		return &ServerCredentials{err: fallback.err}
	}
	var fb credentials.TransportCredentials = insecureServer
	if fallback != nil && fallback.transport != nil {
		fb = fallback.transport
	}
	c, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: fb})
	if err != nil {
		return &ServerCredentials{err: err}
	}
	return &ServerCredentials{transport: c}
}

// usesXDS tells grpc-go's xDS balancers that a channel's credentials take
// their security configuration from the control plane (they look for this
// method on the credentials they are given, which our wrappers hide).
func usesXDS(t credentials.TransportCredentials) bool {
	x, ok := t.(interface{ UsesXDS() bool })
	return ok && x.UsesXDS()
}

func (c guardedCreds) UsesXDS() bool      { return usesXDS(c.TransportCredentials) }
func (p privateServerName) UsesXDS() bool { return usesXDS(p.TransportCredentials) }

// newXDSServer is the xDS-enabled grpc-go server: each port serves as the
// Listener resource the bootstrap's server_listener_resource_name_template
// names for its address says (filter chains, their security, routes from
// RDS or inline), and not at all until that resource arrives or while it is
// gone (serving mode NOT_SERVING: connections are closed at accept).
// It fails without a bootstrap, or with one that has no template.
func newXDSServer(opts ...grpc.ServerOption) (grpcServer, error) {
	opts = append(opts, xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
		if args.Mode == connectivity.ServingModeServing {
			xdsLogger.Infof("xDS server on %s: serving", addr)
		} else {
			xdsLogger.Warningf("xDS server on %s: not serving: %v", addr, args.Err)
		}
	}))
	return xds.NewGRPCServer(opts...)
}

// grpcServer is what Server needs of grpc-go's server, plain or xDS.
type grpcServer interface {
	Serve(net.Listener) error
	Stop()
	GracefulStop()
}
