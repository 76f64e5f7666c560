package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Server accepts calls on its ports and hands each one, whatever its
// method, to whoever takes it from Next: grpcio's handler lookup, and the
// handlers themselves, live with the caller.
type Server struct {
	gs         grpcServer
	xds        bool // xDS-enabled: ports serve as the control plane says (xds.go)
	reusePort  bool
	compressor string
	disabled   []string // request encodings refused (DisabledEncodings)
	mdLimits   MetadataLimits

	// incoming queues accepted calls for Next/Take; enqueueing happens
	// under inMu's read lock and only before quit closes, so once Stop holds
	// the write lock no call can be queued behind its back.
	incoming chan *ServerCall
	inMu     sync.RWMutex
	notify   func(stopped bool) // called after each call is queued (false), and once at stop (true)
	quit     chan struct{}      // closed when stopping starts: no new calls
	stopped  chan struct{}      // closed when the server has fully stopped

	maxConcurrent int64 // 0: unlimited
	active        atomic.Int64
	inFlight      atomic.Int64 // calls accepted and not yet ended (onReader)

	// unaryRequest holds the methods whose handler takes one request: their
	// request is read before the call is handed over, saving the binding a
	// blocking step per call.
	unaryRequest sync.Map

	mu        sync.Mutex
	listeners []net.Listener
	// portCreds holds each port's credentials on an xDS-enabled server,
	// whose connections reach the handshake wrapped by grpc-go's xDS
	// listener (the one grpc-go's routing and xDS credentials need), not
	// tagged by a portListener.
	portCreds sync.Map // port (int) -> *ServerCredentials
	started   bool
	stopping  bool
}

// ErrServerStopped is returned by operations on a stopped server.
var ErrServerStopped = errors.New("server is stopped")

// NewServer creates a server. maxConcurrent > 0 refuses calls beyond that
// many in flight with RESOURCE_EXHAUSTED.
func NewServer(opts []Option, maxConcurrent int) *Server {
	s, _ := newServer(opts, maxConcurrent, false)
	return s
}

// NewXDSServer creates an xDS-enabled server (grpcio's grpc.server(...,
// xds=True)): its ports serve TCP only, each as its Listener resource from
// the management server says. It fails when the bootstrap is missing or
// has no server_listener_resource_name_template.
func NewXDSServer(opts []Option, maxConcurrent int) (*Server, error) {
	return newServer(opts, maxConcurrent, true)
}

func newServer(opts []Option, maxConcurrent int, xdsOn bool) (*Server, error) {
	cfg := ServerOptions(opts)
	s := &Server{
		xds:           xdsOn,
		reusePort:     cfg.ReusePort,
		compressor:    cfg.Compressor,
		disabled:      cfg.Disabled,
		mdLimits:      cfg.MDLimits,
		incoming:      make(chan *ServerCall, incomingDepth),
		quit:          make(chan struct{}),
		stopped:       make(chan struct{}),
		maxConcurrent: int64(maxConcurrent),
	}
	pc := portCredentials{guard: cfg.Guard}
	if xdsOn {
		pc.byPort = s.credsOfPort
	}
	sopts := append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.UnknownServiceHandler(s.handle),
		grpc.Creds(pc),
		grpc.NumStreamWorkers(streamWorkers),
		experimental.BufferPool(BufferPool),
	}, slices.Concat(serverWindowDefaults, cfg.Server, serverMetrics(xdsOn))...)
	if !transportPatched {
		// The patched transport cancels a stream's own context (Cancel).
		sopts = append(sopts, grpc.InTapHandle(cancellableCall))
	}
	sopts = append(sopts, readerOptions(s, xdsOn)...)
	if xdsOn {
		gs, err := newXDSServer(sopts...)
		if err != nil {
			return nil, err
		}
		s.gs = gs
	} else {
		s.gs = grpc.NewServer(sopts...)
	}
	liveServers.Add(1)
	return s, nil
}

// AddPort binds addr now and returns the bound port (useful with port 0);
// connections to it are secured by creds (nil: insecure). grpcio address
// forms are accepted: "host:port", "[::]:port", "unix:path",
// "unix-abstract:name".
func (s *Server) AddPort(addr string, creds *ServerCredentials) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopping {
		return 0, fmt.Errorf("cannot add a port to a server that has started")
	}
	if creds != nil && creds.err != nil {
		return 0, fmt.Errorf("Failed to bind to address %s: %v", addr, creds.err)
	}
	network, address := splitAddress(addr)
	if s.xds && network != "tcp" {
		return 0, fmt.Errorf("Failed to bind to address %s: an xDS-enabled server serves TCP ports only", addr)
	}
	lc := net.ListenConfig{}
	if s.reusePort && network == "tcp" {
		lc.Control = setReusePort
	}
	if network == "unix" {
		unlinkIfSocket(address)
	}
	l, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return 0, fmt.Errorf("Failed to bind to address %s: %v", addr, err)
	}
	port := 1 // grpcio's answer for addresses without a port (unix sockets)
	if ta, ok := l.Addr().(*net.TCPAddr); ok {
		port = ta.Port
	}
	s.listeners = append(s.listeners, portListener{l, creds})
	if s.xds {
		s.portCreds.Store(port, creds)
	}
	// grpcio binds every address "localhost" names; do the same for the
	// IPv6 loopback when it is there.
	if host, _, _ := net.SplitHostPort(address); network == "tcp" && host == "localhost" {
		if l6, err := lc.Listen(context.Background(), "tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
			s.listeners = append(s.listeners, portListener{l6, creds})
		}
	}
	return port, nil
}

