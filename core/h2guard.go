package core

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
)

// h2guard watches the HTTP/2 frames a peer sends on one connection, for what
// grpc-go (and golang.org/x/net's framer under it) leaves unbounded:
//
//   - Server side, an endless header block: x/net reads CONTINUATION frames
//     until one ends the block, and counts only their bytes, so empty ones
//     keep a connection (and its reader) forever (CVE-2023-45288). A block
//     continued by more than MaxContinuations frames ends the connection.
//   - Server side, rapid reset (CVE-2023-44487): grpc-go bounds the
//     handlers running at once but never sends the peer away. More than
//     MaxResetsPerSecond RST_STREAM frames within a second end the
//     connection.
//   - Client side, illegal SETTINGS (RFC 9113 6.5.2): grpc-go took a
//     MAX_FRAME_SIZE out of range without a word, and calls then waited for
//     the server to close. The connection ends at once, saying which value.
//
// A server ends a connection the way grpc-go and grpcio servers send abusive
// peers away: GOAWAY with ENHANCE_YOUR_CALM, written at the next frame
// boundary of what grpc-go writes, then the connection is closed. Only frame
// headers are parsed (and SETTINGS payloads on the client side): a few
// instructions per frame.
type h2guard struct {
	net.Conn
	lim    GuardLimits
	server bool

	// Reader state, touched only by grpc-go's reading goroutine.
	skip     int // client preface bytes still to skip (server side)
	hdr      [9]byte
	hn       int    // header bytes gathered
	left     int    // payload bytes of the current frame still to come
	kind     byte   // type of the current frame
	settings []byte // the current SETTINGS payload (client side)
	inBlock  bool   // a header block is open: CONTINUATION frames follow
	conts    int    // CONTINUATION frames in the open header block
	resets   int    // RST_STREAM frames in the current second
	since    time.Time
	lastID   uint32 // highest stream the peer opened
	failed   error

	// Writer state (server side), under wmu.
	wmu     sync.Mutex
	whn     int // header bytes of the current outgoing frame seen
	whdr    [9]byte
	wleft   int         // payload bytes of the current outgoing frame to come
	goaway  []byte      // to write at the next frame boundary
	wvec    net.Buffers // GrpcgoWritev's pieces, for track
	wdone   bool        // GOAWAY written: grpc-go writes nothing more
	closing sync.Once

	// The socket for GrpcgoTryWrite (nil: TLS or another kind of conn),
	// made with the guard: SyscallConn makes a new one per call.
	raw syscall.RawConn

	// An event loop reads the connection itself for a while (loopread.go):
	// noWait makes Read return EAGAIN instead of waiting (set around the
	// loop's reads); loopFd, that the socket was handed out (the loop
	// holds a dup of it, so Close shuts it down first: the peer sees the
	// end now, not when the loop lets go of its dup).
	noWait atomic.Bool
	loopFd atomic.Bool
	// Go's poller's interest in the socket's input, dropped while the
	// loop reads (pollmute_linux.go).
	mute pollMute
}

// GrpcgoNoWait makes Read return EAGAIN instead of waiting (on) or not.
func (g *h2guard) GrpcgoNoWait(on bool) { g.noWait.Store(on) }

// GrpcgoLoopFd is the socket, for a loop to watch (-1: none, TLS).
func (g *h2guard) GrpcgoLoopFd() int {
	fd := -1
	if g.raw != nil {
		g.raw.Control(func(f uintptr) { fd = int(f) })
	}
	if fd >= 0 {
		g.loopFd.Store(true)
	}
	return fd
}

// GrpcgoPollRead drops (false) or restores Go's poller's interest in the
// socket's input (grpc-go's reader goroutine, around its parking).
func (g *h2guard) GrpcgoPollRead(on bool) {
	if g.raw != nil {
		g.raw.Control(func(fd uintptr) { g.mute.setRead(int(fd), on) })
	}
}

