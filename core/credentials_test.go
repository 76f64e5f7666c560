package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ---- certificates, made in the test with crypto/x509 ----

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serialCounter atomic.Int64

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serialCounter.Add(1)),
		Subject:               pkix.Name{Organization: []string{"grpcgo tests"}, CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: certPEM(der)}
}

type leaf struct {
	key, cert []byte
}

// issue signs a certificate for cn; tweak may change the template.
func (ca *testCA) issue(t *testing.T, cn string, tweak func(*x509.Certificate)) leaf {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serialCounter.Add(1)),
		Subject:      pkix.Name{Organization: []string{"grpcgo tests"}, CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tweak != nil {
		tweak(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return leaf{key: keyPEM(t, key), cert: certPEM(der)}
}

func loopbackNames(c *x509.Certificate) {
	c.DNSNames = []string{"localhost"}
	c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
}

// rawSANs is a subjectAltName extension holding names in the given order
// (crypto/x509 would write them grouped by type).
func rawSANs(t *testing.T, names ...asn1.RawValue) pkix.Extension {
	t.Helper()
	der, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der}
}

func san(tag int, b []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: b}
}

type testPKI struct {
	ca, otherCA                      *testCA
	server, wrongHost, expired       leaf
	otherServer, client, otherClient leaf
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
)

func thePKI(t *testing.T) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		p := &testPKI{ca: newCA(t, "grpcgo test CA"), otherCA: newCA(t, "grpcgo other CA")}
		p.server = p.ca.issue(t, "localhost", loopbackNames)
		p.wrongHost = p.ca.issue(t, "wrong.example", func(c *x509.Certificate) { c.DNSNames = []string{"wrong.example"} })
		p.expired = p.ca.issue(t, "localhost", func(c *x509.Certificate) {
			loopbackNames(c)
			c.NotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			c.NotAfter = time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC)
		})
		p.otherServer = p.otherCA.issue(t, "localhost", loopbackNames)
		p.client = p.ca.issue(t, "grpcgo-client", nil)
		p.otherClient = p.otherCA.issue(t, "grpcgo-client", nil)
		pkiVal = p
	})
	if pkiVal == nil {
		t.Fatal("making the test certificates failed")
	}
	return pkiVal
}

// ---- servers and channels ----

type port struct {
	addr  string
	creds *ServerCredentials
}

type seenCall struct {
	auth *AuthContext
	md   metadata.MD
}

// secServer serves an echo method on the given ports; every call's auth
// context and metadata go to the returned channel.
func secServer(t *testing.T, ports ...port) ([]string, <-chan seenCall) {
	t.Helper()
	srv := NewServer(nil, 0)
	var targets []string
	for _, p := range ports {
		n, err := srv.AddPort(p.addr, p.creds)
		if err != nil {
			srv.Stop(0)
			t.Fatalf("AddPort(%q): %v", p.addr, err)
		}
		network, address := splitAddress(p.addr)
		if network == "unix" {
			targets = append(targets, "unix:"+address)
		} else {
			host, _, _ := net.SplitHostPort(address)
			targets = append(targets, net.JoinHostPort(host, fmt.Sprint(n)))
		}
	}
	if err := srv.Start(); err != nil {
		srv.Stop(0)
		t.Fatal(err)
	}
	seen := make(chan seenCall, 100)
	done := dispatch(srv, func(c *ServerCall) {
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, err.Error(), nil)
			return
		}
		seen <- seenCall{auth: c.AuthContext(), md: c.Metadata}
		c.Finish(codes.OK, "", req)
	})
	t.Cleanup(func() {
		srv.Stop(0)
		<-done
	})
	return targets, seen
}

func secDial(t *testing.T, target string, creds *ChannelCredentials, opts ...Option) *Channel {
	t.Helper()
	ch, err := Dial(target, opts, creds)
	if err != nil {
		t.Fatalf("Dial(%q): %v", target, err)
	}
	t.Cleanup(ch.Close)
	return ch
}

