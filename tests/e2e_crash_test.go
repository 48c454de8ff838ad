package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
)

// The crash tests SIGKILL kafka-backup at random moments while records are
// produced, restart it each time with the same config, and check that every
// record ends up in exactly one complete final file.
//
//	KAFKA_BACKUP_CRASH_KILLS=100  kills per test (default 10)
//	KAFKA_BACKUP_CRASH_SEED=n     the seed of the kill delays and the records
//	                              (default: the clock; always logged)
//	KAFKA_BACKUP_CRASH_INJECT=0   no injected torn writes and half-done renames
//	KAFKA_BACKUP_CRASH_KEEP=1     keep the tree and the logs even on success

// TestE2ECrashLocal runs the crash test with fsync: batch.
func TestE2ECrashLocal(t *testing.T) {
	t.Parallel()
	runCrash(t, "crash-batch", "batch")
}

// TestE2ECrashFsyncRollNoLossOnProcessCrash runs it with fsync: roll: a
// process crash (not a power loss) leaves what was written in the page cache,
// so nothing acknowledged may be lost either.
func TestE2ECrashFsyncRollNoLossOnProcessCrash(t *testing.T) {
	t.Parallel()
	runCrash(t, "crash-roll", "roll")
}

func crashEnvInt(t *testing.T, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

const crashPartitions = 4

// crashKiller runs kafka-backup, SIGKILLs it after random delays and
// restarts it, kills times; after each kill, with no process running, it
// scans the tree and checks it against the group's committed offsets. It runs
// on its own goroutine, so it reports through Errorf and Logf only.
type crashKiller struct {
	t       *testing.T
	b       *broker
	dir     string
	cfgPath string
	topic   string
	group   string
	kills   int
	rng     *rand.Rand
	t0      time.Time
	scanner *crashScanner
	done    chan struct{} // closed after the last restart (or when the killer gives up)

	mu    sync.Mutex
	procs []*proc
	// What the kills hit, for the summary.
	tornKills, linkedKills, startupKills, recovered int
	// inject: after a third of the kills, make the state a kill inside
	// write(2) or inside a rename leaves (crashScan.inject); injected counts
	// them by kind.
	inject   bool
	injected map[string]int
}

func (k *crashKiller) current() *proc {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.procs[len(k.procs)-1]
}

func (k *crashKiller) logs() map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]string{}
	for i, p := range k.procs {
		out[fmt.Sprintf("incarnation-%03d", i)] = p.logs()
	}
	return out
}

func (k *crashKiller) killAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.procs {
		p.sigkill()
	}
}

func (k *crashKiller) start(i int) (*proc, error) {
	p, err := startCrashProc(k.t, fmt.Sprintf("incarnation %d", i), k.cfgPath)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.procs = append(k.procs, p)
	k.mu.Unlock()
	return p, nil
}

// The moments the kills aim at.
const (
	// killStartup: 5-200ms after the start: Benthos starting, recovery of
	// the previous incarnation's files, the group join.
	killStartup = "start-up"
	// killBusy: 0-400ms (half of them within 50ms) after the incarnation's
	// first in-progress file appears: while it works through the backlog
	// that built up while it was down, writing, fsyncing and rolling.
	killBusy = "busy"
	// killUpload: 0-4ms after the incarnation's first upload temporary
	// appears on the server (the FTP crash test only).
	killUpload = "upload"
	// killAny: 300ms-3.3s after the start.
	killAny = "any"
)

// plan picks when to kill the next incarnation: a fifth at start-up, half
// while busy, the rest at any time.
func (k *crashKiller) plan() (string, time.Duration) {
	return k.planKill(20, 50, 0)
}

// planKill picks when to kill the next incarnation and how long after the
// moment it aims at: startupPct percent of the kills at start-up, busyPct
// percent while busy, uploadPct percent during an upload, the rest at any
// time.
func (k *crashKiller) planKill(startupPct, busyPct, uploadPct int) (string, time.Duration) {
	switch r := k.rng.Intn(100); {
	case r < startupPct:
		return killStartup, time.Duration(5+k.rng.Intn(195)) * time.Millisecond
	case r < startupPct+busyPct:
		if k.rng.Intn(2) == 0 {
			return killBusy, time.Duration(k.rng.Intn(50)) * time.Millisecond
		}
		return killBusy, time.Duration(50+k.rng.Intn(350)) * time.Millisecond
	case r < startupPct+busyPct+uploadPct:
		return killUpload, time.Duration(k.rng.Intn(4000)) * time.Microsecond
	default:
		return killAny, time.Duration(300+k.rng.Intn(3000)) * time.Millisecond
	}
}