func splitAddress(addr string) (network, address string) {
	switch {
	case strings.HasPrefix(addr, "unix-abstract:"):
		return "unix", "@" + strings.TrimPrefix(addr, "unix-abstract:")
	case strings.HasPrefix(addr, "unix://"):
		return "unix", strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "localhost" {
		return "tcp", "localhost:" + port
	}
	return "tcp", addr
}

// unlinkIfSocket removes a socket file left at path (by a server that did
// not stop, or one still serving there), as C-core does before it binds a
// unix address (UnlinkIfUnixDomainSocket), so the bind takes the path over
// instead of failing "address already in use". Anything but a socket stays
// and the bind fails on it; abstract names ("@...") have no file.
func unlinkIfSocket(path string) {
	if path == "" || path[0] == '@' {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}

func setReusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// Start serves every bound port.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return ErrServerStopped
	}
	if s.started {
		return fmt.Errorf("the server has already started")
	}
	s.started = true
	for _, l := range s.listeners {
		if s.xds {
			// grpc-go's xDS listener goes outermost (see portCreds).
			l = l.(portListener).Listener
		}
		go s.gs.Serve(l)
	}
	return nil
}

// credsOfPort is the credentials of the port conn was accepted on, on an
// xDS-enabled server (nil: insecure).
func (s *Server) credsOfPort(conn net.Conn) *ServerCredentials {
	if ta, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		if c, ok := s.portCreds.Load(ta.Port); ok {
			return c.(*ServerCredentials)
		}
	}
	return nil
}

// incomingDepth bounds how many accepted calls wait to be taken; beyond it
// new calls are refused with RESOURCE_EXHAUSTED.
const incomingDepth = 1 << 14

// streamWorkers is how many goroutines grpc-go keeps to start calls on,
// instead of a new goroutine per call (more concurrent calls still get
// their own). A kept goroutine's stack has already grown to what a call
// needs: the server's CPU per call drops ~8% (ping-pong and 8 threads).
// A burst of calls (64 grpc.aio tasks) keeps all of 16 busy at once, and
// each fresh goroutine grew its stack twice (10% of the Go side's CPU);
// 128 idle workers cost ~0.3 MB of RSS.
const streamWorkers = 128

// SetNotify installs f, called after every call is queued and once when the
// server stops, so a taker can sleep outside Go and use Take. Call it
// before Start.
func (s *Server) SetNotify(f func(stopped bool)) { s.notify = f }

// Take returns the next queued call without waiting: (call, true), or
// (nil, true) if none is queued, or (nil, false) once the server stops.
func (s *Server) Take() (*ServerCall, bool) {
	select {
	case <-s.quit:
		return nil, false
	default:
	}
	select {
	case c := <-s.incoming:
		return c, true
	default:
		return nil, true
	}
}

// Next waits for the next call, until wait fires (nil, true) or the server
// stops (nil, false).
func (s *Server) Next(wait <-chan struct{}) (*ServerCall, bool) {
	// Once stopping, say so even if wait has fired too (a select would
	// pick at random).
	if c, more := s.Take(); c != nil || !more {
		return c, more
	}
	select {
	case c := <-s.incoming:
		return c, true
	case <-s.quit:
		return nil, false
	case <-wait:
		return nil, true
	}
}

// Refuse makes the server refuse every new call from now on (UNAVAILABLE),
// ends the calls queued for a handler and starts grpc-go's graceful stop;
// it does not wait. Stop begins with it; calling it first lets a caller that
// waits out the grace elsewhere (the Python server's stop(grace) returns at
// once) refuse new calls before it returns. Repeated calls are fine.
func (s *Server) Refuse() {
	s.mu.Lock()
	first := !s.stopping
	s.stopping = true
	if !s.started {
		for _, l := range s.listeners {
			l.Close()
		}
	}
	s.mu.Unlock()
	if !first {
		return
	}
	s.inMu.Lock()
	close(s.quit)
	s.inMu.Unlock()
	// Calls queued but never taken end now.
	for drained := false; !drained; {
		select {
		case c := <-s.incoming:
			c.Finish(codes.Unavailable, "server is shutting down", nil)
		default:
			drained = true
		}
	}
	if s.notify != nil {
		s.notify(true)
	}
	go func() {
		s.gs.GracefulStop()
		liveServers.Add(-1)
		close(s.stopped)
	}()
}

