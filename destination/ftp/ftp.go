// Package ftp is the FTP and FTPS destination. Files are built in a local
// spool folder by the same rolling.Writer as the local destination; when one
// rolls it is renamed to its final name inside the spool and uploaded in the
// background: stored under a hidden temporary name in
// <root>/<topic>/<partition>/, its size checked, renamed to its final name,
// recorded in the partition's range marker, and only then deleted from the
// spool. A failed upload is retried with backoff; the temporary file is
// replaced, never appended to.
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
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// MarkerName is the name of the file, in each remote partition folder, that
// lists the offsets every final file in it covers, one line each:
// "<name> <first>-<last>[,<first>-<last>…]" (a file's batches, contiguous
// ones merged). It lets a restarted writer skip records already uploaded
// without downloading the files.
const MarkerName = ".kafka-backup.ranges"

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

	workers sync.WaitGroup
	cancel  context.CancelFunc
}

type job struct {
	local     string // file in the spool, under its final name
	remote    string // remote partition folder
	name      string // final name
	size      int64
	ranges    []rolling.Range
	attempt   int
	notBefore time.Time
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
	d := &Destination{cfg: cfg, obs: cfg.Observer, queued: map[string]bool{}, markers: map[string]*sync.Mutex{}}
	if d.obs == nil {
		d.obs = nopObserver{}
	}
	d.cond = sync.NewCond(&d.mu)
	if err := d.queueSpool(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for range cfg.MaxConnections {
		d.workers.Add(1)
		go d.worker(ctx)
	}
	return d, nil
}

// queueSpool queues every finished file in the spool: those a previous run
// did not get to upload.
func (d *Destination) queueSpool() error {
	return filepath.WalkDir(d.cfg.Spool, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if _, ok := rolling.ParseFileName(e.Name()); !ok {
			return nil
		}
		rel, err := filepath.Rel(d.cfg.Spool, filepath.Dir(p))
		if err != nil {
			return err
		}
		span, err := localSpan(p)
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
	d.spool += j.size
	d.obs.SpoolBytes(d.spool)
	d.cond.Signal()
}

// Ready returns an error while the spool holds more than its limit, saying
// why uploads are behind; the output then stops acknowledging, so Kafka
// consumption pauses instead of filling the disk.
func (d *Destination) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
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
				err = fmt.Errorf("connecting to %s: %w", d.cfg.Addr, err)
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
		d.obs.Error(fmt.Errorf("%s, to be uploaded as %s, was removed from the spool before it reached the server: offsets %s, acknowledged, are LOST from the backup; "+
			"restore them from another copy, or reset the consumer group to re-read them if the topic still holds them: %w", j.local, remote, strings.TrimSpace(rangeLine("", j.ranges)), err))
		d.mu.Lock()
		defer d.mu.Unlock()
		d.active--
		delete(d.queued, j.local)
		d.spool -= j.size
		d.obs.SpoolBytes(d.spool)
		d.cond.Broadcast()
		return
	}
	if err == nil {
		d.obs.Uploaded(remote, j.size, took)
	} else {
		j.attempt++
		d.obs.UploadFailed(remote, j.attempt, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	if err == nil {
		delete(d.queued, j.local)
		d.spool -= j.size
		d.lastErr = nil
		d.obs.SpoolBytes(d.spool)
	} else {
		d.lastErr, d.lastErrAt = err, time.Now()
		backoff := min(time.Second<<min(j.attempt-1, 5), 30*time.Second)
		j.notBefore = time.Now().Add(backoff)
		d.queue = append(d.queue, j)
	}
	d.cond.Broadcast()
}

// upload stores one file under a temporary name, checks its size, renames it
// to its final name, records its range in the marker and deletes the spool
// copy.
func (d *Destination) upload(c *jftp.ServerConn, j *job) error {
	if done, err := d.cutHeld(c, j); err != nil || done {
		return err
	}
	final := path.Join(j.remote, j.name)
	tmp := path.Join(j.remote, "."+j.name+"."+d.cfg.Instance+".upload")

	if size, err := c.FileSize(final); err == nil {
		// A final file already has this name: an earlier attempt renamed
		// but did not get to delete the spool copy (same size), or another
		// writer backed up the same records (a rebalance).
		if size != j.size {
			return d.trim(c, j, final, size)
		}
	} else if connBroken(err) {
		return err
	} else {
		if err := d.makeDirs(c, j.remote); err != nil {
			return err
		}
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
			return fmt.Errorf("storing %s: %w", tmp, err)
		}
		size, err := c.FileSize(tmp)
		if err != nil {
			return fmt.Errorf("checking the size of %s: %w", tmp, err)
		}
		if size != j.size {
			return fmt.Errorf("%s has %d bytes on the server, %d were sent: retrying", tmp, size, j.size)
		}
		if err := c.Rename(tmp, final); err != nil {
			return fmt.Errorf("renaming %s to %s: %w", tmp, j.name, err)
		}
	}
	if err := d.recordRange(c, j); err != nil {
		return err
	}
	if err := appendJournal(filepath.Dir(j.local), j); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A spool folder removed since, its journal with it, does not fail
		// an upload the server holds: the journal is only a hint.
		return fmt.Errorf("recording the upload in the spool: %w", err)
	}
	if err := os.Remove(j.local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting uploaded spool file: %w", err)
	}
	return nil
}

