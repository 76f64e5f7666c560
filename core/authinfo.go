package core

import (
	"crypto/tls"
	"encoding/pem"

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
		a.add("security_level", []byte(securityLevel(info)))
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
	if len(st.PeerCertificates) > 0 {
		cert := st.PeerCertificates[0]
		a.add("x509_subject", []byte(cert.Subject.String()))
		if cert.Subject.CommonName != "" {
			a.add("x509_common_name", []byte(cert.Subject.CommonName))
		}
		var sans [][]byte
		for _, n := range cert.DNSNames {
			sans = append(sans, []byte(n))
		}
		for _, u := range cert.URIs {
			sans = append(sans, []byte(u.String()))
		}
		for _, e := range cert.EmailAddresses {
			sans = append(sans, []byte(e))
		}
		for _, ip := range cert.IPAddresses {
			sans = append(sans, []byte(ip.String()))
		}
		a.add("x509_subject_alternative_name", sans...)
		a.add("x509_pem_cert", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
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
}
