package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
)

// grpcio (BoringSSL) accepts a server certificate that names the server
// only in its Common Name, when the certificate has no subject alternative
// names; crypto/x509 has ignored the Common Name since Go 1.15. Channels
// check the server the way grpcio does: crypto/tls's own chain check, then
// the name against the SANs, then, for a certificate without SANs and a DNS
// name, against the Common Name.
type cnFallbackTLS struct {
	credentials.TransportCredentials // credentials.NewTLS(cfg), for the rest
	cfg                              *tls.Config
}

func newClientTLS(cfg *tls.Config) credentials.TransportCredentials {
	return cnFallbackTLS{credentials.NewTLS(cfg), cfg}
}

func (c cnFallbackTLS) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// grpc-go checks the name it is given as authority (see
	// credentials/tls.go); so do we.
	name, _, err := net.SplitHostPort(authority)
	if err != nil {
		name = authority
	}
	cfg := c.cfg.Clone()
	cfg.InsecureSkipVerify = true // verified below, as crypto/tls would, plus the CN
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyServer(cfg.RootCAs, name, cs) }
	return credentials.NewTLS(cfg).ClientHandshake(ctx, authority, conn)
}

func (c cnFallbackTLS) Clone() credentials.TransportCredentials {
	return cnFallbackTLS{c.TransportCredentials.Clone(), c.cfg.Clone()}
}

func verifyServer(roots *x509.CertPool, name string, cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
	for _, cert := range certs[1:] {
		opts.Intermediates.AddCert(cert)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	if err := leaf.VerifyHostname(name); err != nil {
		if !commonNameNames(leaf, name) {
			return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
		}
	}
	return nil
}

// commonNameNames reports whether a certificate without SANs names the DNS
// name host in its Common Name ("*." matches one leftmost label).
func commonNameNames(cert *x509.Certificate, host string) bool {
	if len(cert.DNSNames) > 0 || len(cert.IPAddresses) > 0 || len(cert.URIs) > 0 ||
		len(cert.EmailAddresses) > 0 || net.ParseIP(host) != nil {
		return false
	}
	cn := strings.ToLower(strings.TrimSuffix(cert.Subject.CommonName, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if cn == "" || host == "" {
		return false
	}
	if cn == host {
		return true
	}
	if rest, ok := strings.CutPrefix(cn, "*."); ok && !strings.Contains(rest, "*") {
		label, parent, found := strings.Cut(host, ".")
		return found && label != "" && parent == rest
	}
	return false
}
