package core

import (
	"crypto/tls"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func inode(t *testing.T, fd int) (uint64, error) {
	t.Helper()
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	return st.Ino, err
}

func socketInode(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	rc.Control(func(fd uintptr) {
		ino, err = inode(t, int(fd))
	})
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func readable(t *testing.T, fd, ms int) bool {
	t.Helper()
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return n > 0 && p[0].Revents&unix.POLLIN != 0
	}
}

// A guarded connection's poll descriptor is one duplicate of its socket,
// readable when the peer writes, closed with the connection.
func TestConnPollFd(t *testing.T) {
	raw, peer := tcpPair(t)
	g := guardClientConn(raw)
	fd := ConnPollFd(g)
	if fd < 0 {
		t.Fatal("no descriptor for a guarded TCP connection")
	}
	if again := ConnPollFd(g); again != fd {
		t.Fatalf("a second descriptor %d (first %d)", again, fd)
	}
	ino, err := inode(t, fd)
	if err != nil || ino != socketInode(t, raw) {
		t.Fatalf("descriptor %d is not the socket (%v)", fd, err)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("descriptor flags %#x, %v: want close-on-exec", flags, err)
	}
	if readable(t, fd, 0) {
		t.Fatal("readable before the peer wrote")
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !readable(t, fd, 5000) {
		t.Fatal("not readable after the peer wrote")
	}
	g.Close()
	if got := ConnPollFd(g); got != -1 {
		t.Fatalf("descriptor %d after close", got)
	}
	if now, err := inode(t, fd); err == nil && now == ino {
		t.Fatal("the duplicate outlived the connection")
	}
}

// Through TLS the descriptor is the socket's under it; a connection that
// is not grpcgo's, or has no socket, has none.
func TestConnPollFdWrapped(t *testing.T) {
	raw, _ := tcpPair(t)
	g := guardClientConn(tls.Client(raw, &tls.Config{InsecureSkipVerify: true}))
	defer g.Close()
	fd := ConnPollFd(g)
	if fd < 0 {
		t.Fatal("no descriptor through TLS")
	}
	if ino, err := inode(t, fd); err != nil || ino != socketInode(t, raw) {
		t.Fatalf("descriptor %d is not the socket under TLS (%v)", fd, err)
	}
	if ConnPollFd(raw) != -1 || ConnPollFd(nil) != -1 {
		t.Fatal("a descriptor for a connection grpcgo did not wrap")
	}
	a, b := net.Pipe()
	defer b.Close()
	p := guardClientConn(a)
	defer p.Close()
	if ConnPollFd(p) != -1 {
		t.Fatal("a descriptor for a pipe")
	}
}