// readNoWait reads what the socket has now, EAGAIN if nothing.
func (g *h2guard) readNoWait(p []byte) (int, error) {
	t := noWaitReads.Get().(*noWaitRead)
	t.p, t.n, t.err = p, 0, nil
	err := g.raw.Read(t.read)
	n, rerr := t.n, t.err
	t.p = nil
	noWaitReads.Put(t)
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// noWaitRead is readNoWait's callback and its results, pooled (no closure
// per read).
type noWaitRead struct {
	p    []byte
	n    int
	err  error
	read func(fd uintptr) bool
}

var noWaitReads = sync.Pool{New: func() any {
	t := &noWaitRead{}
	t.read = func(fd uintptr) bool {
		for {
			t.n, t.err = syscall.Read(int(fd), t.p)
			if t.err != syscall.EINTR {
				return true // EAGAIN included: no waiting
			}
		}
	}
	return t
}}

// rawOf is c's socket for writes that must not wait: a TCP or unix
// connection's; nil for any other (TLS).
func rawOf(c net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tryWrite is one GrpcgoTryWrite's loop over the socket, pooled: RawConn's
// Write takes a func, and a closure over the caller's locals would be two
// allocations per write (the closure and the count it updates).
type tryWrite struct {
	b     []byte
	n     int
	write func(fd uintptr) bool
}

var tryWrites = sync.Pool{New: func() any {
	t := new(tryWrite)
	t.write = t.loop
	return t
}}

func (t *tryWrite) loop(fd uintptr) bool {
	for t.n < len(t.b) {
		k, e := syscall.Write(int(fd), t.b[t.n:])
		if e == syscall.EINTR {
			continue
		}
		if e != nil || k <= 0 {
			break
		}
		t.n += k
	}
	return true
}

// GuardLimits bounds what a peer may send (0: no bound).
type GuardLimits struct {
	MaxContinuations   int
	MaxResetsPerSecond int
}

// Defaults: a legitimate header block fills its frames (16 KiB each: 1024
// of them carry grpc-go's 16 MiB header list limit); a rapid-reset attacker
// sends hundreds of thousands of resets a second, while a busy client that
// cancels a fifth of 5,000 calls a second sends 1,000.
var defaultGuardLimits = GuardLimits{MaxContinuations: 1024, MaxResetsPerSecond: 10000}

const (
	frameHeaders       = 0x1
	frameRSTStream     = 0x3
	frameSettings      = 0x4
	frameContinuation  = 0x9
	flagEndHeaders     = 0x4
	flagAck            = 0x1
	errEnhanceYourCalm = 0xb
	clientPrefaceLen   = 24
)

// errAbusivePeer is what grpc-go's reader sees once a server sent the peer
// away.
var errAbusivePeer = errors.New("grpcgo: the peer was sent away (GOAWAY ENHANCE_YOUR_CALM)")

func guardServerConn(c net.Conn, lim GuardLimits) net.Conn {
	if lim.MaxContinuations == 0 && lim.MaxResetsPerSecond == 0 {
		return c
	}
	return &h2guard{Conn: c, lim: lim, server: true, skip: clientPrefaceLen, raw: rawOf(c)}
}

func guardClientConn(c net.Conn) net.Conn { return &h2guard{Conn: c, raw: rawOf(c)} }

func (g *h2guard) Read(p []byte) (int, error) {
	if g.failed != nil {
		return 0, g.failed
	}
	var n int
	var err error
	if g.noWait.Load() && g.raw != nil {
		n, err = g.readNoWait(p)
	} else {
		n, err = g.Conn.Read(p)
	}
	if n > 0 {
		if bad := g.inspect(p[:n]); bad != nil {
			g.failed = bad
			if g.server {
				g.sendAway(bad.Error())
				return 0, errAbusivePeer
			}
			return 0, bad
		}
	}
	return n, err
}

// inspect follows the frames in b; an error says the peer broke a bound.
func (g *h2guard) inspect(b []byte) error {
	if g.skip > 0 {
		k := min(g.skip, len(b))
		g.skip -= k
		b = b[k:]
	}
	for len(b) > 0 {
		if g.left > 0 {
			k := min(g.left, len(b))
			if g.kind == frameSettings && !g.server {
				g.settings = append(g.settings, b[:k]...)
			}
			g.left -= k
			b = b[k:]
			if g.left == 0 && g.kind == frameSettings && !g.server {
				if err := checkSettings(g.settings); err != nil {
					return err
				}
			}
			continue
		}
		k := copy(g.hdr[g.hn:], b)
		g.hn += k
		b = b[k:]
		if g.hn < len(g.hdr) {
			return nil
		}
		g.hn = 0
		if err := g.frame(); err != nil {
			return err
		}
	}
	return nil
}

// frame looks at a complete frame header.
func (g *h2guard) frame() error {
	length := int(g.hdr[0])<<16 | int(g.hdr[1])<<8 | int(g.hdr[2])
	kind, flags := g.hdr[3], g.hdr[4]
	stream := binary.BigEndian.Uint32(g.hdr[5:]) & 0x7fffffff
	g.kind, g.left = kind, length
	switch kind {
	case frameSettings:
		g.settings = g.settings[:0]
		if !g.server && flags&flagAck == 0 && length == 0 {
			return nil
		}
	case frameHeaders:
		g.lastID = max(g.lastID, stream)
		g.inBlock, g.conts = flags&flagEndHeaders == 0, 0
	case frameContinuation:
		if g.server && g.inBlock {
			if g.conts++; g.lim.MaxContinuations > 0 && g.conts > g.lim.MaxContinuations {
				return fmt.Errorf("a header block continued by more than %d CONTINUATION frames",
					g.lim.MaxContinuations)
			}
		}
		if flags&flagEndHeaders != 0 {
			g.inBlock = false
		}
	case frameRSTStream:
		if g.server && g.lim.MaxResetsPerSecond > 0 {
			if now := time.Now(); now.Sub(g.since) > time.Second {
				g.since, g.resets = now, 0
			}
			if g.resets++; g.resets > g.lim.MaxResetsPerSecond {
				return fmt.Errorf("more than %d RST_STREAM frames in a second", g.lim.MaxResetsPerSecond)
			}
		}
	}
	return nil
}

// checkSettings checks a SETTINGS payload's values (RFC 9113 6.5.2).
func checkSettings(p []byte) error {
	for ; len(p) >= 6; p = p[6:] {
		id, v := binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:])
		switch {
		case id == 2 && v > 1:
			return fmt.Errorf("the server sent illegal SETTINGS: ENABLE_PUSH %d (must be 0 or 1)", v)
		case id == 4 && v > 1<<31-1:
			return fmt.Errorf("the server sent illegal SETTINGS: INITIAL_WINDOW_SIZE %d (at most %d)", v, 1<<31-1)
		case id == 5 && (v < 1<<14 || v > 1<<24-1):
			return fmt.Errorf("the server sent illegal SETTINGS: MAX_FRAME_SIZE %d (must be %d to %d)",
				v, 1<<14, 1<<24-1)
		}
	}
	return nil
}

