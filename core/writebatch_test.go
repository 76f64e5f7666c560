//go:build grpcgo_patched

package core

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
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
	port := serveWith(t, loggingCreds{insecure.NewCredentials(), &serverLog}, echoOne)
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

// vecConn is a connection that takes vectored writes (as grpcgo's h2guard
// does over TCP) and logs them.
type vecConn struct {
	net.Conn
	mu     sync.Mutex
	writev int // writev calls of more than one piece
	pieces int
}

func (c *vecConn) GrpcgoVectored() bool { return true }

func (c *vecConn) GrpcgoWritev(bufs *net.Buffers) (int64, error) {
	c.mu.Lock()
	if len(*bufs) > 1 {
		c.writev++
		c.pieces += len(*bufs)
	}
	c.mu.Unlock()
	return bufs.WriteTo(c.Conn)
}

func (c *vecConn) counts() (writev, pieces int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writev, c.pieces
}

// vecCreds are insecure credentials whose connections are vecConns.
type vecCreds struct {
	credentials.TransportCredentials
	mu    sync.Mutex
	conns []*vecConn
}

func (c *vecCreds) wrap(conn net.Conn) net.Conn {
	v := &vecConn{Conn: conn}
	c.mu.Lock()
	c.conns = append(c.conns, v)
	c.mu.Unlock()
	return v
}

func (c *vecCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	return c.wrap(conn), info, err
}

func (c *vecCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(conn)
	return c.wrap(conn), info, err
}

func (c *vecCreds) Clone() credentials.TransportCredentials { return c }

func (c *vecCreds) counts() (writev, pieces int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.conns {
		w, p := v.counts()
		writev += w
		pieces += p
	}
	return writev, pieces
}

// poisonPool spoils every buffer given back to it, as a pool that hands it
// out again at once would: a message freed before it was written goes out
// spoiled.
type poisonPool struct{ puts atomic.Int64 }

func (p *poisonPool) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (p *poisonPool) Put(b *[]byte) {
	for i := range *b {
		(*b)[i] = 0xEE
	}
	p.puts.Add(1)
}

// poisonMsg is data in pieces of 100,000 bytes from pool.
func poisonMsg(pool *poisonPool, data []byte) (Msg, int) {
	var m Msg
	for len(data) > 0 {
		n := min(len(data), 100000)
		b := pool.Get(n)
		copy(*b, data[:n])
		m = append(m, mem.NewBuffer(b, pool))
		data = data[n:]
	}
	return m, len(m)
}

// Large data frames leave straight from the message's own buffers, in one
// writev with the frame headers (no copy into the write buffer), and those
// buffers are given back only once written: a buffer freed earlier (grpc-go
// frees each one as its writer moves past it) would go out spoiled.
func TestDataFramesWrittenFromMessageBuffers(t *testing.T) {
	var serverPool, clientPool poisonPool
	serverCreds := &vecCreds{TransportCredentials: insecure.NewCredentials()}
	clientCreds := &vecCreds{TransportCredentials: insecure.NewCredentials()}
	port := serveWith(t, serverCreds, func(c *ServerCall) {
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		resp, _ := poisonMsg(&serverPool, req.Materialize())
		req.Free()
		c.Finish(codes.OK, "", resp)
	})
	creds := &ChannelCredentials{newTransport: func(string, tls.ClientSessionCache) credentials.TransportCredentials {
		return clientCreds
	}}
	ch, err := Dial(net.JoinHostPort("127.0.0.1", itoa(port)), nil, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)

	want := make([]byte, 3<<20)
	for i := range want {
		want[i] = byte(i % 251)
	}
	for round := 0; round < 3; round++ {
		msg, pieces := poisonMsg(&clientPool, want)
		before := clientPool.puts.Load()
		resp, _, st := ch.Unary(spec("/t.Echo/Big"), msg)
		wantStatus(t, st, codes.OK, "")
		if got := resp.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("round %d: echo differs (%d bytes back)", round, len(got))
		}
		resp.Free()
		// Every piece is given back once written.
		deadline := time.Now().Add(longWait)
		for clientPool.puts.Load()-before < int64(pieces) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := clientPool.puts.Load() - before; got != int64(pieces) {
			t.Fatalf("round %d: %d of the request's %d buffers given back", round, got, pieces)
		}
	}
	for _, end := range []struct {
		name  string
		creds *vecCreds
	}{{"client", clientCreds}, {"server", serverCreds}} {
		writev, pieces := end.creds.counts()
		if writev == 0 || pieces < 2*writev {
			t.Errorf("%s: %d vectored writes of %d pieces, want the messages written that way", end.name, writev, pieces)
		}
	}
}

