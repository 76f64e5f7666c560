package core

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Per-call metrics, as grpcio's OpenTelemetry plugin records them (gRFC
// A66): every channel and server carries a grpc-go stats.Handler that does
// nothing but one atomic load per event until metrics are switched on
// (SetMetrics). Then each client attempt and server call
// leaves one MetricRecord in a bounded buffer, which the binding drains
// (TakeMetrics) and hands to Python's OpenTelemetry instruments.

// Kinds of MetricRecord.
const (
	MetricAttemptStarted = iota // client: an attempt began (grpc.client.attempt.started)
	MetricAttemptEnded          // client: duration, sizes, status of one attempt
	MetricCallEnded             // not produced: grpcio-observability 1.85 exports no grpc.client.call.duration
	MetricServerStarted         // server: a call began (grpc.server.call.started)
	MetricServerEnded           // server: duration, sizes, status of a call
)

// MetricRecord is one measurement event.
type MetricRecord struct {
	Kind     int
	Method   string // full method name without the leading "/": "pkg.Svc/Method"
	Target   string // client: the channel's canonical target; server: "xds" for an xDS-enabled server, else ""
	Code     int    // the status code (ended kinds)
	Seconds  float64
	Sent     int64 // total compressed message bytes sent
	Received int64 // total compressed message bytes received
}

const metricsMax = 1 << 16

var (
	metricsOn      atomic.Bool
	metricsMu      sync.Mutex
	metricsBuf     []MetricRecord
	metricsDropped int64
	metricsWake    atomic.Pointer[func()]
)

// SetMetrics switches per-call metrics on or off (off drops what waits).
func SetMetrics(on bool) {
	metricsOn.Store(on)
	if !on {
		metricsMu.Lock()
		metricsBuf, metricsDropped = nil, 0
		metricsMu.Unlock()
	}
}

// OnMetrics sets the function called (on the goroutine that recorded, so
// it must not block) each time a record is added; the binding wakes its
// event thread with it.
func OnMetrics(wake func()) { metricsWake.Store(&wake) }

// TakeMetrics returns the waiting records and how many were dropped since
// the last take.
func TakeMetrics() ([]MetricRecord, int64) {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	batch, dropped := metricsBuf, metricsDropped
	metricsBuf, metricsDropped = nil, 0
	return batch, dropped
}

func putMetric(r MetricRecord) {
	metricsMu.Lock()
	if len(metricsBuf) < metricsMax {
		metricsBuf = append(metricsBuf, r)
	} else {
		metricsDropped++
	}
	metricsMu.Unlock()
	if wake := metricsWake.Load(); wake != nil {
		(*wake)()
	}
}

// canonicalTarget is the target as grpcio reports it: with the default
// "dns:///" scheme when it has none.
func canonicalTarget(target string) string {
	if i := strings.Index(target, ":"); i > 0 {
		scheme := target[:i]
		switch scheme {
		case "dns", "unix", "unix-abstract", "ipv4", "ipv6", "xds", "passthrough":
			return target
		}
	}
	return "dns:///" + target
}

type rpcKey struct{}

// rpcMetrics is one attempt (client) or one call (server) being measured.
type rpcMetrics struct {
	method   string
	start    time.Time
	sent     atomic.Int64
	received atomic.Int64
}

// metricsHandler is the stats.Handler of a channel (client) or a server.
type metricsHandler struct {
	client bool
	target string // client only, canonical
}

func (h *metricsHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if !metricsOn.Load() {
		return ctx
	}
	m := &rpcMetrics{method: strings.TrimPrefix(info.FullMethodName, "/"), start: time.Now()}
	kind := MetricServerStarted
	if h.client {
		kind = MetricAttemptStarted
	}
	putMetric(MetricRecord{Kind: kind, Method: m.method, Target: h.target})
	return context.WithValue(ctx, rpcKey{}, m)
}

func (h *metricsHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	m, _ := ctx.Value(rpcKey{}).(*rpcMetrics)
	if m == nil {
		return
	}
	switch s := s.(type) {
	case *stats.OutPayload:
		m.sent.Add(int64(s.CompressedLength))
	case *stats.InPayload:
		m.received.Add(int64(s.CompressedLength))
	case *stats.End:
		kind := MetricServerEnded
		if h.client {
			kind = MetricAttemptEnded
		}
		putMetric(MetricRecord{
			Kind:     kind,
			Method:   m.method,
			Target:   h.target,
			Code:     int(status.Code(s.Error)),
			Seconds:  s.EndTime.Sub(m.start).Seconds(),
			Sent:     m.sent.Load(),
			Received: m.received.Load(),
		})
	}
}

func (h *metricsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (h *metricsHandler) HandleConn(context.Context, stats.ConnStats) {}

// channelMetrics is the dial option of a channel made while metrics are on
// (as in grpcio, a channel or server takes the plugins registered when it
// is made; one made before costs nothing): its canonical target, or "".
func channelMetrics(target string) (grpc.DialOption, string) {
	if !metricsOn.Load() {
		return nil, ""
	}
	t := canonicalTarget(target)
	return grpc.WithStatsHandler(&metricsHandler{client: true, target: t}), t
}

// serverMetrics is the server option of a server made while metrics are on
// (its records say whether it is xDS-enabled: grpcio's plugin options are
// activated per server by that).
func serverMetrics(xds bool) []grpc.ServerOption {
	if !metricsOn.Load() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(serverMetricsHandler(xds))}
}

func serverMetricsHandler(xds bool) *metricsHandler {
	h := &metricsHandler{}
	if xds {
		h.target = "xds"
	}
	return h
}
