package core

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/keepalive"
)

// Option is one grpcio channel argument: a key and an int or string value.
type Option struct {
	Key   string
	Int   int64
	Str   string
	IsInt bool
}

// ParseOptions decodes the JSON list of [key, value] pairs the binding sends.
// Values that are neither numbers nor strings are dropped: grpcio ignores
// options it does not understand, and so do we.
func ParseOptions(data []byte) ([]Option, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var raw [][2]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("options must be a sequence of (key, value) pairs: %v", err)
	}
	out := make([]Option, 0, len(raw))
	for _, kv := range raw {
		key, ok := kv[0].(string)
		if !ok {
			continue
		}
		switch v := kv[1].(type) {
		case float64:
			out = append(out, Option{Key: key, Int: int64(v), IsInt: true, Str: strconv.FormatInt(int64(v), 10)})
		case bool:
			i := int64(0)
			if v {
				i = 1
			}
			out = append(out, Option{Key: key, Int: i, IsInt: true, Str: strconv.FormatInt(i, 10)})
		case string:
			i, err := strconv.ParseInt(v, 10, 64)
			out = append(out, Option{Key: key, Str: v, Int: i, IsInt: err == nil})
		}
	}
	return out, nil
}

// msgLimit turns grpcio's message length convention (-1 = unlimited) into a
// grpc-go limit.
func msgLimit(v int64) int {
	if v < 0 || v > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(v)
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// Flow-control windows used unless the options set one. grpc-go starts at
// 64 KiB and grows windows by bandwidth-delay estimation, which keeps a
// 1 MiB message waiting on window updates for round trips; fixed windows
// let it flow at once (a 1 MiB echo between two grpc-go programs here:
// ~870 -> ~1,050 MiB/s). A window bounds how much a peer may send ahead of
// the reader, not what is allocated; BDP estimation may grow to 16 MiB too.
const (
	defaultStreamWindow = 4 << 20
	defaultConnWindow   = 16 << 20
)

// windowDefaults come before the options' own, which override them.
var (
	dialWindowDefaults = []grpc.DialOption{
		grpc.WithInitialWindowSize(defaultStreamWindow),
		grpc.WithInitialConnWindowSize(defaultConnWindow),
	}
	serverWindowDefaults = []grpc.ServerOption{
		grpc.InitialWindowSize(defaultStreamWindow),
		grpc.InitialConnWindowSize(defaultConnWindow),
	}
)

// ChannelConfig is what the channel arguments say, in grpc-go's terms.
type ChannelConfig struct {
	Dial          []grpc.DialOption
	Call          []grpc.CallOption
	Authority     string
	TLSServerName string                 // the name the server's certificate must carry
	TLSSessions   tls.ClientSessionCache // grpc.ssl_session_cache; nil: none
	MDLimits      MetadataLimits
}

// ChannelOptions maps grpcio channel arguments onto grpc-go dial options.
func ChannelOptions(opts []Option) ChannelConfig {
	var cfg ChannelConfig
	var ka keepalive.ClientParameters
	haveKA := false
	retries := true
	serviceConfig := ""
	lbPolicy := ""
	primaryUA, secondaryUA, libraryUA := "", "", ""
	mdSoft, mdHard := -1, -1
	for _, o := range opts {
		switch o.Key {
		case "grpc.max_receive_message_length", "grpc.max_message_length":
			if o.IsInt {
				cfg.Call = append(cfg.Call, grpc.MaxCallRecvMsgSize(msgLimit(o.Int)))
			}
		case "grpc.max_send_message_length":
			if o.IsInt {
				cfg.Call = append(cfg.Call, grpc.MaxCallSendMsgSize(msgLimit(o.Int)))
			}
		case "grpc.default_authority":
			cfg.Authority = o.Str
		case "grpc.ssl_target_name_override":
			cfg.TLSServerName = o.Str
		case "grpc.ssl_session_cache":
			if o.IsInt {
				cfg.TLSSessions = sessionCache(o.Int)
			}
		case "grpc.max_metadata_size":
			if o.IsInt && o.Int >= 0 && o.Int <= math.MaxInt32 {
				mdSoft = int(o.Int)
			}
		case "grpc.absolute_max_metadata_size":
			if o.IsInt && o.Int >= 0 && o.Int <= math.MaxInt32 {
				mdHard = int(o.Int)
			}
		case "grpcgo.library_user_agent": // set by grpc._channel: "grpc-python/<version>"
			libraryUA = o.Str
		case "grpc.primary_user_agent":
			primaryUA = o.Str
		case "grpc.secondary_user_agent":
			secondaryUA = o.Str
		case "grpc.keepalive_time_ms":
			if o.IsInt && o.Int > 0 && o.Int < math.MaxInt32 {
				ka.Time, haveKA = ms(o.Int), true
			}
		case "grpc.keepalive_timeout_ms":
			if o.IsInt && o.Int > 0 {
				ka.Timeout, haveKA = ms(o.Int), true
			}
		case "grpc.keepalive_permit_without_calls":
			ka.PermitWithoutStream, haveKA = o.Int != 0, true
		case "grpc.enable_retries":
			retries = o.Int != 0
		case "grpc.service_config":
			serviceConfig = o.Str
		case "grpc.lb_policy_name":
			lbPolicy = o.Str
		case "grpc.http2.initial_window_size":
			if o.IsInt && o.Int > 0 {
				cfg.Dial = append(cfg.Dial, grpc.WithInitialWindowSize(int32(o.Int)))
			}
		case "grpc.default_compression_algorithm":
			if name := CompressorName(int(o.Int)); o.IsInt && name != "" {
				cfg.Call = append(cfg.Call, grpc.UseCompressor(name))
			}
		}
	}
	cfg.MDLimits = metadataLimits(mdSoft, mdHard)
	if haveKA {
		cfg.Dial = append(cfg.Dial, grpc.WithKeepaliveParams(ka))
	}
	// grpcio's agent, which a server may log or check: "<primary>
	// grpc-python/<version> grpc-c/<core version> (<os>; chttp2)
	// <secondary>" (libraryUA is the grpc-python part). grpc-go's
	// WithUserAgent would add "grpc-go/<version>"; with grpcgo's change the
	// agent goes out whole (userAgent, patched.go).
	if userAgent != nil && primaryUA+libraryUA+secondaryUA != "" {
		parts := []string{}
		for _, p := range []string{primaryUA, libraryUA, grpcioCoreAgent(), secondaryUA} {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		cfg.Dial = append(cfg.Dial, userAgent(strings.Join(parts, " ")))
	} else if ua := strings.TrimSpace(primaryUA + " " + secondaryUA); ua != "" {
		cfg.Dial = append(cfg.Dial, grpc.WithUserAgent(ua))
	}
	if !retries {
		cfg.Dial = append(cfg.Dial, grpc.WithDisableRetry())
	}
	if lbPolicy != "" && balancer.Get(lbPolicy) == nil {
		lbPolicy = "" // grpcio falls back to its default for a name it does not know
	}
	if serviceConfig == "" && lbPolicy != "" {
		serviceConfig = fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, lbPolicy)
	}
	if serviceConfig != "" {
		cfg.Dial = append(cfg.Dial, grpc.WithDefaultServiceConfig(serviceConfig))
	}
	if cfg.Authority != "" {
		cfg.Dial = append(cfg.Dial, grpc.WithAuthority(cfg.Authority))
	}
	return cfg
}

// ServerConfig is what the server arguments say, in grpc-go's terms.
type ServerConfig struct {
	Server     []grpc.ServerOption
	ReusePort  bool
	Compressor string // compresses every response unless a call says otherwise
	// Disabled names the request encodings refused with UNIMPLEMENTED
	// ("grpc.compression_enabled_algorithms_bitset", as C-core).
	Disabled []string
	MDLimits MetadataLimits
	// Guard bounds what a client may send (h2guard.go); grpcgo's own
	// options "grpcgo.http2.max_continuation_frames" and
	// "grpcgo.http2.max_resets_per_second" set it (0: no bound).
	Guard GuardLimits
}

// ServerOptions maps grpcio server arguments onto grpc-go server options.
func ServerOptions(opts []Option) ServerConfig {
	cfg := ServerConfig{ReusePort: true, Guard: defaultGuardLimits}
	var kp keepalive.ServerParameters
	var ep keepalive.EnforcementPolicy
	haveKP, haveEP := false, false
	mdSoft, mdHard := -1, -1
	for _, o := range opts {
		if !o.IsInt {
			continue
		}
		switch o.Key {
		case "grpc.max_metadata_size":
			if o.Int >= 0 && o.Int <= math.MaxInt32 {
				mdSoft = int(o.Int)
			}
		case "grpc.absolute_max_metadata_size":
			if o.Int >= 0 && o.Int <= math.MaxInt32 {
				mdHard = int(o.Int)
			}
		case "grpc.max_receive_message_length", "grpc.max_message_length":
			cfg.Server = append(cfg.Server, grpc.MaxRecvMsgSize(msgLimit(o.Int)))
		case "grpc.max_send_message_length":
			cfg.Server = append(cfg.Server, grpc.MaxSendMsgSize(msgLimit(o.Int)))
		case "grpc.max_concurrent_streams":
			if o.Int > 0 {
				cfg.Server = append(cfg.Server, grpc.MaxConcurrentStreams(uint32(o.Int)))
			}
		case "grpc.so_reuseport":
			cfg.ReusePort = o.Int != 0
		case "grpcgo.http2.max_continuation_frames":
			cfg.Guard.MaxContinuations = int(max(o.Int, 0))
		case "grpcgo.http2.max_resets_per_second":
			cfg.Guard.MaxResetsPerSecond = int(max(o.Int, 0))
		case "grpc.default_compression_algorithm":
			cfg.Compressor = CompressorName(int(o.Int))
		case "grpc.compression_enabled_algorithms_bitset":
			cfg.Disabled = DisabledEncodings(o.Int)
		case "grpc.keepalive_time_ms":
			if o.Int > 0 && o.Int < math.MaxInt32 {
				kp.Time, haveKP = ms(o.Int), true
			}
		case "grpc.keepalive_timeout_ms":
			if o.Int > 0 {
				kp.Timeout, haveKP = ms(o.Int), true
			}
		case "grpc.max_connection_idle_ms":
			if o.Int > 0 && o.Int < math.MaxInt32 {
				kp.MaxConnectionIdle, haveKP = ms(o.Int), true
			}
		case "grpc.max_connection_age_ms":
			if o.Int > 0 && o.Int < math.MaxInt32 {
				kp.MaxConnectionAge, haveKP = ms(o.Int), true
			}
		case "grpc.max_connection_age_grace_ms":
			if o.Int > 0 && o.Int < math.MaxInt32 {
				kp.MaxConnectionAgeGrace, haveKP = ms(o.Int), true
			}
		case "grpc.http2.min_recv_ping_interval_without_data_ms", "grpc.http2.min_ping_interval_without_data_ms":
			ep.MinTime, haveEP = ms(o.Int), true
		case "grpc.keepalive_permit_without_calls":
			ep.PermitWithoutStream, haveEP = o.Int != 0, true
		case "grpc.http2.initial_window_size":
			if o.Int > 0 {
				cfg.Server = append(cfg.Server, grpc.InitialWindowSize(int32(o.Int)))
			}
		}
	}
	cfg.MDLimits = metadataLimits(mdSoft, mdHard)
	if haveKP {
		cfg.Server = append(cfg.Server, grpc.KeepaliveParams(kp))
	}
	if haveEP {
		cfg.Server = append(cfg.Server, grpc.KeepaliveEnforcementPolicy(ep))
	}
	return cfg
}

// userAgent sets a channel's whole user agent (grpc.GrpcgoUserAgent, in
// builds with grpcgo's change to grpc-go: patched.go); nil without it.
var userAgent func(string) grpc.DialOption

// grpcioCoreAgent is the part of grpcio's user agent its C core adds after
// grpc-python's: "grpc-c/<core version> (<os>; chttp2)", as grpcio 1.85.1
// sends it (its core is 58.0.0; tests/test_wire_headers.py). <os> is C
// core's name for the platform (GPR_PLATFORM_STRING).
func grpcioCoreAgent() string {
	os := runtime.GOOS
	switch os {
	case "linux", "android", "ios", "windows":
	case "darwin":
		os = "osx"
	default:
		os = "posix"
	}
	return "grpc-c/" + grpcioCoreVersion + " (" + os + "; chttp2)"
}

// grpcioCoreVersion is the C core version of grpcio 1.85 (grpc-c/ in its
// user agent).
const grpcioCoreVersion = "58.0.0"
