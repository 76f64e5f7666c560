package main

/*
#include "hot.h"
*/
import "C"

import "grpcgo/core"

// Per-call metrics for grpc_observability (python/grpc/_metrics.py): Go
// keeps the records (core/metrics.go); one Python daemon thread
// (grpcgo-metrics) waits here for them and records them into the
// registered plugins' OpenTelemetry instruments. No Go thread calls Python.

// hotMetricsEnable switches per-call metrics on or off for channels and
// servers made from now on.
//
//export hotMetricsEnable
func hotMetricsEnable(on C.int) (ret pyObj) {
	defer guard(&ret)
	core.SetMetrics(on != 0)
	return C.hot_none()
}

// hotMetricsNext waits up to timeout (negative: for ever; 0: takes what is
// there) for records: ([(kind, method, target, code, seconds, sent,
// received), ...], dropped), or None if the timeout passed first.
//
//export hotMetricsNext
func hotMetricsNext(timeout C.double) (ret pyObj) {
	defer guard(&ret)
	_, _, r := await(core.MetricsReady(), seconds(timeout))
	if r == waitInterrupted {
		return nil
	}
	batch, dropped := core.TakeMetrics()
	if len(batch) == 0 && dropped == 0 && r == waitTimeout {
		return C.hot_none()
	}
	l := C.hot_list(C.Py_ssize_t(len(batch)))
	for i, m := range batch {
		t := C.hot_tuple(7)
		C.hot_tuple_set(t, 0, C.hot_int(C.longlong(m.Kind)))
		C.hot_tuple_set(t, 1, pyStr(m.Method))
		C.hot_tuple_set(t, 2, pyStr(m.Target))
		C.hot_tuple_set(t, 3, C.hot_int(C.longlong(m.Code)))
		C.hot_tuple_set(t, 4, C.hot_float(C.double(m.Seconds)))
		C.hot_tuple_set(t, 5, C.hot_int(C.longlong(m.Sent)))
		C.hot_tuple_set(t, 6, C.hot_int(C.longlong(m.Received)))
		C.hot_list_set(l, C.Py_ssize_t(i), t)
	}
	out := C.hot_tuple(2)
	C.hot_tuple_set(out, 0, l)
	C.hot_tuple_set(out, 1, C.hot_int(C.longlong(dropped)))
	return out
}
