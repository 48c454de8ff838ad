package tests

// Harness additions for the crash tests (e2e_crash_test.go): a kafka-backup
// process started without the test's Fatalf (so a background goroutine can
// kill and restart it); a scan of the backup tree taken while no process
// runs, which decodes every file with the independent kmsg decoder (final
// files completely, in-progress files up to their last valid batch) and
// checks the invariants a crash must not break; and the injection of the
// states a kill inside write(2) or inside a rename leaves.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// crashInput is a redpanda input for the crash tests, with short group
// timeouts. kfake keeps a SIGKILLed member in the group until the rebalance
// that a restarted process's join starts times out, so rebalance_timeout is
// short: a restart consumes again after about half a second instead of 45.
// A process killed while its JoinGroup is pending is still given partitions
// in the next rebalance (its request is answered after its death), and they
// stall until its session times out, so session_timeout is kfake's minimum,
// 6s, not 1m.
func crashInput(b *broker, group, topic string) string {
	return fmt.Sprintf(`  redpanda:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
    start_offset: earliest
    commit_period: 100ms
    rebalance_timeout: 500ms
    session_timeout: 6s
    heartbeat_interval: 200ms
`, b.addr, topic, group)
}

// startCrashProc starts `kafka-backup run cfgPath` like runBackup, but
// returns an error instead of failing the test, so a goroutine other than the
// test's may call it. The caller kills it.
func startCrashProc(t testing.TB, name, cfgPath string) (*proc, error) {
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(kbBin, "run", cfgPath)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", kbBin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// sigkill SIGKILLs the process, if it still runs, and waits for it to end.
func (p *proc) sigkill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// crashFile is one file of a partition folder as a scan found it.
type crashFile struct {
	name    string
	size    int64
	ino     uint64
	first   int64           // offset the name states (final files)
	ranges  []segment.Range // offsets of its valid batches, contiguous ones merged
	records int
	batches int
	valid   int64 // bytes up to the end of the last valid batch
	err     error // why decoding stopped before the end of the file
	// Where the last valid batch starts, and its first offset.
	lastBatchPos, lastBatchFirst int64
}

func (f crashFile) torn() int64 { return f.size - f.valid }

// String describes the file for the kill log.
func (f crashFile) String() string {
	s := fmt.Sprintf("%s %dB %d batches %s", f.name, f.size, f.batches, crashRanges(f.ranges))
	if f.torn() > 0 {
		s += fmt.Sprintf(" +%dB torn tail", f.torn())
	}
	return s
}

// crashPartScan is what a partition folder held.
type crashPartScan struct {
	finals []crashFile // by first offset
	inprog []crashFile // by name
	stray  []string    // names that are neither
}

// crashScan is what a backup tree of one topic held.
type crashScan struct {
	parts map[int32]*crashPartScan
	stray []string
}

// crashScanner scans a backup tree. Final files never change, so it decodes each
// only once (keyed by path, size and inode).
type crashScanner struct {
	dir, topic string
	cache      map[string]crashFile
}

func newCrashScanner(dir, topic string) *crashScanner {
	return &crashScanner{dir: dir, topic: topic, cache: map[string]crashFile{}}
}

// scan reads the tree. It must run while no kafka-backup process runs.
func (s *crashScanner) scan() (crashScan, error) {
	ds := crashScan{parts: map[int32]*crashPartScan{}}
	top, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return ds, nil
	}
	if err != nil {
		return ds, err
	}
	for _, e := range top {
		if e.Name() != s.topic || !e.IsDir() {
			ds.stray = append(ds.stray, e.Name())
		}
	}
	tdir := filepath.Join(s.dir, s.topic)
	pents, err := os.ReadDir(tdir)
	if errors.Is(err, fs.ErrNotExist) {
		return ds, nil
	}
	if err != nil {
		return ds, err
	}
	for _, pe := range pents {
		id, err := strconv.ParseInt(pe.Name(), 10, 32)
		if err != nil || !pe.IsDir() || strconv.FormatInt(id, 10) != pe.Name() {
			ds.stray = append(ds.stray, filepath.Join(s.topic, pe.Name()))
			continue
		}
		ps := &crashPartScan{}
		ds.parts[int32(id)] = ps
		pdir := filepath.Join(tdir, pe.Name())
		ents, err := os.ReadDir(pdir)
		if err != nil {
			return ds, err
		}
		for _, fe := range ents {
			path := filepath.Join(pdir, fe.Name())
			if !fe.Type().IsRegular() {
				ps.stray = append(ps.stray, fe.Name())
				continue
			}
			first, isFinal := layout.ParseFileName(fe.Name())
			isFinal = isFinal && strconv.FormatInt(first, 10) == fe.Name()
			inProgress := strings.HasPrefix(fe.Name(), ".") && strings.HasSuffix(fe.Name(), layout.InProgressSuffix)
			if !isFinal && !inProgress {
				ps.stray = append(ps.stray, fe.Name())
				continue
			}
			f, err := s.file(path, isFinal)
			if err != nil {
				return ds, err
			}
			f.first = first
			if isFinal {
				ps.finals = append(ps.finals, f)
			} else {
				ps.inprog = append(ps.inprog, f)
			}
		}
		sort.Slice(ps.finals, func(i, j int) bool { return ps.finals[i].first < ps.finals[j].first })
	}
	return ds, nil
}

