package introspect

import (
	"runtime"
	"testing"

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

func TestLiveMatchesCore(t *testing.T) {
	c := core.ReadCounters()
	got := Live()
	want := Counters{
		Channels:    int(c.Channels),
		Servers:     int(c.Servers),
		ClientCalls: int(c.ClientCalls),
		ServerCalls: int(c.ServerCalls),
		Handles:     int(c.Handles),
		GoProcs:     runtime.GOMAXPROCS(0),
	}
	if got != want {
		t.Errorf("Live() = %+v, want %+v", got, want)
	}
	for name, v := range map[string]int{
		"Channels": got.Channels, "Servers": got.Servers,
		"ClientCalls": got.ClientCalls, "ServerCalls": got.ServerCalls, "Handles": got.Handles,
	} {
		if v < 0 {
			t.Errorf("%s = %d, want >= 0", name, v)
		}
	}
}