var instanceLine = regexp.MustCompile(`as instance ([^ "]+)`)

// waitBusy waits until p has an in-progress file of its own, and returns how
// long after its start that was (or -1 after 10s, or if p exits, or ctx ends).
func (k *crashKiller) waitBusy(ctx context.Context, p *proc, started time.Time) time.Duration {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for time.Since(started) < 10*time.Second {
		if m := instanceLine.FindStringSubmatch(p.logs()); m != nil {
			own, _ := filepath.Glob(filepath.Join(k.dir, k.topic, "*", ".*."+m[1]+layout.InProgressSuffix))
			if len(own) > 0 {
				return time.Since(started)
			}
		}
		select {
		case <-ctx.Done():
			return -1
		case <-p.done:
			return -1
		case <-tick.C:
		}
	}
	return -1
}

// busyAim waits, for a kill aimed at a busy incarnation, until p has an
// in-progress file of its own (waitBusy), and says when that was, for the
// kill log.
func (k *crashKiller) busyAim(ctx context.Context, p *proc, started time.Time) string {
	if busy := k.waitBusy(ctx, p, started); busy >= 0 {
		return fmt.Sprintf(" after its first in-progress file at %s", crashMs(busy))
	}
	return ", no in-progress file of its own within 10s"
}

// killLoop is the frame of a kill loop: it starts incarnation 0 and calls
// kill for kills 1 to k.kills, each time with a Kafka client to read the
// group's committed offsets with, the incarnation to kill and when it
// started; after each kill that returns true it starts the next
// incarnation, and it stops at the first that returns false. It closes
// k.done when it ends, and reports failures through Errorf.
func (k *crashKiller) killLoop(kill func(cl *kgo.Client, i int, p *proc, started time.Time) bool) {
	defer close(k.done)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.b.addr))
	if err != nil {
		k.t.Errorf("kgo client: %v", err)
		return
	}
	defer cl.Close()
	p, err := k.start(0)
	if err != nil {
		k.t.Errorf("%v", err)
		return
	}
	started := time.Now()
	for i := 1; i <= k.kills; i++ {
		if !kill(cl, i, p, started) {
			return
		}
		if p, err = k.start(i); err != nil {
			k.t.Errorf("restart %d: %v", i, err)
			return
		}
		started = time.Now()
	}
}

// killAfter waits d and SIGKILLs p, the incarnation kill i ends (reporting it
// if it exited by itself before), and returns when the kill was since the
// test's start and since p's start. It returns ok false, without killing,
// when ctx ends first.
func (k *crashKiller) killAfter(ctx context.Context, i int, p *proc, started time.Time, d time.Duration) (at, up time.Duration, ok bool) {
	k.t.Helper()
	select {
	case <-ctx.Done():
		return 0, 0, false
	case <-p.done:
		k.t.Errorf("kill %d: incarnation %d exited by itself after %s: %v", i, i-1, crashMs(time.Since(started)), p.err)
	case <-time.After(d):
	}
	p.sigkill()
	return time.Since(k.t0), time.Since(started), true
}

