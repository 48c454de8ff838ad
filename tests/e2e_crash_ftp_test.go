package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// TestE2ECrashFTP is the crash test (e2e_crash_test.go) with the FTP
// destination: kafka-backup is SIGKILLed at random moments while records are
// produced and restarted with the same config and the same persistent spool,
// here against a real pure-ftpd (tests/ftpd), or the embedded tests/ftptest
// server where pure-ftpd is not installed. size 32KiB and roll_duration
// 500ms make many small files, max_connections 2 uploads two at once.
//
// A fifth of the kills aim at uploads: they wait until the incarnation has an
// upload temporary on the server and kill it 0-4ms later, inside STOR, the
// size check, RNFR/RNTO or the marker update. Those windows are short, so
// after most kills the state a luckier kill leaves is also made by hand, with
// no process running (KAFKA_BACKUP_CRASH_INJECT=0 turns this off):
//
//   - torn: the last batch of a spool in-progress file cut inside itself (a
//     kill inside write(2)), as in the local crash test;
//   - upload-temp: a spool file's upload temporary .<name>.<dead>.upload on
//     the server, complete or cut short, not renamed (a kill between STOR
//     and RNTO);
//   - renamed: a spool file already final on the server, same bytes, its
//     marker line missing (a kill between RNTO and the marker update);
//   - marked: the same with its marker line, and half the time its journal
//     line (a kill between the marker update and deleting the spool copy);
//   - unmarked: the last marker line of an uploaded file removed, with its
//     journal line, and its spool copy put back (the same window, on a file
//     whose upload had finished);
//   - marker-temp: a marker temporary .kafka-backup.ranges.<dead>.tmp left
//     (a kill between the marker's STOR and its rename).
//
// After each kill, with no process running and the server's sessions ended,
// the spool and the server's tree are scanned: server final files complete,
// named by their first offset, no offset in two of them; marker and journal
// lines naming server files with exactly their offsets, every server final
// file in the marker or still in the spool; a spool final file
// either identical to the server file of its name or with no offset on the
// server; nothing acknowledged (below the group's commit) missing from the
// server's and the spool's files. At the end everything is committed and
// uploaded, the last incarnation is stopped with SIGTERM, and the server's
// tree must hold every record exactly once, equal to Kafka's, with a marker
// listing every file. Upload temporaries of killed incarnations stay on the
// server (a restarted process has a new instance id, so it never replaces
// them); they are counted and logged, and must belong to killed incarnations.
//
// The environment variables of the crash tests apply
// (KAFKA_BACKUP_CRASH_KILLS, _SEED, _INJECT, _KEEP).
func TestE2ECrashFTP(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := startCrashFTPServer(t)
	const topic = "crash-ftp"
	kills := int(crashEnvInt(t, "KAFKA_BACKUP_CRASH_KILLS", 10))
	seed := crashEnvInt(t, "KAFKA_BACKUP_CRASH_SEED", time.Now().UnixNano())
	t.Logf("seed %d (KAFKA_BACKUP_CRASH_SEED=%d replays the delays and records), %d kills, server %s on %s:%d",
		seed, seed, kills, srv.name, srv.host, srv.port)

	b := startBroker(t, crashPartitions, topic)
	spool := filepath.Join(t.TempDir(), "spool")
	const remote = "/backups/crash"
	serverDir := srv.path(remote)
	group := "g-" + topic
	const size = 32 << 10
	cfg := backupConfig(crashInput(b, group, topic), remote, fmt.Sprintf(`    size: 32KiB
    roll_duration: 500ms
    fs:
      schema: ftp
      ftp:
        hostname: %q
        port: %d
        user: %q
        password: %q
        spool: %q
        connect_timeout: 5s
        timeout: 10s
        max_connections: 2
`, srv.host, srv.port, srv.user, srv.password, spool))
	cfgPath := filepath.Join(t.TempDir(), "crash-ftp.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	k := &ftpCrashKiller{
		crashKiller: &crashKiller{
			t: t, b: b, dir: spool, cfgPath: cfgPath, topic: topic, group: group, kills: kills,
			rng: rand.New(rand.NewSource(seed)), t0: t0, done: make(chan struct{}),
			inject: os.Getenv("KAFKA_BACKUP_CRASH_INJECT") != "0", injected: map[string]int{},
		},
		srv: srv, spool: spool, serverDir: serverDir,
		spoolScan: newCrashScanner(spool, topic), serverScan: newCrashScanner(serverDir, topic),
		dead: map[string]bool{}, hits: map[string]int{}, aims: map[string]int{},
	}
	keepCrashFTPEvidence(t, spool, serverDir, srv, k.logs)
	k.runInBackground(cfg, k.run, func() {
		l := srv.log()
		if len(l) > 20000 {
			l = "…" + l[len(l)-20000:]
		}
		t.Logf("---- %s log:\n%s", srv.name, l)
	})

	// Waves of records until the last kill, as in runCrash.
	waves := produceCrashWaves(t, b, topic, seed, t0, k.done)
	if t.Failed() {
		t.FailNow() // the kill loop gave up or found violations: no point waiting
	}

	truth := b.groundTruth(topic, crashPartitions)
	requireVariety(t, truth)
	last := k.current()
	waitCommitted(t, b, group, crashPartitions, []string{topic}, last)
	waitFor(t, "a spool with no final and no in-progress file", func() (bool, string) {
		var left []string
		for _, f := range spoolLeftovers(spool) {
			if base := filepath.Base(f); isFinalName(base) || strings.HasSuffix(base, layout.InProgressSuffix) {
				left = append(left, f)
			}
		}
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, last)
	last.stop()
	lastInst := ""
	if m := instanceLine.FindStringSubmatch(last.logs()); m != nil {
		lastInst = m[1]
	}
	t.Logf("last incarnation (instance %s) stopped cleanly at %s: %s", lastInst, crashMs(time.Since(t0)), crashStatsOf(last.logs()))

	// The spool and the server after the clean stop.
	st, err := k.scanState()
	if err != nil {
		t.Fatal(err)
	}
	viol, _ := st.check(allProduced(b, topic))
	for _, v := range viol {
		t.Errorf("after the clean stop: %s", v)
	}
	for _, id := range st.ids() {
		sp := st.spool.parts[id]
		if sp != nil && len(sp.finals)+len(sp.inprog) > 0 {
			t.Errorf("after the clean stop: partition %d: the spool still holds %d final and %d in-progress files", id, len(sp.finals), len(sp.inprog))
		}
		// Every final file on the server is in its folder's marker.
		if ps := st.server.parts[id]; ps != nil {
			for _, f := range ps.finals {
				if _, ok := st.marker[id][f.name]; !ok {
					t.Errorf("after the clean stop: partition %d: final file %s is not in the marker", id, f.name)
				}
			}
		}
	}
	// Leftover temporaries: only killed incarnations may have left them.
	var uploadTemps, markerTemps int
	var tempBytes int64
	for _, tmp := range st.temps {
		if tmp.kind == "upload" {
			uploadTemps++
		} else {
			markerTemps++
		}
		tempBytes += tmp.size
		if !k.dead[tmp.instance] || tmp.instance == lastInst {
			t.Errorf("after the clean stop: partition %d: %s was left by instance %s, which was not killed", tmp.part, tmp.name, tmp.instance)
		}
	}

	// Records: the server's final files, hidden files left out, hold every
	// record once, equal to Kafka's (kmsg decoding, null-aware, headers,
	// timestamps, sizes).
	cp := filepath.Join(t.TempDir(), "server-copy")
	err = walkFiles(serverDir, func(path string, d fs.DirEntry) error {
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(serverDir, path)
		if err := os.MkdirAll(filepath.Join(cp, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return copyFile(path, filepath.Join(cp, rel))
	})
	if err != nil {
		t.Fatalf("copying %s: %v", serverDir, err)
	}
	bk := verifyBackup(t, cp, verifyOpts{maxSize: size, want: map[string]map[int32][]segment.Record{topic: truth}})

	logs := k.logs()
	uploads, failures := 0, 0
	for _, l := range logs {
		uploads += len(uploadedLine(remote).FindAllString(l, -1))
		failures += len(uploadFailed.FindAllString(l, -1))
	}
	logCrashErrors(t, logs)
	t.Logf("%d kills in %s, %d waves, %d records in %d final files on %s; %d uploads logged, %d failed upload attempts logged",
		kills, crashMs(time.Since(t0)), waves, sumRecords(truth), bk.fileCount(topic), srv.name, uploads, failures)
	t.Logf("kills by aim %v; upload states real kills left: %v; injected %v", k.aims, k.hits, k.injected)
	t.Logf("leftover temporaries on the server from killed incarnations: %d upload temporaries, %d marker temporaries, %d bytes; README does not mention them (a restarted instance never replaces or deletes a dead instance's temporaries)",
		uploadTemps, markerTemps, tempBytes)
}

// crashFTPServer is the server TestE2ECrashFTP uploads to: pure-ftpd or the
// embedded ftptest server.
type crashFTPServer struct {
	name           string
	host           string
	port           int
	user, password string
	root           string // the local folder of the FTP root
	uid, gid       int    // the owner of files the server writes
	log            func() string
}

// path returns the local path of an FTP path.
func (s *crashFTPServer) path(ftpPath string) string {
	return filepath.Join(s.root, filepath.FromSlash(strings.TrimPrefix(ftpPath, "/")))
}

// startCrashFTPServer starts pure-ftpd when it is installed, else the
// embedded server.
func startCrashFTPServer(t *testing.T) *crashFTPServer {
	why := ""
	bin := filepath.Join(ftpd.Prefix(), "pure-ftpd", "usr", "sbin", "pure-ftpd")
	if os.Geteuid() != 0 {
		why = "the tests do not run as root"
	} else if _, err := os.Stat(bin); err != nil {
		why = err.Error()
	} else if _, err := user.Lookup(ftpd.User); err != nil {
		why = fmt.Sprintf("user %s: %v", ftpd.User, err)
	}
	if why == "" {
		s := ftpd.StartPureFtpd(t, ftpd.Options{})
		st, err := os.Stat(s.Root)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		return &crashFTPServer{name: s.Name, host: s.Host, port: s.Port, user: s.User, password: s.Password,
			root: s.Root, uid: int(sys.Uid), gid: int(sys.Gid), log: s.Log}
	}
	t.Logf("pure-ftpd cannot run (%s; `sudo bash scripts/ftpd/install.sh` installs it): using the embedded ftptest server", why)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("neither pure-ftpd (%s) nor the embedded FTP server (cannot listen on 127.0.0.1: %v) can run", why, err)
	}
	ln.Close()
	s := ftptest.Start(t)
	return &crashFTPServer{name: "ftptest (embedded)", host: s.Host, port: s.Port, user: s.User, password: s.Password,
		root: s.Root, uid: os.Getuid(), gid: os.Getgid(), log: func() string { return "" }}
}

// ftpCrashKiller is crashKiller (start, plan, waitBusy, logs) with the FTP
// scans, checks and injections.
type ftpCrashKiller struct {
	*crashKiller
	srv                   *crashFTPServer
	spool, serverDir      string
	spoolScan, serverScan *crashScanner
	// Only touched by run, and read after done is closed.
	dead map[string]bool // instances killed or invented for injected temporaries
	hits map[string]int  // upload states kills left, by kind
	aims map[string]int  // kills by aim
}

// plan picks when to kill the next incarnation: 15% at start-up, 35% while
// busy, 30% during an upload, the rest at any time.
func (k *ftpCrashKiller) plan() (string, time.Duration) {
	return k.planKill(15, 35, 30)
}

// waitUpload waits until p has an upload temporary on the server, polling
// fast, and returns how long after its start that was (or -1 after 10s, or
// if p exits, or ctx ends).
func (k *ftpCrashKiller) waitUpload(ctx context.Context, p *proc, started time.Time) time.Duration {
	for time.Since(started) < 10*time.Second {
		if m := instanceLine.FindStringSubmatch(p.logs()); m != nil {
			own, _ := filepath.Glob(filepath.Join(k.serverDir, k.topic, "*", ".*."+m[1]+".upload"))
			if len(own) > 0 {
				return time.Since(started)
			}
		}
		if ctx.Err() != nil || p.exited() {
			return -1
		}
		time.Sleep(200 * time.Microsecond)
	}
	return -1
}

// waitSessionsGone waits until the server has no control connection open on
// its side (ESTABLISHED or CLOSE_WAIT on its port): the sessions of the
// killed process have ended, so nothing on the server changes any more (a
// session may still be storing what it received, or renaming, right after
// the kill). It returns how long that took, or -1 after 5s.
func (k *ftpCrashKiller) waitSessionsGone() time.Duration {
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if tcpOpenOn(k.srv.port) == 0 {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return -1
}

// tcpOpenOn counts the sockets with local port port that are ESTABLISHED or
// in CLOSE_WAIT.
func tcpOpenOn(port int) int {
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 {
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			p, err := strconv.ParseUint(fields[1][i+1:], 16, 32)
			if err == nil && int(p) == port && (fields[3] == "01" || fields[3] == "08") {
				n++
			}
		}
	}
	return n
}

func (k *ftpCrashKiller) run(ctx context.Context) {
	before := map[string]string{} // the upload states present when p started
	kinds := []string{"torn", "upload-temp", "renamed", "marked", "unmarked", "marker-temp"}
	k.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	violations := 0
	k.killLoop(func(cl *kgo.Client, i int, p *proc, started time.Time) bool {
		mode, d := k.plan()
		k.aims[mode]++
		aim := fmt.Sprintf("%s, delay %s", mode, crashMs(d))
		switch mode {
		case killBusy:
			aim += k.busyAim(ctx, p, started)
		case killUpload:
			aim = fmt.Sprintf("%s, delay %dµs", mode, d.Microseconds())
			if up := k.waitUpload(ctx, p, started); up < 0 {
				aim += ", no upload temporary of its own within 10s"
			} else {
				aim += fmt.Sprintf(" after its first upload temporary at %s", crashMs(up))
			}
		}
		at, up, ok := k.killAfter(ctx, i, p, started, d)
		if !ok {
			return false
		}
		gone := k.waitSessionsGone()
		if gone < 0 {
			k.t.Logf("kill %d: the server still has sessions open 5s after the kill; scanning anyway", i)
		}
		comm := k.committedAfterKill(cl, i)
		st, err := k.scanState()
		if err != nil {
			k.t.Errorf("kill %d: scanning: %v", i, err)
			return false
		}
		stats := crashStatsOf(p.logs())
		inst := ""
		if m := instanceLine.FindStringSubmatch(p.logs()); m != nil {
			inst = m[1]
			k.dead[inst] = true
		}
		// No instance runs now, so every temporary on the server was left by
		// a killed one: also by one killed during start-up, before it
		// logged its instance id, while its uploaders already resumed the
		// spool.
		for _, tmp := range st.temps {
			k.dead[tmp.instance] = true
		}
		var hit []string
		for key, kind := range st.uploadStates() {
			if _, ok := before[key]; !ok {
				hit = append(hit, key)
				k.hits[kind]++
			}
		}
		sort.Strings(hit)
		viol, notes := st.check(comm)
		k.t.Logf("kill %d/%d at %s: incarnation %d (%s) up %s (%s); sessions gone after %s; %s; upload states it left: %v; committed %s; %s",
			i, k.kills, crashMs(at), i-1, inst, crashMs(up), aim, crashMs(gone), stats, hit, crashCommitted(comm), st)
		for _, n := range notes {
			k.t.Logf("kill %d: note: %s", i, n)
		}
		for _, e := range stats.errors {
			k.t.Logf("kill %d: incarnation %d logged: %s", i, i-1, e)
		}
		for _, v := range viol {
			k.t.Errorf("after kill %d at %s (incarnation %d up %s): %s", i, crashMs(at), i-1, crashMs(up), v)
		}
		if violations += len(viol); violations > 0 {
			// A later state would be built on a broken one: stop here,
			// with the evidence kept.
			return false
		}
		if k.inject {
			dead := inst
			if dead == "" {
				dead = fmt.Sprintf("injected%d", i)
				k.dead[dead] = true
			}
			order := append([]string{kinds[i%len(kinds)]}, kinds...)
			if !k.injectOne(i, order, "nothing to inject into", func(kind string) (string, error) {
				return k.injectState(st, kind, dead, comm)
			}) {
				return false
			}
			if st, err = k.scanState(); err != nil {
				k.t.Errorf("kill %d: scanning after the injection: %v", i, err)
				return false
			}
			if viol, _ := st.check(comm); len(viol) > 0 {
				k.t.Errorf("kill %d: the injection made an impossible state: %v", i, viol)
				return false
			}
		}
		before = st.uploadStates()
		return true
	})
}

// ftpTemp is a hidden temporary on the server.
type ftpTemp struct {
	part     int32
	name     string
	kind     string // "upload" or "marker"
	final    string // the final name an upload temporary is for
	instance string
	size     int64
}

var (
	uploadTempName = regexp.MustCompile(`^\.([0-9]+)\.([^.]+)\.upload$`)
	markerTempName = regexp.MustCompile(`^` + regexp.QuoteMeta(ftpMarker) + `\.([^.]+)\.tmp$`)
)

// ftpJournal is the spool's upload journal (destination/layout.JournalName).
const ftpJournal = ".uploaded.ranges"

// ftpCrashState is what the spool and the server held at one moment.
type ftpCrashState struct {
	spoolDir, serverDir, topic string
	spool, server              crashScan
	marker, journal            map[int32]map[string]string // by partition: name -> "first-last[,…]"
	temps                      []ftpTemp
	bad                        []string // violations found while reading
	notes                      []string
}

func (k *ftpCrashKiller) scanState() (*ftpCrashState, error) {
	st := &ftpCrashState{spoolDir: k.spool, serverDir: k.serverDir, topic: k.topic,
		marker: map[int32]map[string]string{}, journal: map[int32]map[string]string{}}
	var err error
	if st.spool, err = k.spoolScan.scan(); err != nil {
		return nil, fmt.Errorf("the spool: %w", err)
	}
	if st.server, err = k.serverScan.scan(); err != nil {
		return nil, fmt.Errorf("the server: %w", err)
	}
	for _, s := range st.spool.stray {
		st.bad = append(st.bad, "spool: stray entry "+s)
	}
	for _, s := range st.server.stray {
		st.bad = append(st.bad, "server: stray entry "+s)
	}
	for id, ps := range st.spool.parts {
		for _, s := range ps.stray {
			switch {
			case s == ftpJournal:
				st.journal[id] = st.readRanges(fmt.Sprintf("spool: partition %d: journal", id), filepath.Join(st.spoolPart(id), s))
			case strings.HasSuffix(s, ".trim") && isFinalName(strings.TrimSuffix(s, ".trim")):
				st.notes = append(st.notes, fmt.Sprintf("spool: partition %d: %s, a trim left by a kill", id, s))
			default:
				st.bad = append(st.bad, fmt.Sprintf("spool: partition %d: stray entry %s", id, s))
			}
		}
	}
	for id, ps := range st.server.parts {
		for _, s := range ps.stray {
			if s == ftpMarker {
				st.marker[id] = st.readRanges(fmt.Sprintf("server: partition %d: marker", id), filepath.Join(st.serverPart(id), s))
				continue
			}
			tmp := ftpTemp{part: id, name: s}
			if m := uploadTempName.FindStringSubmatch(s); m != nil && isFinalName(m[1]) {
				tmp.kind, tmp.final, tmp.instance = "upload", m[1], m[2]
			} else if m := markerTempName.FindStringSubmatch(s); m != nil {
				tmp.kind, tmp.instance = "marker", m[1]
			} else {
				st.bad = append(st.bad, fmt.Sprintf("server: partition %d: stray entry %s", id, s))
				continue
			}
			if fi, err := os.Stat(filepath.Join(st.serverPart(id), s)); err == nil {
				tmp.size = fi.Size()
			}
			st.temps = append(st.temps, tmp)
		}
	}
	sort.Slice(st.temps, func(i, j int) bool {
		if st.temps[i].part != st.temps[j].part {
			return st.temps[i].part < st.temps[j].part
		}
		return st.temps[i].name < st.temps[j].name
	})
	return st, nil
}

func (st *ftpCrashState) spoolPart(id int32) string {
	return filepath.Join(st.spoolDir, st.topic, strconv.Itoa(int(id)))
}

func (st *ftpCrashState) serverPart(id int32) string {
	return filepath.Join(st.serverDir, st.topic, strconv.Itoa(int(id)))
}

// readRanges reads a marker or a journal: "<name> <first>-<last>[,…]" lines;
// a later line for a name wins (the journal may list a file twice).
func (st *ftpCrashState) readRanges(what, path string) map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		st.bad = append(st.bad, fmt.Sprintf("%s: %v", what, err))
		return out
	}
	if len(data) == 0 {
		return out
	}
	if data[len(data)-1] != '\n' {
		st.bad = append(st.bad, fmt.Sprintf("%s: the last line has no newline: %q", what, data[bytes.LastIndexByte(data, '\n')+1:]))
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if i == 0 && strings.HasSuffix(what, "journal") && strings.HasPrefix(line, "# ") {
			continue // the journal's first line names its destination
		}
		name, rs, ok := strings.Cut(line, " ")
		if !ok || !isFinalName(name) || !rangesList.MatchString(rs) {
			st.bad = append(st.bad, fmt.Sprintf("%s: malformed line %q", what, line))
			continue
		}
		if _, dup := out[name]; dup && strings.HasSuffix(what, "marker") {
			st.bad = append(st.bad, fmt.Sprintf("%s: %s listed twice", what, name))
		}
		out[name] = rs
	}
	return out
}