func tlsChannel(t *testing.T, roots []byte, client *leaf) *ChannelCredentials {
	t.Helper()
	var key, chain []byte
	if client != nil {
		key, chain = client.key, client.cert
	}
	c, err := TLSChannel(roots, true, key, chain)
	if err != nil {
		t.Fatalf("TLSChannel: %v", err)
	}
	return c
}

func certConfig(t *testing.T, l leaf, clientRoots []byte) *CertConfig {
	t.Helper()
	cc, err := NewCertConfig([][]byte{l.key}, [][]byte{l.cert}, clientRoots, clientRoots != nil)
	if err != nil {
		t.Fatalf("NewCertConfig: %v", err)
	}
	return cc
}

func tlsServer(t *testing.T, l leaf, clientRoots []byte, require bool) *ServerCredentials {
	t.Helper()
	return TLSServer(certConfig(t, l, clientRoots), require)
}

// call makes one unary call and returns its status.
func call(ch *Channel, sp *CallSpec) *Status {
	_, _, st := ch.Unary(sp, BytesMsg([]byte("ping")))
	return st
}

func mustCall(t *testing.T, ch *Channel) {
	t.Helper()
	resp, _, st := ch.Unary(spec(mUnary), BytesMsg([]byte("ping")))
	wantStatus(t, st, codes.OK, "")
	wantBytes(t, "response", resp.Materialize(), []byte("ping"))
}

func wantFailure(t *testing.T, ch *Channel, code codes.Code, detailsHave ...string) *Status {
	t.Helper()
	st := call(ch, spec(mUnary))
	wantCode(t, st, code)
	for _, s := range detailsHave {
		if !strings.Contains(st.Details, s) {
			t.Fatalf("details %q do not say %q", st.Details, s)
		}
	}
	return st
}

func lastSeen(t *testing.T, seen <-chan seenCall) seenCall {
	t.Helper()
	s, _ := recvChan(t, "the server's view of the call", seen)
	return s
}

func noCall(t *testing.T, seen <-chan seenCall) {
	t.Helper()
	select {
	case s := <-seen:
		t.Fatalf("the server saw a call it should not have: %+v", s.auth)
	default:
	}
}

func wantKeys(t *testing.T, a *AuthContext, keys ...string) {
	t.Helper()
	if strings.Join(a.Keys, " ") != strings.Join(keys, " ") {
		t.Fatalf("auth context keys = %q, want %q", a.Keys, keys)
	}
	if len(a.Values) != len(keys) {
		t.Fatalf("auth context has %d properties, want %d: %v", len(a.Values), len(keys), a.Values)
	}
}

func wantValues(t *testing.T, a *AuthContext, key string, want ...string) {
	t.Helper()
	got := a.Values[key]
	if len(got) != len(want) {
		t.Fatalf("%s = %q, want %q", key, got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("%s = %q, want %q", key, got, want)
		}
	}
}

var sslKeys = []string{"security_level", "ssl_session_reused", "ssl_tls_version", "ssl_negotiated_key_exchange_group"}

// ---- TLS ----

func TestTLSChannelAndServer(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, nil, false)})
	ch := secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil))
	mustCall(t, ch)
	a := lastSeen(t, seen).auth
	// An IP target sends no SNI; no client certificate, no identity.
	wantKeys(t, a, append([]string{"transport_security_type"}, sslKeys...)...)
	wantValues(t, a, "transport_security_type", "ssl")
	wantValues(t, a, "security_level", "TSI_PRIVACY_AND_INTEGRITY")
	wantValues(t, a, "ssl_session_reused", "false")
	wantValues(t, a, "ssl_tls_version", "TLSv1.3")
	if a.IdentityKey != "" {
		t.Fatalf("IdentityKey = %q, want none", a.IdentityKey)
	}
	// grpc-go installs the new picker before it publishes READY, so a call
	// can succeed a moment before the state says so (seen at load 20).
	mustBeReady(t, ch)
}

