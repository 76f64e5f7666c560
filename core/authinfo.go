package core

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// AuthContext is what grpcio's ServicerContext.auth_context() shows: named
// properties, each with one or more byte-string values, in grpcio's keys.
type AuthContext struct {
	Keys        []string // in the order grpcio lists them
	Values      map[string][][]byte
	IdentityKey string // the property holding the peer's identities, or ""
}

func (a *AuthContext) add(key string, values ...[]byte) {
	if len(values) == 0 {
		return
	}
	if _, ok := a.Values[key]; !ok {
		a.Keys = append(a.Keys, key)
	}
	a.Values[key] = append(a.Values[key], values...)
}

// AuthContext describes how the call's connection is secured.
func (c *ServerCall) AuthContext() *AuthContext {
	a := &AuthContext{Values: map[string][][]byte{}}
	var info credentials.AuthInfo
	if p, ok := peer.FromContext(c.ctx); ok {
		info = p.AuthInfo
	}
	switch ai := info.(type) {
	case credentials.TLSInfo:
		tlsAuthContext(a, ai)
	default:
		kind := "insecure"
		if info != nil && info.AuthType() != "insecure" {
			kind = info.AuthType()
		}
		a.add("transport_security_type", []byte(kind))
		level := securityLevel(info)
		if kind == "local" {
			// grpcio trusts local connections (UDS and loopback TCP alike)
			// with privacy and integrity, and names the peer by its
			// transport security type.
			level = "TSI_PRIVACY_AND_INTEGRITY"
			a.IdentityKey = "transport_security_type"
		}
		a.add("security_level", []byte(level))
	}
	return a
}

func securityLevel(info credentials.AuthInfo) string {
	if ci, ok := info.(interface {
		GetCommonAuthInfo() credentials.CommonAuthInfo
	}); ok {
		switch ci.GetCommonAuthInfo().SecurityLevel {
		case credentials.PrivacyAndIntegrity:
			return "TSI_PRIVACY_AND_INTEGRITY"
		case credentials.IntegrityOnly:
			return "TSI_INTEGRITY_ONLY"
		}
	}
	return "TSI_SECURITY_NONE"
}

var tlsVersions = map[uint16]string{
	tls.VersionTLS10: "TLSv1", tls.VersionTLS11: "TLSv1.1",
	tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3",
}

func tlsAuthContext(a *AuthContext, ti credentials.TLSInfo) {
	st := ti.State
	a.add("transport_security_type", []byte("ssl"))
	spiffeID := ""
	if len(st.PeerCertificates) > 0 {
		cert := st.PeerCertificates[0]
		a.add("x509_subject", []byte(cert.Subject.String()))
		if cert.Subject.CommonName != "" {
			a.add("x509_common_name", []byte(cert.Subject.CommonName))
		}
		a.add("x509_pem_cert", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		// Each subject alternative name, in the certificate's order, as
		// x509_subject_alternative_name and as peer_<type>, as grpcio lists
		// them.
		sans := subjectAltNames(cert)
		uris := 0
		for _, n := range sans {
			a.add("x509_subject_alternative_name", []byte(n.value))
			a.add(n.property, []byte(n.value))
			if n.property == "peer_uri" {
				uris++
				spiffeID = n.value
			}
		}
		// A SPIFFE ID is the one URI SAN of a certificate, if it is one.
		if uris != 1 || !isSpiffeID(spiffeID) {
			spiffeID = ""
		}
		switch {
		case len(sans) > 0:
			a.IdentityKey = "x509_subject_alternative_name"
		case cert.Subject.CommonName != "":
			a.IdentityKey = "x509_common_name"
		}
	}
	a.add("security_level", []byte("TSI_PRIVACY_AND_INTEGRITY"))
	reused := "false"
	if st.DidResume {
		reused = "true"
	}
	a.add("ssl_session_reused", []byte(reused))
	if st.ServerName != "" {
		a.add("ssl_requested_server_name", []byte(st.ServerName))
	}
	if v, ok := tlsVersions[st.Version]; ok {
		a.add("ssl_tls_version", []byte(v))
	}
	if st.CurveID != 0 {
		a.add("ssl_negotiated_key_exchange_group", []byte(st.CurveID.String()))
	}
	if spiffeID != "" {
		a.add("peer_spiffe_id", []byte(spiffeID))
	}
}

func isSpiffeID(uri string) bool {
	return strings.HasPrefix(uri, "spiffe://") && len(uri) <= 2048 && !strings.Contains(uri, "#")
}

type altName struct {
	property string // peer_dns, peer_uri, peer_email or peer_ip
	value    string
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// subjectAltNames lists cert's DNS, URI, email and IP alternative names in
// the order the certificate holds them (crypto/x509 groups them by type).
func subjectAltNames(cert *x509.Certificate) []altName {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		if names, ok := parseAltNames(ext.Value); ok {
			return names
		}
	}
	// No extension we could read: crypto/x509's lists, type by type.
	var out []altName
	for _, n := range cert.DNSNames {
		out = append(out, altName{"peer_dns", n})
	}
	for _, u := range cert.URIs {
		out = append(out, altName{"peer_uri", u.String()})
	}
	for _, e := range cert.EmailAddresses {
		out = append(out, altName{"peer_email", e})
	}
	for _, ip := range cert.IPAddresses {
		out = append(out, altName{"peer_ip", ip.String()})
	}
	return out
}

func parseAltNames(der []byte) ([]altName, bool) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) != 0 ||
		seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, false
	}
	var out []altName
	for body := seq.Bytes; len(body) > 0; {
		var v asn1.RawValue
		var err error
		if body, err = asn1.Unmarshal(body, &v); err != nil {
			return nil, false
		}
		if v.Class != asn1.ClassContextSpecific {
			continue
		}
		switch v.Tag {
		case 1: // rfc822Name
			out = append(out, altName{"peer_email", string(v.Bytes)})
		case 2: // dNSName
			out = append(out, altName{"peer_dns", string(v.Bytes)})
		case 6: // uniformResourceIdentifier
			out = append(out, altName{"peer_uri", string(v.Bytes)})
		case 7: // iPAddress
			if len(v.Bytes) == net.IPv4len || len(v.Bytes) == net.IPv6len {
				out = append(out, altName{"peer_ip", net.IP(v.Bytes).String()})
			}
		}
	}
	return out, true
}
