//go:build grpcgo_patched

package core

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// frameClient speaks HTTP/2 frame by frame to a server, so a test decides
// when each DATA frame of a request goes out.
type frameClient struct {
	t    *testing.T
	conn net.Conn
	mu   sync.Mutex // guards fr's writes, enc and hbuf
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// status gets each stream's grpc-status as its trailers arrive
	// ("reset" for a RST_STREAM).
	status chan frameStatus
}

type frameStatus struct {
	stream uint32
	code   string
	data   []byte // the response bytes received before the status
}

func frameDial(t *testing.T, target string) *frameClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", target, longWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(longWait))
	r := &frameClient{t: t, conn: conn, status: make(chan frameStatus, 16)}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	r.fr = http2.NewFramer(conn, conn)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hbuf)
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go r.read()
	return r
}

// read collects responses until the connection ends (on the framer's
// reading side, which only this goroutine uses).
func (r *frameClient) read() {
	data := map[uint32][]byte{}
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.mu.Lock()
				r.fr.WriteSettingsAck()
				r.mu.Unlock()
			}
		case *http2.DataFrame:
			data[f.StreamID] = append(data[f.StreamID], f.Data()...)
		case *http2.RSTStreamFrame:
			r.status <- frameStatus{f.StreamID, "reset", nil}
		case *http2.MetaHeadersFrame:
			if code := f.PseudoValue("status"); code == "" {
				for _, hf := range f.Fields {
					if hf.Name == "grpc-status" {
						r.status <- frameStatus{f.StreamID, hf.Value, data[f.StreamID]}
					}
				}
			} else if f.StreamEnded() { // trailers-only
				for _, hf := range f.RegularFields() {
					if hf.Name == "grpc-status" {
						r.status <- frameStatus{f.StreamID, hf.Value, nil}
					}
				}
			}
		}
	}
}

// headers opens stream id on method (extra: more header pairs).
func (r *frameClient) headers(id uint32, method string, end bool, extra ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hbuf.Reset()
	fields := []string{":method", "POST", ":scheme", "http", ":path", method,
		":authority", "x", "content-type", "application/grpc", "te", "trailers"}
	fields = append(fields, extra...)
	for i := 0; i < len(fields); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(),
		EndStream: end, EndHeaders: true})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *frameClient) data(id uint32, b []byte, end bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fr.WriteData(id, end, b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *frameClient) reset(id uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
		r.t.Fatal(err)
	}
}

// waitStatus returns stream id's status and response bytes.
func (r *frameClient) waitStatus(id uint32) frameStatus {
	r.t.Helper()
	for {
		s, _ := recvChan(r.t, "a status", r.status)
		if s.stream == id {
			return s
		}
	}
}

// grpcFrame is msg with gRPC's 5-byte prefix (uncompressed).
func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

// notQueued checks that no call is queued during shortWait.
func notQueued(t *testing.T, srv *Server, what string) {
	t.Helper()
	time.Sleep(shortWait)
	if c, _ := srv.Take(); c != nil {
		t.Fatalf("a call was queued %s: %v %q %v", what, c.Metadata, c.First.Materialize(), c.ctx.Err())
	}
}

// A unary-request call's handler runs on the connection's reader (when no
// other call is in flight), and the reader queues the call only once its
// request is in, however the request
// is cut into DATA frames (its 5-byte prefix cut too) and whether or not the
// client half-closes: meanwhile no goroutine waits for the request (a
// stream worker used to wait in the handler).
func TestReaderQueuesACallOnceItsRequestIsIn(t *testing.T) {
	checkLeaks(t)
	t.Setenv("GRPCGO_SERVER_READER", "1")
	srv, target := newTestServer(t, nil)
	srv.MarkUnaryRequest("/x/U")
	raw := frameDial(t, target)
	msg := grpcFrame(bytes.Repeat([]byte("q"), 100))
	for i, end := range []bool{false, true} {
		id := uint32(1 + 2*i)
		raw.headers(id, "/x/U", false)
		notQueued(t, srv, "before its request")
		if g := handlerGoroutines(); g != 0 {
			t.Fatalf("%d goroutines wait in the handler for a request", g)
		}
		raw.data(id, msg[:1], false)
		raw.data(id, msg[1:4], false)
		raw.data(id, msg[4:50], false)
		notQueued(t, srv, "before all of its request")
		raw.data(id, msg[50:], end) // whole: queued with or without the half-close
		c, ok := srv.Next(testCtx(t).Done())
		if !ok || c == nil {
			t.Fatal("no call")
		}
		if got := c.First.Materialize(); !bytes.Equal(got, msg[5:]) {
			t.Fatalf("request %q, want %q", got, msg[5:])
		}
		c.First = nil
		if err := c.FinishHere(codes.OK, "", BytesMsg([]byte("r"))); err != nil {
			t.Fatal(err)
		}
		if s := raw.waitStatus(id); s.code != "0" || !bytes.Equal(s.data, grpcFrame([]byte("r"))) {
			t.Fatalf("stream %d: status %q, response %q", id, s.code, s.data)
		}
	}
	// Half-closed in its HEADERS (no request): queued at once, no request.
	raw.headers(5, "/x/U", true)
	c, ok := srv.Next(testCtx(t).Done())
	if !ok || c == nil || c.First != nil {
		t.Fatalf("call %v, request %v", c, c.First)
	}
	c.FinishHere(codes.Canceled, "Cancelled", nil)
	if s := raw.waitStatus(5); s.code != "1" {
		t.Fatalf("status %q", s.code)
	}
}

