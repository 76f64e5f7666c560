//go:build grpcgo_patched

package core

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// writeLog counts the writes of a connection that were at least 16 KiB.
type writeLog struct {
	mu    sync.Mutex
	large int
	bytes int
}

func (l *writeLog) add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n >= 16<<10 {
		l.large++
		l.bytes += n
	}
}

func (l *writeLog) get() (large, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.large, l.bytes
}

type loggedConn struct {
	net.Conn
	log *writeLog
}

func (c loggedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.log.add(n)
	return n, err
}

// loggingCreds are insecure credentials whose connections log their writes.
type loggingCreds struct {
	credentials.TransportCredentials
	log *writeLog
}

func (c loggingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	return loggedConn{conn, c.log}, info, err
}

func (c loggingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(conn)
	return loggedConn{conn, c.log}, info, err
}

func (c loggingCreds) Clone() credentials.TransportCredentials { return c }

// A 1 MiB message leaves each end in a few large writes, not in grpc-go's
// default 32 KiB pieces: each write wakes the peer's reader (patched.go).
func TestLargeMessageFewWrites(t *testing.T) {
	var clientLog, serverLog writeLog
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", &ServerCredentials{
		transport: loggingCreds{insecure.NewCredentials(), &serverLog}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := dispatch(srv, func(c *ServerCall) {
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		c.Finish(codes.OK, "", req)
	})
	t.Cleanup(func() {
		srv.Stop(0)
		<-done
	})
	creds := &ChannelCredentials{newTransport: func(string, tls.ClientSessionCache) credentials.TransportCredentials {
		return loggingCreds{insecure.NewCredentials(), &clientLog}
	}}
	ch, err := Dial(net.JoinHostPort("127.0.0.1", itoa(port)), nil, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)

	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	resp, _, st := ch.Unary(spec("/t.Echo/Big"), BytesMsg(msg))
	wantStatus(t, st, codes.OK, "")
	if !bytes.Equal(resp.Materialize(), msg) {
		t.Fatalf("echo differs: %d bytes back", resp.Len())
	}
	resp.Free()
	for _, end := range []struct {
		name string
		log  *writeLog
	}{{"client", &clientLog}, {"server", &serverLog}} {
		large, n := end.log.get()
		if n < len(msg) {
			t.Errorf("%s: %d bytes in writes of 16 KiB or more, want the whole message", end.name, n)
		}
		if large > 4 {
			t.Errorf("%s: the 1 MiB message took %d writes of 16 KiB or more, want at most 4", end.name, large)
		}
	}
}