func TestTLSServerNameFromTargetAndOverride(t *testing.T) {
	p := thePKI(t)
	foo := p.ca.issue(t, "foo.test.example", func(c *x509.Certificate) { c.DNSNames = []string{"foo.test.example"} })
	targets, seen := secServer(t,
		port{"localhost:0", tlsServer(t, p.server, nil, false)},
		port{"127.0.0.1:0", tlsServer(t, foo, nil, false)})
	mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil)))
	wantValues(t, lastSeen(t, seen).auth, "ssl_requested_server_name", "localhost")

	wantFailure(t, secDial(t, targets[1], tlsChannel(t, p.ca.pem, nil)), codes.Unavailable, "127.0.0.1")
	override := Option{Key: "grpc.ssl_target_name_override", Str: "foo.test.example"}
	mustCall(t, secDial(t, targets[1], tlsChannel(t, p.ca.pem, nil), override))
	wantValues(t, lastSeen(t, seen).auth, "ssl_requested_server_name", "foo.test.example")
	authority := Option{Key: "grpc.default_authority", Str: "foo.test.example"}
	mustCall(t, secDial(t, targets[1], tlsChannel(t, p.ca.pem, nil), authority))
	wantValues(t, lastSeen(t, seen).auth, "ssl_requested_server_name", "foo.test.example")
}

func TestTLSChannelRejectsBadServers(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	targets, seen := secServer(t,
		port{"127.0.0.1:0", tlsServer(t, p.wrongHost, nil, false)},
		port{"127.0.0.1:0", tlsServer(t, p.otherServer, nil, false)},
		port{"127.0.0.1:0", tlsServer(t, p.expired, nil, false)},
		port{"127.0.0.1:0", nil})
	creds := tlsChannel(t, p.ca.pem, nil)
	wantFailure(t, secDial(t, targets[0], creds), codes.Unavailable, "x509: ", "127.0.0.1")
	wantFailure(t, secDial(t, targets[1], creds), codes.Unavailable, "certificate signed by unknown authority")
	wantFailure(t, secDial(t, targets[2], creds), codes.Unavailable, "certificate has expired")
	wantFailure(t, secDial(t, targets[3], creds), codes.Unavailable, "tls: ")
	noCall(t, seen)
}

func TestTLSChannelUnusablePEMFailsConnections(t *testing.T) {
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, nil, false)})
	for _, tc := range []struct {
		name             string
		roots, key, cert []byte
		says             string
	}{
		{"roots", []byte("junk"), nil, nil, "root_certificates holds no PEM certificate"},
		{"key pair", p.ca.pem, []byte("junk"), []byte("junk"), "bad private key or certificate chain"},
		{"mismatched pair", p.ca.pem, p.client.key, p.server.cert, "bad private key or certificate chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := TLSChannel(tc.roots, true, tc.key, tc.cert)
			if err != nil {
				t.Fatalf("TLSChannel refused unusable PEM (%v); grpcio accepts it and fails connections", err)
			}
			wantFailure(t, secDial(t, targets[0], creds), codes.Unavailable, "cannot create the TLS handshaker", tc.says)
		})
	}
	noCall(t, seen)
}

func TestSystemRootsDoNotTrustTestCA(t *testing.T) {
	p := thePKI(t)
	targets, _ := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, nil, false)})
	creds, err := TLSChannel(nil, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFailure(t, secDial(t, targets[0], creds), codes.Unavailable, "certificate signed by unknown authority")
}

// ---- mutual TLS and the auth context ----

func TestMutualTLSCommonNameIdentity(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, p.ca.pem, true)})
	mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.client)))
	a := lastSeen(t, seen).auth
	wantKeys(t, a, append([]string{"transport_security_type", "x509_subject", "x509_common_name", "x509_pem_cert"}, sslKeys...)...)
	wantValues(t, a, "x509_subject", "CN=grpcgo-client,O=grpcgo tests")
	wantValues(t, a, "x509_common_name", "grpcgo-client")
	wantValues(t, a, "x509_pem_cert", string(p.client.cert))
	if a.IdentityKey != "x509_common_name" {
		t.Fatalf("IdentityKey = %q, want x509_common_name", a.IdentityKey)
	}
}

