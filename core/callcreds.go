package core

import (
	"context"
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
			if len(vs) > 0 {
				out[k] = vs[len(vs)-1]
			}
		}
	}
	return out, nil
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
