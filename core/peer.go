package core

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"

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
	// Every call of a connection has the same address object (grpc-go
	// puts the connection's peer in each stream's context): the last one
	// formatted is kept (only pointers: an interface comparison of the
	// same uncomparable type would panic), so a busy connection formats
	// its address once.
	if last := lastPeer.Load(); last != nil && last.addr == p.Addr {
		return last.s
	}
	s := formatPeer(p.Addr)
	switch p.Addr.(type) {
	case *net.TCPAddr, *net.UnixAddr: // compared as pointers above
		lastPeer.Store(&formattedPeer{p.Addr, s})
	}
	return s
}

type formattedPeer struct {
	addr net.Addr
	s    string
}

var lastPeer atomic.Pointer[formattedPeer]

func formatPeer(addr net.Addr) string {
	switch a := addr.(type) {
	case *net.TCPAddr:
		if a.IP.To4() != nil {
			return "ipv4:" + a.String()
		}
		return "ipv6:%5B" + a.IP.String() + "%5D:" + strconv.Itoa(a.Port)
	case *net.UnixAddr:
		if a.Name == "@" {
			// An unnamed socket (every client's): Go shows its empty
			// name as an abstract one; C-core says "unix:".
			return "unix:"
		}
		return "unix:" + a.Name
	}
	return addr.Network() + ":" + addr.String()
}
