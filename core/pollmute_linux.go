package core

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Go's netpoller and a socket an event loop reads (docs/ARCHITECTURE.md,
// "The loop reads its ping-pong's connection"). Go registers each socket
// with its epoll once, edge-triggered, for input and output. While an
// event loop reads the connection itself, the reader goroutine is parked
// and nothing waits for the input, yet every packet that comes still
// wakes the Go thread sleeping in epoll_wait (an accept or a timer keeps
// one there), which finds nobody to run: a few microseconds of CPU a
// packet, on a two-core machine the peer's. pollMute takes EPOLLIN out of
// the socket's registration while the goroutine is parked and puts it back
// before the goroutine reads again (epoll then reports input that came
// meanwhile at once).
//
// Go keeps its epoll descriptor and each socket's data (a tagged pointer
// to the runtime's pollDesc) to itself: both are read once from
// /proc/self/fdinfo (the epoll holding the socket itself edge-triggered
// with EPOLLRDHUP is Go's: an event loop watches a dup, level-triggered).
// The data is written back exactly as read. The runtime never modifies a
// registration and removes it only when the socket closes, which the
// guard's Close does only after marking its mute closed under mu: no MOD
// can reach a later socket given the same number.
type pollMute struct {
	mu     sync.Mutex
	known  int8 // 0: not looked up; 1: data and events known; -1: cannot
	data   uint64
	events uint32 // Go's registration, EPOLLIN included
	muted  bool
	closed bool
}

// pollMuteOn: GRPCGO_POLL_MUTE=0 leaves Go's interest alone (A/B runs).
var pollMuteOn = os.Getenv("GRPCGO_POLL_MUTE") != "0"

// goEpoll is the runtime's epoll descriptor once found (-1: not yet).
var goEpoll atomic.Int32

func init() { goEpoll.Store(-1) }

// setRead drops (false) or restores Go's interest in fd's input.
func (m *pollMute) setRead(fd int, read bool) {
	if fd < 0 || !pollMuteOn {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setReadLocked(fd, read)
}

func (m *pollMute) setReadLocked(fd int, read bool) {
	if m.closed || m.muted == !read || m.known < 0 {
		return
	}
	if m.known == 0 {
		epfd, events, data, ok := goRegistration(fd)
		if !ok {
			m.known = -1
			return
		}
		if events&syscall.EPOLLIN == 0 {
			m.known = -1 // not as Go registers a socket
			return
		}
		goEpoll.Store(int32(epfd))
		m.known, m.events, m.data = 1, events, data
	}
	ev := syscall.EpollEvent{Events: m.events}
	if !read {
		ev.Events &^= syscall.EPOLLIN
	}
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = m.data // epoll_event's data, 8 bytes from Fd
	if err := syscall.EpollCtl(int(goEpoll.Load()), syscall.EPOLL_CTL_MOD, fd, &ev); err != nil {
		m.known = -1 // left as it was
		return
	}
	m.muted = !read
}

// close: socket fd (-1: gone already) is about to close; its interest
// comes back (a last read before the close, the guard's, may wait for
// input) and no MOD comes after this.
func (m *pollMute) close(fd int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fd >= 0 {
		m.setReadLocked(fd, true)
	}
	m.closed = true
}

// goEpollKind: what tells Go's registrations (netpollopen) from an event
// loop's: edge-triggered (EPOLLET, bit 31), with hang-up.
const goEpollKind = syscall.EPOLLRDHUP | 1<<31

// goRegistration finds Go's epoll registration of fd: the epoll's
// descriptor, the events and the data.
func goRegistration(fd int) (epfd int, events uint32, data uint64, ok bool) {
	if e := int(goEpoll.Load()); e >= 0 {
		events, data, ok = epollEntry(e, fd)
		return e, events, data, ok
	}
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, 0, 0, false
	}
	for _, n := range names {
		e, err := strconv.Atoi(n.Name())
		if err != nil || e == fd {
			continue
		}
		if link, _ := os.Readlink("/proc/self/fd/" + n.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		if events, data, ok = epollEntry(e, fd); ok {
			return e, events, data, true
		}
	}
	return -1, 0, 0, false
}

// epollEntry reads fd's entry in epoll epfd's fdinfo, if it is Go's kind.
func epollEntry(epfd, fd int) (events uint32, data uint64, ok bool) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(epfd))
	if err != nil {
		return 0, 0, false
	}
	// "tfd:        7 events: 80002005 data:     7f0000a1b2c3  pos:0 ..."
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 || string(f[0]) != "tfd:" || string(f[2]) != "events:" || string(f[4]) != "data:" {
			continue
		}
		if t, err := strconv.Atoi(string(f[1])); err != nil || t != fd {
			continue
		}
		ev, err1 := strconv.ParseUint(string(f[3]), 16, 32)
		d, err2 := strconv.ParseUint(string(f[5]), 16, 64)
		if err1 != nil || err2 != nil || uint32(ev)&goEpollKind != goEpollKind {
			return 0, 0, false
		}
		return uint32(ev), d, true
	}
	return 0, 0, false
}