var rangesList = regexp.MustCompile(`^[0-9]+-[0-9]+(,[0-9]+-[0-9]+)*$`)

// markerRanges formats the offsets of a file as marker lines do.
func markerRanges(rs []segment.Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%d-%d", r.First, r.Last)
	}
	return strings.Join(s, ",")
}

func (st *ftpCrashState) ids() []int32 {
	seen := map[int32]bool{}
	for id := range st.spool.parts {
		seen[id] = true
	}
	for id := range st.server.parts {
		seen[id] = true
	}
	ids := make([]int32, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// part returns a partition's scans, empty where there is no folder.
func (st *ftpCrashState) part(id int32) (spool, server *crashPartScan) {
	spool, server = st.spool.parts[id], st.server.parts[id]
	if spool == nil {
		spool = &crashPartScan{}
	}
	if server == nil {
		server = &crashPartScan{}
	}
	return spool, server
}

// sameBytes reports whether the spool's and the server's files of a name are
// identical.
func (st *ftpCrashState) sameBytes(id int32, name string) bool {
	a, err1 := os.ReadFile(filepath.Join(st.spoolPart(id), name))
	b, err2 := os.ReadFile(filepath.Join(st.serverPart(id), name))
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// check returns the invariants the state breaks, and notes.
func (st *ftpCrashState) check(committed map[int32]int64) (violations, notes []string) {
	violations = append(violations, st.bad...)
	notes = append(notes, st.notes...)
	ids := st.ids()
	for id := range committed {
		if _, ok := st.spool.parts[id]; !ok {
			if _, ok := st.server.parts[id]; !ok {
				ids = append(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	bad := func(format string, a ...any) { violations = append(violations, fmt.Sprintf(format, a...)) }
	for _, id := range ids {
		sp, sv := st.part(id)
		for _, f := range sv.inprog {
			bad("server: partition %d: in-progress file %s on the server", id, f.name)
		}
		// Server final files: complete, named by their first offset, each
		// offset in one of them.
		server := checkFinalFiles(sv.finals)
		violations = append(violations, server.violations(fmt.Sprintf("server: partition %d: ", id))...)
		serverFile := map[string]crashFile{}
		for _, f := range sv.finals {
			serverFile[f.name] = f
		}
		// Marker and journal lines name server files with their offsets.
		for _, l := range []struct {
			what  string
			lines map[string]string
		}{{"marker", st.marker[id]}, {"journal (uploads the spool finished)", st.journal[id]}} {
			for name, rs := range l.lines {
				f, ok := serverFile[name]
				switch {
				case !ok:
					bad("partition %d: the %s lists %s, which is not on the server", id, l.what, name)
				case markerRanges(f.ranges) != rs:
					bad("partition %d: the %s lists %s as %s, the server file holds %s", id, l.what, name, rs, markerRanges(f.ranges))
				}
			}
		}
		// A server final file the marker does not list still has its spool
		// copy (a kill between RNTO and the marker update): the spool copy
		// is deleted only after the marker update, and its upload records
		// the file then.
		spoolFinal := map[string]bool{}
		for _, f := range sp.finals {
			spoolFinal[f.name] = true
		}
		for _, f := range sv.finals {
			if _, ok := st.marker[id][f.name]; !ok && !spoolFinal[f.name] {
				bad("partition %d: server final file %s is neither in the marker nor in the spool: no upload will ever record it", id, f.name)
			}
		}
		// Spool final files: complete, named by their first offset; either
		// the same bytes as the server file of their name (uploaded, not yet
		// deleted) or no offset on the server and none in another spool
		// file: otherwise uploading them would duplicate records.
		spool := checkFinalFiles(sp.finals)
		violations = append(violations, spool.violations(fmt.Sprintf("spool: partition %d: ", id))...)
		for _, f := range sp.finals {
			if _, ok := serverFile[f.name]; ok {
				if !st.sameBytes(id, f.name) {
					bad("partition %d: spool file %s differs from the server's final file %s", id, f, serverFile[f.name])
				}
				continue
			}
			var onServer []int64
			for o := range rangeOffsets(f.ranges) {
				if server.held(o) {
					onServer = append(onServer, o)
				}
			}
			if len(onServer) > 0 {
				bad("partition %d: spool file %s, not on the server, holds %s that server final files hold: uploading it will DUPLICATE them", id, f, crashOffsets(onServer))
			}
		}
		// Nothing acknowledged is missing.
		held := func(o int64) bool { return server.held(o) || spool.held(o) }
		for _, f := range sp.inprog {
			if n, total := countHeld(f, held); n > 0 && n < total {
				notes = append(notes, fmt.Sprintf("spool: partition %d: %s: %d of its %d offsets are in final files", id, f.name, n, total))
			}
		}
		inProg := offsetSet(sp.inprog)
		lost := lostOffsets(committed[id], func(o int64) bool { return held(o) || inProg[o] })
		if len(lost) > 0 {
			bad("partition %d: LOST %s: committed (acknowledged) up to %d but in no final file on the server, no spool file and no valid batch of a spool in-progress file", id, crashOffsets(lost), committed[id])
		}
	}
	return violations, notes
}

// uploadStates returns the states of unfinished uploads the spool and the
// server show, keyed by partition, file and kind, valued by kind:
// "upload-temp" (killed between STOR and RNTO), "renamed" (between RNTO
// and the marker update), "marked" (between the marker update and the
// journal), "journaled" (between the journal and deleting the spool copy),
// "marker-temp" (between the marker's STOR and its rename).
func (st *ftpCrashState) uploadStates() map[string]string {
	out := map[string]string{}
	for _, tmp := range st.temps {
		kind := "upload-temp"
		if tmp.kind == "marker" {
			kind = "marker-temp"
		}
		out[fmt.Sprintf("%s p%d/%s", kind, tmp.part, tmp.name)] = kind
	}
	for _, id := range st.ids() {
		sp, sv := st.part(id)
		onServer := map[string]bool{}
		for _, f := range sv.finals {
			onServer[f.name] = true
		}
		for _, f := range sp.finals {
			if !onServer[f.name] {
				continue
			}
			kind := "renamed"
			if _, ok := st.marker[id][f.name]; ok {
				kind = "marked"
				if _, ok := st.journal[id][f.name]; ok {
					kind = "journaled"
				}
			}
			out[fmt.Sprintf("%s p%d/%s", kind, id, f.name)] = kind
		}
	}
	return out
}

// String describes the spool and the server for the kill log.
func (st *ftpCrashState) String() string {
	var b strings.Builder
	b.WriteString("spool:")
	b.WriteString(strings.ReplaceAll(st.spool.String(), "\n", "\n  "))
	for _, id := range st.ids() {
		sp, _ := st.part(id)
		var names []string
		for _, f := range sp.finals {
			names = append(names, f.name)
		}
		if len(names) > 0 {
			fmt.Fprintf(&b, "\n      p%d spool files waiting: %v", id, names)
		}
	}
	b.WriteString("\n    server:")
	b.WriteString(strings.ReplaceAll(st.server.String(), "\n", "\n  "))
	for _, tmp := range st.temps {
		fmt.Fprintf(&b, "\n      p%d temporary %s %dB", tmp.part, tmp.name, tmp.size)
	}
	return b.String()
}

// injectState makes, while no process runs, the state a kill at a luckier
// moment would have left (see TestE2ECrashFTP). It returns what it did, or
// "" when nothing qualifies.
func (k *ftpCrashKiller) injectState(st *ftpCrashState, kind, dead string, committed map[int32]int64) (string, error) {
	if kind == "torn" {
		return st.spool.inject(k.rng, "torn", k.spool, k.topic, committed)
	}
	type cand struct {
		part int32
		name string
	}
	var cands []cand
	for _, id := range st.ids() {
		sp, sv := st.part(id)
		onServer := map[string]bool{}
		for _, f := range sv.finals {
			onServer[f.name] = true
		}
		inSpool := map[string]bool{}
		for _, f := range sp.finals {
			inSpool[f.name] = true
		}
		switch kind {
		case "upload-temp", "renamed", "marked":
			// A spool file waiting for its upload.
			for _, f := range sp.finals {
				if !onServer[f.name] {
					cands = append(cands, cand{id, f.name})
				}
			}
		case "unmarked":
			// The last marker line, of a file whose upload finished.
			last, lastFirst := "", int64(-1)
			for name := range st.marker[id] {
				if first, _ := strconv.ParseInt(name, 10, 64); first > lastFirst {
					last, lastFirst = name, first
				}
			}
			if last != "" && onServer[last] && !inSpool[last] {
				cands = append(cands, cand{id, last})
			}
		case "marker-temp":
			if len(st.marker[id]) > 0 {
				cands = append(cands, cand{id, ""})
			}
		}
	}
	if len(cands) == 0 {
		return "", nil
	}
	c := cands[k.rng.Intn(len(cands))]
	spoolPath := filepath.Join(st.spoolPart(c.part), c.name)
	serverPath := filepath.Join(st.serverPart(c.part), c.name)
	switch kind {
	case "upload-temp":
		data, err := os.ReadFile(spoolPath)
		if err != nil {
			return "", err
		}
		what := "complete"
		if k.rng.Intn(2) == 0 {
			data = data[:k.rng.Intn(len(data))]
			what = fmt.Sprintf("cut short at %dB", len(data))
		}
		tmp := "." + c.name + "." + dead + ".upload"
		if err := k.writeServer(filepath.Join(st.serverPart(c.part), tmp), data); err != nil {
			return "", err
		}
		return fmt.Sprintf("upload-temp: partition %d: %s on the server, %s, for spool file %s", c.part, tmp, what, c.name), nil
	case "renamed", "marked":
		data, err := os.ReadFile(spoolPath)
		if err != nil {
			return "", err
		}
		if err := k.writeServer(serverPath, data); err != nil {
			return "", err
		}
		if kind == "renamed" {
			return fmt.Sprintf("renamed: partition %d: spool file %s final on the server, not in the marker", c.part, c.name), nil
		}
		span := decodeValidPrefix(data)
		line := markerRanges(span.ranges)
		m := map[string]string{c.name: line}
		for n, rs := range st.marker[c.part] {
			m[n] = rs
		}
		if err := k.writeMarker(st, c.part, m); err != nil {
			return "", err
		}
		journal := ""
		if k.rng.Intn(2) == 0 {
			f, err := os.OpenFile(filepath.Join(st.spoolPart(c.part), ftpJournal), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return "", err
			}
			_, err = f.WriteString(c.name + " " + line + "\n")
			if err := errors.Join(err, f.Close()); err != nil {
				return "", err
			}
			journal = " and the journal"
		}
		return fmt.Sprintf("marked: partition %d: spool file %s final on the server, in the marker%s", c.part, c.name, journal), nil
	case "unmarked":
		m := map[string]string{}
		for n, rs := range st.marker[c.part] {
			if n != c.name {
				m[n] = rs
			}
		}
		if err := k.writeMarker(st, c.part, m); err != nil {
			return "", err
		}
		jpath := filepath.Join(st.spoolPart(c.part), ftpJournal)
		if data, err := os.ReadFile(jpath); err == nil {
			var keep []string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if l != "" && !strings.HasPrefix(l, c.name+" ") {
					keep = append(keep, l)
				}
			}
			if err := os.WriteFile(jpath, []byte(strings.Join(keep, "")), 0o644); err != nil {
				return "", err
			}
		}
		data, err := os.ReadFile(serverPath)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(spoolPath, data, 0o644); err != nil {
			return "", err
		}
		return fmt.Sprintf("unmarked: partition %d: %s, uploaded, taken out of the marker and the journal, its spool copy put back", c.part, c.name), nil
	default: // marker-temp
		var buf strings.Builder
		writeMarkerLines(&buf, st.marker[c.part])
		data := []byte(buf.String())
		what := "complete"
		if k.rng.Intn(2) == 0 {
			data = data[:k.rng.Intn(len(data))]
			what = fmt.Sprintf("cut short at %dB", len(data))
		}
		tmp := ftpMarker + "." + dead + ".tmp"
		if err := k.writeServer(filepath.Join(st.serverPart(c.part), tmp), data); err != nil {
			return "", err
		}
		return fmt.Sprintf("marker-temp: partition %d: %s, %s", c.part, tmp, what), nil
	}
}

// writeMarkerLines writes marker lines in the destination's order: by first
// offset.
func writeMarkerLines(b *strings.Builder, m map[string]string) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	first := func(n string) int64 { v, _ := strconv.ParseInt(n, 10, 64); return v }
	sort.Slice(names, func(i, j int) bool { return first(names[i]) < first(names[j]) })
	for _, n := range names {
		b.WriteString(n + " " + m[n] + "\n")
	}
}

// writeMarker replaces a partition's marker on the server, or removes it
// when m is empty (the state before the first upload's marker update).
func (k *ftpCrashKiller) writeMarker(st *ftpCrashState, part int32, m map[string]string) error {
	path := filepath.Join(st.serverPart(part), ftpMarker)
	if len(m) == 0 {
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return err
	}
	var b strings.Builder
	writeMarkerLines(&b, m)
	return k.writeServer(path, []byte(b.String()))
}

// writeServer writes a file on the server as the server would: its folders
// created as needed, owned by the FTP user; through a temporary name, so a
// reader never sees it half written.
func (k *ftpCrashKiller) writeServer(path string, data []byte) error {
	dir := filepath.Dir(path)
	rel, err := filepath.Rel(k.srv.root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not below the server's root %s", path, k.srv.root)
	}
	cur := k.srv.root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return err
		}
		if err := os.Chown(cur, k.srv.uid, k.srv.gid); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, ".crash-test-inject")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Chown(tmp, k.srv.uid, k.srv.gid); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// keepCrashFTPEvidence copies the spool, the server's tree, every process's
// log and the server's log to a folder that outlives the test, when it
// failed or KAFKA_BACKUP_CRASH_KEEP is set.
func keepCrashFTPEvidence(t testing.TB, spool, serverDir string, srv *crashFTPServer, logs func() map[string]string) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("KAFKA_BACKUP_CRASH_KEEP") == "" {
			return
		}
		keep, err := os.MkdirTemp("", "kafka-backup-crash-ftp-")
		if err != nil {
			t.Logf("keeping the evidence: %v", err)
			return
		}
		for name, dir := range map[string]string{"spool": spool, "server": serverDir} {
			if _, err := os.Stat(dir); err != nil {
				continue
			}
			if err := os.CopyFS(filepath.Join(keep, name), os.DirFS(dir)); err != nil {
				t.Logf("copying %s: %v", dir, err)
			}
		}
		for n, l := range logs() {
			_ = os.WriteFile(filepath.Join(keep, n+".log"), []byte(l), 0o644)
		}
		_ = os.WriteFile(filepath.Join(keep, "ftp-server.log"), []byte(srv.log()), 0o644)
		t.Logf("the spool, the server's tree and every process's log are kept in %s", keep)
	})
}
