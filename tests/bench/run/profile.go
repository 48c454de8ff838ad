package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// profileResult is what the profiled kafka_backup local row showed.
type profileResult struct {
	seconds    int
	cpuFile    string
	allocsFile string
	heapFile   string
	total      float64 // ms of CPU samples
	elapsed    time.Duration
	cpu        time.Duration
	top        []profLine // flat, highest first
	cum        []profLine // cumulative, highest first
	allocTop   []profLine // alloc_space, flat, MB
	heapTop    []profLine // inuse_space at half the run, flat, MB
	heapTotal  float64    // MB in use at half the run (as of the last GC)
	buckets    []bucket
}

type profLine struct {
	flat, flatPct, cum, cumPct float64
	name                       string
}

type bucket struct {
	name string
	ms   float64
}

// freeAddr returns a free 127.0.0.1 port as host:port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// profileBackup runs the kafka_backup local row with the redpanda input
// once more, with Benthos's debug endpoints on, and takes a CPU profile of
// about the row's measured duration and, after the last commit, the
// allocation profile.
func profileBackup(o *options, bins binaries, b *broker, adm *admin, ends []int64, cr *caseResult) (*profileResult, error) {
	var measured time.Duration
	for _, r := range cr.rows {
		if r.input == "redpanda" && r.row == "backup" {
			measured = r.elapsed
		}
	}
	secs := int(math.Ceil(measured.Seconds())) + 1
	secs = min(max(secs, 2), 300)
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return nil, err
	}
	pr := &profileResult{
		seconds:    secs,
		cpuFile:    filepath.Join(o.profileDir, "kafka_backup-local-cpu.pprof"),
		allocsFile: filepath.Join(o.profileDir, "kafka_backup-local-allocs.pprof"),
		heapFile:   filepath.Join(o.profileDir, "kafka_backup-local-heap.pprof"),
	}
	fmt.Printf("-- profiling the kafka_backup local row (redpanda input): CPU profile of %d s\n", secs)

	cpuDone := make(chan error, 1)
	h := &hooks{}
	h.started = func(*child) {
		go func() {
			base := "http://" + h.addr
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get(base + "/ping")
				if err == nil {
					resp.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					cpuDone <- fmt.Errorf("the HTTP server did not come up: %v", err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			cpuDone <- fetch(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), pr.cpuFile, time.Duration(secs+60)*time.Second)
		}()
	}
	var hookErr, heapErr error
	h.half = func(*child) {
		heapErr = fetch("http://"+h.addr+"/debug/pprof/heap", pr.heapFile, time.Minute)
	}
	h.committed = func(*child) {
		select {
		case err := <-cpuDone:
			hookErr = err
		case <-time.After(time.Duration(secs+90) * time.Second):
			hookErr = fmt.Errorf("no CPU profile after %d s", secs+90)
		}
		if err := fetch("http://"+h.addr+"/debug/pprof/allocs", pr.allocsFile, time.Minute); err != nil && hookErr == nil {
			hookErr = err
		}
	}
	r := &rowResult{input: "redpanda", row: "backup"}
	dir := filepath.Join(o.workDir, "profile-backup")
	group := fmt.Sprintf("bench-profile-%d", time.Now().UnixNano())
	err := runRow(context.Background(), o, bins, b, adm, ends, cr, r, group, dir, nil, h)
	if !o.keep {
		_ = os.RemoveAll(dir)
	}
	if err != nil {
		return nil, err
	}
	if hookErr == nil {
		hookErr = heapErr
	}
	if hookErr != nil {
		return nil, hookErr
	}
	pr.elapsed, pr.cpu = r.elapsed, r.cpu

	out, err := pprofTop(o, pr.cpuFile, "-top", "-nodecount=100000")
	if err != nil {
		return nil, err
	}
	pr.total, pr.top = parseTop(out)
	pr.buckets = classify(pr.top)
	if out, err = pprofTop(o, pr.cpuFile, "-top", "-cum", "-nodecount=60"); err != nil {
		return nil, err
	}
	_, pr.cum = parseTop(out)
	if out, err = pprofTop(o, pr.allocsFile, "-sample_index=alloc_space", "-unit=MB", "-top", "-nodecount=15"); err != nil {
		return nil, err
	}
	_, pr.allocTop = parseTop(out)
	if out, err = pprofTop(o, pr.heapFile, "-sample_index=inuse_space", "-unit=MB", "-top", "-nodecount=15"); err != nil {
		return nil, err
	}
	pr.heapTotal, pr.heapTop = parseTop(out)
	fmt.Printf("   profiles in %s\n", o.profileDir)
	return pr, nil
}

