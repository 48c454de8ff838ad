// Package ftp is the FTP and FTPS destination. Files are built in a local
// spool folder by the same rolling.Writer as the local destination; when one
// rolls it is renamed to its final name inside the spool and uploaded in the
// background: stored under a hidden temporary name in
// <root>/<topic>/<partition>/, its size checked, renamed to its final name,
// recorded in the partition's range marker, and only then deleted from the
// spool. A failed upload is retried with backoff; the temporary file is
// replaced, never appended to, and a final file never is. The server
// decides what is backed up: its marker and listing, never the spool's
// journal. A server that refuses kafka-backup for good (a *Refusal: login,
// TLS, permission) makes the destination not ready instead of filling the
// spool.
package ftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// Config configures a Destination.
type Config struct {
	Addr     string      // host:port
	User     string      // login user
	Password string      // login password; never logged
	TLS      *tls.Config // explicit FTPS (AUTH TLS) when not nil; data connections too
	Root     string      // remote folder the tree is written below
	Spool    string      // local folder files are built in; the rolling.Writer's Dir
	Instance string      // part of temporary names, unique per running instance

	ConnectTimeout time.Duration // bound on dialing and logging in
	IOTimeout      time.Duration // bound on every read and write on a connection
	MaxConnections int           // uploads at once, one connection each
	SpoolLimit     int64         // bytes waiting in the spool above which Ready fails
	DisableEPSV    bool          // use PASV only, for servers that mishandle EPSV
	Observer       Observer      // nil observes nothing
}

// Observer is told about uploads, for logs and metrics.
type Observer interface {
	Uploaded(remotePath string, bytes int64, took time.Duration)
	UploadFailed(remotePath string, attempt int, err error)
	SpoolBytes(bytes int64)
	Error(err error)
	// Warn reports something the operator should know that loses nothing.
	Warn(err error)
}

// Destination uploads rolled files to an FTP server. It implements
// rolling.Destination.
type Destination struct {
	cfg Config
	obs Observer

	mu        sync.Mutex
	cond      *sync.Cond
	queue     []*job
	queued    map[string]bool // local paths queued or uploading
	spool     int64           // bytes in the spool waiting for upload
	lastErr   error           // the last upload error, while uploads fail
	lastErrAt time.Time
	closing   bool
	active    int
	markers   map[string]*sync.Mutex // per remote partition folder
	// recorded holds, by remote folder, the marker lines this instance
	// wrote: every update of the folder's marker writes them all again,
	// repairing those another instance's update replaced.
	recorded map[string]map[string][]offsets.Range
	refused  *Refusal      // the server's permanent refusal, while it holds
	side     chan struct{} // places of the connections besides the uploaders' (dialSide)

	workers sync.WaitGroup
	cancel  context.CancelFunc
}

type job struct {
	local     string // file in the spool, under its final name
	remote    string // remote partition folder
	name      string // final name
	size      int64
	ranges    []offsets.Range
	attempt   int
	notBefore time.Time
	meta      bool // a metadata snapshot (metadata.go), not a data file
}

// New returns a Destination and starts its uploaders. Finished files left in
// the spool by a previous run are queued for upload at once.
func New(cfg Config) (*Destination, error) {
	if cfg.MaxConnections < 1 {
		cfg.MaxConnections = 1
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 30 * time.Second
	}
	if cfg.Instance == "" || cfg.Spool == "" || cfg.Addr == "" {
		return nil, errors.New("ftp: Addr, Spool and Instance are required")
	}
	if err := os.MkdirAll(cfg.Spool, 0o755); err != nil {
		return nil, fmt.Errorf("creating spool folder %s: %w", cfg.Spool, err)
	}
	d := &Destination{cfg: cfg, obs: cfg.Observer, side: make(chan struct{}, sideConnections), queued: map[string]bool{}, markers: map[string]*sync.Mutex{},
		recorded: map[string]map[string][]offsets.Range{}}
	if d.obs == nil {
		d.obs = nopObserver{}
	}
	d.cond = sync.NewCond(&d.mu)
	if err := d.checkJournals(); err != nil {
		return nil, err
	}
	if err := d.queueSpool(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for range cfg.MaxConnections {
		d.workers.Add(1)
		go d.worker(ctx)
	}
	go d.prober(ctx)
	return d, nil
}

// Settings returns the destination's configuration (the password
// included: never log it).
func (d *Destination) Settings() Config { return d.cfg }

// queueSpool queues every finished file in the spool: those a previous run
// did not get to upload.
func (d *Destination) queueSpool() error {
	return filepath.WalkDir(d.cfg.Spool, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if _, ok := layout.ParseFileName(e.Name()); !ok {
			return nil
		}
		rel, err := filepath.Rel(d.cfg.Spool, filepath.Dir(p))
		if err != nil {
			return err
		}
		span, err := segment.ReadFileSpan(p)
		if span.Batches == 0 {
			return fmt.Errorf("spool file %s holds no complete batch (%v): move it away and restart", p, err)
		}
		d.enqueue(&job{local: p, remote: path.Join(d.cfg.Root, filepath.ToSlash(rel)), name: e.Name(), size: span.Size, ranges: span.Ranges})
		return nil
	})
}