// frameLog follows the frames read from a connection and notes its DATA
// frames.
type frameLog struct {
	net.Conn
	mu       sync.Mutex
	hdr      [9]byte
	hn, left int
	skip     int
	frames   int // DATA frames
	largest  int
}

func (c *frameLog) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left -= k
			b = b[k:]
			continue
		}
		k := copy(c.hdr[c.hn:], b)
		c.hn += k
		b = b[k:]
		if c.hn == 9 {
			c.hn = 0
			c.left = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
			if c.hdr[3] == 0 { // DATA
				c.frames++
				c.largest = max(c.largest, c.left)
			}
		}
	}
	return n, err
}

type frameLogCreds struct {
	credentials.TransportCredentials
	log *frameLog
}

func (c frameLogCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(conn)
	c.log.Conn = conn
	c.log.skip = clientPrefaceLen
	return c.log, info, err
}

func (c frameLogCreds) Clone() credentials.TransportCredentials { return c }

// Between two grpcgo ends, data frames are as large as grpcgo announces it
// reads (grpc-go alone sends 16 KiB frames whatever its peer takes): a
// 1 MiB message crosses in a handful of frames.
func TestLargeFramesBetweenGrpcgoEnds(t *testing.T) {
	log := &frameLog{}
	port := serveWith(t, frameLogCreds{insecure.NewCredentials(), log}, echoOne)
	ch := dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	resp, _, st := ch.Unary(spec("/t.Echo/Big"), BytesMsg(msg))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "echo", resp.Materialize(), msg)
	resp.Free()
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.largest <= 16<<10 || log.frames > 10 {
		t.Fatalf("the 1 MiB request came in %d DATA frames of at most %d bytes, want at most 10 larger than 16 KiB",
			log.frames, log.largest)
	}
}

// The goroutine reading a large message wakes once for it, not once per
// frame: frames that arrive while it waits for the rest of the message are
// kept back until the whole message is there
// (patches/grpc-go/transport_recvgate_grpcgo.go.in).
func TestLargeMessageOneWakeup(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// One P runs the reader only between the writer's bursts: it never
		// waits for the rest of a message, so nothing is ever held back.
		t.Skip("needs a reader running while the frames arrive (GOMAXPROCS >= 2)")
	}
	_, target := newTestServer(t, func(c *ServerCall) {
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		c.Finish(codes.OK, "", req)
	})
	ch := dial(t, target)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: 9 frames
	// Whether a reader waits before the last frames come is up to timing
	// (a message read in one go holds none back): echo until one did.
	before := grpc.GrpcgoHeldFrames()
	for i := 0; i < 30 && grpc.GrpcgoHeldFrames() == before; i++ {
		resp, _, st := ch.Unary(spec("/t.Echo/Big"), BytesMsg(msg))
		wantStatus(t, st, codes.OK, "")
		wantBytes(t, "echo", resp.Materialize(), msg)
		resp.Free()
	}
	if held := grpc.GrpcgoHeldFrames() - before; held == 0 {
		t.Fatal("no frame of thirty 1 MiB echoes was kept back from a reader waiting for the rest of its message")
	}
}

// serveWith starts a server on 127.0.0.1 whose connections go through
// transport, each call to h; it returns the port.
func serveWith(t *testing.T, transport credentials.TransportCredentials, h handler) int {
	t.Helper()
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", &ServerCredentials{transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := dispatch(srv, h)
	t.Cleanup(func() {
		srv.Stop(0)
		<-done
	})
	return port
}

// echoOne answers a unary call with its request.
func echoOne(c *ServerCall) {
	req, err := c.RecvOne()
	if err != nil {
		c.Finish(codes.Internal, err.Error(), nil)
		return
	}
	c.Finish(codes.OK, "", req)
}