func TestMutualTLSSubjectAltNamesInCertificateOrder(t *testing.T) {
	p := thePKI(t)
	client := p.ca.issue(t, "grpcgo-client-sans", func(c *x509.Certificate) {
		c.ExtraExtensions = []pkix.Extension{rawSANs(t,
			san(6, []byte("spiffe://grpcgo.test/client")),
			san(2, []byte("client.example")),
			san(7, []byte{127, 0, 0, 1}),
			san(1, []byte("client@example.com")),
			san(7, net.IPv6loopback),
		)}
	})
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, p.ca.pem, true)})
	mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &client)))
	a := lastSeen(t, seen).auth
	wantKeys(t, a, append(append([]string{"transport_security_type", "x509_subject", "x509_common_name", "x509_pem_cert",
		"x509_subject_alternative_name", "peer_uri", "peer_dns", "peer_ip", "peer_email"}, sslKeys...), "peer_spiffe_id")...)
	wantValues(t, a, "x509_subject_alternative_name",
		"spiffe://grpcgo.test/client", "client.example", "127.0.0.1", "client@example.com", "::1")
	wantValues(t, a, "peer_uri", "spiffe://grpcgo.test/client")
	wantValues(t, a, "peer_dns", "client.example")
	wantValues(t, a, "peer_ip", "127.0.0.1", "::1")
	wantValues(t, a, "peer_email", "client@example.com")
	wantValues(t, a, "peer_spiffe_id", "spiffe://grpcgo.test/client")
	if a.IdentityKey != "x509_subject_alternative_name" {
		t.Fatalf("IdentityKey = %q, want x509_subject_alternative_name", a.IdentityKey)
	}
}

func TestSpiffeIDNeedsExactlyOneURI(t *testing.T) {
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, p.ca.pem, true)})
	for _, uris := range [][]string{
		{"spiffe://grpcgo.test/a", "https://grpcgo.test/b"},
		{"https://grpcgo.test/not-spiffe"},
	} {
		client := p.ca.issue(t, "uris", func(c *x509.Certificate) {
			for _, u := range uris {
				parsed, _ := url.Parse(u)
				c.URIs = append(c.URIs, parsed)
			}
		})
		mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &client)))
		a := lastSeen(t, seen).auth
		if _, ok := a.Values["peer_spiffe_id"]; ok {
			t.Fatalf("URIs %q: peer_spiffe_id = %q, want none", uris, a.Values["peer_spiffe_id"])
		}
		wantValues(t, a, "peer_uri", uris...)
	}
}

func TestMutualTLSRejectsClients(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, p.ca.pem, true)})
	wantFailure(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil)), codes.Unavailable)
	wantFailure(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.otherClient)), codes.Unavailable)
	noCall(t, seen)
}

func TestClientCertificateNotRequestedUnlessRequired(t *testing.T) {
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, p.ca.pem, false)})
	for _, c := range []*leaf{nil, &p.client, &p.otherClient} {
		mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, c)))
		a := lastSeen(t, seen).auth
		if a.IdentityKey != "" || a.Values["x509_common_name"] != nil {
			t.Fatalf("client certificate seen though not required: %q", a.Keys)
		}
	}
}

func TestNewCertConfigErrors(t *testing.T) {
	p := thePKI(t)
	for _, tc := range []struct {
		name        string
		keys, certs [][]byte
		roots       []byte
		hasRoots    bool
		says        string
	}{
		{"no pairs", nil, nil, nil, false, "at least one private key-certificate chain pair is required"},
		{"junk pair", [][]byte{[]byte("k")}, [][]byte{[]byte("c")}, nil, false, "pair 0"},
		{"second pair mismatched", [][]byte{p.server.key, p.client.key}, [][]byte{p.server.cert, p.server.cert}, nil, false, "pair 1"},
		{"junk roots", [][]byte{p.server.key}, [][]byte{p.server.cert}, []byte("junk"), true, "root_certificates holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := NewCertConfig(tc.keys, tc.certs, tc.roots, tc.hasRoots)
			if err == nil && cc != nil {
				err = cc.err // unusable PEM is reported when a port uses it
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("NewCertConfig error = %v, want one saying %q", err, tc.says)
			}
		})
	}
	cc, err := NewCertConfig([][]byte{p.server.key, p.otherServer.key}, [][]byte{p.server.cert, p.otherServer.cert}, nil, false)
	if err != nil || len(cc.certs) != 2 {
		t.Fatalf("two pairs: %v, %+v", err, cc)
	}
}