func (s *crashScanner) file(path string, final bool) (crashFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return crashFile{}, err
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	key := fmt.Sprintf("%s|%d|%d", path, st.Size(), ino)
	if f, ok := s.cache[key]; ok && final {
		return f, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return crashFile{}, err
	}
	f := decodeValidPrefix(data)
	f.name, f.ino = filepath.Base(path), ino
	if final {
		s.cache[key] = f
	}
	return f, nil
}

// decodeValidPrefix decodes data batch by batch with decodeKmsg (CRC32C,
// lengths, every record) and stops at the first batch that is incomplete or
// invalid: what recovery must keep of an in-progress file, and, for a final
// file, all of it.
func decodeValidPrefix(data []byte) crashFile {
	f := crashFile{size: int64(len(data))}
	for pos := 0; pos < len(data); {
		if len(data)-pos < 61 {
			f.err = fmt.Errorf("byte %d: %d bytes left, less than a batch header", pos, len(data)-pos)
			return f
		}
		length := int(int32(binary.BigEndian.Uint32(data[pos+8:])))
		if length < 49 || pos+12+length > len(data) {
			f.err = fmt.Errorf("byte %d: batch length %d does not fit in the file", pos, length)
			return f
		}
		recs, _, _, err := decodeKmsg(data[pos : pos+12+length])
		if err != nil {
			f.err = fmt.Errorf("byte %d: %w", pos, err)
			return f
		}
		for _, r := range recs {
			f.ranges = offsets.Append(f.ranges, segment.Range{First: r.Offset, Last: r.Offset})
		}
		f.lastBatchPos, f.lastBatchFirst = int64(pos), recs[0].Offset
		f.records += len(recs)
		f.batches++
		pos += 12 + length
		f.valid = int64(pos)
	}
	return f
}

func crashRanges(rs []segment.Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		if r.First == r.Last {
			s[i] = strconv.FormatInt(r.First, 10)
		} else {
			s[i] = fmt.Sprintf("%d-%d", r.First, r.Last)
		}
	}
	return "[" + strings.Join(s, ",") + "]"
}

// crashOffsets lists offsets as ranges, the first few only.
func crashOffsets(offs []int64) string {
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	var rs []segment.Range
	for _, o := range offs {
		rs = offsets.Append(rs, segment.Range{First: o, Last: o})
	}
	more := ""
	if len(rs) > 8 {
		more = fmt.Sprintf("…(%d ranges)", len(rs))
		rs = rs[:8]
	}
	return fmt.Sprintf("%d offsets %s%s", len(offs), crashRanges(rs), more)
}

