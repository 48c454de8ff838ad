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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	jftp "github.com/jlaffaye/ftp"

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

// Destination is a rolling.Destination that holds files back while they
// upload (output.Destination's Ready and Pending).
var (
	_ rolling.Destination  = (*Destination)(nil)
	_ rolling.RecordSource = (*Destination)(nil)
)

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

type nopObserver struct{}

func (nopObserver) Uploaded(string, int64, time.Duration) {}
func (nopObserver) UploadFailed(string, int, error)       {}
func (nopObserver) SpoolBytes(int64)                      {}
func (nopObserver) Error(error)                           {}
func (nopObserver) Warn(error)                            {}
