// Command xdscp is a small xDS management server for grpcgo's xDS tests,
// built on github.com/envoyproxy/go-control-plane.
//
// It serves ADS on 127.0.0.1:PORT (-port, 0 picks one), prints
// "listening on PORT", then reads one JSON configuration per line on
// stdin and publishes it as a new snapshot for every node, printing
// "ok VERSION" once it is set:
//
//	{"service": "echo",
//	 "clusters": [{"name": "c1", "weight": 60, "endpoints": ["127.0.0.1:1234"]}, ...],
//	 "retry": {"on": "unavailable", "num": 3},
//	 "client_tls": {"identity": "certs", "root": "certs"},
//	 "servers": [{"name": "grpc/server?xds.resource.listening_address=127.0.0.1:1234",
//	              "address": "127.0.0.1:1234",
//	              "tls": {"identity": "certs", "root": "certs", "require_client_cert": true}}]}
//
// The service becomes a gRPC API listener whose one route splits traffic
// over the clusters by weight (with the retry policy, if any); each
// cluster is an EDS cluster with its endpoints in one locality, secured by
// an UpstreamTlsContext when client_tls is given (certificate provider
// instances named as in the client's bootstrap).
//
// Each server becomes a server-side Listener resource (what an xDS-enabled
// gRPC server on that address asks for): one filter chain, with a
// DownstreamTlsContext when tls is given, whose HTTP connection manager
// takes its routes from RDS: every path, non-forwarding (served).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type clusterSpec struct {
	Name      string   `json:"name"`
	Weight    uint32   `json:"weight"`
	Endpoints []string `json:"endpoints"`
}

type tlsSpec struct {
	Identity          string `json:"identity"` // certificate provider instance
	Root              string `json:"root"`     // "": no peer verification
	RequireClientCert bool   `json:"require_client_cert"`
}

type serverSpec struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	TLS     *tlsSpec `json:"tls"`
}

type config struct {
	Service  string        `json:"service"`
	Clusters []clusterSpec `json:"clusters"`
	Retry    *struct {
		On  string `json:"on"`
		Num uint32 `json:"num"`
	} `json:"retry"`
	ClientTLS *tlsSpec     `json:"client_tls"`
	Servers   []serverSpec `json:"servers"`
}

func commonTLS(t *tlsSpec) *tlsv3.CommonTlsContext {
	c := &tlsv3.CommonTlsContext{}
	if t.Identity != "" {
		c.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: t.Identity}
	}
	if t.Root != "" {
		c.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: t.Root},
			},
		}
	}
	return c
}

func transportSocket(msg proto.Message) (*corev3.TransportSocket, error) {
	a, err := anypb.New(msg)
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
	}, nil
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// serverResources are an xDS server's Listener and its route configuration.
func serverResources(s serverSpec) (types.Resource, types.Resource, error) {
	host, portText, err := net.SplitHostPort(s.Address)
	if err != nil {
		return nil, nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, nil, err
	}
	routeName := "server-route-" + s.Address
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: "server",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ads(), RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		return nil, nil, err
	}
	chain := &listenerv3.FilterChain{
		Name: "chain",
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}},
	}
	if s.TLS != nil {
		ts, err := transportSocket(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         commonTLS(s.TLS),
			RequireClientCertificate: wrapperspb.Bool(s.TLS.RequireClientCert),
		})
		if err != nil {
			return nil, nil, err
		}
		chain.TransportSocket = ts
	}
	listener := &listenerv3.Listener{
		Name: s.Name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       host,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
		}}},
		FilterChains: []*listenerv3.FilterChain{chain},
	}
	routes := &routev3.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: "server", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
			}},
		}},
	}
	return listener, routes, nil
}

// anyNode hashes every node to one key: one snapshot serves all clients.
type anyNode struct{}

func (anyNode) ID(*corev3.Node) string { return "all" }

func snapshot(version int, c config) (*cachev3.Snapshot, error) {
	routeName := "route-" + c.Service
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
			RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		return nil, err
	}
	listener := &listenerv3.Listener{
		Name:        c.Service,
		ApiListener: &listenerv3.ApiListener{ApiListener: hcm},
	}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	var clusters, assignments []types.Resource
	for _, cl := range c.Clusters {
		weighted = append(weighted, &routev3.WeightedCluster_ClusterWeight{
			Name: cl.Name, Weight: wrapperspb.UInt32(cl.Weight),
		})
		cluster := &clusterv3.Cluster{
			Name:                 cl.Name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
			ConnectTimeout:       durationpb.New(5 * time.Second),
		}
		if c.ClientTLS != nil {
			ts, err := transportSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(c.ClientTLS)})
			if err != nil {
				return nil, err
			}
			cluster.TransportSocket = ts
		}
		clusters = append(clusters, cluster)
		var endpoints []*endpointv3.LbEndpoint
		for _, addr := range cl.Endpoints {
			host, portText, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			port, err := strconv.Atoi(portText)
			if err != nil {
				return nil, err
			}
			endpoints = append(endpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       host,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
					}}},
				}},
			})
		}
		assignments = append(assignments, &endpointv3.ClusterLoadAssignment{
			ClusterName: cl.Name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality:            &corev3.Locality{Region: "test", Zone: cl.Name},
				LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints:         endpoints,
			}},
		})
	}
	route := &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
				WeightedClusters: &routev3.WeightedCluster{Clusters: weighted},
			},
		}},
	}
	if c.Retry != nil {
		route.GetRoute().RetryPolicy = &routev3.RetryPolicy{
			RetryOn:    c.Retry.On,
			NumRetries: wrapperspb.UInt32(c.Retry.Num),
		}
	}
	routes := &routev3.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: c.Service, Domains: []string{"*"}, Routes: []*routev3.Route{route},
		}},
	}
	listeners, routeConfigs := []types.Resource{listener}, []types.Resource{routes}
	for _, s := range c.Servers {
		l, r, err := serverResources(s)
		if err != nil {
			return nil, err
		}
		listeners, routeConfigs = append(listeners, l), append(routeConfigs, r)
	}
	return cachev3.NewSnapshot(strconv.Itoa(version), map[resource.Type][]types.Resource{
		resource.ListenerType: listeners,
		resource.RouteType:    routeConfigs,
		resource.ClusterType:  clusters,
		resource.EndpointType: assignments,
	})
}

func main() {
	port := flag.Int("port", 0, "ADS port on 127.0.0.1 (0: any)")
	flag.Parse()
	ctx := context.Background()
	// Not in ADS mode: that mode answers a request only when it names every
	// resource of its type in the snapshot, and each xDS client (the
	// channel's, the server's) asks for its own listener only. Without it,
	// each gets the resources it names that the snapshot has; a listener
	// missing from the answer does not exist (an xDS server stops serving).
	cache := cachev3.NewSnapshotCache(false, anyNode{}, nil)
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, cache, nil))
	go gs.Serve(lis)
	fmt.Printf("listening on %d\n", lis.Addr().(*net.TCPAddr).Port)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	version := 0
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		var c config
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		version++
		// (no snap.Consistent(): it follows route references from listener
		// filter chains only, not from a gRPC API listener)
		snap, err := snapshot(version, c)
		if err == nil {
			err = cache.SetSnapshot(ctx, "all", snap)
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		fmt.Printf("ok %d\n", version)
	}
	gs.Stop()
}
