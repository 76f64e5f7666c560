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

type portCredentials struct{}

var insecureServer = insecure.NewCredentials()

func (portCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc, ok := conn.(*portConn)
	if !ok || pc.creds == nil || pc.creds.transport == nil {
		return insecureServer.ServerHandshake(conn)
	}
	return pc.creds.transport.ServerHandshake(pc.Conn)
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
