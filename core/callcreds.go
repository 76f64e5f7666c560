package core

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MetadataFetcher produces a call's credentials metadata. serviceURL is
// "https://host/package.Service" and method the bare method name, as
// grpcio's AuthMetadataContext gives them.
type MetadataFetcher func(ctx context.Context, serviceURL, method string) (metadata.MD, error)

// CallCredentials add metadata to every call they apply to. They are sent
// only over connections that protect them (TLS, ALTS, or local).
type CallCredentials struct {
	fetchers []MetadataFetcher
}

// AccessToken sends "authorization: Bearer <token>".
func AccessToken(token string) *CallCredentials {
	md := metadata.Pairs("authorization", "Bearer "+token)
	return &CallCredentials{fetchers: []MetadataFetcher{
		func(context.Context, string, string) (metadata.MD, error) { return md, nil },
	}}
}

// PluginCredentials asks fetch for each call's metadata. A failure fails
// the call with UNAVAILABLE, as in grpcio.
func PluginCredentials(fetch MetadataFetcher) *CallCredentials {
	return &CallCredentials{fetchers: []MetadataFetcher{fetch}}
}

// ComposeCall joins call credentials; each one's metadata is sent.
func ComposeCall(parts ...*CallCredentials) *CallCredentials {
	out := &CallCredentials{}
	for _, p := range parts {
		out.fetchers = append(out.fetchers, p.fetchers...)
	}
	return out
}

const insufficientSecurity = "Established channel does not have a sufficient security level to transfer call credential."

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *CallCredentials) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	ri, _ := credentials.RequestInfoFromContext(ctx)
	if !protects(ri.AuthInfo) {
		return nil, status.Error(codes.Unauthenticated, insufficientSecurity)
	}
	serviceURL := ""
	if len(uri) > 0 {
		serviceURL = uri[0]
	}
	method := ri.Method[strings.LastIndex(ri.Method, "/")+1:]
	out := map[string]string{}
	var pairs []MDPair
	for _, fetch := range c.fetchers {
		md, err := fetch(ctx, serviceURL, method)
		if err != nil {
			if _, ok := status.FromError(err); ok {
				return nil, err
			}
			if ctx.Err() != nil {
				// The call's deadline passed (or it was cancelled) while
				// the plugin had not answered: grpcio reports the deadline
				// or the cancellation, not a plugin failure.
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return nil, status.Errorf(codes.Unavailable, "Getting metadata from plugin failed with error: %v", err)
		}
		for k, vs := range md {
			if len(vs) > 0 && (k == "" || k[0] != ':') {
				out[k] = vs[len(vs)-1]
			}
		}
		if transportPatched {
			pairs = append(pairs, OrderedPairs(md)...)
		}
	}
	if len(pairs) > 0 {
		// Every pair, in order, duplicate keys included: the transport
		// sends these (grpc-go validates the map's own entries).
		for i, p := range pairs {
			p.Key = strings.ToLower(p.Key)
			if err := checkPair(p); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			pairs[i] = p
		}
		out[mdPairsKey] = encodePairs(pairs)
	}
	return out, nil
}

// checkPair applies grpc-go's rules for metadata to a credentials pair.
func checkPair(p MDPair) error {
	if p.Key == "" {
		return fmt.Errorf("there is an empty key in the header")
	}
	for i := 0; i < len(p.Key); i++ {
		if c := p.Key[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("header key %q contains illegal characters not in [0-9a-z-_.]", p.Key)
		}
	}
	if strings.HasSuffix(p.Key, "-bin") {
		return nil
	}
	for i := 0; i < len(p.Value); i++ {
		if c := p.Value[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("header key %q contains value with non-printable ASCII characters", p.Key)
		}
	}
	return nil
}

// RequireTransportSecurity is false: GetRequestMetadata checks the
// connection itself, so that local connections may carry call credentials
// as in grpcio.
func (c *CallCredentials) RequireTransportSecurity() bool { return false }

func protects(ai credentials.AuthInfo) bool {
	if ai == nil {
		return false
	}
	if ai.AuthType() == "local" {
		return true
	}
	return credentials.CheckSecurityLevel(ai, credentials.PrivacyAndIntegrity) == nil
}
