package main

/*
#include "hot.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/grpclog"
)

// grpc-go's logs go to Python's logging, never to stderr. grpc-go calls the
// logger from its own goroutines, which must not touch Python: the logger
// formats a record (only when its severity passes the filter Python set)
// and appends it to a bounded buffer; the grpcgo-events thread
// (hot_events.go, grpc/_events.py) takes the batches and grpc/_logging.py
// hands each record to `logging.getLogger("grpc.go.<component>")`. Python decides the filter
// from GRPC_VERBOSITY and GRPC_TRACE (hotLogSetup).

// Severities, as grpc-go numbers them.
const (
	sevInfo = iota
	sevWarning
	sevError
	sevFatal
	sevNone // nothing passes
)

// logMax bounds the records waiting for Python; later ones are counted and
// dropped until Python takes the batch.
const logMax = 4096

type logRecord struct {
	severity  int
	component string
	message   string
	when      time.Time
	file      string
	line      int
}

type logFilter struct {
	severity int             // the lowest severity logged for every component
	verbose  int             // V(l) is true for l <= verbose
	traced   map[string]bool // components logged from INFO with any verbosity
	all      bool            // every component is traced
}

var (
	logFilterNow atomic.Pointer[logFilter]
	logMu        sync.Mutex
	logBuf       []logRecord
	logDropped   int
)

func init() {
	// Until Python says otherwise (hotLogSetup, at load): errors only.
	logFilterNow.Store(&logFilter{severity: sevError, verbose: -1})
	grpclog.SetLoggerV2(pyLogger{})
}

// hotLogSetup sets the filter: severity (0 INFO .. 3 FATAL, 4 none), the
// verbosity level V(l) answers, and the traced components (a sequence of
// grpc-go component names; "*" for all).
//
//export hotLogSetup
func hotLogSetup(severity, verbose C.int, traced pyObj) (ret pyObj) {
	defer guard(&ret)
	f := &logFilter{severity: int(severity), verbose: int(verbose), traced: map[string]bool{}}
	seq, n := strSeqArg(traced, "traced components")
	if seq == nil {
		return nil
	}
	for _, name := range n {
		if name == "*" {
			f.all = true
		}
		f.traced[name] = true
	}
	C.hot_decref(seq)
	logFilterNow.Store(f)
	return C.hot_none()
}

// strSeqArg reads a sequence of str; returns a new reference to the fast
// sequence (for the caller to release) and the strings, or nil with an
// exception set.
func strSeqArg(o pyObj, what string) (pyObj, []string) {
	var n C.Py_ssize_t
	seq := C.hot_seq(o, &n)
	if seq == nil {
		return nil, nil
	}
	out := make([]string, 0, int(n))
	for i := C.Py_ssize_t(0); i < n; i++ {
		s, ok := strArg(C.hot_seq_item(seq, i))
		if !ok {
			C.hot_decref(seq)
			return nil, nil
		}
		out = append(out, s)
	}
	return seq, out
}

// takeLogs takes up to max waiting records (the oldest), how many were
// dropped, and whether more wait.
func takeLogs(max int) ([]logRecord, int, bool) {
	logMu.Lock()
	defer logMu.Unlock()
	batch, dropped := logBuf, logDropped
	logDropped = 0
	if len(batch) > max {
		logBuf = append([]logRecord(nil), batch[max:]...)
		return batch[:max], dropped, true
	}
	logBuf = nil
	return batch, dropped, false
}

// logList is records as a list of (severity, component, message, unix_time,
// file, line), plus one WARNING record saying how many were dropped when
// the buffer overflowed.
func logList(batch []logRecord, dropped int) pyObj {
	extra := 0
	if dropped > 0 {
		extra = 1
	}
	l := C.hot_list(C.Py_ssize_t(len(batch) + extra))
	for i, rec := range batch {
		C.hot_list_set(l, C.Py_ssize_t(i), recordTuple(rec))
	}
	if dropped > 0 {
		C.hot_list_set(l, C.Py_ssize_t(len(batch)), recordTuple(logRecord{
			severity: sevWarning,
			message:  fmt.Sprintf("%d grpc-go log records were dropped: Python did not take them in time", dropped),
			when:     time.Now(),
		}))
	}
	return C.hot_complete(l)
}

func recordTuple(rec logRecord) pyObj {
	t := C.hot_tuple(6)
	C.hot_tuple_set(t, 0, C.hot_int(C.longlong(rec.severity)))
	C.hot_tuple_set(t, 1, pyStr(rec.component))
	C.hot_tuple_set(t, 2, pyStr(rec.message))
	C.hot_tuple_set(t, 3, C.hot_float(C.double(float64(rec.when.UnixNano())/1e9)))
	C.hot_tuple_set(t, 4, pyStr(rec.file))
	C.hot_tuple_set(t, 5, C.hot_int(C.longlong(rec.line)))
	return C.hot_complete(t)
}

// pyLogger is grpc-go's LoggerV2 (and DepthLoggerV2: every component
// logger calls the Depth methods with "[component]" as the first argument).
type pyLogger struct{}

// component splits grpc-go's "[name]" first argument off.
func component(args []any) (string, []any) {
	if len(args) > 0 {
		if s, ok := args[0].(string); ok && len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			return s[1 : len(s)-1], args[1:]
		}
	}
	return "", args
}

// enabled tells whether a record of severity from comp passes the filter.
func enabled(severity int, comp string) bool {
	f := logFilterNow.Load()
	if severity >= f.severity && f.severity < sevNone {
		return true
	}
	return severity >= sevInfo && (f.all || f.traced[comp]) && f.severity < sevNone
}

func emit(severity, depth int, comp, message string) {
	rec := logRecord{severity: severity, component: comp, message: message, when: time.Now()}
	if _, file, line, ok := runtime.Caller(depth + 1); ok {
		rec.file, rec.line = file, line
	}
	if severity == sevFatal {
		// grpc-go exits the process right after a fatal record, before
		// Python could take it: this one also goes to stderr.
		fmt.Fprintf(os.Stderr, "grpc-go FATAL: [%s] %s\n", comp, message)
	}
	logMu.Lock()
	if len(logBuf) < logMax {
		logBuf = append(logBuf, rec)
	} else {
		logDropped++
	}
	logMu.Unlock()
	wakeEvents()
}

func (pyLogger) logDepth(severity, depth int, args []any) {
	comp, rest := component(args)
	if !enabled(severity, comp) {
		return
	}
	emit(severity, depth+2, comp, strings.TrimSuffix(fmt.Sprintln(rest...), "\n"))
}

func (pyLogger) logf(severity int, format string, args []any) {
	if !enabled(severity, "") {
		return
	}
	emit(severity, 3, "", fmt.Sprintf(format, args...))
}

func (l pyLogger) Info(args ...any)    { l.logDepth(sevInfo, 1, args) }
func (l pyLogger) Infoln(args ...any)  { l.logDepth(sevInfo, 1, args) }
func (l pyLogger) Warning(args ...any) { l.logDepth(sevWarning, 1, args) }
func (l pyLogger) Warningln(args ...any) {
	l.logDepth(sevWarning, 1, args)
}
func (l pyLogger) Error(args ...any)   { l.logDepth(sevError, 1, args) }
func (l pyLogger) Errorln(args ...any) { l.logDepth(sevError, 1, args) }
func (l pyLogger) Fatal(args ...any)   { l.logDepth(sevFatal, 1, args) }
func (l pyLogger) Fatalln(args ...any) { l.logDepth(sevFatal, 1, args) }

func (l pyLogger) Infof(format string, args ...any)    { l.logf(sevInfo, format, args) }
func (l pyLogger) Warningf(format string, args ...any) { l.logf(sevWarning, format, args) }
func (l pyLogger) Errorf(format string, args ...any)   { l.logf(sevError, format, args) }
func (l pyLogger) Fatalf(format string, args ...any)   { l.logf(sevFatal, format, args) }

func (l pyLogger) InfoDepth(depth int, args ...any)    { l.logDepth(sevInfo, depth+1, args) }
func (l pyLogger) WarningDepth(depth int, args ...any) { l.logDepth(sevWarning, depth+1, args) }
func (l pyLogger) ErrorDepth(depth int, args ...any)   { l.logDepth(sevError, depth+1, args) }
func (l pyLogger) FatalDepth(depth int, args ...any)   { l.logDepth(sevFatal, depth+1, args) }

// V reports whether verbose logs at level l are wanted: up to the
// verbosity GRPC_VERBOSITY gave, and every level while a component is
// traced (enabled then keeps only the traced components' INFO records,
// unless INFO passes for all).
func (pyLogger) V(l int) bool {
	f := logFilterNow.Load()
	if f.severity >= sevNone {
		return false
	}
	return l <= f.verbose || f.all || len(f.traced) > 0
}
