package introspect

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"

	"grpcgo/core"
)

func TestVersions(t *testing.T) {
	if got := Version(); got == "" || got != core.Version {
		t.Errorf("Version() = %q, want %q", got, core.Version)
	}
	if got := GrpcGoVersion(); got == "" || got != grpc.Version {
		t.Errorf("GrpcGoVersion() = %q, want %q", got, grpc.Version)
	}
	if got := GoVersion(); got == "" || got != runtime.Version() {
		t.Errorf("GoVersion() = %q, want %q", got, runtime.Version())
	}
}

// TestLiveMatchesCore: Live() reports each live object core counts, and
// the counts fall back when the objects go. Counting a channel, a server,
// a call on each side and three binding handles, all at once, would fail
// for a Live() that read the wrong counter or none.
func TestLiveMatchesCore(t *testing.T) {
	base := Live()
	// Without the binding there is no runtime hook: -1 (pyext/rt_return.go).
	if base != (Counters{GoProcs: runtime.GOMAXPROCS(0), ReturnMode: -1, PsReleased: -1, PsTaken: -1,
		NapMode: -1, Naps: -1}) {
		t.Fatalf("Live() before anything = %+v, want zero counts", base)
	}
	srv := core.NewServer(nil, 0)
	port, err := srv.AddPort("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(0)
	ch, err := core.Dial(fmt.Sprintf("127.0.0.1:%d", port), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	stream := ch.StartStream(&core.CallSpec{Method: "/x/S", Timeout: time.Minute}, true, true, nil, false)
	defer stream.Cancel()
	timeout := make(chan struct{})
	timer := time.AfterFunc(time.Minute, func() { close(timeout) })
	defer timer.Stop()
	call, ok := srv.Next(timeout)
	if !ok || call == nil {
		t.Fatal("the server never saw the call")
	}
	core.CountHandles(3)

	want := Counters{Channels: 1, Servers: 1, ClientCalls: 1, ServerCalls: 1, Handles: 3,
		GoProcs: runtime.GOMAXPROCS(0), ReturnMode: -1, PsReleased: -1, PsTaken: -1, NapMode: -1, Naps: -1}
	if got := Live(); got != want {
		t.Errorf("Live() = %+v, want %+v", got, want)
	}
	c := core.ReadCounters()
	if got := Live(); got.Channels != int(c.Channels) || got.Servers != int(c.Servers) ||
		got.ClientCalls != int(c.ClientCalls) || got.ServerCalls != int(c.ServerCalls) ||
		got.Handles != int(c.Handles) {
		t.Errorf("Live() = %+v, core.ReadCounters() = %+v", got, c)
	}

	// Everything gone: the counts fall back to zero.
	stream.Cancel()
	ch.Close()
	srv.Stop(0)
	core.CountHandles(-3)
	deadline := time.Now().Add(time.Minute)
	for Live() != base {
		if time.Now().After(deadline) {
			t.Fatalf("Live() = %+v after everything ended, want %+v", Live(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
