package main

/*
#include <stdlib.h>
#include <sys/prctl.h>
#include "hot.h"

static unsigned long loader_slack;
static __thread int slack_restored;

// Runs when the library is loaded, before Go's own start-up (priority 101
// sorts ahead of unprioritized constructors, Go's among them): gives the
// loading thread the slack Go's first threads are to inherit.
__attribute__((constructor(101))) static void slack_for_sysmon(void) {
	const char *env = getenv("GRPCGO_SYSMON_SLACK_NS");
	long slack = env != NULL ? atol(env) : HOT_SYSMON_SLACK_NS;
	loader_slack = (unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (slack > 0) prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
}

void hot_restore_slack(void) {
	if (!slack_restored) {
		slack_restored = 1;
		prctl(PR_SET_TIMERSLACK, loader_slack, 0, 0, 0);
	}
}
*/
import "C"

import "grpcgo/core"

// Timer slack for Go's monitor thread.
//
// Go's sysmon sleeps 20 us at a time while any P is busy, and a Python
// thread outside Go counts as a busy P (a system call), so inside Python
// sysmon never backs off: its wake-ups, and the Ps it takes back from
// Python threads waiting in C, were ~20% of each process's CPU. Linux lets
// a thread's sleeps end late by its timer slack (50 us by default), and a
// thread inherits its slack from the thread that creates it. Go creates
// sysmon first thing on start-up, from the thread the library's loading
// starts. So the loading thread gets a large slack just before Go starts
// (the constructor above), and every other thread gives itself back the
// loader's slack: the loading thread in PyInit__hot, Go's first thread in
// init below (which runs on it once sysmon exists), and Go's other threads
// (some are made by threads with the large slack) the first time they run
// a call. sysmon runs no Go code of ours, so it alone keeps the large
// slack: it wakes every ~270 us instead of every ~70, and Python threads
// that wait a few hundred microseconds in C mostly keep their P.
//
// Measured (2 vCPUs, ours<->ours): client CPU per ping-pong call -20%, 8
// threads +15% calls/s, ping-pong +5-10%. Left on every thread, the large
// slack would also stretch the 3 us naps of Go threads looking for work,
// and ping-pong lost 20-30%. GRPCGO_SYSMON_SLACK_NS sets the slack (0: the
// loader's, i.e. off).
func init() {
	C.hot_restore_slack()
	core.OnThread = func() { C.hot_restore_slack() }
}