// A call that dies before its request is in (the client resets it, its
// deadline passes) ends and is counted out without ever being queued, and
// request data arriving for it later queues nothing.
func TestReaderCallDiesBeforeItsRequest(t *testing.T) {
	checkLeaks(t)
	t.Setenv("GRPCGO_SERVER_READER", "1")
	srv, target := newTestServer(t, nil)
	srv.MarkUnaryRequest("/x/U")
	raw := frameDial(t, target)
	msg := grpcFrame([]byte("q"))
	raw.headers(1, "/x/U", false)
	raw.data(1, msg[:3], false)
	waitFor(t, "the call to be accepted", func() bool { return ReadCounters().ServerCalls == 1 })
	raw.reset(1)
	waitFor(t, "the reset call to be counted out", func() bool { return ReadCounters().ServerCalls == 0 })
	raw.headers(3, "/x/U", false, "grpc-timeout", "50m")
	// grpc-go resets a stream whose deadline passed, or a status goes out.
	if s := raw.waitStatus(3); s.code != "4" && s.code != "reset" {
		t.Fatalf("status %q, want DEADLINE_EXCEEDED or a reset", s.code)
	}
	waitFor(t, "both calls to be counted out", func() bool { return ReadCounters().ServerCalls == 0 })
	raw.data(3, msg, true) // after its end
	notQueued(t, srv, "for a dead call")
}

// A request larger than the stream's receive window cannot come in whole
// before someone reads it: the call is handed to a goroutine that reads it
// as it comes, and arrives whole.
func TestReaderRequestLargerThanTheWindow(t *testing.T) {
	checkLeaks(t)
	t.Setenv("GRPCGO_SERVER_READER", "1")
	win := Option{Key: "grpc.http2.initial_window_size", Int: 64 << 10, IsInt: true}
	srv, target := newTestServer(t, func(c *ServerCall) {
		m := c.First
		c.First = nil
		c.FinishHere(codes.OK, "", BytesMsg([]byte{byte(m.Len() >> 16)}))
		m.Free()
	}, win)
	srv.MarkUnaryRequest("/x/U")
	ch := dial(t, target, win)
	for _, n := range []int{1 << 10, 60 << 10, 1 << 20} {
		u := ch.StartUnary(spec("/x/U"), BytesMsg(make([]byte, n)))
		closed(t, "call", u.Done)
		if u.Status.Code != codes.OK || u.Response.Materialize()[0] != byte(n>>16) {
			t.Fatalf("%d bytes: %v %v", n, u.Status, u.Response.Materialize())
		}
	}
}

// maximum_concurrent_rpcs counts a call awaiting its request (the second
// call, with one in flight, starts on a stream worker).
func TestReaderAwaitedCallsCountForMaxConcurrent(t *testing.T) {
	checkLeaks(t)
	t.Setenv("GRPCGO_SERVER_READER", "1")
	srv, target := newTestServerOn(t, "127.0.0.1:0", 1, nil)
	srv.MarkUnaryRequest("/x/U")
	raw := frameDial(t, target)
	raw.headers(1, "/x/U", false)
	raw.headers(3, "/x/U", false)
	raw.data(3, grpcFrame([]byte("q")), true)
	if s := raw.waitStatus(3); s.code != "8" {
		t.Fatalf("status %q, want RESOURCE_EXHAUSTED", s.code)
	}
	raw.data(1, grpcFrame([]byte("q")), true)
	c, ok := srv.Next(testCtx(t).Done())
	if !ok || c == nil || string(c.First.Materialize()) != "q" {
		t.Fatal("no call, or not its request")
	}
	c.FinishHere(codes.OK, "", nil)
	if s := raw.waitStatus(1); s.code != "0" {
		t.Fatalf("status %q", s.code)
	}
}