// ---- dynamic certificates ----

type steeredFetcher struct {
	mu     sync.Mutex
	calls  int
	next   *CertConfig
	err    error
	errors []error
}

func (f *steeredFetcher) fetch() (*CertConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	n := f.next
	f.next = nil
	return n, nil
}

func (f *steeredFetcher) onError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, err)
}

func (f *steeredFetcher) set(next *CertConfig, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.err = next, err
}

func (f *steeredFetcher) count() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.errors)
}

func TestDynamicTLSServerFetchesBeforeEachHandshake(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	f := &steeredFetcher{}
	creds := DynamicTLSServer(certConfig(t, p.server, nil), f.fetch, false, f.onError)
	targets, seen := secServer(t, port{"127.0.0.1:0", creds})
	if n, _ := f.count(); n != 0 {
		t.Fatalf("fetcher called %d times before any handshake", n)
	}
	ch := secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil))
	for i := 0; i < 3; i++ {
		mustCall(t, ch)
		lastSeen(t, seen)
	}
	if n, _ := f.count(); n != 1 {
		t.Fatalf("fetcher called %d times for one connection, want 1", n)
	}
	for i := 2; i <= 3; i++ {
		mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil)))
		lastSeen(t, seen)
		if n, _ := f.count(); n != i {
			t.Fatalf("fetcher called %d times for %d connections", n, i)
		}
	}
}

func TestDynamicTLSServerRotates(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	f := &steeredFetcher{}
	creds := DynamicTLSServer(certConfig(t, p.server, nil), f.fetch, false, f.onError)
	targets, _ := secServer(t, port{"127.0.0.1:0", creds})
	oldCA, newCA := tlsChannel(t, p.ca.pem, nil), tlsChannel(t, p.otherCA.pem, nil)
	// A channel that failed is closed at once: reconnecting in the
	// background, its handshakes would call the fetcher below.
	failing := secDial(t, targets[0], newCA)
	wantFailure(t, failing, codes.Unavailable, "unknown authority")
	failing.Close()
	kept := secDial(t, targets[0], oldCA)
	mustCall(t, kept)

	f.set(certConfig(t, p.otherServer, nil), nil)
	mustCall(t, secDial(t, targets[0], newCA))
	failing = secDial(t, targets[0], oldCA)
	wantFailure(t, failing, codes.Unavailable, "unknown authority")
	failing.Close()
	mustCall(t, kept) // its connection predates the rotation

	// A failing fetcher keeps the current certificates and reports why.
	boom := errors.New("fetcher broke")
	f.set(nil, boom)
	mustCall(t, secDial(t, targets[0], newCA))
	if _, errs := f.count(); errs != 1 {
		t.Fatalf("onError called %d times, want 1", errs)
	}
	f.mu.Lock()
	got := f.errors[0]
	f.mu.Unlock()
	if got != boom {
		t.Fatalf("onError got %v, want %v", got, boom)
	}
}

func TestDynamicTLSServerClientRootsRotate(t *testing.T) {
	p := thePKI(t)
	f := &steeredFetcher{}
	creds := DynamicTLSServer(certConfig(t, p.server, p.ca.pem), f.fetch, true, nil)
	targets, seen := secServer(t, port{"127.0.0.1:0", creds})
	wantFailure(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil)), codes.Unavailable)
	mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.client)))
	wantValues(t, lastSeen(t, seen).auth, "x509_common_name", "grpcgo-client")
	wantFailure(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.otherClient)), codes.Unavailable)
	f.set(certConfig(t, p.server, p.otherCA.pem), nil)
	mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.otherClient)))
	lastSeen(t, seen)
	wantFailure(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.client)), codes.Unavailable)
	// A nil onError is allowed when the fetcher fails.
	f.set(nil, errors.New("broken"))
	mustCall(t, secDial(t, targets[0], tlsChannel(t, p.ca.pem, &p.otherClient)))
}

