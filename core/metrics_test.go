package core

import (
	"context"
	"testing"

	"google.golang.org/grpc/stats"
)

// A server's records say whether it is xDS-enabled (grpc_observability
// activates plugin options per server by it).
func TestServerMetricsSayXDS(t *testing.T) {
	SetMetrics(true)
	defer SetMetrics(false)
	TakeMetrics()
	for _, xds := range []bool{false, true} {
		h := serverMetricsHandler(xds)
		h.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: "/pkg.Svc/M"})
		batch, _ := TakeMetrics()
		want := ""
		if xds {
			want = "xds"
		}
		if len(batch) != 1 || batch[0].Kind != MetricServerStarted || batch[0].Target != want ||
			batch[0].Method != "pkg.Svc/M" {
			t.Fatalf("xds=%v: records %+v, want one server start with target %q", xds, batch, want)
		}
	}
}
