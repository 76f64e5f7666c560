package core

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// peerHandler answers every call with the peer string the server saw.
func peerHandler(c *ServerCall) {
	c.RecvOne()
	c.Finish(codes.OK, "", BytesMsg([]byte(c.Peer)))
}

// reach makes a unary call on target and returns the server's view of the
// peer.
func reach(t *testing.T, target string) string {
	t.Helper()
	ch := dial(t, target)
	resp, _, st := ch.Unary(spec("/x/Peer"), nil)
	if !st.OK() {
		t.Fatalf("call on %q: %v %q", target, st.Code, st.Details)
	}
	return string(resp.Materialize())
}

func TestTargetsIPv4(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	done := dispatch(srv, peerHandler)
	defer func() { srv.Stop(0); <-done }()
	p := itoa(port)
	dead := deadAddress(t)
	for _, target := range []string{
		"127.0.0.1:" + p,
		"localhost:" + p,
		"dns:///localhost:" + p,
		"dns:///127.0.0.1:" + p,
		"ipv4:127.0.0.1:" + p,
		"ipv4:///127.0.0.1:" + p,
		"ipv4:" + dead + ",127.0.0.1:" + p, // an address list: the live one is found
	} {
		t.Run(target, func(t *testing.T) {
			if peer := reach(t, target); !strings.HasPrefix(peer, "ipv4:127.0.0.1:") {
				t.Errorf("server saw peer %q, want ipv4:127.0.0.1:port", peer)
			}
		})
	}
}

func TestTargetsIPv6(t *testing.T) {
	needIPv6(t)
	checkLeaks(t)
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("[::1]:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	done := dispatch(srv, peerHandler)
	defer func() { srv.Stop(0); <-done }()
	p := itoa(port)
	for _, target := range []string{
		"[::1]:" + p,
		"ipv6:[::1]:" + p,
		"ipv6:///[::1]:" + p,
		"dns:///[::1]:" + p,
	} {
		t.Run(target, func(t *testing.T) {
			if peer := reach(t, target); !strings.HasPrefix(peer, "ipv6:%5B::1%5D:") {
				t.Errorf("server saw peer %q, want grpcio's ipv6:%%5B::1%%5D:port", peer)
			}
		})
	}
}

// TestLocalhostPort: "localhost:0" binds a port reachable on the IPv4
// loopback and, when there is one, the IPv6 loopback too.
func TestLocalhostPort(t *testing.T) {
	checkLeaks(t)
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("localhost:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 {
		t.Fatalf("AddPort(localhost:0) = %d", port)
	}
	srv.Start()
	done := dispatch(srv, peerHandler)
	defer func() { srv.Stop(0); <-done }()
	p := itoa(port)
	for _, target := range []string{"localhost:" + p, "dns:///localhost:" + p, "127.0.0.1:" + p, "ipv4:127.0.0.1:" + p} {
		reach(t, target)
	}
	t.Run("ipv6", func(t *testing.T) {
		needIPv6(t)
		if peer := reach(t, "ipv6:[::1]:"+p); !strings.HasPrefix(peer, "ipv6:") {
			t.Errorf("peer %q", peer)
		}
	})
}

func TestTargetsUnix(t *testing.T) {
	checkLeaks(t)
	path := unixSocket(t, "s.sock")
	srv := NewServer(nil, 0)
	port, err := srv.AddPort("unix:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if port != 1 {
		t.Errorf("AddPort(unix:...) = %d, want 1 (as grpcio)", port)
	}
	path2 := unixSocket(t, "t.sock")
	if _, err := srv.AddPort("unix://"+path2, nil); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	done := dispatch(srv, peerHandler)
	for _, target := range []string{"unix:" + path, "unix://" + path, "unix:" + path2} {
		if peer := reach(t, target); !strings.HasPrefix(peer, "unix:") {
			t.Errorf("%s: server saw peer %q, want unix:...", target, peer)
		}
	}
	srv.Stop(0)
	<-done
	if _, err := os.Stat(path); err == nil {
		t.Errorf("socket file %s left behind after Stop", path)
	}
}

func TestTargetsUnixAbstract(t *testing.T) {
	checkLeaks(t)
	name := "grpcgo-test-" + itoa(os.Getpid()) + "-" + strings.ReplaceAll(t.Name(), "/", "-")
	srv := NewServer(nil, 0)
	if _, err := srv.AddPort("unix-abstract:"+name, nil); err != nil {
		srv.Stop(0)
		t.Skipf("no abstract unix sockets here: %v", err)
	}
	srv.Start()
	done := dispatch(srv, peerHandler)
	defer func() { srv.Stop(0); <-done }()
	reach(t, "unix-abstract:"+name)
}

func TestDialErrors(t *testing.T) {
	checkLeaks(t)
	for _, target := range []string{"ipv4:", "ipv6:", "ipv4://"} {
		if ch, err := Dial(target, nil, nil); err == nil {
			ch.Close()
			t.Errorf("Dial(%q) succeeded", target)
		}
	}
}

func TestChannelTarget(t *testing.T) {
	checkLeaks(t)
	for _, target := range []string{"127.0.0.1:1234", "dns:///localhost:1", "ipv4:127.0.0.1:1", "unix:/tmp/x.sock"} {
		ch := dial(t, target)
		if got := ch.Target(); got != target {
			t.Errorf("Target() = %q, want %q", got, target)
		}
	}
}

// TestChannelState: a channel starts idle, connects on request, and
// WatchState reports the change; after Close, watches end.
func TestChannelState(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, coreEcho)
	ch := dial(t, target)
	const idle, ready = 0, 2
	if st := ch.State(false); st != idle {
		t.Fatalf("initial State = %d, want IDLE", st)
	}
	w := ch.WatchState(idle, nil)
	ch.State(true)
	if st, ok := recvChan(t, "state change", w); !ok || st == idle {
		t.Fatalf("WatchState = %d, %v", st, ok)
	}
	waitFor(t, "READY", func() bool { return ch.State(false) == ready })

	stop := make(chan struct{})
	w = ch.WatchState(ready, stop)
	close(stop)
	if _, ok := recvChan(t, "watch stop", w); ok {
		t.Fatal("stopped watch yielded a state")
	}
	w = ch.WatchState(ready, nil)
	ch.Close()
	recvChan(t, "watch after close", w) // yields SHUTDOWN or just closes
	if _, ok := recvChan(t, "watch closed", w); ok {
		t.Fatal("watch channel not closed")
	}
}
