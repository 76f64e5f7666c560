//go:build grpcgo_patched

package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// A detached unary call finished with FinishHere writes its response and
// status on the finishing goroutine when grpc-go's writer is idle
// (patches/grpc-go/transport_inline_grpcgo.go.in, GrpcgoUncorkWrite). These
// tests read the server's frames with a raw HTTP/2 client: every frame must
// parse, every header block decode (HPACK's table follows the wire order,
// so a block written out of order decodes wrong or not at all), and every
// stream show HEADERS, DATA, trailers in that order with its own content.

// rawClient is an HTTP/2 client that sends gRPC requests and checks the
// frames that come back.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	wmu  sync.Mutex
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32

	in      slowReader
	mu      sync.Mutex
	streams map[uint32]*rawStream
	pings   map[[8]byte]bool
	failed  error
}

// slowReader reads at most 1 KiB at a time, pausing before each read,
// while slow is set.
type slowReader struct {
	r    net.Conn
	slow atomic.Bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.slow.Load() {
		time.Sleep(200 * time.Microsecond)
		p = p[:min(len(p), 1024)]
	}
	return s.r.Read(p)
}

type rawStream struct {
	method   string
	id       int
	state    int // 0: nothing yet, 1: headers, 2: ended
	data     []byte
	header   map[string]string
	trailer  map[string]string
	trOnly   bool
	finished chan struct{}
}

// dialRaw connects to target; rcvbuf > 0 shrinks the socket's receive
// buffer (so that a server writing to it fills it soon).
func dialRaw(t *testing.T, target string, rcvbuf int) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: longWait}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	conn, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, next: 1, streams: map[uint32]*rawStream{}, pings: map[[8]byte]bool{}}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr = http2.NewFramer(conn, &c.in)
	c.in.r = conn
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	// Windows large enough that flow control never holds the server.
	must(t, c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}))
	must(t, c.fr.WriteWindowUpdate(0, 1<<30))
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// call opens a stream for method with request req (the call's id as text).
func (c *rawClient) call(method string, id int) *rawStream {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	sid := c.next
	c.next += 2
	s := &rawStream{method: method, id: id, finished: make(chan struct{})}
	c.mu.Lock()
	c.streams[sid] = s
	c.mu.Unlock()
	c.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method},
		{":authority", "x"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	must(c.t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}))
	req := []byte(strconv.Itoa(id))
	msg := make([]byte, 5+len(req))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(req)))
	copy(msg[5:], req)
	must(c.t, c.fr.WriteData(sid, true, msg))
	return s
}

// ping sends a PING whose ACK the reader expects.
func (c *rawClient) ping(n int) {
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(n))
	c.mu.Lock()
	c.pings[p] = true
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	must(c.t, c.fr.WritePing(false, p))
}

func (c *rawClient) fail(format string, args ...any) {
	c.mu.Lock()
	if c.failed == nil {
		c.failed = fmt.Errorf(format, args...)
	}
	c.mu.Unlock()
}

// read reads frames until the connection fails or closes.
func (c *rawClient) read() {
	for {
		f, err := c.fr.ReadFrame()
		if debugRaw {
			fmt.Println("frame", f, err)
			if g, ok := f.(*http2.GoAwayFrame); ok {
				fmt.Printf("goaway %q %v\n", g.DebugData(), g.ErrCode)
			}
		}
		if err != nil {
			if !strings.Contains(err.Error(), "closed") && !strings.Contains(err.Error(), "EOF") {
				c.fail("reading frames: %v", err)
			}
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.wmu.Lock()
				c.fr.WriteSettingsAck()
				c.wmu.Unlock()
			}
		case *http2.PingFrame:
			c.mu.Lock()
			if f.IsAck() {
				if !c.pings[f.Data] {
					c.fail("unexpected ping ack %x", f.Data)
				}
				delete(c.pings, f.Data)
			}
			c.mu.Unlock()
		case *http2.MetaHeadersFrame:
			c.headers(f)
		case *http2.DataFrame:
			c.mu.Lock()
			s := c.streams[f.StreamID]
			if s == nil || s.state != 1 {
				c.fail("DATA on stream %d out of place", f.StreamID)
			} else {
				s.data = append(s.data, f.Data()...)
				if f.StreamEnded() {
					c.fail("stream %d ended by DATA", f.StreamID)
				}
			}
			c.mu.Unlock()
		case *http2.WindowUpdateFrame, *http2.GoAwayFrame:
		case *http2.RSTStreamFrame:
			// NO_ERROR after the trailers: the server ended the call
			// before it read the request's END_STREAM (grpc-go's way).
			c.mu.Lock()
			if s := c.streams[f.StreamID]; s == nil || s.state != 2 || f.ErrCode != http2.ErrCodeNo {
				c.fail("stream %d reset: %v", f.StreamID, f.ErrCode)
			}
			c.mu.Unlock()
		default:
			c.fail("unexpected frame %v", f.Header())
		}
	}
}

