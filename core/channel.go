package core

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Channel is a client connection to one target.
type Channel struct {
	cc       *grpc.ClientConn
	target   string // as given to Dial
	callOpts []grpc.CallOption
	refuse   *Status         // set: every call fails at once with it
	mdLimits MetadataLimits  // on received header blocks
	ctx      context.Context // cancelled when the channel closes
	cancel   context.CancelCauseFunc
	closed   atomic.Bool

	// metricsTarget is the canonical target when the channel records
	// per-call metrics (made while they were on), else "".
	metricsTarget string
	// fastUnary: unary calls may start on the caller's goroutine
	// (fastunary.go): nothing on the channel calls out while a stream
	// starts (no call credentials: they may call into Python; no xDS:
	// its interceptors may delay a start; no metrics: a start that would
	// wait and is retried on a worker would count twice).
	fastUnary bool
	// wakeFirst: such a call's caller is woken before the call's
	// bookkeeping runs (fastCall.wakeFirst); GRPCGO_UNARY_WAKE_FIRST=0
	// when the channel was made turns it off.
	wakeFirst bool
	// unaryLive counts the unary calls StartUnaryOn started that have not
	// ended.
	unaryLive atomic.Int32
}

// Dial creates a channel secured by creds (nil: insecure). Like grpcio, it
// does not connect until a call or a connectivity request needs it.
func Dial(target string, opts []Option, creds *ChannelCredentials) (*Channel, error) {
	cfg := ChannelOptions(opts)
	transport := creds.transport(cfg.TLSServerName, cfg.TLSSessions)
	if cfg.Authority != "" && cfg.TLSServerName != "" {
		// grpcio sends one name as :authority and checks the certificate
		// against the other; grpc-go refuses two different names unless the
		// credentials keep theirs to themselves.
		transport = privateServerName{transport, cfg.TLSServerName}
	}
	// Every connection's frames are watched for illegal SETTINGS (h2guard.go).
	dial := []grpc.DialOption{grpc.WithTransportCredentials(guardedCreds{transport})}
	if creds != nil && len(creds.Call) > 0 {
		// One credentials object: grpc-go merges several into one map, one
		// value per key; ours gives every pair in order.
		dial = append(dial, grpc.WithPerRPCCredentials(ComposeCall(creds.Call...)))
	}
	resolved, extra, err := resolveTarget(target)
	if err != nil {
		return nil, err
	}
	refuse := creds.refusal()
	if st := unresolvable(target); st != nil && resolved == target {
		// Never resolved: calls fail with st, connecting finds no address.
		r := manual.NewBuilderWithScheme("grpcgo-unresolvable")
		r.InitialState(resolver.State{})
		resolved, extra = "grpcgo-unresolvable:///", []grpc.DialOption{grpc.WithResolvers(r)}
		if refuse == nil {
			refuse = st
		}
	}
	dial = append(dial, extra...)
	dial = append(dial, dialWindowDefaults...)
	dial = append(dial, experimental.WithBufferPool(BufferPool))
	dial = append(dial, cfg.Dial...)
	metricsOpt, metricsTarget := channelMetrics(target)
	if metricsOpt != nil {
		dial = append(dial, metricsOpt)
	}
	cc, err := grpc.NewClient(resolved, dial...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := &Channel{
		cc:       cc,
		refuse:   refuse,
		target:   target,
		callOpts: append([]grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}, cfg.Call...),
		mdLimits: cfg.MDLimits,
		ctx:      ctx,
		cancel:   cancel,
	}
	ch.metricsTarget = metricsTarget
	ch.fastUnary = fastUnaryOn && (creds == nil || len(creds.Call) == 0) && metricsTarget == "" &&
		!strings.HasPrefix(strings.ToLower(target), "xds:")
	ch.wakeFirst = os.Getenv("GRPCGO_UNARY_WAKE_FIRST") != "0"
	liveChannels.Add(1)
	return ch, nil
}

// unresolvable is the status of calls to a target written as a URI whose
// scheme no resolver knows ("http://host"): grpc-go would hand all of it to
// its DNS resolver, which would look up the scheme ("http") as a host name.
// grpcio fails such calls with UNAVAILABLE; nil for every other target.
func unresolvable(target string) *Status {
	scheme, _, ok := strings.Cut(target, "://")
	if !ok || scheme == "" || resolver.Get(strings.ToLower(scheme)) != nil ||
		strings.ContainsAny(scheme, "/[]") {
		return nil
	}
	return &Status{Code: codes.Unavailable,
		Details: fmt.Sprintf("DNS resolution failed for %s: no resolver for the scheme %q", target, scheme)}
}