// Stop refuses new calls at once (Refuse), gives calls in flight grace to
// finish (grace < 0: wait for them indefinitely; 0: end them now, with
// UNAVAILABLE "Cancelling all calls" as grpcio's server does), then
// closes every connection. It returns when the server has stopped;
// concurrent and repeated calls are fine, and the smallest grace wins.
func (s *Server) Stop(grace time.Duration) {
	s.Refuse()
	if grace >= 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-s.stopped:
		case <-t.C:
			s.endCalls()
		}
	}
	<-s.stopped
}

// endFlushWait bounds how long the calls' ending statuses may take to
// leave before the connections are closed under them.
const endFlushWait = 500 * time.Millisecond

// endCalls ends the calls that outlived the grace, then the server. Their
// statuses are queued on their streams; the drain Refuse began then
// closes each connection once they are written (and its client answered
// the GOAWAY's ping). A connection that cannot drain by endFlushWait (a
// client that stopped reading) is closed anyway.
func (s *Server) endCalls() {
	if e, ok := s.gs.(streamsEnder); ok {
		e.GrpcgoEndStreams(status.New(codes.Unavailable, "Cancelling all calls"))
		t := time.NewTimer(endFlushWait)
		defer t.Stop()
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
	}
	s.gs.Stop()
}

// streamsEnder is a grpc-go server that can end every stream of its
// connections with a status (the patched grpc-go's, plain or xDS).
type streamsEnder interface{ GrpcgoEndStreams(*status.Status) }

// cancelKey is the context key of a call's own cancel function.
type cancelKey struct{}

// cancellableCall is the server's tap in a build without grpcgo's change to
// grpc-go (whose streams ServerCall.Cancel cancels directly): it gives each
// call a context grpc-go itself waits on (for reads, and for room to
// write), with a cancel function of its own, so that ServerCall.Cancel can
// end the call even while a handler is blocked writing to a client that
// stopped reading. grpc-go cancels the parent when the stream ends, which
// releases this one too. (Five allocations and a deeper context chain per
// call, hence only where needed.)
func cancellableCall(ctx context.Context, _ *tap.Info) (context.Context, error) {
	ctx, cancel := context.WithCancel(ctx)
	return context.WithValue(ctx, cancelKey{}, cancel), nil
}

// MarkUnaryRequest says that method's handler takes a single request, so
// its calls arrive with the request already read (ServerCall.First).
func (s *Server) MarkUnaryRequest(method string) { s.unaryRequest.Store(method, true) }

// onReader says whether grpc-go runs the handler of a new call on the
// connection's reader (readerOptions): for unary-request methods with an
// uncompressed request, whose handler then only awaits the request
// (awaitRequest), when no other call of the server is in flight. A
// compressed request is decompressed off the reader; with other calls in
// flight, stream workers spread the calls' starts over the CPUs while the
// reader reads on (on the reader, 8 concurrent callers measured 12-16%
// fewer calls/s; docs/BENCHMARKS.md).
func (s *Server) onReader(method, encoding string) bool {
	if s.inFlight.Load() != 0 || (encoding != "" && encoding != "identity") {
		return false
	}
	_, ok := s.unaryRequest.Load(method)
	return ok
}

// Stopped is closed once the server has fully stopped.
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

func (s *Server) enqueue(c *ServerCall) error {
	s.inMu.RLock()
	defer s.inMu.RUnlock()
	select {
	case <-s.quit:
		return status.Error(codes.Unavailable, "server is shutting down")
	default:
	}
	select {
	case s.incoming <- c:
	default:
		return status.Error(codes.ResourceExhausted, "too many calls waiting for a handler")
	}
	if s.notify != nil {
		s.notify(false)
	}
	return nil
}

// handle is grpc-go's handler for every method. With grpcgo's change to
// grpc-go it returns as soon as the call is queued (detached), or, on the
// connection's reader, as soon as the reader will queue it once its request
// is in (awaitRequest): no goroutine waits per call, and whoever finishes
// the call ends it (ServerCall.end). Otherwise it waits for the call to be
// finished or die.
func (s *Server) handle(_ any, ss grpc.ServerStream) error {
	if s.maxConcurrent > 0 {
		if s.active.Add(1) > s.maxConcurrent {
			s.active.Add(-1)
			return status.Error(codes.ResourceExhausted, "Concurrent RPC limit exceeded!")
		}
	}
	liveServerCalls.Add(1)
	s.inFlight.Add(1)
	c, awaited, err := s.accept(ss)
	if err != nil || c.detached == nil {
		defer s.callEnded()
	}
	if err != nil {
		return err
	}
	if awaited {
		return nil
	}
	if c.detached == nil {
		c.done = make(chan struct{}) // wait's; before anyone may finish c
	}
	if err := s.queue(c); err != nil {
		return err
	}
	if c.detached != nil {
		return nil
	}
	return c.wait()
}

