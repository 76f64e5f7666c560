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
type portCredentials struct{ guard GuardLimits }

var insecureServer = insecure.NewCredentials()

func (p portCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc, ok := conn.(*portConn)
	if !ok {
		return insecureServer.ServerHandshake(conn)
	}
	var info credentials.AuthInfo
	var err error
	conn = pc.Conn
	if pc.creds != nil && pc.creds.transport != nil {
		if conn, info, err = pc.creds.transport.ServerHandshake(pc.Conn); err != nil {
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
