package main

import (
	"bufio"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Memory the engine's start leaves behind, released once (hotSetup), and
// its code again after each burst of work (tuning.go, "Going quiet").
//
// Loading the library runs the init functions of every package linked in
// (grpc-go's xDS brings ~150, mostly envoy's generated protobuf packages,
// whose inits register their descriptors). Each init touches its package's
// code and data, and the kernel maps the pages around every page touched
// (fault-around): with xDS linked, all 11 MiB of the library's code and
// 16 of its 19 MiB of read-only data end up resident, most of it never
// used again. trimAfterInit unmaps the library's read-only mappings that
// hold no private (relocated) page; the pages stay in the kernel's page
// cache and come back on the next touch, as the calls a process makes
// need them. It runs trimDelay after the engine's setup, once the
// program's start (its first server or channel, the first collections)
// has touched what it touches: trimming at once left ~4 MiB more of them
// resident. (Returning the Go heap's init garbage too, with
// debug.FreeOSMemory, measured no smaller idle and cost a collection.)
// GRPCGO_TRIM=0 turns it off (to measure it).
//
// Serving faults pages back the same way, 64 KiB around each one a call
// touches: a server that served 100,000 calls had ~8 MiB of them resident
// again, for good. So the mappings are remembered, and trimLibrary drops
// them again when the engine goes quiet after a burst, with the heap's
// release; the next burst faults back what it uses (~130 faults).
//
// Only read-only mappings with no anonymous page are unmapped: those hold
// nothing but the file's bytes, so dropping them loses nothing. Relocated
// read-only data (RELRO) has anonymous pages and is never touched; no
// writable mapping is either.
func trimAfterInit() {
	if os.Getenv("GRPCGO_TRIM") == "0" {
		return
	}
	time.Sleep(trimDelay)
	self := reflect.ValueOf(trimAfterInit).Pointer()
	ranges := cleanReadOnlyMappings(uint64(self))
	libraryRanges.Store(&ranges)
	trimLibrary()
}

// libraryRanges holds the mappings trimAfterInit found (nil until then, or
// for good with GRPCGO_TRIM=0); they do not change while the library is
// loaded.
var libraryRanges atomic.Pointer[[][2]uint64]

// trimLibrary drops the resident pages of the library's clean read-only
// mappings.
func trimLibrary() {
	ranges := libraryRanges.Load()
	if ranges == nil {
		return
	}
	for _, m := range *ranges {
		unix.Syscall(unix.SYS_MADVISE, uintptr(m[0]), uintptr(m[1]-m[0]), unix.MADV_DONTNEED)
	}
}

const trimDelay = 200 * time.Millisecond

// cleanReadOnlyMappings lists [start, end) of the read-only mappings of the
// file that holds address pc (this library) whose pages are all the file's
// own (no anonymous page), from /proc/self/smaps.
func cleanReadOnlyMappings(pc uint64) [][2]uint64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil
	}
	defer f.Close()
	type vma struct {
		start, end uint64
		perms      string
		path       string
		anon       int64 // kB; -1 unknown
	}
	var vmas []vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.HasSuffix(fields[0], ":") { // a "Key: value" line of the last mapping
			if fields[0] == "Anonymous:" && len(vmas) > 0 && len(fields) >= 2 {
				if n, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
					vmas[len(vmas)-1].anon = n
				}
			}
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok || len(fields) < 5 {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		v := vma{start: start, end: end, perms: fields[1], anon: -1}
		if len(fields) >= 6 {
			v.path = fields[5]
		}
		vmas = append(vmas, v)
	}
	path := ""
	for _, v := range vmas {
		if v.start <= pc && pc < v.end {
			path = v.path
		}
	}
	if !strings.HasPrefix(path, "/") {
		return nil
	}
	var out [][2]uint64
	for _, v := range vmas {
		if v.path == path && v.anon == 0 && len(v.perms) == 4 && v.perms[1] == '-' && v.perms[3] == 'p' {
			out = append(out, [2]uint64{v.start, v.end})
		}
	}
	return out
}
