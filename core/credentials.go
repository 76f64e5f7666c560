package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/alts"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/local"
)

// ChannelCredentials is how a channel secures its connections, plus the
// call credentials every call on it carries. The zero value is insecure.
type ChannelCredentials struct {
	// newTransport makes a channel's transport credentials: the name the
	// server's certificate must carry ("": the target's) and the channel's
	// TLS session cache (nil: none); only TLS uses them.
	newTransport func(serverName string, sessions tls.ClientSessionCache) credentials.TransportCredentials
	Call         []*CallCredentials
	refuse       *Status // set: every call fails at once with it
}

func (c *ChannelCredentials) refusal() *Status {
	if c == nil {
		return nil
	}
	return c.refuse
}

// Insecure reports whether connections go unencrypted and unauthenticated.
func (c *ChannelCredentials) Insecure() bool { return c == nil || c.newTransport == nil }

func (c *ChannelCredentials) transport(serverName string, sessions tls.ClientSessionCache) credentials.TransportCredentials {
	if c.Insecure() {
		return insecure.NewCredentials()
	}
	return c.newTransport(serverName, sessions)
}

// TLSChannel verifies the server against roots (system roots when
// hasRoots is false) and, given a key and chain, presents a client
// certificate. Like grpcio, it accepts PEM it cannot use: every connection
// attempt then fails (UNAVAILABLE for the calls) saying why.
func TLSChannel(roots []byte, hasRoots bool, key, chain []byte) (*ChannelCredentials, error) {
	cfg, err := tlsClientConfig(roots, hasRoots, key, chain)
	if err != nil {
		fail := unavailableTransport{err: fmt.Errorf("cannot create the TLS handshaker: %v", err), protocol: "tls"}
		return &ChannelCredentials{newTransport: func(string, tls.ClientSessionCache) credentials.TransportCredentials { return fail }}, nil
	}
	return &ChannelCredentials{newTransport: func(serverName string, sessions tls.ClientSessionCache) credentials.TransportCredentials {
		c := cfg.Clone()
		c.ServerName = serverName
		c.ClientSessionCache = sessions
		return newClientTLS(c)
	}}, nil
}

