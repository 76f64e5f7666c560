package main

/*
#include <stdlib.h>
#include <sys/prctl.h>
#include "hot.h"

static long sysmon_slack;          // 0: every thread's slack is left alone
static unsigned long loader_slack; // the loading thread's, before
static __thread int slack_set;

// Runs when the library is loaded, before Go's own start-up (priority 101
// sorts ahead of unprioritized constructors, Go's among them): gives the
// loading thread the slack Go's first threads are to inherit.
__attribute__((constructor(101))) static void slack_for_sysmon(void) {
	const char *env = getenv("GRPCGO_SYSMON_SLACK_NS");
	sysmon_slack = env != NULL ? atol(env) : HOT_SYSMON_SLACK_NS;
	loader_slack = (unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (sysmon_slack > 0) prctl(PR_SET_TIMERSLACK, (unsigned long)sysmon_slack, 0, 0, 0);
}

void hot_restore_slack(void) {
	if (sysmon_slack > 0 && !slack_set) {
		slack_set = 1;
		prctl(PR_SET_TIMERSLACK, loader_slack, 0, 0, 0);
	}
}

static void go_thread_slack(void) {
	if (sysmon_slack > 0 && !slack_set) {
		slack_set = 1;
		prctl(PR_SET_TIMERSLACK, (unsigned long)HOT_GO_THREAD_SLACK_NS, 0, 0, 0);
	}
}
*/
import "C"

import "grpcgo/core"

// Timer slack: large for Go's monitor thread, minimal for Go's other
// threads, untouched for Python's.
//
// Go's sysmon sleeps 20 us at a time while any P is busy, and a Python
// thread outside Go counts as a busy P (a system call), so inside Python
// sysmon never backs off: its wake-ups, and the Ps it takes back from
// Python threads waiting in C, were ~20% of each process's CPU. Linux ends
// a thread's sleeps late by up to its timer slack (50 us by default), and a
// thread inherits its slack from the thread that creates it. Go creates
// sysmon first thing on start-up, from the thread the library's loading
// starts. So the loading thread gets a large slack just before Go starts
// (the constructor above) and takes its own back in PyInit__hot; Go's first
// thread (in init below, which runs on it once sysmon exists) and Go's other
// threads (some are made by threads with the large slack; each sets its own
// the first time it runs a call, through core.OnThread) get a minimal one.
// sysmon runs no Go code of ours, so it alone keeps the large slack: it
// wakes every ~270 us instead of every ~70, and Python threads that wait a
// few hundred microseconds in C mostly keep their P.
//
// Go's other threads nap for 3 us when they look for work on a P that is
// about to run it; with the default 50 us slack such a nap could last
// 53 us, in the middle of a call's path. With a minimal slack it lasts 3.
//
// Measured (2 vCPUs, ours<->ours), sysmon's slack: client CPU per
// ping-pong call -25%, server -15%, 8 threads +6-20%, bidi +8-11%, 1 MiB
// +8%; then the minimal slack for Go's threads: ping-pong +20-25% (p50 218
// -> 170 us), bidi -4-6% (10 and 20 us fell in between). A large slack on
// every Go thread instead cost ping-pong 20-30%.
// GRPCGO_SYSMON_SLACK_NS sets sysmon's slack; 0 leaves every thread's
// slack alone.
func init() {
	C.go_thread_slack()
	core.OnThread = func() { C.go_thread_slack() }
}