// committedAfterKill returns the group's committed offsets after kill i,
// trying for about two seconds; none when the group was never joined. It
// reports a failure through Errorf and returns what the last try returned.
func (k *crashKiller) committedAfterKill(cl *kgo.Client, i int) map[int32]int64 {
	k.t.Helper()
	for try := 0; ; try++ {
		comm, err := committed(cl, k.group, k.topic, crashPartitions)
		if errors.Is(err, kerr.GroupIDNotFound) {
			// Killed before the group was ever joined: nothing committed.
			return map[int32]int64{}
		}
		if err == nil {
			return comm
		}
		if try == 20 {
			k.t.Errorf("kill %d: committed offsets: %v", i, err)
			return comm
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// injectOne tries inject with each of kinds in turn until one makes a state
// or fails, and reports what kill i's injection did: the state it made
// (counted in k.injected), nothing (logging the nothing message), or the
// failure, through Errorf. It returns false when an injection failed.
func (k *crashKiller) injectOne(i int, kinds []string, nothing string, inject func(kind string) (string, error)) bool {
	k.t.Helper()
	var did, kind string
	var err error
	for _, kind = range kinds {
		if did, err = inject(kind); did != "" || err != nil {
			break
		}
	}
	switch {
	case err != nil:
		k.t.Errorf("kill %d: injecting %s: %v", i, kind, err)
		return false
	case did == "":
		k.t.Logf("kill %d: %s", i, nothing)
	default:
		k.t.Logf("kill %d: injected %s", i, did)
		k.mu.Lock()
		k.injected[kind]++
		k.mu.Unlock()
	}
	return true
}

// crashCommitted formats committed offsets for the kill log: "p0=12 p1=0 …".
func crashCommitted(comm map[int32]int64) string {
	var comms []string
	for part := int32(0); part < crashPartitions; part++ {
		comms = append(comms, fmt.Sprintf("p%d=%d", part, comm[part]))
	}
	return strings.Join(comms, " ")
}

// runInBackground runs the kill loop run on its own goroutine. When the test
// ends it stops the loop, waits for it, kills every incarnation still
// running and, if the test failed, logs cfg and calls logMore (unless nil).
func (k *crashKiller) runInBackground(cfg string, run func(context.Context), logMore func()) {
	ctx, cancel := context.WithCancel(context.Background())
	k.t.Cleanup(func() {
		cancel()
		<-k.done
		k.killAll()
		if k.t.Failed() {
			k.t.Logf("---- config:\n%s", cfg)
			if logMore != nil {
				logMore()
			}
		}
	})
	go run(ctx)
}

// produceCrashWaves produces waves of records to topic until done is closed,
// each wave 60-199 records a partition, 0-700ms apart, so that kills land
// while records are written, files roll for size and for idleness, and
// files are recovered; then a last wave of 100 a partition, records produced
// after the last restart too. It returns the number of waves.
func produceCrashWaves(t *testing.T, b *broker, topic string, seed int64, t0 time.Time, done <-chan struct{}) int {
	t.Helper()
	prng := rand.New(rand.NewSource(seed + 1))
	waves := 0
	for {
		select {
		case <-done:
		default:
			b.produceWorkload(topic, crashPartitions, workload{perPartition: 60 + prng.Intn(140), seed: seed + int64(waves)})
			waves++
			t.Logf("wave %d produced at %s: %d records in all", waves, crashMs(time.Since(t0)), b.totalProduced())
			select {
			case <-done:
			case <-time.After(time.Duration(prng.Intn(700)) * time.Millisecond):
			}
			continue
		}
		break
	}
	b.produceWorkload(topic, crashPartitions, workload{perPartition: 100, seed: seed + int64(waves)})
	waves++
	t.Logf("wave %d (last) produced at %s: %d records in all", waves, crashMs(time.Since(t0)), b.totalProduced())
	return waves
}

// logCrashErrors logs the error lines of every process's logs, by the
// processes' names.
func logCrashErrors(t *testing.T, logs map[string]string) {
	t.Helper()
	names := make([]string, 0, len(logs))
	for n := range logs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, e := range crashStatsOf(logs[n]).errors {
			t.Logf("%s logged: %s", n, e)
		}
	}
}

func (k *crashKiller) run(ctx context.Context) {
	k.killLoop(func(cl *kgo.Client, i int, p *proc, started time.Time) bool {
		mode, d := k.plan()
		aim := fmt.Sprintf("%s, delay %s", mode, crashMs(d))
		if mode == killBusy {
			aim += k.busyAim(ctx, p, started)
		}
		at, up, ok := k.killAfter(ctx, i, p, started, d)
		if !ok {
			return false
		}
		comm := k.committedAfterKill(cl, i)
		ds, err := k.scanner.scan()
		if err != nil {
			k.t.Errorf("kill %d: scanning %s: %v", i, k.dir, err)
		}
		st := crashStatsOf(p.logs())
		inst := ""
		if m := instanceLine.FindStringSubmatch(p.logs()); m != nil {
			inst = m[1]
		}
		torn, linked, overlap := ds.notes(inst)
		k.mu.Lock()
		if torn > 0 {
			k.tornKills++
		}
		if linked > 0 {
			k.linkedKills++
		}
		if !st.started {
			k.startupKills++
		}
		k.recovered += st.finalized["recovered"]
		k.mu.Unlock()
		k.t.Logf("kill %d/%d at %s: incarnation %d up %s (%s); %s; %d torn in-progress tails, %d in-progress files mid-rename; committed %s; files:%s",
			i, k.kills, crashMs(at), i-1, crashMs(up), aim, st, torn, linked, crashCommitted(comm), ds)
		for _, o := range overlap {
			k.t.Logf("kill %d: note: %s", i, o)
		}
		for _, e := range st.errors {
			k.t.Logf("kill %d: incarnation %d logged: %s", i, i-1, e)
		}
		for _, v := range ds.check(comm) {
			k.t.Errorf("after kill %d at %s (incarnation %d up %s): %s", i, crashMs(at), i-1, crashMs(up), v)
		}
		if k.inject && k.rng.Intn(3) == 0 {
			kinds := []string{"torn", "rename"}
			if k.rng.Intn(2) == 0 {
				kinds[0], kinds[1] = kinds[1], kinds[0]
			}
			k.injectOne(i, kinds, "no in-progress file to inject a torn write or a half-done rename into", func(kind string) (string, error) {
				return ds.inject(k.rng, kind, k.dir, k.topic, comm)
			})
		}
		return true
	})
}

func runCrash(t *testing.T, topic, fsync string) {
	needKcat(t)
	kills := int(crashEnvInt(t, "KAFKA_BACKUP_CRASH_KILLS", 10))
	seed := crashEnvInt(t, "KAFKA_BACKUP_CRASH_SEED", time.Now().UnixNano())
	t.Logf("seed %d (KAFKA_BACKUP_CRASH_SEED=%d replays the delays and records), %d kills, fsync: %s", seed, seed, kills, fsync)

	b := startBroker(t, crashPartitions, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	group := "g-" + topic
	const size = 32 << 10
	cfg := backupConfig(crashInput(b, group, topic), dir,
		fmt.Sprintf("    size: 32KiB\n    roll_duration: 500ms\n    fsync: %s\n", fsync))
	cfgPath := filepath.Join(t.TempDir(), "crash.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	k := &crashKiller{
		t: t, b: b, dir: dir, cfgPath: cfgPath, topic: topic, group: group, kills: kills,
		rng: rand.New(rand.NewSource(seed)), t0: t0, scanner: newCrashScanner(dir, topic),
		done: make(chan struct{}), inject: os.Getenv("KAFKA_BACKUP_CRASH_INJECT") != "0", injected: map[string]int{},
	}
	keepCrashEvidence(t, topic, dir, k.logs)
	k.runInBackground(cfg, k.run, nil)

	waves := produceCrashWaves(t, b, topic, seed, t0, k.done)

	truth := b.groundTruth(topic, crashPartitions)
	requireVariety(t, truth)
	last := k.current()
	waitCommitted(t, b, group, crashPartitions, []string{topic}, last)
	last.stop()
	t.Logf("last incarnation stopped cleanly at %s: %s", crashMs(time.Since(t0)), crashStatsOf(last.logs()))

	// The tree after the clean stop: no in-progress file, every final file
	// complete, each offset once, every record exactly as Kafka has it.
	ds, err := k.scanner.scan()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ds.check(allProduced(b, topic)) {
		t.Errorf("after the clean stop: %s", v)
	}
	bk := verifyBackup(t, dir, verifyOpts{maxSize: size, want: map[string]map[int32][]segment.Record{topic: truth}})

	logCrashErrors(t, k.logs())
	k.recovered += crashStatsOf(last.logs()).finalized["recovered"]
	t.Logf("%d kills in %s, %d waves, %d records in %d final files; kills that tore an in-progress batch: %d, that landed mid-rename: %d, before the writer started: %d; injected %v; files recovered: %d",
		kills, crashMs(time.Since(t0)), waves, sumRecords(truth), bk.fileCount(topic), k.tornKills, k.linkedKills, k.startupKills, k.injected, k.recovered)
}
