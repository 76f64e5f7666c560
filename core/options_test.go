package core

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestParseOptions(t *testing.T) {
	got, err := ParseOptions([]byte(`[
		["grpc.max_receive_message_length", 1024],
		["grpc.max_send_message_length", -1],
		["grpc.primary_user_agent", "agent/1.0"],
		["grpc.so_reuseport", "0"],
		["grpc.keepalive_time_ms", "30000"],
		["grpc.enable_retries", true],
		["grpc.keepalive_permit_without_calls", false],
		["big", 9007199254740991],
		["frac", 2.75],
		["not.a.number", "12abc"],
		["dropped.null", null],
		["dropped.list", [1, 2]],
		["dropped.object", {"a": 1}],
		[7, "non-string key"],
		["unknown.key", 5]
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Option{
		{Key: "grpc.max_receive_message_length", Int: 1024, Str: "1024", IsInt: true},
		{Key: "grpc.max_send_message_length", Int: -1, Str: "-1", IsInt: true},
		{Key: "grpc.primary_user_agent", Str: "agent/1.0"},
		{Key: "grpc.so_reuseport", Int: 0, Str: "0", IsInt: true},
		{Key: "grpc.keepalive_time_ms", Int: 30000, Str: "30000", IsInt: true},
		{Key: "grpc.enable_retries", Int: 1, Str: "1", IsInt: true},
		{Key: "grpc.keepalive_permit_without_calls", Int: 0, Str: "0", IsInt: true},
		{Key: "big", Int: 9007199254740991, Str: "9007199254740991", IsInt: true},
		{Key: "frac", Int: 2, Str: "2", IsInt: true},
		{Key: "not.a.number", Str: "12abc"},
		{Key: "unknown.key", Int: 5, Str: "5", IsInt: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseOptions:\n got %+v\nwant %+v", got, want)
	}

	for _, empty := range []string{"", "[]"} {
		got, err := ParseOptions([]byte(empty))
		if err != nil || len(got) != 0 {
			t.Errorf("ParseOptions(%q) = %v, %v", empty, got, err)
		}
	}
	for _, bad := range []string{"{", `{"a": 1}`, `"str"`, `[1]`, `[[1, 2], "x"]`} {
		if got, err := ParseOptions([]byte(bad)); err == nil {
			t.Errorf("ParseOptions(%q) = %v, want an error", bad, got)
		} else if !strings.Contains(err.Error(), "pairs") {
			t.Errorf("ParseOptions(%q) error %q does not explain the format", bad, err)
		}
	}
}

func TestMsgLimit(t *testing.T) {
	for in, want := range map[int64]int{
		-1: math.MaxInt32, -100: math.MaxInt32, 0: 0, 1: 1, 4 << 20: 4 << 20,
		math.MaxInt32: math.MaxInt32, math.MaxInt32 + 1: math.MaxInt32, math.MaxInt64: math.MaxInt32,
	} {
		if got := msgLimit(in); got != want {
			t.Errorf("msgLimit(%d) = %d, want %d", in, got, want)
		}
	}
}

func opt(key string, v any) Option {
	switch v := v.(type) {
	case int:
		return Option{Key: key, Int: int64(v), IsInt: true, Str: itoa(v)}
	case string:
		return Option{Key: key, Str: v}
	}
	panic("opt")
}

func TestChannelOptions(t *testing.T) {
	if cfg := ChannelOptions(nil); len(cfg.Dial) != 0 || len(cfg.Call) != 0 || cfg.Authority != "" {
		t.Errorf("no options: %+v", cfg)
	}
	// Unknown keys and values of the wrong kind are ignored.
	cfg := ChannelOptions([]Option{
		opt("grpc.unknown", 1), opt("x.y", "z"),
		opt("grpc.max_receive_message_length", "not a number"),
		opt("grpc.max_send_message_length", "nope"),
		opt("grpc.keepalive_time_ms", 0),
		opt("grpc.keepalive_timeout_ms", -5),
		opt("grpc.http2.initial_window_size", 0),
	})
	if len(cfg.Dial) != 0 || len(cfg.Call) != 0 {
		t.Errorf("ignored options produced %d dial and %d call options", len(cfg.Dial), len(cfg.Call))
	}
	cfg = ChannelOptions([]Option{
		opt("grpc.max_receive_message_length", -1),
		opt("grpc.max_send_message_length", 100),
		opt("grpc.max_message_length", 200),
	})
	if len(cfg.Call) != 3 || len(cfg.Dial) != 0 {
		t.Errorf("message limits: %d call, %d dial options; want 3, 0", len(cfg.Call), len(cfg.Dial))
	}
	cfg = ChannelOptions([]Option{opt("grpc.default_authority", "example.com:443")})
	if cfg.Authority != "example.com:443" || len(cfg.Dial) != 1 {
		t.Errorf("authority: %+v", cfg)
	}
	// Keepalive settings fold into one dial option; disabling retries,
	// the service config and the LB policy each add theirs.
	cfg = ChannelOptions([]Option{
		opt("grpc.keepalive_time_ms", 10000),
		opt("grpc.keepalive_timeout_ms", 5000),
		opt("grpc.keepalive_permit_without_calls", 1),
		opt("grpc.enable_retries", 0),
		opt("grpc.lb_policy_name", "round_robin"),
		opt("grpc.primary_user_agent", "ua"),
		opt("grpc.http2.initial_window_size", 1<<20),
	})
	if len(cfg.Dial) != 5 {
		t.Errorf("got %d dial options, want 5", len(cfg.Dial))
	}
}

func TestServerOptions(t *testing.T) {
	cfg := ServerOptions(nil)
	if !cfg.ReusePort || len(cfg.Server) != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	off, err := ParseOptions([]byte(`[["grpc.so_reuseport", 0], ["grpc.so_reuseport", "0"], ["grpc.so_reuseport", false]]`))
	if err != nil || len(off) != 3 {
		t.Fatal(off, err)
	}
	for _, v := range off {
		if ServerOptions([]Option{v}).ReusePort {
			t.Errorf("so_reuseport %+v left SO_REUSEPORT on", v)
		}
	}
	if !ServerOptions([]Option{opt("grpc.so_reuseport", 1)}).ReusePort {
		t.Error("so_reuseport=1 turned SO_REUSEPORT off")
	}
	// String values and unknown keys are ignored.
	cfg = ServerOptions([]Option{opt("grpc.max_receive_message_length", "big"), opt("grpc.whatever", 3), opt("grpc.max_concurrent_streams", 0)})
	if len(cfg.Server) != 0 || !cfg.ReusePort {
		t.Errorf("ignored options: %+v", cfg)
	}
	cfg = ServerOptions([]Option{
		opt("grpc.max_receive_message_length", -1),
		opt("grpc.max_send_message_length", 10),
		opt("grpc.max_concurrent_streams", 10),
		opt("grpc.http2.initial_window_size", 1<<20),
		opt("grpc.keepalive_time_ms", 1000),
		opt("grpc.keepalive_timeout_ms", 1000),
		opt("grpc.max_connection_idle_ms", 1000),
		opt("grpc.max_connection_age_ms", 1000),
		opt("grpc.max_connection_age_grace_ms", 1000),
		opt("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
		opt("grpc.keepalive_permit_without_calls", 1),
	})
	// Four direct options, plus one for keepalive parameters and one for
	// the enforcement policy.
	if len(cfg.Server) != 6 {
		t.Errorf("got %d server options, want 6", len(cfg.Server))
	}
}

// TestOptionsEndToEnd: options parsed from JSON take effect on real
// channels and servers.
func TestOptionsEndToEnd(t *testing.T) {
	checkLeaks(t)
	sopts, err := ParseOptions([]byte(`[["grpc.max_receive_message_length", "100"], ["grpc.so_reuseport", false], ["unknown", "x"]]`))
	if err != nil {
		t.Fatal(err)
	}
	authority := make(chan string, 4)
	_, target := newTestServer(t, func(c *ServerCall) {
		if a := c.Metadata.Get(":authority"); len(a) > 0 {
			authority <- a[0]
		} else {
			authority <- ""
		}
		sizeHandler(c)
	}, sopts...)
	copts, err := ParseOptions([]byte(`[["grpc.max_receive_message_length", 10], ["grpc.default_authority", "my.authority"], ["grpc.unknown", true]]`))
	if err != nil {
		t.Fatal(err)
	}
	ch := dial(t, target, copts...)
	_, _, st := ch.Unary(spec("/size/Respond"), BytesMsg([]byte("10")))
	wantStatus(t, st, codes.OK, "")
	if a, _ := recvChan(t, "authority", authority); a != "my.authority" {
		t.Errorf(":authority = %q, want my.authority", a)
	}
	_, _, st = ch.Unary(spec("/size/Respond"), BytesMsg([]byte("11")))
	wantCode(t, st, codes.ResourceExhausted)
	recvChan(t, "authority", authority)
	_, _, st = ch.Unary(spec("/size/Count"), BytesMsg(make([]byte, 101)))
	wantCode(t, st, codes.ResourceExhausted)
	// so_reuseport false: the port is ours alone.
	other := NewServer(nil, 0)
	defer other.Stop(0)
	if _, err := other.AddPort(target, nil); err == nil {
		t.Errorf("bound %s, held by a server with so_reuseport=false", target)
	}
}

// TestKeepaliveOptions: a channel and server configured with keepalive
// settings work normally (grpc-go accepts the values).
func TestKeepaliveOptions(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, coreEcho,
		opt("grpc.keepalive_time_ms", 10000), opt("grpc.keepalive_timeout_ms", 5000),
		opt("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
		opt("grpc.keepalive_permit_without_calls", 1),
		opt("grpc.max_connection_idle_ms", 60000))
	ch := dial(t, target,
		opt("grpc.keepalive_time_ms", 10000), opt("grpc.keepalive_timeout_ms", 5000),
		opt("grpc.keepalive_permit_without_calls", 1), opt("grpc.enable_retries", 0),
		opt("grpc.lb_policy_name", "pick_first"), opt("grpc.primary_user_agent", "ua/1"),
		opt("grpc.service_config", `{"methodConfig":[{"name":[{"service":"test.Echo"}],"timeout":"10s"}]}`))
	resp, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("ka")))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "response", resp.Materialize(), []byte("ka"))
}