func fetch(url, file string, timeout time.Duration) error {
	cl := &http.Client{Timeout: timeout}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func pprofTop(o *options, file string, args ...string) (string, error) {
	all := append([]string{"tool", "pprof"}, args...)
	if !strings.HasPrefix(strings.Join(args, " "), "-sample_index") {
		all = append(all, "-unit=ms")
	}
	all = append(all, file)
	cmd := exec.Command(o.goCmd, all...)
	cmd.Dir = o.root
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return "", fmt.Errorf("go tool pprof %s: %v %s", strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}

// parseTop reads `go tool pprof -top` output: the total of the samples and
// the lines "flat flat% sum% cum cum% name".
func parseTop(out string) (total float64, lines []profLine) {
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "% of "); i >= 0 && strings.Contains(l, "total") {
			f := strings.Fields(l[i+len("% of "):])
			if len(f) > 0 {
				total = num(f[0])
			}
			continue
		}
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") || !strings.HasSuffix(f[4], "%") {
			continue
		}
		lines = append(lines, profLine{flat: num(f[0]), flatPct: num(f[1]), cum: num(f[3]), cumPct: num(f[4]), name: strings.Join(f[5:], " ")})
	}
	return total, lines
}

// num parses "123ms", "1.5MB", "12.3%".
func num(s string) float64 {
	s = strings.TrimRight(s, "%abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// classify sums flat CPU by where it is spent. The first matching rule
// wins; order matters.
func classify(lines []profLine) []bucket {
	rules := []struct {
		name  string
		match func(string) bool
	}{
		{"GC and allocation (runtime.gc*, mallocgc, scanobject, …)", func(n string) bool {
			return hasAny(n, "runtime.gc", "runtime.mallocgc", "runtime.scanobject", "runtime.greyobject", "runtime.findObject",
				"runtime.markBits", "runtime.(*mspan)", "runtime.(*mheap)", "runtime.(*mcache)", "runtime.(*mcentral)",
				"runtime.heapBits", "runtime.sweepone", "runtime.bgsweep", "runtime.(*gcWork)", "runtime.scanblock",
				"runtime.wbBuf", "runtime.bulkBarrier", "runtime.typePointers", "runtime.memclrNoHeapPointers",
				"runtime.(*sweepLocked)", "runtime.nextFreeFast", "runtime.spanOf", "runtime.pageIndexOf", "runtime.newobject",
				"runtime.makeslice", "runtime.growslice", "runtime.(*gcBits)", "runtime.markroot", "runtime.scanstack",
				"runtime.gcDrain", "runtime.(*pageAlloc)", "runtime.sysUnused", "runtime.madvise", "runtime.(*scavenger", "runtime.mallocgcSmall", "runtime.mallocgcLarge")
		}},
		{"syscalls (write, fsync, read, network: syscall.*, internal/runtime/syscall)", func(n string) bool {
			return hasAny(n, "syscall.", "internal/runtime/syscall", "runtime/internal/syscall", "runtime.epollwait", "runtime.netpoll", "runtime.futex", "runtime.usleep", "runtime.nanotime")
		}},
		{"memmove (copying bytes)", func(n string) bool { return hasAny(n, "runtime.memmove") }},
		{"CRC-32C (hash/crc32)", func(n string) bool { return hasAny(n, "hash/crc32") }},
		{"kafka-backup (output, rolling, segment)", func(n string) bool { return hasAny(n, "kafka-backup/kafka-backup/") }},
		{"franz-go (fetching and decoding: kgo, kmsg)", func(n string) bool { return hasAny(n, "twmb/franz-go") }},
		{"Benthos and Redpanda Connect (messages, metadata, pipeline)", func(n string) bool {
			return hasAny(n, "redpanda-data/benthos", "redpanda-data/connect", "Jeffail/")
		}},
		{"scheduler and other runtime", func(n string) bool { return strings.HasPrefix(n, "runtime.") || strings.HasPrefix(n, "internal/") }},
	}
	sums := make([]float64, len(rules)+1)
	for _, l := range lines {
		i := 0
		for i < len(rules) && !rules[i].match(l.name) {
			i++
		}
		sums[i] += l.flat
	}
	var out []bucket
	for i, r := range rules {
		out = append(out, bucket{r.name, sums[i]})
	}
	out = append(out, bucket{"everything else (standard library: maps, strconv, sync, …)", sums[len(rules)]})
	sort.SliceStable(out, func(i, j int) bool { return out[i].ms > out[j].ms })
	return out
}

func hasAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