// Publish renames a rolled file to its final name inside the spool and
// queues it for upload. It returns as soon as the file is queued.
func (d *Destination) Publish(_ context.Context, f rolling.File) error {
	final := filepath.Join(filepath.Dir(f.Path), f.Name)
	if err := os.Rename(f.Path, final); err != nil {
		return err
	}
	d.enqueue(&job{
		local:  final,
		remote: path.Join(d.cfg.Root, f.Topic, strconv.Itoa(int(f.Partition))),
		name:   f.Name, size: f.Bytes, ranges: f.Ranges,
	})
	return nil
}

func (d *Destination) enqueue(j *job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queued[j.local] {
		return
	}
	d.queued[j.local] = true
	d.queue = append(d.queue, j)
	d.count(j, j.size)
	d.cond.Signal()
}

// count adds n bytes of j to the spool's count of bytes waiting for upload,
// which Ready holds against the spool limit. Metadata snapshots hold no
// record: they are not counted, so that snapshots the server refuses never
// stop acknowledging records (d.mu held).
func (d *Destination) count(j *job, n int64) {
	if j.meta {
		return
	}
	d.spool += n
	d.obs.SpoolBytes(d.spool)
}

// Ready returns an error while the server refuses kafka-backup for good (a
// *Refusal: login, TLS, permission on the path) and while the spool holds
// more than its limit, saying why uploads are behind; the output then stops
// acknowledging, so Kafka consumption pauses instead of filling the disk or
// the spool holding records a server refuses.
func (d *Destination) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refused != nil {
		return d.refused
	}
	if d.cfg.SpoolLimit <= 0 || d.spool <= d.cfg.SpoolLimit {
		return nil
	}
	why := "uploads are slower than consumption"
	if d.lastErr != nil {
		why = fmt.Sprintf("uploads are failing since %s: %v", d.lastErrAt.Format(time.RFC3339), d.lastErr)
	}
	return fmt.Errorf("FTP spool %s holds %d bytes waiting for upload, over its limit of %d: %s; consumption resumes when uploads catch up", d.cfg.Spool, d.spool, d.cfg.SpoolLimit, why)
}

// Pending returns the number of files and bytes waiting for upload.
func (d *Destination) Pending() (files int, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queued), d.spool
}

// next waits for a job that is due, or returns nil when closing.
func (d *Destination) next(ctx context.Context) *job {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		wait := time.Duration(-1)
		for i, j := range d.queue {
			if !j.notBefore.After(now) {
				d.queue = append(d.queue[:i], d.queue[i+1:]...)
				d.active++
				return j
			}
			if w := j.notBefore.Sub(now); wait < 0 || w < wait {
				wait = w
			}
		}
		if d.closing && d.active == 0 && len(d.queue) == 0 {
			return nil
		}
		if wait >= 0 {
			t := time.AfterFunc(wait, d.cond.Broadcast)
			d.cond.Wait()
			t.Stop()
		} else {
			d.cond.Wait()
		}
	}
}

func (d *Destination) worker(ctx context.Context) {
	defer d.workers.Done()
	var conn *jftp.ServerConn
	defer func() {
		if conn != nil {
			_ = conn.Quit()
		}
	}()
	for {
		j := d.next(ctx)
		if j == nil {
			return
		}
		start := time.Now()
		var err error
		if conn == nil {
			conn, err = dial(ctx, &d.cfg)
			if err != nil {
				err = fmt.Errorf("connecting to %s: %w", d.cfg.Addr, d.dialRefusal(err))
			} else {
				d.accepted(true, "")
			}
		}
		if err == nil {
			err = d.upload(conn, j)
			if connBroken(err) {
				_ = conn.Quit()
				conn = nil
			}
		}
		d.done(j, err, time.Since(start))
	}
}

// errSpoolFileGone is wrapped by the error of an upload whose spool file
// was removed (a cleanup job deleted the spool folder) before it reached the
// server: it is not retried.
var errSpoolFileGone = errors.New("the spool file was removed before it was uploaded")

