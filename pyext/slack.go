package main

/*
#cgo LDFLAGS: -Wl,--wrap=pthread_create
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include "hot.h"

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

// What a new Go thread runs first: it sets its timer slack, then goes on
// as Go asked.
struct slack_start {
	void *(*fn)(void *);
	void *arg;
	unsigned long slack;
};

static void *slack_start(void *p) {
	struct slack_start s = *(struct slack_start *)p;
	free(p);
	prctl(PR_SET_TIMERSLACK, s.slack, 0, 0, 0);
	return s.fn(s.arg);
}

static atomic_int go_threads;
static long sysmon_slack; // read from the environment once, by the first call

// Every thread Go starts in this library comes through here (the linker
// wraps the library's calls of pthread_create; Python's own threads are
// started by libpython and are not). The first is Go's first thread,
// started while the library loads; the second is the monitor it starts
// first thing.
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
	int n = atomic_fetch_add(&go_threads, 1);
	if (n == 0) {
		const char *env = getenv("GRPCGO_SYSMON_SLACK_NS");
		sysmon_slack = env != NULL ? atol(env) : HOT_SYSMON_SLACK_NS;
	}
	long sysmon = sysmon_slack;
	struct slack_start *s = sysmon > 0 ? malloc(sizeof *s) : NULL;
	if (s == NULL) return __real_pthread_create(t, attr, fn, arg);
	s->fn = fn;
	s->arg = arg;
	s->slack = n == 1 ? (unsigned long)sysmon : (unsigned long)HOT_GO_THREAD_SLACK_NS;
	int r = __real_pthread_create(t, attr, slack_start, s);
	if (r != 0) free(s);
	return r;
}
*/
import "C"

// Timer slack: large for Go's monitor thread, minimal for Go's other
// threads, untouched for Python's.
//
// Go's sysmon sleeps 20 us at a time while any P is busy, and a Python
// thread outside Go counts as a busy P (a system call), so inside Python
// sysmon never backs off: its wake-ups, and the Ps it takes back from
// Python threads waiting in C, were ~20% of each process's CPU. Linux ends
// a thread's sleeps late by up to its timer slack (50 us by default), so
// with a 1 ms slack sysmon wakes every ~1 ms instead of every ~70 us, and
// Python threads that wait a few hundred microseconds in C mostly keep
// their P. Go's other threads nap for 3 us when they look for work on a P
// that is about to run it; with the default slack such a nap could last
// 53 us, in the middle of a call's path, and with a minimal one it lasts 3.
//
// Each of Go's threads sets its own slack as it starts (the wrapper of
// pthread_create above): Go starts sysmon first thing, from its first
// thread, so the second thread Go starts is sysmon.
//
// Measured (2 vCPUs, ours<->ours), sysmon's slack: client CPU per
// ping-pong call -25%, server -15%, 8 threads +6-20%, bidi +8-11%, 1 MiB
// +8%; then the minimal slack for Go's threads: ping-pong +20-25% (p50 218
// -> 170 us). A large slack on every Go thread instead cost ping-pong
// 20-30%. Sysmon's slack was 250 us until the runtime let a thread that
// needs a P take one a Python thread holds in C (patches/go-runtime,
// docs/ARCHITECTURE.md "A Python thread's P"): before that, a goroutine
// the network poller readied waited up to the slack for sysmon to free a
// P, and at 1 ms a grpc-go client's p99 against our server went from
// 0.56-0.60 to 1.2-2.1 ms. With it, 1 ms keeps that p99 (0.45-0.56 ms) and
// cuts CPU per call; docs/BENCHMARKS.md. GRPCGO_SYSMON_SLACK_NS sets
// sysmon's slack; 0 leaves every thread's slack alone.
