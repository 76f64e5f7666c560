package core

import (
	"runtime"
	"sync"
	"testing"
)

func TestGoCallRunsCallsConcurrently(t *testing.T) {
	// Ten calls that each wait for all ten to have started: a pool that
	// queued calls behind busy workers would deadlock here.
	const n = 10
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	done := make(chan struct{}, n)
	for range n {
		goCall(func() {
			started.Done()
			<-all
			done <- struct{}{}
		})
	}
	closed(t, "all calls started", run(started.Wait))
	close(all)
	for range n {
		recvChan(t, "call done", done)
	}
}

func TestGoCallReusesIdleWorkersThenLetsThemGo(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := range 50 {
		ran := make(chan int, 1)
		goCall(func() { ran <- i })
		if got, _ := recvChan(t, "call ran", ran); got != i {
			t.Fatalf("call %d ran as %d", i, got)
		}
	}
	// Fifty sequential calls need one or two workers, not fifty.
	if extra := runtime.NumGoroutine() - before; extra > 2 {
		t.Fatalf("%d goroutines after 50 sequential calls", extra)
	}
	// Idle workers leave after workerIdle.
	waitFor(t, "idle workers to leave", func() bool { return runtime.NumGoroutine() <= before })
}
