package rolling

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
)

func (w *Writer) open(ctx context.Context, p *partition, first int64, now time.Time) error {
	name := w.cfg.Naming.FileName(first)
	path := filepath.Join(p.dir, layout.InProgressName(name, w.cfg.Instance))
	f, id, err := createLocked(path)
	if errors.Is(err, os.ErrNotExist) {
		// The partition's folder was removed since it was made: what the
		// destination holds is not what was read when it was first seen.
		if rerr := w.reload(ctx, p); rerr != nil {
			return rerr
		}
		f, id, err = createLocked(path)
	}
	if err != nil {
		return fmt.Errorf("opening in-progress file for %s/%d: %w", p.topic, p.id, err)
	}
	p.f, p.fID = f, id
	w.obs.OpenFiles(int(w.openFiles.Add(1)))
	p.cur = File{Topic: p.topic, Partition: p.id, Path: path, Name: name, FirstOffset: first, LastOffset: first - 1, Opened: now}
	return nil
}

// createLocked creates the in-progress file path, which must not exist, and
// locks it. It returns the file's identity for checkOnDisk. The file is opened
// read-write: after a failed write it is read back (fail), and when its path
// is removed it is copied to a new file (saveRemoved).
func createLocked(path string) (*os.File, fileID, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fileID{}, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fileID{}, fmt.Errorf("locking in-progress file %s: %w", path, err)
	}
	id, err := idOf(f)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fileID{}, fmt.Errorf("stat of in-progress file %s: %w", path, err)
	}
	return f, id, nil
}

// SyncDir fsyncs a folder, so a file made, renamed or removed in it
// survives a power loss.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// finalize closes the open file and hands it to the destination. A file the
// destination refuses stays on disk and is offered again by the roller. It
// first makes sure the file is still on disk (checkOnDisk) and returns that
// error, if any; other errors are only observed.
func (w *Writer) finalize(ctx context.Context, p *partition, why Reason) error {
	if p.f == nil {
		return nil
	}
	removed := w.checkOnDisk(ctx, p)
	if removed != nil && !w.onDisk(p) {
		return removed // kept open, not saved yet: said so
	}
	f := p.f
	p.f = nil
	w.obs.OpenFiles(int(w.openFiles.Add(-1)))
	file := p.cur
	file.Reason = why
	file.Closed = time.Now()
	file.Fsync = w.cfg.Fsync != FsyncNever
	var err error
	if file.Fsync {
		err = f.Sync()
	}
	if file.Records == 0 {
		f.Close()
		os.Remove(file.Path)
		return removed
	}
	if err != nil {
		// The data was written but the fsync failed: keep the file; it is
		// offered to the destination again later.
		f.Close()
		w.obs.Error(fmt.Errorf("closing %s: %w", file.Path, err))
		p.unpubl = append(p.unpubl, file)
		return removed
	}
	// The file stays open, and so locked, until the destination has taken
	// it (renamed it away from its in-progress name): closed first, it
	// would be free for another instance's recovery to take while its path
	// still names it, and both would publish it.
	err = w.cfg.Destination.Publish(ctx, file)
	if cerr := f.Close(); err == nil && cerr != nil {
		w.obs.Error(fmt.Errorf("closing %s: %w", file.Path, cerr))
	}
	if err != nil {
		w.obs.Error(fmt.Errorf("finalizing %s as %s: %w", file.Path, file.Name, err))
		p.unpubl = append(p.unpubl, file)
		return removed
	}
	w.obs.Finalized(file)
	return removed
}

// retry offers rolled files the destination refused before to it again,
// backing off between attempts.
func (w *Writer) retry(ctx context.Context, p *partition, now time.Time) error {
	if len(p.unpubl) == 0 || now.Before(p.retryAt) {
		return nil
	}
	var errs []error
	left := p.unpubl[:0]
	for _, f := range p.unpubl {
		if _, err := os.Stat(f.Path); errors.Is(err, os.ErrNotExist) {
			// Removed (with its folder) since it rolled: no retry brings
			// it back.
			errs = append(errs, fmt.Errorf("%s, rolled and waiting to be finalized as %s, was removed: offsets %s of %s/%d, acknowledged, are LOST from the backup: %w", f.Path, f.Name, offsets.Format(f.Ranges, 0), p.topic, p.id, err))
			continue
		}
		if err := w.cfg.Destination.Publish(ctx, f); err != nil {
			errs = append(errs, fmt.Errorf("finalizing %s as %s: %w", f.Path, f.Name, err))
			left = append(left, f)
			continue
		}
		w.obs.Finalized(f)
	}
	p.unpubl = left
	if len(left) == 0 {
		p.retryWait = 0
		return errors.Join(errs...)
	}
	p.retryWait = min(max(2*p.retryWait, time.Second), time.Minute)
	p.retryAt = now.Add(p.retryWait)
	return errors.Join(errs...)
}

// roller finalizes idle and old files until Close.
func (w *Writer) roller() {
	defer close(w.done)
	tick := w.cfg.IdleTimeout / 4
	if w.cfg.MaxAge > 0 {
		tick = min(tick, w.cfg.MaxAge/4)
	}
	tick = min(max(tick, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.rollDue(now)
		}
	}
}

func (w *Writer) rollDue(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range w.partitions() {
		p.mu.Lock()
		var err error
		if p.f != nil && now.Sub(p.lastWrite) >= w.cfg.IdleTimeout {
			err = w.finalize(ctx, p, ReasonIdle)
		} else if p.f != nil && w.cfg.MaxAge > 0 && now.Sub(p.cur.Opened) >= w.cfg.MaxAge {
			err = w.finalize(ctx, p, ReasonAge)
		}
		if err != nil {
			w.obs.Error(err)
		}
		if err := w.retry(ctx, p, now); err != nil {
			w.obs.Error(err)
		}
		p.mu.Unlock()
	}
}