// sendAway writes GOAWAY (ENHANCE_YOUR_CALM, saying why) at the next
// boundary between the frames grpc-go writes, then closes the connection.
func (g *h2guard) sendAway(why string) {
	debug := []byte(why)
	f := make([]byte, 9+8+len(debug))
	binary.BigEndian.PutUint32(f, uint32(8+len(debug))<<8|7) // length, type GOAWAY
	binary.BigEndian.PutUint32(f[9:], g.lastID)
	binary.BigEndian.PutUint32(f[13:], errEnhanceYourCalm)
	copy(f[17:], debug)
	g.wmu.Lock()
	g.goaway = f
	g.flushAway()
	g.wmu.Unlock()
	// If grpc-go is in the middle of a frame and writes no more, close
	// anyway.
	time.AfterFunc(time.Second, func() { g.Close() })
}

// flushAway writes the pending GOAWAY if the output is at a frame boundary,
// then closes. wmu held.
func (g *h2guard) flushAway() {
	if g.goaway == nil || g.wdone || g.whn != 0 || g.wleft != 0 {
		return
	}
	g.wdone = true
	g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	g.Conn.Write(g.goaway)
	go g.Close()
}

func (g *h2guard) Write(b []byte) (int, error) {
	if !g.server {
		n, err := g.Conn.Write(b)
		return n, g.explain(err)
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.wdone {
		return 0, errAbusivePeer
	}
	n, err := g.Conn.Write(b)
	g.track(b[:n])
	g.flushAway()
	return n, err
}

// vectorConn is what grpc-go's patched writer asks of a connection wrapper
// before it queues large data frames by reference instead of copying them
// (patches/grpc-go/transport_writev_grpcgo.go.in): whether it can write
// pieces in order with one writev, and that write.
type vectorConn interface {
	GrpcgoVectored() bool
	GrpcgoWritev(bufs *net.Buffers) (int64, error)
}

// GrpcgoVectored says whether GrpcgoWritev writes with one writev: over a
// plain TCP or unix connection, or a wrapper of one that can. TLS encrypts
// into a buffer of its own: grpc-go keeps copying.
func (g *h2guard) GrpcgoVectored() bool {
	switch c := g.Conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	case vectorConn:
		return c.GrpcgoVectored()
	}
	return false
}

