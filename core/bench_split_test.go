package core

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// The unary benchmarks below measure one end of a call each, with the
// other end in a child process (this test binary, re-run as a peer by
// TestBenchPeer), so -benchmem counts that end's allocations alone. Each
// end is driven as the Python binding drives it: the client starts a call
// on its caller with a notification (StartUnaryOn, pyext/hot_client.go),
// the server takes calls on one goroutine and finishes each there
// (Server.Take's caller, FinishHere, pyext/hot_server.go).
//
//	go test -run x -bench 'Unary(Client|Server)' -benchmem ./core

const benchPeerEnv = "GRPCGO_BENCH_PEER"

const benchMethod = "/bench.B/U"

// TestBenchPeer is the other end of a split benchmark; it runs only in a
// child the benchmark starts. "server": prints its target, serves until
// stdin closes. "client <target>": makes calls one after another until
// stdin closes.
func TestBenchPeer(t *testing.T) {
	role := os.Getenv(benchPeerEnv)
	if role == "" {
		t.Skip("the peer of a split benchmark (BenchmarkUnaryClient, BenchmarkUnaryServer)")
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	if role == "server" {
		srv, target := benchServer(t)
		fmt.Println(target)
		go func() {
			<-stop
			srv.Refuse()
		}()
		for {
			c, more := srv.Next(nil)
			if !more {
				return
			}
			if c != nil {
				benchServe(c)
			}
		}
	}
	target, _ := strings.CutPrefix(role, "client ")
	ch := dial(t, target)
	fmt.Println("ready")
	for {
		select {
		case <-stop:
			return
		default:
		}
		benchCall(ch)
	}
}

func benchServer(t testing.TB) (*Server, string) {
	srv, target := newTestServer(t, nil)
	srv.MarkUnaryRequest(benchMethod)
	return srv, target
}

// benchServe is the binding's pool thread on a unary call: the event's
// fields read, then the finish on its own goroutine.
func benchServe(c *ServerCall) {
	c.Here = true
	_, _, _ = c.Method, c.Peer, c.HasDeadline
	first := c.First
	c.First = nil
	c.QuickFinish(first)
	c.WritesHere()
	c.FinishHere(codes.OK, "", first)
}

var benchReq = []byte("0123456789abcdef")

var benchSpec = &CallSpec{Method: benchMethod}

// benchCall is the binding's blocking unary call: started on the caller,
// waited for by a notification.
func benchCall(ch *Channel) {
	done := make(chan struct{})
	c := ch.StartUnaryOn(benchSpec, BytesMsg(benchReq), func(*UnaryCall) { close(done) }, func(f func()) { f() })
	<-done
	if c.Status.Code != codes.OK {
		panic(c.Status.Details)
	}
	c.Response.Free()
}

// benchPeer starts this binary as the peer role and returns the first
// line it prints; it is stopped when b ends.
func benchPeer(b *testing.B, role string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchPeer$", "-test.count=1")
	cmd.Env = append(os.Environ(), benchPeerEnv+"="+role)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close()
		cmd.Process.Kill() // a client may be waiting on a server that no longer takes calls
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("peer %q: %v", role, err)
	}
	return strings.TrimSpace(line)
}

// BenchmarkUnaryClient is the client's end of a unary call, the server in
// a child process.
func BenchmarkUnaryClient(b *testing.B) {
	ch := dial(b, benchPeer(b, "server"))
	benchCall(ch) // connected
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		benchCall(ch)
	}
}

// BenchmarkUnaryServer is the server's end of a unary call, a client in a
// child process calling one call after another.
func BenchmarkUnaryServer(b *testing.B) {
	srv, target := benchServer(b)
	benchPeer(b, "client "+target)
	take := func() {
		for {
			if c, _ := srv.Next(nil); c != nil {
				benchServe(c)
				return
			}
		}
	}
	take()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		take()
	}
}
