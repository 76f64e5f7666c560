package main

/*
#include "hot.h"
*/
import "C"

import (
	"sync"

	"grpcgo/core"
)

// The engine's road to Python. Go never calls Python from its own
// goroutines; whatever it has for Python is queued here until a Python
// daemon thread takes it (grpc/_events.py). Two threads wait, one per lane:
//
//   - grpcgo-callbacks takes callback requests: an AuthMetadataPlugin or a
//     certificate fetcher to run (hot_callbacks.go);
//   - grpcgo-events takes the rest: ended calls, the tokens of server calls
//     whose handler registered context.add_callback callbacks
//     (hotCallNotifyDone), queued when the call ends however it ends;
//     grpc-go's log records (hot_log.go) and per-call metric records
//     (core/metrics.go), each in its own bounded buffer.
//
// The lanes are apart because grpcgo-events runs user code (add_callback
// callbacks, logging handlers) that may itself make a call with call
// credentials, whose plugin request must be taken while that code waits.
// Every producer appends under a mutex and posts its lane's ready channel
// (one slot); a thread takes everything of its lane in one crossing. So the
// thread count does not grow with the number of watched calls, and one
// wake-up serves a burst of anything. Log records are taken at most
// logTakeMax at a time, so a slow logging handler delays the callbacks
// queued behind it by one such batch at most.

const logTakeMax = 256

// requestsPrune: past this many queued requests, those whose asker gave up
// (abandoned) are dropped when the next one is queued.
const requestsPrune = 1024

var (
	eventsMu       sync.Mutex
	eventsRequests []*callbackRequest
	eventsEnded    []int64
	eventsReady    = make(chan struct{}, 1) // ended calls, logs, metrics
	requestsReady  = make(chan struct{}, 1)
)

func init() { core.OnMetrics(wakeEvents) }

func wakeEvents() {
	select {
	case eventsReady <- struct{}{}:
	default:
	}
}

func postRequest(req *callbackRequest) {
	eventsMu.Lock()
	if len(eventsRequests) >= requestsPrune {
		kept := eventsRequests[:0]
		for _, r := range eventsRequests {
			if !r.abandoned.Load() {
				kept = append(kept, r)
			}
		}
		clear(eventsRequests[len(kept):])
		eventsRequests = kept
	}
	eventsRequests = append(eventsRequests, req)
	eventsMu.Unlock()
	select {
	case requestsReady <- struct{}{}:
	default:
	}
}

func postEnded(token int64) {
	eventsMu.Lock()
	eventsEnded = append(eventsEnded, token)
	eventsMu.Unlock()
	wakeEvents()
}

// hotCallNotifyDone queues token for grpcgo-events once the call is over:
// finished by the handler, cancelled by the client or the handler, past its
// deadline, or stopped with the server. No goroutine waits
// (core.ServerCall.OnDone); a call already over queues it at once.
//
//export hotCallNotifyDone
func hotCallNotifyDone(h C.uintptr_t, token C.longlong) (ret pyObj) {
	defer guard(&ret)
	t := int64(token)
	value[*core.ServerCall](h).OnDone(func(bool) { postEnded(t) })
	return C.hot_none()
}

// hotCallbackNext waits up to timeout (negative: for ever; 0: takes what is
// there) for callback requests: [(request, kind, id, service_url,
// method_name)], or None if the timeout passed first.
//
//export hotCallbackNext
func hotCallbackNext(timeout C.double) (ret pyObj) {
	defer guard(&ret)
	_, _, r := await(requestsReady, seconds(timeout))
	if r == waitInterrupted {
		return nil
	}
	eventsMu.Lock()
	requests := eventsRequests
	eventsRequests = nil
	eventsMu.Unlock()
	live := requests[:0]
	for _, req := range requests {
		if !req.abandoned.Load() {
			live = append(live, req)
		}
	}
	if len(live) == 0 && r == waitTimeout {
		return C.hot_none()
	}
	l := C.hot_list(C.Py_ssize_t(len(live)))
	for i, req := range live {
		C.hot_list_set(l, C.Py_ssize_t(i), requestTuple(req))
	}
	return C.hot_complete(l)
}

// hotEventsWait waits up to timeout (negative: for ever) until something
// may be waiting on grpcgo-events' lane: True, or False if the timeout
// passed first. The thread then takes it with hotEventsNext(0) under a
// Python lock, so that what it takes and what the flush at exit takes are
// delivered in the order Go queued them.
//
//export hotEventsWait
func hotEventsWait(timeout C.double) (ret pyObj) {
	defer guard(&ret)
	_, _, r := await(eventsReady, seconds(timeout))
	switch r {
	case waitInterrupted:
		return nil
	case waitTimeout:
		return C.hot_bool(0)
	}
	return C.hot_bool(1)
}

// hotEventsNext waits up to timeout (negative: for ever; 0: takes what is
// there) and returns (ended, logs, metrics), each None when there is
// nothing of its kind: ended as [token], logs as logList makes them, metrics
// as hotMetricsTake's tuple. None if the timeout passed with nothing at all.
//
//export hotEventsNext
func hotEventsNext(timeout C.double) (ret pyObj) {
	defer guard(&ret)
	_, _, r := await(eventsReady, seconds(timeout))
	if r == waitInterrupted {
		return nil
	}
	eventsMu.Lock()
	ended := eventsEnded
	eventsEnded = nil
	eventsMu.Unlock()
	logs, logsDropped, more := takeLogs(logTakeMax)
	if more {
		wakeEvents() // the rest on the next round
	}
	metrics, metricsDropped := core.TakeMetrics()
	if len(ended) == 0 && len(logs) == 0 && logsDropped == 0 &&
		len(metrics) == 0 && metricsDropped == 0 && r == waitTimeout {
		return C.hot_none()
	}
	out := C.hot_tuple(3)
	if len(ended) > 0 {
		l := C.hot_list(C.Py_ssize_t(len(ended)))
		for i, t := range ended {
			C.hot_list_set(l, C.Py_ssize_t(i), C.hot_int(C.longlong(t)))
		}
		C.hot_tuple_set(out, 0, C.hot_complete(l))
	} else {
		C.hot_tuple_set(out, 0, C.hot_none())
	}
	if len(logs) > 0 || logsDropped > 0 {
		C.hot_tuple_set(out, 1, logList(logs, logsDropped))
	} else {
		C.hot_tuple_set(out, 1, C.hot_none())
	}
	if len(metrics) > 0 || metricsDropped > 0 {
		C.hot_tuple_set(out, 2, metricsTuple(metrics, metricsDropped))
	} else {
		C.hot_tuple_set(out, 2, C.hot_none())
	}
	return C.hot_complete(out)
}
