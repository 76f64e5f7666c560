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
//	 "retry": {"on": "unavailable", "num": 3}}
//
// The service becomes a gRPC API listener whose one route splits traffic
// over the clusters by weight (with the retry policy, if any); each
// cluster is an EDS cluster with its endpoints in one locality.
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
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type clusterSpec struct {
	Name      string   `json:"name"`
	Weight    uint32   `json:"weight"`
	Endpoints []string `json:"endpoints"`
}

type config struct {
	Service  string        `json:"service"`
	Clusters []clusterSpec `json:"clusters"`
	Retry    *struct {
		On  string `json:"on"`
		Num uint32 `json:"num"`
	} `json:"retry"`
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
		clusters = append(clusters, &clusterv3.Cluster{
			Name:                 cl.Name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			}},
			LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
			ConnectTimeout: durationpb.New(5 * time.Second),
		})
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
	return cachev3.NewSnapshot(strconv.Itoa(version), map[resource.Type][]types.Resource{
		resource.ListenerType: {listener},
		resource.RouteType:    {routes},
		resource.ClusterType:  clusters,
		resource.EndpointType: assignments,
	})
}

func main() {
	port := flag.Int("port", 0, "ADS port on 127.0.0.1 (0: any)")
	flag.Parse()
	ctx := context.Background()
	cache := cachev3.NewSnapshotCache(true, anyNode{}, nil)
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