func TestDynamicTLSServerConcurrentHandshakesAndRotations(t *testing.T) {
	p := thePKI(t)
	configs := []*CertConfig{certConfig(t, p.server, nil), certConfig(t, p.server, nil)}
	var calls atomic.Int64
	creds := DynamicTLSServer(configs[0], func() (*CertConfig, error) {
		n := calls.Add(1)
		switch n % 3 {
		case 0:
			return configs[n%2], nil
		case 1:
			return nil, nil
		}
		return nil, errors.New("odd one out")
	}, false, func(error) {})
	targets, seen := secServer(t, port{"127.0.0.1:0", creds})
	const clients = 12
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, err := Dial(targets[0], nil, tlsChannel(t, p.ca.pem, nil))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer ch.Close()
			if st := call(ch, spec(mUnary)); !st.OK() {
				errs <- fmt.Sprintf("%v %s", st.Code, st.Details)
			}
		}()
	}
	closed(t, "concurrent clients", run(wg.Wait))
	close(errs)
	for e := range errs {
		t.Fatalf("a concurrent call failed: %s", e)
	}
	for i := 0; i < clients; i++ {
		lastSeen(t, seen)
	}
	if n := calls.Load(); n < clients {
		t.Fatalf("fetcher called %d times for %d connections", n, clients)
	}
}

// ---- call credentials ----

type recordingFetcher struct {
	mu      sync.Mutex
	urls    []string
	methods []string
}

func (r *recordingFetcher) fetcher(md metadata.MD, err error) MetadataFetcher {
	return func(ctx context.Context, serviceURL, method string) (metadata.MD, error) {
		r.mu.Lock()
		r.urls = append(r.urls, serviceURL)
		r.methods = append(r.methods, method)
		r.mu.Unlock()
		return md, err
	}
}

func TestCallCredentialsOverTLS(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	targets, seen := secServer(t, port{"localhost:0", tlsServer(t, p.server, nil, false)})
	rec := &recordingFetcher{}
	plugin := PluginCredentials(rec.fetcher(metadata.Pairs("x-plugin", "v1", "x-plugin-bin", "\x00\x01"), nil))
	creds := tlsChannel(t, p.ca.pem, nil).WithCall(AccessToken("tok"), plugin)
	ch := secDial(t, targets[0], creds)
	mustCall(t, ch)
	md := lastSeen(t, seen).md
	wantMD(t, "server metadata", md, metadata.MD{
		"authorization": {"Bearer tok"}, "x-plugin": {"v1"}, "x-plugin-bin": {"\x00\x01"},
	})
	_, portNum, _ := net.SplitHostPort(targets[0])
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.urls) != 1 || rec.urls[0] != "https://localhost:"+portNum+"/test.Echo" || rec.methods[0] != "Unary" {
		t.Fatalf("plugin saw %q %q, want https://localhost:%s/test.Echo Unary", rec.urls, rec.methods, portNum)
	}
}

func TestPerCallCredentials(t *testing.T) {
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, nil, false)})
	ch := secDial(t, targets[0], tlsChannel(t, p.ca.pem, nil).WithCall(AccessToken("chan")))
	sp := spec(mUnary)
	sp.Credentials = ComposeCall(AccessToken("percall"), PluginCredentials((&recordingFetcher{}).fetcher(metadata.Pairs("x-c", "1"), nil)))
	wantStatus(t, call(ch, sp), codes.OK, "")
	md := lastSeen(t, seen).md
	wantMD(t, "server metadata", md, metadata.MD{"authorization": {"Bearer chan", "Bearer percall"}, "x-c": {"1"}})
}