// accept checks a new call and makes its ServerCall, detached when
// grpc-go allows it; awaited: the reader queues it later (awaitRequest).
func (s *Server) accept(ss grpc.ServerStream) (c *ServerCall, awaited bool, err error) {
	if s.disabled != nil {
		if err := refusedEncoding(ss, s.disabled); err != nil {
			return nil, false, err
		}
	}
	setDefaultCompressor(ss, s.compressor)
	c = newServerCall(ss)
	if st := s.mdLimits.check(HeaderSize(c.Metadata)); st != nil {
		return nil, false, status.Error(st.Code, st.Details) // grpcio refuses it before any handler
	}
	d, detachable := ss.(detacher)
	if _, ok := s.unaryRequest.Load(c.Method); ok {
		if detachable && s.awaitRequest(c, d) {
			return c, true, nil
		}
		m, err := c.RecvOne()
		if err == nil {
			c.First = m
		} else if err != io.EOF {
			return nil, false, err // see firstReadFailed
		}
	}
	if detachable {
		c.detach(d, s) // before it is queued: from then on it may end at any time
	}
	return c, false, nil
}

// requestAwaiter is grpc-go's server transport stream with grpcgo's change
// (patches/grpc-go/transport_reader_grpcgo.go.in).
type requestAwaiter interface {
	GrpcgoOnReader() bool
	GrpcgoAwaitRequest(f func(whole bool)) bool
}

// awaitRequest, for a call of a unary-request method whose handler runs
// on the connection's reader (readerOptions), detaches the call and has
// the reader queue it once its request is in, read (requestIn): the pool
// thread it wakes never waits for the request, and no stream worker runs
// in between. False (nothing done) when the handler is not on the reader.
func (s *Server) awaitRequest(c *ServerCall, d detacher) bool {
	a, ok := grpc.ServerTransportStreamFromContext(c.ctx).(requestAwaiter)
	if !ok || !a.GrpcgoOnReader() {
		return false
	}
	c.detach(d, s) // before the reader may queue it, at once or later
	return a.GrpcgoAwaitRequest(func(whole bool) {
		if whole {
			s.requestIn(c)
		} else {
			go s.requestIn(c) // the rest comes only while someone reads
		}
	})
}

// requestIn reads an awaited call's request (without waiting on the
// reader: it is in) and queues the call, unless the call died meanwhile:
// then it has ended already (detach) and nobody takes it.
func (s *Server) requestIn(c *ServerCall) {
	if c.ended.Load() {
		return
	}
	m, err := c.RecvOne()
	if err == nil {
		c.First = m
	} else if err != io.EOF {
		s.endUntaken(c, err) // see firstReadFailed
		return
	}
	s.queue(c)
}

// firstReadFailed: a request read before the call is handed over (a
// unary-request method's, ServerCall.First) that fails with anything but
// the client's half-close (io.EOF: the handler then sees no request, and
// a read of its own gets io.EOF again, which the transport keeps) ends
// the call there, and the call is never handed over. grpc-go's RecvMsg
// has written the call's status for it (RESOURCE_EXHAUSTED for a request
// over grpc.max_receive_message_length, INTERNAL for one that does not
// decompress). Handed over without a request, the call used to be read
// again by the binding, and for a request over the limit, whose payload
// grpc-go leaves unread, that read took the payload's first bytes for the
// next message's prefix: the handler could run with a request made of
// the refused one's bytes (core's TestFirstReadFailureEndsTheCall).

// endUntaken ends a detached call that nobody will take, with err.
func (s *Server) endUntaken(c *ServerCall, err error) {
	if c.detached != nil && c.unwatchDeath() && !c.ended.Swap(true) {
		c.detached.GrpcgoEnd(err)
		s.callEnded()
	}
}

// queue hands c to its takers (enqueue). If they take no more calls (the
// server stops, too many wait), c's request read for it is freed, and a
// detached c is ended here with that error (a waiting handler returns it).
func (s *Server) queue(c *ServerCall) error {
	err := s.enqueue(c)
	if err != nil {
		c.First.Free() // nobody takes it
		c.First = nil
		s.endUntaken(c, err)
	}
	return err
}

// callEnded counts a call out once grpc-go's side of it has ended.
func (s *Server) callEnded() {
	if s.maxConcurrent > 0 {
		s.active.Add(-1)
	}
	s.inFlight.Add(-1)
	liveServerCalls.Add(-1)
}
