package core

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// grpc-go gives a server one set of transport credentials; grpcio gives
// each port its own. portListener tags every connection with its port's
// credentials and portCredentials hands the handshake to them.

type portListener struct {
	net.Listener
	creds *ServerCredentials
}

func (l portListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &portConn{Conn: c, creds: l.creds}, nil
}

type portConn struct {
	net.Conn
	creds *ServerCredentials
}

// portCredentials also watches every connection's frames (h2guard.go).
// On an xDS-enabled server, byPort finds a connection's credentials.
type portCredentials struct {
	guard  GuardLimits
	byPort func(net.Conn) *ServerCredentials
}

var insecureServer = insecure.NewCredentials()

func (p portCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	var creds *ServerCredentials
	if pc, ok := conn.(*portConn); ok {
		creds, conn = pc.creds, pc.Conn
	} else if p.byPort != nil {
		creds = p.byPort(conn) // conn stays grpc-go's xDS wrapper: xDS credentials need it
	} else {
		return insecureServer.ServerHandshake(conn)
	}
	var info credentials.AuthInfo
	var err error
	if creds != nil && creds.transport != nil {
		if conn, info, err = creds.transport.ServerHandshake(conn); err != nil {
			return conn, info, err
		}
	} else if conn, info, err = insecureServer.ServerHandshake(conn); err != nil {
		return conn, info, err
	}
	return guardServerConn(conn, p.guard), info, nil
}

func (portCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errNotClient
}

func (portCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "per-port"}
}
func (p portCredentials) Clone() credentials.TransportCredentials { return p }
func (portCredentials) OverrideServerName(string) error           { return nil }

var errNotClient = net.UnknownNetworkError("server-side credentials cannot dial")