func (c *rawClient) headers(f *http2.MetaHeadersFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil || s.state == 2 {
		c.fail("HEADERS on stream %d out of place", f.StreamID)
		return
	}
	fields := map[string]string{}
	for _, hf := range f.Fields {
		fields[hf.Name] = hf.Value
	}
	if s.state == 0 {
		if fields[":status"] != "200" {
			c.fail("stream %d: headers %v", f.StreamID, fields)
		}
		s.header, s.state = fields, 1
		if !f.StreamEnded() {
			return
		}
		s.trOnly = true
	}
	s.trailer, s.state = fields, 2
	if !f.StreamEnded() {
		c.fail("stream %d: trailers without END_STREAM", f.StreamID)
	}
	close(s.finished)
}

// smallResponse is call id's response: under quickLast, copied into the
// writer's buffer (not referenced), so it may go out inline.
func smallResponse(id int) []byte {
	return bytes.Repeat([]byte(strconv.Itoa(id)+","), 3000)[:3000]
}

// inlineHandler serves the methods these tests call, finishing each call
// with FinishHere as grpcgo's pool threads do.
func inlineHandler(t *testing.T) handler {
	return func(c *ServerCall) {
		m, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, "no request", nil)
			return
		}
		id, _ := strconv.Atoi(string(m.Materialize()))
		c.SetTrailer(metadata.Pairs("id", strconv.Itoa(id)))
		switch c.Method {
		case "/x/small":
			c.FinishHere(codes.OK, "", BytesMsg(smallResponse(id)))
		case "/x/header":
			c.SendHeader(metadata.Pairs("hid", strconv.Itoa(id)))
			c.FinishHere(codes.OK, "", BytesMsg(smallResponse(id)))
		case "/x/error":
			c.FinishHere(codes.NotFound, "nf-"+strconv.Itoa(id), nil)
		case "/x/big":
			c.FinishHere(codes.OK, "", BytesMsg(bytes.Repeat([]byte{byte(id)}, 200<<10)))
		}
	}
}

// check verifies a finished stream's frames.
func (s *rawStream) check() error {
	id := strconv.Itoa(s.id)
	if s.trailer["id"] != id {
		return fmt.Errorf("call %d (%s): trailer %v", s.id, s.method, s.trailer)
	}
	var want []byte
	switch s.method {
	case "/x/error":
		if !s.trOnly || s.trailer["grpc-status"] != "5" || s.trailer["grpc-message"] != "nf-"+id {
			return fmt.Errorf("call %d: not trailers-only NOT_FOUND: %v (trailers-only %v)", s.id, s.trailer, s.trOnly)
		}
		return nil
	case "/x/header":
		if s.header["hid"] != id {
			return fmt.Errorf("call %d: header %v", s.id, s.header)
		}
		want = smallResponse(s.id)
	case "/x/small":
		want = smallResponse(s.id)
	case "/x/big":
		want = bytes.Repeat([]byte{byte(s.id)}, 200<<10)
	}
	if s.trailer["grpc-status"] != "0" || s.trOnly {
		return fmt.Errorf("call %d (%s): trailers %v", s.id, s.method, s.trailer)
	}
	if len(s.data) != 5+len(want) || !bytes.Equal(s.data[5:], want) ||
		binary.BigEndian.Uint32(s.data[1:]) != uint32(len(want)) {
		return fmt.Errorf("call %d (%s): %d bytes of data, want %d", s.id, s.method, len(s.data), 5+len(want))
	}
	return nil
}

