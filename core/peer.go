package core

import (
	"context"
	"net"
	"strconv"

	"google.golang.org/grpc/peer"
)

// peerString formats the remote address as grpcio does:
// "ipv4:127.0.0.1:5000", "ipv6:%5B::1%5D:5000" (a URI, brackets escaped) or
// "unix:/path".
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
		return "ipv6:%5B" + a.IP.String() + "%5D:" + strconv.Itoa(a.Port)
	case *net.UnixAddr:
		return "unix:" + a.Name
	}
	return p.Addr.Network() + ":" + p.Addr.String()
}