// done records the outcome of one upload attempt.
func (d *Destination) done(j *job, err error, took time.Duration) {
	remote := path.Join(j.remote, j.name)
	if errors.Is(err, errSpoolFileGone) {
		// Retrying cannot bring it back; the job would hold its bytes in
		// the spool's count, and readiness with them, forever.
		if j.meta {
			d.obs.Warn(fmt.Errorf("metadata snapshot %s was removed from the spool before it reached the server: it is not in the backup (no record is lost; the snapshots taken after it are): %w", j.local, err))
		} else {
			d.obs.Error(fmt.Errorf("%s, to be uploaded as %s, was removed from the spool before it reached the server: offsets %s, acknowledged, are LOST from the backup; "+
				"restore them from another copy, or reset the consumer group to re-read them if the topic still holds them: %w", j.local, remote, strings.TrimSpace(layout.FormatRangeLine("", j.ranges)), err))
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.active--
		delete(d.queued, j.local)
		d.count(j, -j.size)
		d.cond.Broadcast()
		return
	}
	var refusal *Refusal
	switch {
	case err == nil:
		d.obs.Uploaded(remote, j.size, took)
		d.accepted(false, j.remote)
	case errors.As(err, &refusal):
		// Reported once by refuse, not at every attempt.
		j.attempt++
		if !refusal.login {
			refusal.folder = j.remote
		}
		d.refuse(refusal)
	default:
		j.attempt++
		d.obs.UploadFailed(remote, j.attempt, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	if err == nil {
		delete(d.queued, j.local)
		d.count(j, -j.size)
		if !j.meta {
			d.lastErr = nil
		}
	} else {
		if !j.meta {
			d.lastErr, d.lastErrAt = err, time.Now()
		}
		backoff := min(time.Second<<min(j.attempt-1, 5), 30*time.Second)
		j.notBefore = time.Now().Add(backoff)
		d.queue = append(d.queue, j)
	}
	d.cond.Broadcast()
}

// upload stores one file under a temporary name, checks its size, renames it
// to its final name, records its range in the marker and deletes the spool
// copy. A final file is never replaced: when the name is taken, before the
// upload or after it (another instance renamed its file to that name while
// this one was stored), the spool copy is trimmed against what the server
// holds instead.
func (d *Destination) upload(c *jftp.ServerConn, j *job) error {
	if j.meta {
		return d.uploadMetadata(c, j)
	}
	if done, err := d.cutHeld(c, j); err != nil || done {
		return err
	}
	final := path.Join(j.remote, j.name)
	tmp := path.Join(j.remote, layout.UploadName(j.name, d.cfg.Instance))

	taken, err := nameTaken(c, final)
	if err != nil {
		return err
	}
	if taken {
		return d.trim(c, j, final)
	}
	if err := d.makeDirs(c, j.remote); err != nil {
		return err
	}
	if err := storeSpoolFile(c, j, tmp, d.storeRefusal); err != nil {
		return err
	}
	// A marker line for the name, while no file has it, describes a file
	// deleted on the server ("rm *" leaves the hidden marker): once this file
	// has the name, readers would take the line for its offsets.
	if err := d.forgetLine(c, j.remote, j.name); err != nil {
		return err
	}
	// Checked again right before the rename: RNTO replaces a file on most
	// servers, and another instance may have taken the name meanwhile.
	if taken, err = nameTaken(c, final); err != nil {
		return err
	}
	if taken {
		if derr := c.Delete(tmp); derr != nil && connBroken(derr) {
			return derr
		}
		return d.trim(c, j, final)
	}
	if err := c.Rename(tmp, final); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, j.name, d.storeRefusal(err))
	}
	if err := d.recordRanges(c, j.remote, map[string][]offsets.Range{j.name: j.ranges}); err != nil {
		return err
	}
	if err := d.appendJournal(filepath.Dir(j.local), j); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A spool folder removed since, its journal with it, does not fail
		// an upload the server holds: the journal is only a hint.
		return fmt.Errorf("recording the upload in the spool: %w", err)
	}
	if err := os.Remove(j.local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting uploaded spool file: %w", err)
	}
	return nil
}

// nameTaken reports whether a file named p exists on the server.
func nameTaken(c *jftp.ServerConn, p string) (bool, error) {
	_, err := c.FileSize(p)
	switch {
	case err == nil:
		return true, nil
	case connBroken(err):
		return false, fmt.Errorf("checking whether %s exists: %w", p, err)
	}
	return false, nil
}

