package core

import "testing"

func TestQuietRelease(t *testing.T) {
	const mib = 1 << 20
	q := QuietRelease{After: 16 * mib, Quiet: mib / 4, Periods: 2}
	var alloc uint64 = 100 * mib // what the process allocated before the engine's first tick
	tick := func(add uint64) bool {
		alloc += add
		return q.Tick(alloc)
	}
	if tick(0) || tick(0) || tick(0) {
		t.Fatal("released with nothing allocated since the engine started")
	}
	// A burst: 40 MiB over 4 periods, no release while it lasts.
	for i := 0; i < 4; i++ {
		if tick(10 * mib) {
			t.Fatalf("released during a burst (period %d)", i)
		}
	}
	// Quiet: released once, after Periods quiet periods.
	if tick(1000) {
		t.Fatal("released after one quiet period")
	}
	if !tick(1000) {
		t.Fatal("not released after two quiet periods following a 40 MiB burst")
	}
	for i := 0; i < 5; i++ {
		if tick(0) {
			t.Fatal("released twice for one burst")
		}
	}
	// A small burst (under After) is not worth a release.
	tick(8 * mib)
	for i := 0; i < 5; i++ {
		if tick(0) {
			t.Fatal("released after an 8 MiB burst")
		}
	}
	// Steady light traffic: allocations add up, but it is never quiet.
	for i := 0; i < 100; i++ {
		if tick(mib) {
			t.Fatal("released while busy")
		}
	}
}
