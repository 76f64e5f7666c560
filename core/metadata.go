package core

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// Metadata order. grpc-go's metadata.MD is a map; grpcio keeps the order of
// pairs across keys in both directions. The grpc-go this engine is built
// with carries a small change (patches/grpc_go_patch.py; setup.py and the
// Makefile build with the flags it gives): an MD to send may hold the
// order of its pairs under the key MDOrderKey (each key once per value, in
// order), which the transport honours when it writes a header block; an MD
// read from a header block holds, under MDRecvKey, the block's HPACK size
// and then its keys in wire order. Both keys are pseudo-header names: never
// on the wire, never valid user metadata, and hidden from Python like every
// ':' key.
const (
	MDOrderKey = ":grpcgo-order"
	MDRecvKey  = ":grpcgo-recv"
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

// mdOrder is the order md's pairs came in (MDRecvKey's keys) or are to be
// sent in (MDOrderKey), nil if md has none.
func mdOrder(md metadata.MD) []string {
	if recv := md[MDRecvKey]; len(recv) > 0 {
		return recv[1:]
	}
	return md[MDOrderKey]
}

// OrderedPairs returns md's pairs: in the order mdOrder gives when md has
// one, then whatever that order does not name, by key; pseudo keys (':')
// are left out.
func OrderedPairs(md metadata.MD) []MDPair { return AppendOrderedPairs(nil, md) }

// AppendOrderedPairs appends md's pairs to dst as OrderedPairs orders them
// (a caller with a buffer on its stack allocates nothing for a few pairs).
func AppendOrderedPairs(dst []MDPair, md metadata.MD) []MDPair {
	n := 0
	for k, vv := range md {
		if k == "" || k[0] != ':' {
			n += len(vv)
		}
	}
	if n == 0 {
		return dst
	}
	out := slices.Grow(dst, n)
	start := len(out)
	var taken keyCounts
	for _, k := range mdOrder(md) {
		if k == "" || k[0] == ':' {
			continue
		}
		vv, i := md[k], taken.get(k)
		if i >= len(vv) {
			continue
		}
		taken.add(k)
		out = append(out, MDPair{k, vv[i]})
	}
	if len(out)-start == n {
		return out
	}
	var small [8]string
	keys := small[:0]
	for k, vv := range md {
		if (k == "" || k[0] != ':') && taken.get(k) < len(vv) {
			keys = append(keys, k)
		}
	}
	if len(keys) > 1 {
		slices.Sort(keys)
	}
	for _, k := range keys {
		for _, v := range md[k][taken.get(k):] {
			out = append(out, MDPair{k, v})
		}
	}
	return out
}

// keyCounts counts values taken per key: a short list (a block has a few
// keys; searching it beats making a map for every call), a map beyond it.
type keyCounts struct {
	small [8]struct {
		k string
		n int
	}
	used int
	more map[string]int
}

func (c *keyCounts) get(k string) int {
	for i := 0; i < c.used; i++ {
		if c.small[i].k == k {
			return c.small[i].n
		}
	}
	return c.more[k]
}

func (c *keyCounts) add(k string) {
	for i := 0; i < c.used; i++ {
		if c.small[i].k == k {
			c.small[i].n++
			return
		}
	}
	if c.more == nil && c.used < len(c.small) {
		c.small[c.used].k, c.small[c.used].n = k, 1
		c.used++
		return
	}
	if c.more == nil {
		c.more = make(map[string]int)
	}
	c.more[k]++
}

// HeaderSize is the HPACK size of the header block md was read from, as
// grpcio counts it against its metadata limits (name + value + 32 for every
// field, pseudo-headers included); 0 if unknown.
func HeaderSize(md metadata.MD) int {
	if recv := md[MDRecvKey]; len(recv) > 0 {
		n, _ := strconv.Atoi(recv[0])
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
	if l.Hard != 0 {
		lowerSizeFloor(l.Soft)
	}
	return l
}

// sizeFloor (patched builds, core/patched.go): the transport leaves the
// size out of a received block of at most this many bytes whose order says
// nothing, to save an allocation per block and per copy of its MD; then
// HeaderSize reads 0. So the floor never exceeds the soft limit of any
// MetadataLimits made: it starts at the default soft limit and only goes
// down.
var sizeFloor *atomic.Uint32

func lowerSizeFloor(soft int) {
	if sizeFloor == nil {
		return
	}
	want := uint32(max(soft, 0))
	for {
		cur := sizeFloor.Load()
		if want >= cur || sizeFloor.CompareAndSwap(cur, want) {
			return
		}
	}
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
