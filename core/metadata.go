package core

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// Metadata order. grpc-go's metadata.MD is a map; grpcio keeps the order of
// pairs across keys in both directions. The grpc-go this engine is built
// with carries a small change (patches/grpc_go_patch.py; setup.py and the
// Makefile build with the flags it gives): an MD may hold the
// order of its pairs under the key MDOrderKey (each key once per value, in
// order), which the transport honours when it writes a header block and
// fills in when it reads one, together with the block's HPACK size under
// MDSizeKey. Both keys are pseudo-header names: never on the wire, never
// valid user metadata, and hidden from Python like every ':' key.
const (
	MDOrderKey = ":grpcgo-order"
	MDSizeKey  = ":grpcgo-size"
	mdPairsKey = ":grpcgo-pairs-bin"
)

// transportPatched is set in builds with the change (core/patched.go): a
// build without it sends metadata in map order and call credentials one
// value per key.
var transportPatched bool

// TransportPatched reports whether this build's grpc-go keeps metadata order.
func TransportPatched() bool { return transportPatched }

// MDPair is one metadata entry.
type MDPair struct{ Key, Value string }

// OrderedPairs returns md's pairs: in MDOrderKey's order when md has one,
// then whatever that order does not name, by key; pseudo keys (':') are
// left out.
func OrderedPairs(md metadata.MD) []MDPair {
	n := 0
	for k, vv := range md {
		if k == "" || k[0] != ':' {
			n += len(vv)
		}
	}
	out := make([]MDPair, 0, n)
	var used map[string]int
	if order := md[MDOrderKey]; len(order) > 0 {
		used = make(map[string]int, len(md))
	}
	for _, k := range md[MDOrderKey] {
		vv, i := md[k], used[k]
		if i >= len(vv) || k == "" || k[0] == ':' {
			continue
		}
		used[k] = i + 1
		out = append(out, MDPair{k, vv[i]})
	}
	if len(out) == n {
		return out
	}
	keys := make([]string, 0, len(md))
	for k, vv := range md {
		if (k == "" || k[0] != ':') && used[k] < len(vv) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range md[k][used[k]:] {
			out = append(out, MDPair{k, v})
		}
	}
	return out
}

// HeaderSize is the HPACK size of the header block md was read from, as
// grpcio counts it against its metadata limits (name + value + 32 for every
// field, pseudo-headers included); 0 if unknown.
func HeaderSize(md metadata.MD) int {
	if v := md[MDSizeKey]; len(v) == 1 {
		n, _ := strconv.Atoi(v[0])
		return n
	}
	return 0
}

// encodePairs is the transport change's form of call credentials' pairs:
// "<len>:<key><len>:<value>..." under mdPairsKey.
func encodePairs(pairs []MDPair) string {
	var b strings.Builder
	for _, p := range pairs {
		b.WriteString(strconv.Itoa(len(p.Key)))
		b.WriteByte(':')
		b.WriteString(p.Key)
		b.WriteString(strconv.Itoa(len(p.Value)))
		b.WriteByte(':')
		b.WriteString(p.Value)
	}
	return b.String()
}

// MetadataLimits are grpcio's limits on a received header block (its HPACK
// size, HeaderSize): above Hard it is refused; between Soft and Hard it is
// refused with a probability growing linearly from 0 to 1 (gRPC C core's
// random early detection). grpc.max_metadata_size sets Soft and
// grpc.absolute_max_metadata_size Hard; unset, they are 8 KiB and 16 KiB.
type MetadataLimits struct{ Soft, Hard int }

const (
	defaultMetadataSoft = 8 * 1024
	defaultMetadataHard = 16 * 1024
)

// metadataLimits works out the limits as gRPC C core does from the two
// options (-1: not given).
func metadataLimits(soft, hard int) MetadataLimits {
	l := MetadataLimits{Soft: soft, Hard: hard}
	if soft < 0 {
		l.Soft = max(defaultMetadataSoft, int(0.8*float64(hard)))
	}
	if hard < 0 {
		v := soft
		if soft >= 0 && float64(soft) < math.MaxInt32/1.25 {
			v = int(float64(soft) * 1.25)
		}
		l.Hard = max(v, defaultMetadataHard)
	}
	return l
}

// check returns grpcio's RESOURCE_EXHAUSTED status for a header block of
// size bytes over the limits, or nil.
func (l MetadataLimits) check(size int) *Status {
	if l.Hard == 0 || size <= l.Soft {
		return nil
	}
	if size > l.Hard {
		return &Status{Code: codes.ResourceExhausted,
			Details: fmt.Sprintf("received metadata size exceeds hard limit (%d vs. %d)", size, l.Hard)}
	}
	if l.Hard > l.Soft && rand.Float64() >= float64(size-l.Soft)/float64(l.Hard-l.Soft) {
		return nil
	}
	return &Status{Code: codes.ResourceExhausted,
		Details: fmt.Sprintf("received metadata size exceeds soft limit (%d vs. %d)", size, l.Soft)}
}

// checkReceived is check for a client: grpcio reports the stream removed.
func (l MetadataLimits) checkReceived(md metadata.MD) *Status {
	st := l.check(HeaderSize(md))
	if st != nil {
		st.Details = "Stream removed (" + st.Details + ")"
	}
	return st
}
