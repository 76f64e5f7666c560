//go:build linux

package core

import (
	"net"
	"syscall"
	"testing"
)

// pollMute's rules on a socket Go's poller watches: muted, then back at
// close, and no change after the close (the descriptor may be another
// socket's by then).
func TestPollMuteRestoresAtCloseAndNeverAfter(t *testing.T) {
	if !pollMuteOn {
		t.Skip("GRPCGO_POLL_MUTE=0")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	input := func() bool {
		ev, _, ok := epollEntry(int(goEpoll.Load()), fd)
		if !ok {
			t.Fatalf("Go's epoll registration of socket %d not found", fd)
		}
		return ev&syscall.EPOLLIN != 0
	}
	var m pollMute
	m.setRead(fd, false)
	if goEpoll.Load() < 0 || input() {
		t.Fatal("the mute left Go's interest in the input")
	}
	m.close(fd)
	if !input() {
		t.Fatal("close did not give Go its interest in the input back")
	}
	m.setRead(fd, false)
	if !input() {
		t.Fatal("a mute after close changed the registration")
	}
}