func TestCallCredentialsFailures(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", tlsServer(t, p.server, nil, false)})
	base := tlsChannel(t, p.ca.pem, nil)
	failing := PluginCredentials((&recordingFetcher{}).fetcher(nil, errors.New("plugin says no")))
	st := call(secDial(t, targets[0], base.WithCall(failing)), spec(mUnary))
	wantStatus(t, st, codes.Unavailable, "Getting metadata from plugin failed with error: plugin says no")

	// A status from the fetcher is the call's status.
	statused := PluginCredentials((&recordingFetcher{}).fetcher(nil, status.Error(codes.PermissionDenied, "nope")))
	st = call(secDial(t, targets[0], base.WithCall(statused)), spec(mUnary))
	wantStatus(t, st, codes.PermissionDenied, "nope")

	// A fetcher that outlives the call's deadline: the deadline, as grpcio.
	blocked := PluginCredentials(func(ctx context.Context, _, _ string) (metadata.MD, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	sp := spec(mUnary)
	sp.Timeout = 200 * time.Millisecond
	st = call(secDial(t, targets[0], base.WithCall(blocked)), sp)
	wantStatus(t, st, codes.DeadlineExceeded, "Deadline Exceeded")
	noCall(t, seen)
}

func TestCallCredentialsRefusedOnInsecureChannels(t *testing.T) {
	checkLeaks(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", nil})
	var asked atomic.Bool
	plugin := PluginCredentials(func(context.Context, string, string) (metadata.MD, error) {
		asked.Store(true)
		return nil, nil
	})
	var none *ChannelCredentials
	for _, ch := range []*Channel{
		secDial(t, targets[0], none.WithCall(AccessToken("secret"))),
		secDial(t, targets[0], (&ChannelCredentials{}).WithCall(plugin)),
	} {
		wantStatus(t, call(ch, spec(mUnary)), codes.Unauthenticated, insufficientSecurity)
	}
	ch := secDial(t, targets[0], nil)
	sp := spec(mUnary)
	sp.Credentials = AccessToken("secret")
	wantStatus(t, call(ch, sp), codes.Unauthenticated, insufficientSecurity)
	noCall(t, seen)
	if asked.Load() {
		t.Fatal("a plugin was asked for metadata an insecure channel would not send")
	}
}

func TestWithCallDoesNotChangeItsReceiver(t *testing.T) {
	base := LocalChannel(false)
	one := base.WithCall(AccessToken("a"))
	two := one.WithCall(AccessToken("b"))
	if len(base.Call) != 0 || len(one.Call) != 1 || len(two.Call) != 2 {
		t.Fatalf("WithCall shares state: %d %d %d", len(base.Call), len(one.Call), len(two.Call))
	}
	if (*ChannelCredentials)(nil).WithCall(AccessToken("x")).Insecure() != true {
		t.Fatal("nil credentials with call credentials must stay insecure")
	}
	if got := ComposeCall(AccessToken("a"), ComposeCall(AccessToken("b"), AccessToken("c"))); len(got.fetchers) != 3 {
		t.Fatalf("ComposeCall flattened to %d fetchers, want 3", len(got.fetchers))
	}
}

// ---- local credentials ----

func TestLocalCredentials(t *testing.T) {
	checkLeaks(t)
	sock := unixSocket(t, "local.sock")
	targets, seen := secServer(t,
		port{"unix:" + sock, LocalServer(true)},
		port{"127.0.0.1:0", LocalServer(false)})
	for _, target := range targets {
		ch := secDial(t, target, LocalChannel(strings.HasPrefix(target, "unix:")).WithCall(AccessToken("local")))
		mustCall(t, ch)
		s := lastSeen(t, seen)
		wantKeys(t, s.auth, "transport_security_type", "security_level")
		wantValues(t, s.auth, "transport_security_type", "local")
		wantValues(t, s.auth, "security_level", "TSI_PRIVACY_AND_INTEGRITY")
		if s.auth.IdentityKey != "transport_security_type" {
			t.Fatalf("%s: IdentityKey = %q, want transport_security_type", target, s.auth.IdentityKey)
		}
		wantMD(t, "server metadata", s.md, metadata.MD{"authorization": {"Bearer local"}})
	}
}

func TestInsecureAuthContext(t *testing.T) {
	targets, seen := secServer(t, port{"127.0.0.1:0", nil}, port{"127.0.0.1:0", &ServerCredentials{}})
	for _, target := range targets {
		mustCall(t, secDial(t, target, nil))
		a := lastSeen(t, seen).auth
		wantKeys(t, a, "transport_security_type", "security_level")
		wantValues(t, a, "transport_security_type", "insecure")
		wantValues(t, a, "security_level", "TSI_SECURITY_NONE")
		if a.IdentityKey != "" {
			t.Fatalf("IdentityKey = %q, want none", a.IdentityKey)
		}
	}
}

// ---- per-port credentials ----

func TestPortsWithDifferentCredentials(t *testing.T) {
	checkLeaks(t)
	p := thePKI(t)
	sock := unixSocket(t, "ports.sock")
	targets, seen := secServer(t,
		port{"127.0.0.1:0", nil},
		port{"127.0.0.1:0", tlsServer(t, p.server, nil, false)},
		port{"127.0.0.1:0", tlsServer(t, p.server, p.ca.pem, true)},
		port{"unix:" + sock, LocalServer(true)})
	plain, tlsT, mtls, local := targets[0], targets[1], targets[2], targets[3]

	mustCall(t, secDial(t, plain, nil))
	wantValues(t, lastSeen(t, seen).auth, "transport_security_type", "insecure")
	mustCall(t, secDial(t, tlsT, tlsChannel(t, p.ca.pem, nil)))
	wantValues(t, lastSeen(t, seen).auth, "transport_security_type", "ssl")
	mustCall(t, secDial(t, mtls, tlsChannel(t, p.ca.pem, &p.client)))
	wantValues(t, lastSeen(t, seen).auth, "x509_common_name", "grpcgo-client")
	mustCall(t, secDial(t, local, LocalChannel(true)))
	wantValues(t, lastSeen(t, seen).auth, "transport_security_type", "local")

	wantFailure(t, secDial(t, plain, tlsChannel(t, p.ca.pem, nil)), codes.Unavailable)
	wantFailure(t, secDial(t, tlsT, nil), codes.Unavailable)
	wantFailure(t, secDial(t, mtls, tlsChannel(t, p.ca.pem, nil)), codes.Unavailable)
	noCall(t, seen)
}

func TestPortCredentialsAreServerOnly(t *testing.T) {
	var pc credentials.TransportCredentials = portCredentials{}
	if _, _, err := pc.ClientHandshake(context.Background(), "x", nil); err == nil {
		t.Fatal("portCredentials dialled")
	}
	if pc.Info().SecurityProtocol != "per-port" || pc.Clone() == nil || pc.OverrideServerName("x") != nil {
		t.Fatalf("portCredentials: %+v", pc.Info())
	}
	// A connection that did not come through a portListener is insecure.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	conn, info, err := pc.ServerHandshake(a)
	if err != nil || conn == nil || info.AuthType() != "insecure" {
		t.Fatalf("ServerHandshake of an untagged conn: %v %v %v", conn, info, err)
	}
}

// ---- ALTS without a handshaker ----

func TestALTSFailsClearlyOffGoogleCloud(t *testing.T) {
	if onGoogleCloud() {
		t.Skip("on Google Cloud ALTS would dial the real handshaker service")
	}
	checkLeaks(t)
	targets, seen := secServer(t, port{"127.0.0.1:0", nil})
	// As grpcio: calls fail at once with INTERNAL, even waiting for ready,
	// and no port can be bound with ALTS server credentials.
	wantFailure(t, secDial(t, targets[0], ALTSChannel(nil)), codes.Internal, "ALTS needs Google Cloud's ALTS handshaker service")
	wantFailure(t, secDial(t, targets[0], ALTSChannel([]string{"sa@example.com"})), codes.Internal, "ALTS")
	noCall(t, seen)
	srv := NewServer(nil, 0)
	defer srv.Stop(0)
	if _, err := srv.AddPort("127.0.0.1:0", ALTSServer()); err == nil || !strings.Contains(err.Error(), "Failed to bind to address") {
		t.Fatalf("AddPort with ALTS off Google Cloud: %v", err)
	}
	if got := ALTSChannel(nil).transport("", nil).Info().SecurityProtocol; got != "alts" {
		t.Fatalf("ALTS channel protocol %q", got)
	}
}