// resolveTarget handles grpcio's "ipv4:" and "ipv6:" address-list targets,
// which grpc-go has no resolver for, with a static resolver of their own;
// and "localhost", see localhostTarget.
func resolveTarget(target string) (string, []grpc.DialOption, error) {
	if resolved, extra, ok := localhostTarget(target); ok {
		return resolved, extra, nil
	}
	var scheme string
	switch {
	case strings.HasPrefix(target, "ipv4:"):
		scheme = "ipv4"
	case strings.HasPrefix(target, "ipv6:"):
		scheme = "ipv6"
	default:
		return target, nil, nil
	}
	// "ipv4:addr", and the URI forms "ipv4:///addr" (empty authority)
	// and "ipv4://addr".
	list := strings.TrimPrefix(strings.TrimPrefix(target, scheme+":"), "//")
	list = strings.TrimPrefix(list, "/")
	if list == "" {
		return "", nil, fmt.Errorf("target %q names no address", target)
	}
	var addrs []resolver.Address
	for _, a := range strings.Split(list, ",") {
		addrs = append(addrs, resolver.Address{Addr: a})
	}
	r := manual.NewBuilderWithScheme("grpcgo-static")
	r.InitialState(resolver.State{Addresses: addrs})
	return "grpcgo-static:///" + list, []grpc.DialOption{grpc.WithResolvers(r)}, nil
}

// localhostTarget makes "localhost:PORT" (also "dns:///localhost:PORT")
// reach a server listening on [::1] as well as on 127.0.0.1, as grpcio's
// resolver does whatever /etc/hosts says: both addresses, IPv6 first, in a
// static resolver, with "localhost:PORT" kept as the authority (the
// target's endpoint; TLS checks its host, "localhost"). The addresses carry
// no ServerName: grpc-go would send that as the :authority, without the
// port.
func localhostTarget(target string) (string, []grpc.DialOption, bool) {
	hostPort := strings.TrimPrefix(strings.TrimPrefix(target, "dns:///"), "dns:")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || !strings.EqualFold(host, "localhost") || port == "" {
		return "", nil, false
	}
	// TLS checks the channel's authority, which an ssl_target_name_override
	// replaces.
	addrs := []resolver.Address{
		{Addr: net.JoinHostPort("::1", port)},
		{Addr: net.JoinHostPort("127.0.0.1", port)},
	}
	r := manual.NewBuilderWithScheme("grpcgo-localhost")
	r.InitialState(resolver.State{Addresses: addrs})
	// The target's endpoint, "localhost:PORT", stays the default authority.
	return "grpcgo-localhost:///" + hostPort, []grpc.DialOption{grpc.WithResolvers(r)}, true
}

// Close cancels every call on the channel and releases the connection.
// It is idempotent.
func (ch *Channel) Close() {
	if ch.closed.Swap(true) {
		return
	}
	ch.cancel(errChannelClosed) // every call on it ends now, CANCELLED
	liveChannels.Add(-1)
	// grpc-go's teardown waits for its goroutines (resolver, balancer,
	// connections) to hand off and end: ~35 us the caller need not wait
	// for (grpcio's close returns in ~2 us too; its core tears down later).
	go ch.cc.Close()
}

// Closed reports whether Close was called.
func (ch *Channel) Closed() bool { return ch.closed.Load() }

// Target is the target the channel was created with.
func (ch *Channel) Target() string { return ch.target }

// State reports the channel's connectivity state (grpc-go's
// connectivity.State values, which match grpcio's ChannelConnectivity
// order). With connect, an idle channel starts connecting, and the state
// reported is the one before that (IDLE), as C-core's
// check_connectivity_state reports it.
func (ch *Channel) State(connect bool) int {
	state := ch.cc.GetState()
	if connect && !ch.closed.Load() {
		ch.cc.Connect()
	}
	return int(state)
}

// WatchState returns a channel that yields the next state different from
// `from`; it closes without a value if stop fires or the channel closes
// first.
func (ch *Channel) WatchState(from int, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	ctx, cancel := context.WithCancel(ch.ctx)
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		defer close(out)
		defer cancel()
		if ch.cc.WaitForStateChange(ctx, connectivity.State(from)) {
			out <- int(ch.cc.GetState())
		}
	}()
	return out
}

// privateServerName hides the TLS server name from grpc-go's authority
// check, and verifies the certificate against it, not the authority.
type privateServerName struct {
	credentials.TransportCredentials
	name string
}

func (p privateServerName) ClientHandshake(ctx context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return p.TransportCredentials.ClientHandshake(ctx, p.name, conn)
}

func (p privateServerName) Info() credentials.ProtocolInfo {
	info := p.TransportCredentials.Info()
	info.ServerName = ""
	return info
}

func (p privateServerName) Clone() credentials.TransportCredentials {
	return privateServerName{p.TransportCredentials.Clone(), p.name}
}
