package core

import (
	"context"
	"net"

	"google.golang.org/grpc/peer"
)

// peerString formats the remote address as grpcio does:
// "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000" or "unix:/path".
func peerString(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	switch a := p.Addr.(type) {
	case *net.TCPAddr:
		if a.IP.To4() != nil {
			return "ipv4:" + a.String()
		}
		return "ipv6:" + a.String()
	case *net.UnixAddr:
		return "unix:" + a.Name
	}
	return p.Addr.Network() + ":" + p.Addr.String()
}