// GrpcgoWritev is Write for several pieces, in order, with one writev.
func (g *h2guard) GrpcgoWritev(bufs *net.Buffers) (int64, error) {
	if !g.server {
		n, err := g.writev(bufs)
		return n, g.explain(err)
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.wdone {
		return 0, errAbusivePeer
	}
	g.wvec = append(g.wvec[:0], *bufs...) // the write consumes *bufs
	n, err := g.writev(bufs)
	for i, left := 0, n; left > 0 && i < len(g.wvec); i++ {
		k := min(left, int64(len(g.wvec[i])))
		g.track(g.wvec[i][:k])
		left -= k
	}
	clear(g.wvec)
	g.flushAway()
	return n, err
}

func (g *h2guard) writev(bufs *net.Buffers) (int64, error) {
	if c, ok := g.Conn.(vectorConn); ok {
		return c.GrpcgoWritev(bufs)
	}
	return bufs.WriteTo(g.Conn)
}

// track follows the frames grpc-go wrote (server side). wmu held.
func (g *h2guard) track(b []byte) {
	for len(b) > 0 {
		if g.wleft > 0 {
			k := min(g.wleft, len(b))
			g.wleft -= k
			b = b[k:]
			continue
		}
		k := copy(g.whdr[g.whn:], b)
		g.whn += k
		b = b[k:]
		if g.whn == len(g.whdr) {
			g.whn = 0
			g.wleft = int(g.whdr[0])<<16 | int(g.whdr[1])<<8 | int(g.whdr[2])
		}
	}
}

// Close half-closes first once a GOAWAY went out, so the peer reads it
// before the connection goes (closing with unread input would reset it).
func (g *h2guard) Close() error {
	var err error
	g.closing.Do(func() {
		// Go's poller back on the input (the drain below reads), and no
		// change to it after: the descriptor may soon be another socket's.
		if g.raw == nil || g.raw.Control(func(fd uintptr) { g.mute.close(int(fd)) }) != nil {
			g.mute.close(-1)
		}
		if g.server && g.failed != nil {
			if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
				g.Conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				buf := make([]byte, 4096)
				for i := 0; i < 64; i++ {
					if _, rerr := g.Conn.Read(buf); rerr != nil {
						break
					}
				}
			}
		}
		if g.loopFd.Load() {
			if cr, ok := g.Conn.(interface{ CloseRead() error }); ok {
				cr.CloseRead()
			}
			if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}
		err = g.Conn.Close()
	})
	return err
}

// explain gives a client write that failed because the server hung up
// what the server said first: "write: broken pipe" says nothing, the TLS
// alert waiting to be read says why (the server refused this client's
// certificate, say). Any other error (or nil) comes back as it is.
func (g *h2guard) explain(werr error) error {
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		return werr
	}
	g.Conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	defer g.Conn.SetReadDeadline(time.Time{})
	var buf [512]byte
	if _, err := g.Conn.Read(buf[:]); err != nil && strings.Contains(err.Error(), "tls:") {
		return fmt.Errorf("the server closed the connection: %w", err)
	}
	return werr
}

// guardedCreds wraps a channel's transport credentials so that every
// connection they hand grpc-go is watched (client side).
type guardedCreds struct {
	credentials.TransportCredentials
}

func (c guardedCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return conn, info, err
	}
	return guardClientConn(conn), info, nil
}

func (c guardedCreds) Clone() credentials.TransportCredentials {
	return guardedCreds{c.TransportCredentials.Clone()}
}

// GrpcgoTryWrite writes what the socket takes of b now, never waiting (a
// client's frames written by the calling thread, a server's unary response
// and status by the thread that finished the call: patches/grpc-go/
// transport_inline_grpcgo.go.in). It stops at the first error too: the
// writer's own (blocking) write of the rest meets it again and reports it
// as every write does. ok false: this connection cannot (TLS), and nothing
// was written. A server's connection writes nothing here once it is sending
// the peer away: the writer's Write places the GOAWAY.
func (g *h2guard) GrpcgoTryWrite(b []byte) (n int, ok bool) {
	rc := g.raw
	if rc == nil {
		return 0, false
	}
	if g.server {
		g.wmu.Lock()
		defer g.wmu.Unlock()
		if g.wdone || g.goaway != nil {
			return 0, true
		}
	}
	t := tryWrites.Get().(*tryWrite)
	t.b, t.n = b, 0
	rc.Write(t.write)
	n = t.n
	t.b = nil
	tryWrites.Put(t)
	if g.server {
		g.track(b[:n])
	}
	return n, true
}