// trim handles a final name taken by another file, another writer's or an
// earlier attempt's: the batches the server's final files hold (the taken
// one read from the marker, or downloaded when the marker does not list it)
// are cut from the spool copy, which is queued again under the name of its
// new first offset, or deleted when nothing is left. The taken file is never
// replaced; when the marker did not list it, it is added.
func (d *Destination) trim(c *jftp.ServerConn, j *job, final string) error {
	held, unlisted, err := d.remoteFiles(c, j.remote, "", true)
	if err != nil {
		return err
	}
	if len(unlisted) > 0 {
		if err := d.recordRanges(c, j.remote, unlisted); err != nil {
			return err
		}
	}
	name := j.name
	// By record: the taken file may end inside the first batch.
	done, err := d.cut(j, held, true)
	switch {
	case err != nil:
		return fmt.Errorf("%s already exists on the server, and cutting what the server holds from the spool copy %s failed: %w", final, j.local, err)
	case done:
		return nil // the server holds every record of it
	case j.name == name:
		return fmt.Errorf("%s already exists on the server and the first batch of the spool copy %s is only partly on the server: not replacing it; compare them and move one away", final, j.local)
	}
	return d.upload(c, j)
}

// cut cuts from j's spool copy the batches whose offsets held covers
// (rolling.TrimCovered) and makes j the upload of what is left, under the
// name of its first offset. done is true when nothing is left. With
// records, a batch only partly held loses its held records
// (rolling.TrimCoveredRecords).
func (d *Destination) cut(j *job, held []offsets.Range, records bool) (done bool, err error) {
	hs := offsets.SetOf(held)
	if _, err := os.Stat(j.local); errors.Is(err, fs.ErrNotExist) {
		// Removed from the spool (its folder deleted): done if the
		// server holds all of it, else lost.
		for _, r := range j.ranges {
			if !hs.Covers(r.First, r.Last) {
				return false, fmt.Errorf("%w: %w", errSpoolFileGone, err)
			}
		}
		return true, nil
	}
	spoolDir := filepath.Dir(j.local)
	f := rolling.File{Path: j.local, Name: j.name, Ranges: j.ranges, Bytes: j.size}
	trim := rolling.TrimCovered
	if records {
		trim = rolling.TrimCoveredRecords
	}
	t, ok, err := trim(f, func(r offsets.Range) bool { return hs.Covers(r.First, r.Last) },
		func(name string) string { return filepath.Join(spoolDir, name) })
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil // the spool copy is deleted
	}
	d.mu.Lock()
	delete(d.queued, j.local)
	d.queued[t.Path] = true
	d.spool += t.Bytes - j.size
	d.mu.Unlock()
	j.local, j.name, j.size, j.ranges = t.Path, t.Name, t.Bytes, t.Ranges
	return false, nil
}

// cutHeld cuts from j's spool copy the batches that other final files on the
// server already hold, by the folder's marker: another instance backed up
// the same records when a rebalance moved the partition while this one still
// had the file open. done is true when nothing of it is left to upload.
// Files the marker does not list are not read; a taken name is still caught
// by upload.
func (d *Destination) cutHeld(c *jftp.ServerConn, j *job) (done bool, err error) {
	held, _, err := d.remoteFiles(c, j.remote, j.name, false)
	if err != nil {
		return false, err
	}
	if !offsets.Overlap(held, j.ranges) {
		return false, nil
	}
	if done, err = d.cut(j, held, false); err != nil {
		return false, fmt.Errorf("cutting from %s the records the server holds already: %w", j.local, err)
	}
	return done, nil
}

// makeDirs creates dir and its parents, ignoring "exists" refusals: servers
// answer those with 550, 521 or 553 alike, so success is judged by the
// upload that follows.
func (d *Destination) makeDirs(c *jftp.ServerConn, dir string) error {
	var p string
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if strings.HasPrefix(dir, "/") || p != "" {
			p += "/"
		}
		p += part
		if err := c.MakeDir(p); err != nil && connBroken(err) {
			return fmt.Errorf("creating folder %s: %w", p, err)
		}
	}
	return nil
}

// LockMarker holds the marker updates of this destination in a partition's
// folder until the returned function is called: the output's retention
// takes it while it rewrites the marker and deletes files, so that no update
// of the same process crosses its own.
func (d *Destination) LockMarker(topic string, partition int32) (unlock func()) {
	m := d.markerLock(d.remoteDir(topic, partition))
	m.Lock()
	return m.Unlock
}

// markerLock serializes marker updates of one remote folder.
func (d *Destination) markerLock(dir string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.markers[dir]
	if m == nil {
		m = &sync.Mutex{}
		d.markers[dir] = m
	}
	return m
}

// markerTries bounds how often recordRanges writes the marker again when
// another instance's update replaced its own.
const markerTries = 5

