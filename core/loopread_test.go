//go:build grpcgo_patched && linux

package core

import (
	"bytes"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// A ping-pong's loop reading (loopread.go), driven as grpc.aio drives it:
// each end's "loop" (a goroutine here) takes messages with AioRecvDirect,
// arms a wake-up when nothing is there, and, once AioLoopRead hands it a
// dup of the socket, pumps the connection when the socket is readable.
// Under -race this pins the hand-offs between the pump and grpc-go's
// reader goroutine, and the client's receiver handing over.

// testLoop is an event loop's stand-in: one goroutine, a wake-up channel
// (the armed waiter) and an epoll set for the socket.
type testLoop struct {
	t    *testing.T
	woke chan struct{}
	wake func()
	ep   int
	fd   int
	pump func() bool
}

func newTestLoop(t *testing.T) *testLoop {
	l := &testLoop{t: t, woke: make(chan struct{}, 1), fd: -1}
	l.wake = func() {
		select {
		case l.woke <- struct{}{}:
		default:
		}
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	l.ep = ep
	t.Cleanup(func() { l.unwatch(); syscall.Close(ep) })
	return l
}

func (l *testLoop) watch(fd int, pump func() bool) {
	if fd < 0 || l.fd >= 0 {
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.t.Fatal(err)
	}
	l.fd, l.pump = fd, pump
}

func (l *testLoop) unwatch() {
	if l.fd >= 0 {
		syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.fd, nil)
		syscall.Close(l.fd)
		l.fd = -1
	}
}

// wait runs the loop until the armed wake-up came (or longWait passed):
// socket readable, it pumps; the pump giving the reading back, it stops
// watching.
func (l *testLoop) wait() {
	deadline := time.Now().Add(longWait)
	for time.Now().Before(deadline) {
		select {
		case <-l.woke:
			return
		default:
		}
		if l.fd < 0 {
			select {
			case <-l.woke:
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		events := make([]syscall.EpollEvent, 1)
		n, err := syscall.EpollWait(l.ep, events, 1)
		if err != nil && err != syscall.EINTR {
			l.t.Fatal(err)
		}
		if n > 0 && !l.pump() {
			l.unwatch()
		}
	}
	l.t.Fatal("the loop's wake-up never came")
}

// recv is a read on the loop: a message, or the end.
func (l *testLoop) recv(direct func(*func()) (Msg, error, bool, bool), queue func() <-chan Msg) ([]byte, error) {
	for {
		m, err, got, isDirect := direct(&l.wake)
		if !isDirect {
			select {
			case m, ok := <-queue():
				if !ok {
					return nil, io.EOF
				}
				b := m.Materialize()
				m.Free()
				return b, nil
			case <-time.After(longWait):
				l.t.Fatal("no message on the queue")
			}
		}
		if got {
			if err != nil {
				return nil, err
			}
			b := m.Materialize()
			m.Free()
			return b, nil
		}
		l.wait()
	}
}

// loopEchoServer answers each request of a bidi call with it, reading as
// grpc.aio's server does; serverDone gets the handler's end, serverFd the
// call's socket once its loop reads it.
func loopEchoServer(t *testing.T) (target string, serverDone chan error, serverFd chan int) {
	serverDone, serverFd = make(chan error, 1), make(chan int, 1)
	_, target = newTestServer(t, func(c *ServerCall) {
		l := newTestLoop(t)
		for {
			c.AioRead()
			b, err := l.recv(c.AioRecvDirect, c.Requests)
			if err == io.EOF {
				break
			}
			if err != nil {
				serverDone <- err
				return
			}
			if sent, _ := c.SendNowNoWait(BytesMsg(b)); !sent && !put(c, b) {
				serverDone <- fmt.Errorf("server could not answer %q", b)
				return
			}
			l.watch(c.AioLoopRead(true), c.AioPump)
			if l.fd >= 0 {
				select {
				case serverFd <- c.dr.lr.Fd:
				default:
				}
			}
		}
		serverDone <- c.Finish(codes.OK, "", nil)
	})
	return target, serverDone, serverFd
}

// pingPong sends m and reads it back on the loop, then lets the loop read
// the socket.
func pingPong(t *testing.T, l *testLoop, s *Stream, want []byte) {
	t.Helper()
	s.AioSent()
	if sent, _ := s.SendNowNoWait(BytesMsg(want)); !sent {
		sendAll(t, s, want)
	}
	s.AioRead()
	got, err := l.recv(s.AioRecvDirect, s.Responses)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("round trip: %q, %v; want %q", got, err, want)
	}
	l.watch(s.AioLoopRead(true), s.AioPump)
}

func TestLoopReadPingPongBothEnds(t *testing.T) {
	const n = 300
	target, serverDone, _ := loopEchoServer(t)
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	l := newTestLoop(t)
	before, _ := LoopReadCounts()
	for i := 0; i < n; i++ {
		pingPong(t, l, s, []byte(fmt.Sprintf("m%d", i)))
	}
	s.CloseSend()
	if _, err := l.recv(s.AioRecvDirect, s.Responses); err != io.EOF && err != nil {
		// The end: io.EOF from a direct read, or the queue's close.
		t.Fatalf("after the half-close: %v", err)
	}
	select {
	case err := <-serverDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(longWait):
		t.Fatal("the server's handler never ended")
	}
	<-s.Ended()
	if s.Status.Code != codes.OK {
		t.Fatalf("status %v", s.Status)
	}
	after, pumps := LoopReadCounts()
	if after-before < 2*n-20 {
		t.Errorf("%d messages read directly, want nearly %d", after-before, 2*n)
	}
	if pumps == 0 {
		t.Error("no loop read the connection")
	}
}

// While the loop reads a connection, Go's poller has no interest in its
// input (no Go thread woken a packet for nothing); the reading given back
// (here: the stream's end), the interest is back and the goroutine reads.
func TestLoopReadMutesGoPollerInput(t *testing.T) {
	target, serverDone, serverFd := loopEchoServer(t)
	ch := dial(t, target)
	s := ch.StartStream(spec(mBidi), true, true, nil, false)
	l := newTestLoop(t)
	for i := 0; i < 10; i++ {
		pingPong(t, l, s, []byte(fmt.Sprintf("m%d", i)))
	}
	if l.fd < 0 {
		t.Fatal("no loop read the connection")
	}
	srvFd, _ := recvChan(t, "the server's loop to read its socket", serverFd)
	// Either end's socket, in this process's (Go's one) epoll.
	input := func(fd int) func() bool {
		return func() bool {
			ev, _, ok := epollEntry(int(goEpoll.Load()), fd)
			if !ok {
				t.Fatalf("Go's epoll registration of socket %d not found", fd)
			}
			return ev&syscall.EPOLLIN != 0
		}
	}
	goInput, srvInput := input(s.dr.lr.Fd), input(srvFd)
	waitFor(t, "Go's interest in the input to go", func() bool {
		return goEpoll.Load() >= 0 && !goInput() && !srvInput()
	})
	for i := 10; i < 20; i++ {
		pingPong(t, l, s, []byte(fmt.Sprintf("m%d", i)))
	}
	s.CloseSend()
	if _, err := l.recv(s.AioRecvDirect, s.Responses); err != io.EOF && err != nil {
		t.Fatalf("after the half-close: %v", err)
	}
	if err, _ := recvChan(t, "the handler's end", serverDone); err != nil {
		t.Fatal(err)
	}
	<-s.Ended()
	waitFor(t, "Go's interest in the input to come back", func() bool { return goInput() && srvInput() })
	// The goroutine reads again: a second call on the connection.
	u := ch.StartUnary(spec(mBidi), BytesMsg([]byte("q")))
	closed(t, "a call after the loop's reading", u.Done)
}