func tlsClientConfig(roots []byte, hasRoots bool, key, chain []byte) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if hasRoots {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(roots) {
			return nil, errors.New("root_certificates holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if len(key) > 0 || len(chain) > 0 {
		pair, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("bad private key or certificate chain: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// LocalChannel trusts the connection because it stays on this machine
// (a unix socket, or loopback TCP).
func LocalChannel(uds bool) *ChannelCredentials {
	return &ChannelCredentials{newTransport: func(string, tls.ClientSessionCache) credentials.TransportCredentials {
		return localKind{local.NewCredentials(), uds}
	}}
}

// localKind restricts local credentials to one kind of connection, as
// grpcio's LocalConnectionType does: unix sockets, or loopback TCP.
type localKind struct {
	credentials.TransportCredentials
	uds bool
}

func (l localKind) check(conn net.Conn) error {
	isUnix := conn.RemoteAddr().Network() == "unix"
	if isUnix != l.uds {
		if l.uds {
			return errors.New("local credentials for UDS refuse a TCP connection")
		}
		return errors.New("local credentials for LOCAL_TCP refuse a unix socket connection")
	}
	return nil
}

func (l localKind) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if err := l.check(conn); err != nil {
		return nil, nil, err
	}
	return l.TransportCredentials.ClientHandshake(ctx, authority, conn)
}

func (l localKind) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if err := l.check(conn); err != nil {
		return nil, nil, err
	}
	return l.TransportCredentials.ServerHandshake(conn)
}

func (l localKind) Clone() credentials.TransportCredentials {
	return localKind{l.TransportCredentials.Clone(), l.uds}
}

// ALTSChannel uses Google's ALTS; it needs the ALTS handshaker service that
// only Google Cloud provides, and says so elsewhere.
func ALTSChannel(serviceAccounts []string) *ChannelCredentials {
	if !onGoogleCloud() {
		// As grpcio: every call fails at once with INTERNAL.
		return &ChannelCredentials{newTransport: func(string, tls.ClientSessionCache) credentials.TransportCredentials {
			return unavailableTransport{err: errNoALTS, protocol: "alts"}
		}, refuse: &Status{Code: codes.Internal, Details: errNoALTS.Error()}}
	}
	return &ChannelCredentials{newTransport: func(string, tls.ClientSessionCache) credentials.TransportCredentials {
		return alts.NewClientCreds(&alts.ClientOptions{TargetServiceAccounts: serviceAccounts})
	}}
}

// WithCall returns credentials that add call credentials to these.
func (c *ChannelCredentials) WithCall(calls ...*CallCredentials) *ChannelCredentials {
	out := &ChannelCredentials{}
	if c != nil {
		*out = *c
	}
	out.Call = append(append([]*CallCredentials(nil), out.Call...), calls...)
	return out
}

// ServerCredentials is how one server port secures its connections; nil is
// insecure.
type ServerCredentials struct {
	transport credentials.TransportCredentials
	err       error // why no port can use these credentials
}

// CertConfig is a server's certificates and the roots it verifies client
// certificates against.
type CertConfig struct {
	certs     []tls.Certificate
	clientCAs *x509.CertPool
	err       error // unusable PEM: reported when a port or handshake uses it, as grpcio does
}

// NewCertConfig parses (key, chain) pairs and optional client roots.
func NewCertConfig(keys, chains [][]byte, roots []byte, hasRoots bool) (*CertConfig, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one private key-certificate chain pair is required")
	}
	cc := &CertConfig{}
	for i := range keys {
		pair, err := tls.X509KeyPair(chains[i], keys[i])
		if err != nil {
			cc.err = fmt.Errorf("bad private key or certificate chain (pair %d): %v", i, err)
			return cc, nil
		}
		cc.certs = append(cc.certs, pair)
	}
	if hasRoots {
		cc.clientCAs = x509.NewCertPool()
		if !cc.clientCAs.AppendCertsFromPEM(roots) {
			cc.err = errors.New("root_certificates holds no PEM certificate")
		}
	}
	return cc, nil
}

func (cc *CertConfig) tlsConfig(requireClientAuth bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: cc.certs, ClientCAs: cc.clientCAs}
	if requireClientAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// TLSServer serves TLS with fixed certificates.
func TLSServer(cc *CertConfig, requireClientAuth bool) *ServerCredentials {
	if cc.err != nil {
		return &ServerCredentials{err: cc.err}
	}
	return &ServerCredentials{transport: credentials.NewTLS(cc.tlsConfig(requireClientAuth))}
}

// DynamicTLSServer asks fetch before every handshake whether the
// certificates changed: a new CertConfig replaces the current one, nil
// keeps it, and an error keeps it too (reported through onError).
func DynamicTLSServer(initial *CertConfig, fetch func() (*CertConfig, error), requireClientAuth bool,
	onError func(error)) *ServerCredentials {
	if initial.err != nil {
		return &ServerCredentials{err: initial.err}
	}
	current := make(chan *CertConfig, 1)
	current <- initial
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cc := <-current
		next, err := fetch()
		switch {
		case err != nil:
			if onError != nil {
				onError(err)
			}
		case next != nil:
			cc = next
		}
		current <- cc
		cfg := cc.tlsConfig(requireClientAuth)
		cfg.NextProtos = []string{"h2"}
		return cfg, nil
	}
	return &ServerCredentials{transport: credentials.NewTLS(base)}
}

// LocalServer accepts only connections from this machine.
func LocalServer(uds bool) *ServerCredentials {
	return &ServerCredentials{transport: localKind{local.NewCredentials(), uds}}
}

// ALTSServer serves ALTS; it needs Google Cloud's handshaker service.
func ALTSServer() *ServerCredentials {
	if !onGoogleCloud() {
		return &ServerCredentials{err: errNoALTS}
	}
	return &ServerCredentials{transport: alts.NewServerCreds(alts.DefaultServerOptions())}
}

var errNoALTS = errors.New("ALTS needs Google Cloud's ALTS handshaker service, which this machine does not have")

// onGoogleCloud tells whether this is a Google Cloud VM, the only place an
// ALTS handshaker runs, the way Google's libraries tell it.
func onGoogleCloud() bool {
	b, err := os.ReadFile("/sys/class/dmi/id/product_name")
	return err == nil && strings.Contains(string(b), "Google")
}

// unavailableTransport fails every handshake with err.
type unavailableTransport struct {
	err      error
	protocol string
}

func (u unavailableTransport) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, u.err
}

func (u unavailableTransport) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, u.err
}

func (u unavailableTransport) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: u.protocol}
}
func (u unavailableTransport) Clone() credentials.TransportCredentials { return u }
func (u unavailableTransport) OverrideServerName(string) error         { return nil }