// recordRanges adds files' ranges to their folder's marker, with every line
// this instance recorded there before: it reads the marker, adds the lines,
// stores it under a temporary name and renames it over the old one. Other
// instances update the same marker: after the rename it reads the marker
// back and, when another instance's update replaced its lines, does it
// again; and Close checks them once more. A line lost all the same (updates
// crossing at the same moment) loses no record: readers take the offsets of
// files the marker does not list from the files themselves.
func (d *Destination) recordRanges(c *jftp.ServerConn, remote string, files map[string][]offsets.Range) error {
	m := d.markerLock(remote)
	m.Lock()
	defer m.Unlock()
	d.mu.Lock()
	mine := d.recorded[remote]
	if mine == nil {
		mine = map[string][]offsets.Range{}
		d.recorded[remote] = mine
	}
	for n, rs := range files {
		mine[n] = rs
	}
	fresh := files
	files = maps.Clone(mine)
	d.mu.Unlock()
	checkedPruned := false
	for range markerTries {
		ranges, err := readMarker(c, remote)
		if err != nil {
			return err
		}
		if listsAll(ranges, files) {
			return nil
		}
		if !checkedPruned && lacksOld(ranges, files, fresh) {
			// Lines of this instance the marker no longer has: another
			// instance's update replaced them, or a prune removed them
			// before deleting their files.
			checkedPruned = true
			if err := d.forgetPruned(c, remote, files); err != nil {
				return err
			}
			continue
		}
		for n, rs := range files {
			ranges[n] = rs
		}
		if err := d.writeMarker(c, remote, ranges); err != nil {
			return err
		}
	}
	ranges, err := readMarker(c, remote)
	if err != nil {
		return err
	}
	if !listsAll(ranges, files) {
		d.obs.Warn(fmt.Errorf("%s/%s: other instances' updates kept replacing this one's %d times: some files are not listed; nothing is lost, their offsets are read from the files themselves", remote, layout.MarkerName, markerTries))
	}
	return nil
}

// lacksOld reports whether the marker lacks a line of files other than
// those of fresh.
func lacksOld(marker, files, fresh map[string][]offsets.Range) bool {
	for n := range files {
		if _, ok := marker[n]; !ok && fresh[n] == nil {
			return true
		}
	}
	return false
}