// trim handles a final name taken by another writer's file: the batches the
// server's final files already hold are cut from the spool copy, which is
// queued again under the name of its new first offset, or deleted when
// nothing is left.
func (d *Destination) trim(c *jftp.ServerConn, j *job, final string, size int64) error {
	held, err := d.remoteRangesOn(c, j.remote, "", true)
	if err != nil {
		return err
	}
	name := j.name
	done, err := d.cut(j, held)
	switch {
	case err != nil:
		return fmt.Errorf("%s already exists on the server with %d bytes, the spool copy %s has %d, and cutting what the server holds failed: %w", final, size, j.local, j.size, err)
	case done:
		return nil // the server holds every record of it
	case j.name == name:
		return fmt.Errorf("%s already exists on the server with %d bytes, the spool copy %s has %d and its first batch is only partly on the server: not replacing it; compare them and move one away", final, size, j.local, j.size)
	}
	return d.upload(c, j)
}

// cut cuts from j's spool copy the batches whose offsets held covers
// (rolling.TrimCovered) and makes j the upload of what is left, under the
// name of its first offset. done is true when nothing is left.
func (d *Destination) cut(j *job, held []rolling.Range) (done bool, err error) {
	spoolDir := filepath.Dir(j.local)
	f := rolling.File{Path: j.local, Name: j.name, Ranges: j.ranges}
	t, ok, err := rolling.TrimCovered(f, func(r rolling.Range) bool { return rolling.Covers(held, r) },
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
	held, err := d.remoteRangesOn(c, j.remote, j.name, false)
	if err != nil {
		return false, err
	}
	if !rolling.Overlap(held, j.ranges) {
		return false, nil
	}
	if done, err = d.cut(j, held); err != nil {
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

// recordRange adds a file's range to its folder's marker: it reads the
// marker, adds the line, stores it under a temporary name and renames it
// over the old one.
func (d *Destination) recordRange(c *jftp.ServerConn, j *job) error {
	m := d.markerLock(j.remote)
	m.Lock()
	defer m.Unlock()
	ranges, err := readMarker(c, j.remote)
	if err != nil {
		return err
	}
	line := rangeLine(j.name, j.ranges)
	if old, ok := ranges[j.name]; ok && rangeLine(j.name, old) == line {
		return nil
	}
	ranges[j.name] = j.ranges
	names := make([]string, 0, len(ranges))
	for n := range ranges {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { return ranges[names[a]][0].First < ranges[names[b]][0].First })
	var buf bytes.Buffer
	for _, n := range names {
		buf.WriteString(rangeLine(n, ranges[n]))
	}
	marker := path.Join(j.remote, MarkerName)
	tmp := path.Join(j.remote, MarkerName+"."+d.cfg.Instance+".tmp")
	if err := c.Stor(tmp, &buf); err != nil {
		return fmt.Errorf("storing %s: %w", tmp, err)
	}
	if err := c.Rename(tmp, marker); err != nil {
		if connBroken(err) {
			return fmt.Errorf("renaming %s: %w", tmp, err)
		}
		// Some servers refuse to rename over an existing file.
		if derr := c.Delete(marker); derr != nil && connBroken(derr) {
			return derr
		}
		if err := c.Rename(tmp, marker); err != nil {
			return fmt.Errorf("renaming %s to %s: %w", tmp, MarkerName, err)
		}
	}
	return nil
}

// rangeLine formats one marker or journal line.
func rangeLine(name string, ranges []rolling.Range) string {
	var b strings.Builder
	b.WriteString(name)
	for i, r := range ranges {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", r.First, r.Last)
	}
	b.WriteByte('\n')
	return b.String()
}

// readMarker reads a folder's marker; a missing marker is empty.
func readMarker(c *jftp.ServerConn, dir string) (map[string][]rolling.Range, error) {
	r, err := c.Retr(path.Join(dir, MarkerName))
	if err != nil {
		if code := ftpconn.ReplyCode(err); code != 550 && code != 450 {
			// Not "no such file" (a broken connection, 425, 451…): taken
			// as empty, the marker would be rewritten without the lines of
			// every file uploaded before.
			return nil, fmt.Errorf("reading %s: %w", path.Join(dir, MarkerName), err)
		}
		return map[string][]rolling.Range{}, nil // no marker yet
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path.Join(dir, MarkerName), err)
	}
	return ParseRanges(data), nil
}

// ParseRanges parses a marker (MarkerName) or journal (JournalName): the
// offset ranges each file holds, by file name. Lines it cannot read are
// skipped; a later line for a name wins.
func ParseRanges(data []byte) map[string][]rolling.Range {
	out := map[string][]rolling.Range{}
	for _, line := range strings.Split(string(data), "\n") {
		name, list, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		var rs []rolling.Range
		for _, part := range strings.Split(list, ",") {
			var r rolling.Range
			if n, _ := fmt.Sscanf(part, "%d-%d", &r.First, &r.Last); n != 2 || r.Last < r.First {
				rs = nil
				break
			}
			rs = append(rs, r)
		}
		if len(rs) > 0 {
			out[name] = rs
		}
	}
	return out
}

// JournalName is the name of the file, in each spool partition folder, that
// lists the files this spool uploaded, in the marker's format. Persisted falls
// back on it when the server cannot be reached.
const JournalName = ".uploaded.ranges"

func appendJournal(dir string, j *job) error {
	f, err := os.OpenFile(filepath.Join(dir, JournalName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(rangeLine(j.name, j.ranges))
	return errors.Join(err, f.Close())
}

// Persisted returns the ranges of a partition's files waiting in the spool,
// of those this spool uploaded, and of the final files on the server (from
// its marker; a final file the marker does not list, left by a crash between
// rename and marker update, is downloaded and read). When the server cannot
// be reached it says so through the Observer and returns what the spool
// knows, so backups go on into the spool while the server is down.
func (d *Destination) Persisted(ctx context.Context, topic string, partition int32) ([]rolling.Range, error) {
	var out []rolling.Range
	spoolDir := rolling.PartitionDir(d.cfg.Spool, topic, partition)
	entries, err := os.ReadDir(spoolDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if _, ok := rolling.ParseFileName(e.Name()); ok {
			span, _ := localSpan(filepath.Join(spoolDir, e.Name()))
			out = append(out, span.Ranges...)
		}
	}
	if data, err := os.ReadFile(filepath.Join(spoolDir, JournalName)); err == nil {
		for _, rs := range ParseRanges(data) {
			out = append(out, rs...)
		}
	}
	remote, err := d.remoteRanges(ctx, topic, partition)
	if err != nil {
		d.obs.Error(fmt.Errorf("reading which offsets of %s/%d the FTP server already has: %w; going on with what the spool recorded, so records another instance uploaded meanwhile may be uploaded again", topic, partition, err))
		return out, nil
	}
	return append(out, remote...), nil
}

func (d *Destination) remoteRanges(ctx context.Context, topic string, partition int32) ([]rolling.Range, error) {
	c, err := dial(ctx, &d.cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", d.cfg.Addr, err)
	}
	defer c.Quit()
	return d.remoteRangesOn(c, path.Join(d.cfg.Root, topic, strconv.Itoa(int(partition))), "", true)
}

// remoteRangesOn returns the offsets the final files in a remote folder
// hold, from its marker, except the file named except. The files the marker
// does not list are downloaded when download is set, else left out.
func (d *Destination) remoteRangesOn(c *jftp.ServerConn, remote, except string, download bool) ([]rolling.Range, error) {
	names, err := c.NameList(remote)
	if err != nil {
		if connBroken(err) {
			return nil, err
		}
		return nil, nil // no folder yet
	}
	ranges, err := readMarker(c, remote)
	if err != nil {
		return nil, err
	}
	var out []rolling.Range
	for _, n := range names {
		n = path.Base(n)
		if _, ok := rolling.ParseFileName(n); !ok || n == except {
			continue
		}
		if rs, ok := ranges[n]; ok {
			out = append(out, rs...)
			continue
		}
		if !download {
			continue
		}
		rs, err := remoteSpan(c, path.Join(remote, n))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// remoteSpan downloads one remote file and returns the offsets its complete
// batches cover.
func remoteSpan(c *jftp.ServerConn, p string) ([]rolling.Range, error) {
	resp, err := c.Retr(p)
	if err != nil {
		return nil, fmt.Errorf("downloading %s to read its offsets: %w", p, err)
	}
	defer resp.Close()
	rd := segment.NewReader(resp)
	var rs []rolling.Range
	for {
		b, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, segment.ErrTorn) || errors.Is(err, segment.ErrCorrupt) {
				return rs, nil
			}
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		rs = segment.AppendRange(rs, rolling.Range{First: b.BaseOffset, Last: b.LastOffset})
	}
}

func localSpan(p string) (segment.Span, error) {
	f, err := os.Open(p)
	if err != nil {
		return segment.Span{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segment.Span{}, err
	}
	return segment.ReadSpan(f, st.Size())
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
	d.cancel()
	files, bytes := d.Pending()
	if files > 0 {
		return fmt.Errorf("%d files (%d bytes) are still in the spool %s: they are uploaded when kafka-backup starts again with the same spool", files, bytes, d.cfg.Spool)
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) Uploaded(string, int64, time.Duration) {}
func (nopObserver) UploadFailed(string, int, error)       {}
func (nopObserver) SpoolBytes(int64)                      {}
func (nopObserver) Error(error)                           {}