// check returns the invariants the scan breaks: a final file that does not
// decode completely, is empty or is misnamed; an offset in two final files;
// an offset below the group's committed offset (acknowledged) that is in no
// final file and in no valid batch of an in-progress file; anything else in
// the tree.
func (ds crashScan) check(committed map[int32]int64) []string {
	var out []string
	for _, s := range ds.stray {
		out = append(out, "stray entry "+s)
	}
	ids := make([]int32, 0, len(ds.parts))
	for id := range ds.parts {
		ids = append(ids, id)
	}
	for id := range committed {
		if _, ok := ds.parts[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		ps := ds.parts[id]
		if ps == nil {
			ps = &crashPartScan{}
		}
		for _, s := range ps.stray {
			out = append(out, fmt.Sprintf("partition %d: stray entry %s", id, s))
		}
		fc := checkFinalFiles(ps.finals)
		out = append(out, fc.violations(fmt.Sprintf("partition %d: ", id))...)
		inProg := offsetSet(ps.inprog)
		lost := lostOffsets(committed[id], func(o int64) bool { return fc.held(o) || inProg[o] })
		if len(lost) > 0 {
			out = append(out, fmt.Sprintf("partition %d: LOST %s: committed (acknowledged) up to %d but in no final file and no valid batch of an in-progress file", id, crashOffsets(lost), committed[id]))
		}
	}
	return out
}

// notes describes states worth knowing about that are not violations by
// themselves: in-progress files of instance (the one just killed) with a torn
// tail (the kill landed in a write) or already linked to their final name
// (the kill landed inside a rename), and in-progress files whose offsets
// final files hold in part (recovery will publish them as they are).
func (ds crashScan) notes(instance string) (torn, linked int, overlap []string) {
	for id, ps := range ds.parts {
		finalIno := map[string]uint64{}
		for _, f := range ps.finals {
			finalIno[f.name] = f.ino
		}
		inFinal := offsetSet(ps.finals)
		for _, f := range ps.inprog {
			own := instance != "" && strings.HasSuffix(f.name, "."+instance+layout.InProgressSuffix)
			if f.torn() > 0 && own {
				torn++
			}
			if ino, ok := finalIno[crashFinalName(f.name)]; ok && ino == f.ino {
				if own {
					linked++
				}
				continue
			}
			held, total := countHeld(f, func(o int64) bool { return inFinal[o] })
			if held > 0 && held < total {
				overlap = append(overlap, fmt.Sprintf("partition %d: %s: %d of its %d offsets are in final files", id, f.name, held, total))
			}
		}
	}
	return torn, linked, overlap
}

// String describes the tree for the kill log: per partition the final files'
// count and offsets, and every in-progress file.
func (ds crashScan) String() string {
	ids := make([]int32, 0, len(ds.parts))
	for id := range ds.parts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var b strings.Builder
	for _, id := range ids {
		ps := ds.parts[id]
		var rs []segment.Range
		for _, f := range ps.finals {
			for _, r := range f.ranges {
				rs = offsets.Append(rs, r)
			}
		}
		fmt.Fprintf(&b, "\n    p%d: %d final files %s", id, len(ps.finals), crashRanges(rs))
		for _, f := range ps.inprog {
			fmt.Fprintf(&b, "; in progress %s", f)
		}
	}
	return b.String()
}

// keepCrashEvidence copies the backup tree and the logs of every process to a
// folder that outlives the test, when the test failed or
// KAFKA_BACKUP_CRASH_KEEP is set, and logs where.
func keepCrashEvidence(t testing.TB, name, dir string, logs func() map[string]string) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("KAFKA_BACKUP_CRASH_KEEP") == "" {
			return
		}
		keep, err := os.MkdirTemp("", "kafka-backup-crash-"+name+"-")
		if err != nil {
			t.Logf("keeping the evidence: %v", err)
			return
		}
		if err := os.CopyFS(filepath.Join(keep, "backup"), os.DirFS(dir)); err != nil {
			t.Logf("copying %s: %v", dir, err)
		}
		for n, l := range logs() {
			_ = os.WriteFile(filepath.Join(keep, n+".log"), []byte(l), 0o644)
		}
		t.Logf("the backup tree and every process's log are kept in %s", keep)
	})
}

// crashLogStats counts what a process logged.
type crashLogStats struct {
	started   bool // the writer was created: recovery had finished
	finalized map[string]int
	errors    []string
}

