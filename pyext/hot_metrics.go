package main

/*
#include "hot.h"
*/
import "C"

import "grpcgo/core"

// Per-call metrics for grpc_observability (python/grpc/_metrics.py): Go
// keeps the records (core/metrics.go); the grpcgo-events thread
// (hot_events.go) takes them and grpc/_metrics.py records them into the
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

// hotMetricsTake takes the waiting records now (a reader about to collect):
// ([(kind, method, target, code, seconds, sent, received), ...], dropped),
// or None when there are none.
//
//export hotMetricsTake
func hotMetricsTake() (ret pyObj) {
	defer guard(&ret)
	batch, dropped := core.TakeMetrics()
	if len(batch) == 0 && dropped == 0 {
		return C.hot_none()
	}
	return metricsTuple(batch, dropped)
}

func metricsTuple(batch []core.MetricRecord, dropped int64) pyObj {
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
		C.hot_list_set(l, C.Py_ssize_t(i), C.hot_complete(t))
	}
	out := C.hot_tuple(2)
	C.hot_tuple_set(out, 0, C.hot_complete(l))
	C.hot_tuple_set(out, 1, C.hot_int(C.longlong(dropped)))
	return C.hot_complete(out)
}