func waitStreams(t *testing.T, c *rawClient, streams []*rawStream) {
	t.Helper()
	deadline := time.After(longWait)
	for _, s := range streams {
		select {
		case <-s.finished:
		case <-deadline:
			c.mu.Lock()
			err := c.failed
			c.mu.Unlock()
			t.Fatalf("call %d (%s) never ended (%v)", s.id, s.method, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		t.Fatal(c.failed)
	}
	for _, s := range streams {
		if err := s.check(); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.pings) != 0 {
		t.Fatalf("%d pings never acknowledged", len(c.pings))
	}
}

// Many calls in flight on one connection, finished from as many goroutines
// at once, with pings and large responses (which the writer writes) among
// them; then calls one at a time, which find the writer idle and go out
// inline.
func TestServerInlineFinishInterleaves(t *testing.T) {
	if !serverInline {
		t.Skip("GRPCGO_SERVER_INLINE=0")
	}
	if runtime.GOMAXPROCS(0) < 2 {
		// One P: each finisher runs before grpc-go's writer (which yields
		// after a write) is back waiting, so none finds it idle (inline
		// and left-to-loopy counts both stay 0; two Ps: 6 of 60 inline).
		t.Skip("needs the writer parked idle between calls (GOMAXPROCS >= 2)")
	}
	_, target := newTestServer(t, inlineHandler(t))
	c := dialRaw(t, target, 0)
	go c.read()
	methods := []string{"/x/small", "/x/header", "/x/error", "/x/small", "/x/big"}
	var streams []*rawStream
	for i := 0; i < 400; i++ {
		streams = append(streams, c.call(methods[i%len(methods)], i))
		if i%150 == 0 { // at most 3: grpc-go counts quicker pings as abuse
			c.ping(i)
		}
	}
	waitStreams(t, c, streams)

	inline, _ := grpc.GrpcgoServerInline()
	streams = nil
	for i := 0; i < 60; i++ {
		s := c.call(methods[i%4], 1000+i)
		closed(t, "call", s.finished)
		streams = append(streams, s)
	}
	waitStreams(t, c, streams)
	if after, _ := grpc.GrpcgoServerInline(); after == inline {
		t.Fatal("no call alone on its connection was written by its finisher")
	}
}

// A peer that stops reading: calls one at a time (each alone on the
// connection, so its finisher writes when the writer is idle) until the
// socket is full and beyond; no finisher waits for it (each FinishHere
// returns); once the peer reads again, every call arrives whole and in
// order.
func TestServerInlinePeerStopsReading(t *testing.T) {
	if !serverInline {
		t.Skip("GRPCGO_SERVER_INLINE=0")
	}
	finished := make(chan int, 1)
	h := inlineHandler(t)
	_, target := newTestServer(t, func(c *ServerCall) {
		h(c)
		finished <- 0
	})
	c := dialRaw(t, target, 4096)
	inline, left := grpc.GrpcgoServerInline()
	// More than the two sockets' buffers hold (the sender's grows to
	// tcp_wmem's maximum, 4 MiB by default).
	const n = 2500
	var streams []*rawStream
	for i := 0; i < n; i++ {
		streams = append(streams, c.call("/x/small", i))
		if i%1000 == 0 {
			c.ping(i)
		}
		recvChan(t, "the handler to return with the peer not reading", finished)
	}
	// Until the socket filled, the finishers wrote; then the writer
	// (which may meet the full socket first, with a frame of its own)
	// or a finisher's partial write left the rest to it. (On one P a
	// finisher rarely finds the writer idle: see the test above.)
	if inline2, left2 := grpc.GrpcgoServerInline(); inline2 == inline && runtime.GOMAXPROCS(0) >= 2 {
		t.Fatal("no finisher wrote its call's frames")
	} else {
		t.Logf("%d calls written whole by their finishers, %d partly or not", inline2-inline, left2-left)
	}
	go c.read()
	waitStreams(t, c, streams)

	// Then a slow reader: the socket fills and drains by turns, and a
	// finisher's write may go out in part (the writer writes the rest).
	c.in.slow.Store(true)
	_, left = grpc.GrpcgoServerInline()
	streams = nil
	for i := 0; i < n; i++ {
		streams = append(streams, c.call("/x/small", n+i))
		recvChan(t, "the handler to return with the peer reading slowly", finished)
	}
	_, left2 := grpc.GrpcgoServerInline()
	t.Logf("slow reader: %d left to the writer", left2-left)
	c.in.slow.Store(false)
	waitStreams(t, c, streams)
}

var debugRaw = false