func crashStatsOf(logs string) crashLogStats {
	s := crashLogStats{finalized: map[string]int{}}
	for _, l := range strings.Split(logs, "\n") {
		switch {
		case strings.Contains(l, "kafka_backup writing to"):
			s.started = true
		case strings.Contains(l, `msg="finalized `):
			if i := strings.Index(l, "reason="); i >= 0 {
				r := l[i+len("reason="):]
				if j := strings.IndexByte(r, ' '); j >= 0 {
					r = r[:j]
				}
				s.finalized[strings.Trim(r, `"`)]++
			}
		}
		if strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") || strings.Contains(l, "panic:") {
			s.errors = append(s.errors, l)
		}
	}
	return s
}

func (s crashLogStats) String() string {
	var rs []string
	for r, n := range s.finalized {
		rs = append(rs, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(rs)
	w := "writer started"
	if !s.started {
		w = "writer NOT started (killed during start-up or recovery)"
	}
	return fmt.Sprintf("%s; finalized {%s}; %d error lines", w, strings.Join(rs, " "), len(s.errors))
}

// crashMs formats a duration in milliseconds.
func crashMs(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// inject turns the tree, while no process runs, into the state a kill at a
// luckier moment would have left. SIGKILL almost never lands inside these
// windows, which last microseconds:
//
//   - "torn": the last batch of an in-progress file cut short inside itself,
//     as a kill inside write(2) leaves it. Only a batch whose offsets are all
//     at or above the group's committed offset is cut (the group delivers
//     those records again, as it would had the write never returned), and
//     never a file whose final name exists (it may be the same inode).
//   - "rename": a complete in-progress file none of whose offsets are in a
//     final file hard-linked to its final name, as a kill between the link
//     and the unlink of local.Destination.Publish leaves it (any such file
//     may be rolled at any moment, for idleness).
//
// It returns what it did, or "" when no file qualifies.
func (ds crashScan) inject(rng *rand.Rand, kind, dir, topic string, committed map[int32]int64) (string, error) {
	type cand struct {
		part int32
		f    crashFile
	}
	var cands []cand
	ids := make([]int32, 0, len(ds.parts))
	for id := range ds.parts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		ps := ds.parts[id]
		finals := map[string]bool{}
		for _, f := range ps.finals {
			finals[f.name] = true
		}
		inFinal := offsetSet(ps.finals)
		for _, f := range ps.inprog {
			// A file whose final name exists may be that final file (linked
			// by a half-done rename): cutting it would tear the final file,
			// which no crash can do.
			if f.batches == 0 || f.torn() > 0 || finals[crashFinalName(f.name)] {
				continue
			}
			switch kind {
			case "torn":
				if f.lastBatchFirst >= committed[id] {
					cands = append(cands, cand{id, f})
				}
			case "rename":
				if held, _ := countHeld(f, func(o int64) bool { return inFinal[o] }); held == 0 {
					cands = append(cands, cand{id, f})
				}
			}
		}
	}
	if len(cands) == 0 {
		return "", nil
	}
	c := cands[rng.Intn(len(cands))]
	path := filepath.Join(dir, topic, strconv.Itoa(int(c.part)), c.f.name)
	switch kind {
	case "torn":
		batch := c.f.valid - c.f.lastBatchPos
		cut := c.f.lastBatchPos + 1 + rng.Int63n(batch-1)
		if err := os.Truncate(path, cut); err != nil {
			return "", err
		}
		return fmt.Sprintf("torn: partition %d: %s cut from %dB to %dB, inside its last batch (offsets from %d; committed %d)",
			c.part, c.f.name, c.f.size, cut, c.f.lastBatchFirst, committed[c.part]), nil
	default:
		final := filepath.Join(filepath.Dir(path), crashFinalName(c.f.name))
		if err := os.Link(path, final); err != nil {
			return "", err
		}
		return fmt.Sprintf("rename: partition %d: %s linked to %s %s (committed %d)",
			c.part, c.f.name, filepath.Base(final), crashRanges(c.f.ranges), committed[c.part]), nil
	}
}

// crashFinalName is the final name of an in-progress file with plain naming:
// ".<offset>.<instance>.inprogress" -> "<offset>".
func crashFinalName(inProgress string) string {
	n := strings.TrimPrefix(inProgress, ".")
	if i := strings.IndexByte(n, '.'); i >= 0 {
		n = n[:i]
	}
	return n
}