// forgetPruned removes from files, and from the lines this instance writes
// again, the files wholly below the folder's prune point
// (layout.PrunedNote): a prune deleted them, or is about to, and the
// marker must not claim them again.
func (d *Destination) forgetPruned(c *jftp.ServerConn, remote string, files map[string][]offsets.Range) error {
	below, err := readPrunedBelow(c, remote)
	if err != nil || below <= 0 {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, rs := range files {
		if rs[len(rs)-1].Last < below {
			delete(files, n)
			delete(d.recorded[remote], n)
		}
	}
	return nil
}

// readPrunedBelow returns the offset of a folder's layout.PrunedNote, 0
// when it has none.
func readPrunedBelow(c *jftp.ServerConn, dir string) (int64, error) {
	p := path.Join(dir, layout.PrunedNote)
	r, err := c.Retr(p)
	if err != nil {
		if code := ftpconn.ReplyCode(err); code == 550 || code == 450 {
			return 0, nil
		}
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	note, err := layout.ParsePruned(data)
	if err != nil {
		return 0, nil // verify reports it; the lines are kept
	}
	return note.Below, nil
}

// forgetLine removes the line of name, a final file about to be renamed into
// remote, from remote's marker, and from the lines this instance writes
// again: a line written before the file had the name is not about it.
func (d *Destination) forgetLine(c *jftp.ServerConn, remote, name string) error {
	m := d.markerLock(remote)
	m.Lock()
	defer m.Unlock()
	d.mu.Lock()
	delete(d.recorded[remote], name)
	d.mu.Unlock()
	ranges, err := readMarker(c, remote)
	if err != nil {
		return err
	}
	if _, ok := ranges[name]; !ok {
		return nil
	}
	delete(ranges, name)
	return d.writeMarker(c, remote, ranges)
}

// listsAll reports whether marker lists every file of files with its ranges.
func listsAll(marker, files map[string][]offsets.Range) bool {
	for n, rs := range files {
		if old, ok := marker[n]; !ok || layout.FormatRangeLine(n, old) != layout.FormatRangeLine(n, rs) {
			return false
		}
	}
	return true
}

// writeMarker stores a folder's marker: under a temporary name, renamed
// over the old one.
func (d *Destination) writeMarker(c *jftp.ServerConn, remote string, ranges map[string][]offsets.Range) error {
	return storeMarker(c, remote, d.cfg.Instance, ranges, d.storeRefusal)
}

// storeMarker stores a folder's marker under a temporary name of instance,
// renamed over the old one; refusal wraps the error of the upload.
func storeMarker(c *jftp.ServerConn, remote, instance string, ranges map[string][]offsets.Range, refusal func(error) error) error {
	names := make([]string, 0, len(ranges))
	for n := range ranges {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { return ranges[names[a]][0].First < ranges[names[b]][0].First })
	var buf bytes.Buffer
	for _, n := range names {
		buf.WriteString(layout.FormatRangeLine(n, ranges[n]))
	}
	marker := path.Join(remote, layout.MarkerName)
	tmp := path.Join(remote, layout.MarkerTempName(instance))
	if err := c.Stor(tmp, &buf); err != nil {
		return fmt.Errorf("storing %s: %w", tmp, refusal(err))
	}
	return renameOver(c, tmp, marker)
}

// renameOver renames tmp to final, replacing final: deleted first when the
// server refuses to rename over an existing file.
func renameOver(c *jftp.ServerConn, tmp, final string) error {
	if err := c.Rename(tmp, final); err != nil {
		if connBroken(err) {
			return fmt.Errorf("renaming %s: %w", tmp, err)
		}
		if derr := c.Delete(final); derr != nil && connBroken(derr) {
			return derr
		}
		if err := c.Rename(tmp, final); err != nil {
			return fmt.Errorf("renaming %s to %s: %w", tmp, path.Base(final), err)
		}
	}
	return nil
}

// DropFromMarker removes the lines of names from the marker of the remote
// partition folder remote, for kafka-backup prune, before it deletes those
// files: the marker is written under a temporary name of instance and
// renamed over the old one, then read back, and written again when a
// writer's update crossing this one brought a line back. A folder without a
// marker, or whose marker lists none of the names, is left as it is.
func DropFromMarker(c *jftp.ServerConn, remote, instance string, names []string) error {
	for range markerTries {
		ranges, err := readMarker(c, remote)
		if err != nil {
			return err
		}
		n := len(ranges)
		for _, name := range names {
			delete(ranges, name)
		}
		if len(ranges) == n {
			return nil
		}
		if err := storeMarker(c, remote, instance, ranges, func(err error) error { return err }); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s/%s: writers' updates kept bringing back the lines of the files to delete %d times", remote, layout.MarkerName, markerTries)
}

// StoreNote stores data as the file name of the remote folder remote,
// replacing it: under a temporary name of instance, its size checked, then
// renamed over the old one, so a reader sees the old note or the new one,
// never a part. kafka-backup prune stores layout.PrunedNote with it.
func StoreNote(c *jftp.ServerConn, remote, name, instance string, data []byte) error {
	tmp := path.Join(remote, layout.TempName(name, instance))
	if err := c.Stor(tmp, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("storing %s: %w", tmp, err)
	}
	size, err := c.FileSize(tmp)
	if err != nil {
		return fmt.Errorf("checking the size of %s: %w", tmp, err)
	}
	if size != int64(len(data)) {
		return fmt.Errorf("%s has %d bytes on the server, %d were sent", tmp, size, len(data))
	}
	return renameOver(c, tmp, path.Join(remote, name))
}

// readMarker reads a folder's marker; a missing marker is empty.
func readMarker(c *jftp.ServerConn, dir string) (map[string][]offsets.Range, error) {
	r, err := c.Retr(path.Join(dir, layout.MarkerName))
	if err != nil {
		if code := ftpconn.ReplyCode(err); code != 550 && code != 450 {
			// Not "no such file" (a broken connection, 425, 451…): taken
			// as empty, the marker would be rewritten without the lines of
			// every file uploaded before.
			return nil, fmt.Errorf("reading %s: %w", path.Join(dir, layout.MarkerName), err)
		}
		return map[string][]offsets.Range{}, nil // no marker yet
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path.Join(dir, layout.MarkerName), err)
	}
	return layout.ParseRanges(data), nil
}

// journalScope is the first line of every journal of this destination:
// server, user and remote folder (never the password).
func (d *Destination) journalScope() string {
	return layout.JournalHeader(fmt.Sprintf("ftp://%s@%s%s", d.cfg.User, d.cfg.Addr, path.Join("/", d.cfg.Root)))
}

func (d *Destination) appendJournal(dir string, j *job) error {
	f, err := os.OpenFile(filepath.Join(dir, layout.JournalName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line := layout.FormatRangeLine(j.name, j.ranges)
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		line = d.journalScope() + line
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

// checkJournals removes, with a warning, the journals in the spool that
// belong to another destination (another server, user or path) or name none
// (written by an older version): the spool was used for another backup, and
// what its journals list says nothing about this one.
func (d *Destination) checkJournals() error {
	scope := d.journalScope()
	others := map[string][]string{} // scope line → journals
	err := filepath.WalkDir(d.cfg.Spool, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != layout.JournalName {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if first+"\n" == scope || len(data) == 0 {
			return nil
		}
		others[first] = append(others[first], p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the upload journals in the spool %s: %w", d.cfg.Spool, err)
	}
	for first, paths := range others {
		of := "a destination it does not name (an older kafka-backup)"
		if s, ok := strings.CutPrefix(first, layout.JournalHeaderPrefix); ok {
			of = "another destination, " + s
		}
		d.obs.Warn(fmt.Errorf("the spool %s holds %d upload journals (%s) of %s, not of this one, %s: not trusted, removed; the server decides what is backed up",
			d.cfg.Spool, len(paths), layout.JournalName, of, strings.TrimSpace(strings.TrimPrefix(scope, layout.JournalHeaderPrefix))))
		for _, p := range paths {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing the journal of another destination: %w", err)
			}
		}
	}
	return nil
}

// checkJournal compares a partition's journal with what the server holds:
// files the journal says this spool uploaded whose offsets the server does
// not hold are reported, and the journal is rewritten with the files the
// server confirms.
func (d *Destination) checkJournal(spoolDir, topic string, partition int32, held []offsets.Range) {
	p := filepath.Join(spoolDir, layout.JournalName)
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	var gone []string
	var kept strings.Builder
	kept.WriteString(d.journalScope())
	journal := layout.ParseRanges(data)
	names := make([]string, 0, len(journal))
	for n := range journal {
		names = append(names, n)
	}
	sort.Strings(names)
	hs := offsets.SetOf(held)
	for _, n := range names {
		rs := journal[n]
		ok := true
		for _, r := range rs {
			ok = ok && hs.Covers(r.First, r.Last)
		}
		if !ok {
			gone = append(gone, strings.TrimSpace(layout.FormatRangeLine(n, rs)))
			continue
		}
		kept.WriteString(layout.FormatRangeLine(n, rs))
	}
	if len(gone) == 0 {
		return
	}
	d.obs.Warn(fmt.Errorf("%s/%d: %d files this spool uploaded to %s are not on the server any more (name and offsets: %s): deleted or moved there? Records delivered again are backed up again; offsets not delivered again are missing from the backup unless restored to the server",
		topic, partition, len(gone), d.cfg.Addr, strings.Join(gone, "; ")))
	tmp := filepath.Join(spoolDir, layout.JournalTempName)
	if err := os.WriteFile(tmp, []byte(kept.String()), 0o644); err == nil {
		_ = os.Rename(tmp, p)
	}
}

// Persisted returns the ranges of a partition's files waiting in the spool
// and of the final files on the server (from its marker; a final file the
// marker does not list, left by a crash between rename and marker update, is
// downloaded and read). The spool's journal is no part of it: the server
// decides.
//
// When the server refuses kafka-backup (*Refusal) it fails and the
// destination is not ready. When the server cannot be reached it says so
// through the Observer and returns the spool's files only, so backups go on
// into the spool while the server is down; records the server holds already
// and that are delivered again are cut from their files before upload.
func (d *Destination) Persisted(ctx context.Context, topic string, partition int32) ([]offsets.Range, error) {
	var out []offsets.Range
	spoolDir := layout.PartitionDir(d.cfg.Spool, topic, partition)
	entries, err := os.ReadDir(spoolDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if _, ok := layout.ParseFileName(e.Name()); ok {
			span, _ := segment.ReadFileSpan(filepath.Join(spoolDir, e.Name()))
			out = append(out, span.Ranges...)
		}
	}
	remote, err := d.remoteRanges(ctx, topic, partition)
	var refusal *Refusal
	switch {
	case errors.As(err, &refusal):
		d.refuse(refusal)
		return nil, fmt.Errorf("reading which offsets of %s/%d the FTP server holds: %w", topic, partition, err)
	case err != nil:
		d.obs.Error(fmt.Errorf("reading which offsets of %s/%d the FTP server already has: %w; going on with the files in the spool only: records delivered again that the server holds are cut from their files before upload", topic, partition, err))
		return out, nil
	}
	d.checkJournal(spoolDir, topic, partition, remote)
	return append(out, remote...), nil
}

func (d *Destination) remoteRanges(ctx context.Context, topic string, partition int32) ([]offsets.Range, error) {
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", d.cfg.Addr, d.dialRefusal(err))
	}
	defer release()
	d.accepted(true, "")
	held, _, err := d.remoteFiles(c, path.Join(d.cfg.Root, topic, strconv.Itoa(int(partition))), "", true)
	return held, err
}

// remoteFiles returns the offsets the final files in a remote folder hold,
// from its marker, except the file named except. The files the marker does
// not list are downloaded when download is set, and returned in unlisted
// too; else left out.
func (d *Destination) remoteFiles(c *jftp.ServerConn, remote, except string, download bool) (held []offsets.Range, unlisted map[string][]offsets.Range, err error) {
	names, err := c.NameList(remote)
	if err != nil {
		if connBroken(err) {
			return nil, nil, err
		}
		return nil, nil, nil // no folder yet
	}
	ranges, err := readMarker(c, remote)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range names {
		n = path.Base(n)
		if _, ok := layout.ParseFileName(n); !ok || n == except {
			continue
		}
		if rs, ok := ranges[n]; ok {
			held = append(held, rs...)
			continue
		}
		if !download {
			continue
		}
		rs, err := remoteSpan(c, path.Join(remote, n))
		if err != nil {
			return nil, nil, err
		}
		if len(rs) == 0 {
			continue
		}
		held = append(held, rs...)
		if unlisted == nil {
			unlisted = map[string][]offsets.Range{}
		}
		unlisted[n] = rs
	}
	return held, unlisted, nil
}

// remoteSpan downloads one remote file and returns the offsets its complete
// batches cover.
func remoteSpan(c *jftp.ServerConn, p string) ([]offsets.Range, error) {
	resp, err := c.Retr(p)
	if err != nil {
		return nil, fmt.Errorf("downloading %s to read its offsets: %w", p, err)
	}
	defer resp.Close()
	rd := segment.NewReader(resp)
	var rs []offsets.Range
	for {
		b, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, segment.ErrTorn) || errors.Is(err, segment.ErrCorrupt) {
				return rs, nil
			}
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		rs = offsets.Append(rs, offsets.Range{First: b.BaseOffset, Last: b.LastOffset})
	}
}

// closeWait bounds how long Close waits for uploads when its context has no
// deadline.
const closeWait = 5 * time.Second

// Close waits, until ctx ends (at most closeWait without a deadline), for queued uploads to finish, then stops the
// uploaders. Files not uploaded stay in the spool for the next run.
func (d *Destination) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		// Benthos closes outputs without a deadline; waiting longer than
		// this only delays shutdown, as the spool keeps what is not sent.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, closeWait)
		defer cancel()
	}
	d.mu.Lock()
	d.closing = true
	d.cond.Broadcast()
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Stop: uploads under way end with their connection's I/O
		// timeout, and what they were sending stays in the spool.
		d.cancel()
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	}
	d.settleMarkers(ctx)
	d.cancel()
	files, bytes := d.Pending()
	if files > 0 {
		return fmt.Errorf("%d files (%d bytes) are still in the spool %s: they are uploaded when kafka-backup starts again with the same spool", files, bytes, d.cfg.Spool)
	}
	return nil
}

// settleMarkers checks, once the uploads are over, that the markers this
// instance updated still list its files (another instance's update may have
// replaced them after the check that followed its own), and adds them again
// where not. It stops when ctx ends.
func (d *Destination) settleMarkers(ctx context.Context) {
	d.mu.Lock()
	remotes := make([]string, 0, len(d.recorded))
	for r := range d.recorded {
		remotes = append(remotes, r)
	}
	d.mu.Unlock()
	if len(remotes) == 0 || ctx.Err() != nil {
		return
	}
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return
	}
	defer release()
	for _, r := range remotes {
		if ctx.Err() != nil {
			return
		}
		if err := d.recordRanges(c, r, nil); err != nil {
			d.obs.Warn(fmt.Errorf("checking the marker of %s at shutdown: %w; nothing is lost, files a marker does not list are read for their offsets", r, err))
			return
		}
	}
}

type nopObserver struct{}

func (nopObserver) Uploaded(string, int64, time.Duration) {}
func (nopObserver) UploadFailed(string, int, error)       {}
func (nopObserver) SpoolBytes(int64)                      {}
func (nopObserver) Error(error)                           {}
func (nopObserver) Warn(error)                            {}

// storeSpoolFile uploads the spool file of j as tmp and checks the server
// holds all its bytes; refusal wraps the error of the upload.
func storeSpoolFile(c *jftp.ServerConn, j *job, tmp string, refusal func(error) error) error {
	f, err := os.Open(j.local)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", errSpoolFileGone, err)
	}
	if err != nil {
		return fmt.Errorf("opening spool file: %w", err)
	}
	err = c.Stor(tmp, bufio.NewReaderSize(f, 256<<10))
	f.Close()
	if err != nil {
		return fmt.Errorf("storing %s: %w", tmp, refusal(err))
	}
	size, err := c.FileSize(tmp)
	if err != nil {
		return fmt.Errorf("checking the size of %s: %w", tmp, err)
	}
	if size != j.size {
		return fmt.Errorf("%s has %d bytes on the server, %d were sent: retrying", tmp, size, j.size)
	}
	return nil
}
