package rolling

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// ReasonRecovered is the reason of a file finalized at start from an
// in-progress file a writer left behind when it crashed.
const ReasonRecovered Reason = "recovered"

// lockFile takes the advisory lock that marks an in-progress file as being
// written by a live process. The operating system drops it when the process
// dies, however it dies.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// fileID is what tells files apart on one machine: device and inode, as
// os.SameFile compares them, without a FileInfo to allocate.
type fileID struct{ dev, ino uint64 }

// idOf returns the identity of an open file.
func idOf(f *os.File) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, nil
}

// pathID returns the identity of the file path names, following symbolic
// links as os.Stat does: one stat system call.
func pathID(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, nil
}

// recoverAll finalizes the in-progress files below Dir that no live writer
// holds: what a crashed writer left. Each is cut back to its last complete
// batch (a torn tail was never acknowledged) and handed to the destination
// under the name of its first offset, unless the destination already holds
// all its offsets, in which case it is deleted. Files a live writer holds
// (another instance sharing Dir) are left alone.
func (w *Writer) recoverAll(ctx context.Context) error {
	topics, err := os.ReadDir(w.cfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s to recover in-progress files: %w", w.cfg.Dir, err)
	}
	var errs []error
	for _, t := range topics {
		if !t.IsDir() || layout.ValidTopic(t.Name()) != nil {
			continue
		}
		parts, err := os.ReadDir(filepath.Join(w.cfg.Dir, t.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range parts {
			id, err := strconv.ParseInt(p.Name(), 10, 32)
			if !p.IsDir() || err != nil || id < 0 {
				continue
			}
			if err := w.recoverPartition(ctx, t.Name(), int32(id)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (w *Writer) recoverPartition(ctx context.Context, topic string, id int32) error {
	dir := layout.PartitionDir(w.cfg.Dir, topic, id)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var persisted *offsets.Set
	var errs []error
	for _, e := range entries {
		if _, inst, ok := layout.ParseInProgressName(e.Name()); !ok || inst == w.cfg.Instance || !e.Type().IsRegular() {
			continue
		}
		if persisted == nil {
			rs, err := w.cfg.Destination.Persisted(ctx, topic, id)
			if err != nil {
				return fmt.Errorf("recovering in-progress files of %s/%d: %w", topic, id, err)
			}
			persisted = offsets.SetOf(rs)
		}
		if err := w.recoverFile(ctx, topic, id, filepath.Join(dir, e.Name()), persisted); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *Writer) recoverFile(ctx context.Context, topic string, id int32, path string, persisted *offsets.Set) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // its live writer (another instance) finalized it since the listing
	}
	if err != nil {
		return fmt.Errorf("recovering %s: %w", path, err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return nil // a live writer holds it
	}
	// A live writer keeps its file locked until the destination has taken
	// it away from its in-progress name (Writer.finalize): if that happened
	// since the open, path names another file or none, and the file held
	// here is not to be touched.
	if held, err := idOf(f); err != nil {
		return fmt.Errorf("recovering %s: %w", path, err)
	} else if now, err := pathID(path); err != nil || now != held {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recovering %s: %w", path, err)
		}
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("recovering %s: %w", path, err)
	}
	span, spanErr := segment.ReadSpan(f, st.Size())
	if span.Batches == 0 {
		// Nothing complete in it, so nothing in it was acknowledged.
		f.Close()
		return os.Remove(path)
	}
	if spanErr != nil {
		if err := f.Truncate(span.Size); err != nil {
			return fmt.Errorf("cutting the torn tail of %s at byte %d: %w", path, span.Size, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("recovering %s: fsync: %w", path, err)
	}
	covered := true
	for _, r := range span.Ranges {
		for o := r.First; o <= r.Last && covered; o++ {
			covered = persisted.Contains(o)
		}
	}
	if covered {
		f.Close()
		return os.Remove(path)
	}
	file := File{
		Topic: topic, Partition: id, Path: path, Name: w.cfg.Naming.FileName(span.FirstOffset),
		FirstOffset: span.FirstOffset, LastOffset: span.LastOffset, Records: span.Records, Bytes: span.Size,
		Ranges: span.Ranges, Reason: ReasonRecovered, Fsync: true,
	}
	if err := w.cfg.Destination.Publish(ctx, file); err != nil {
		return fmt.Errorf("finalizing recovered %s as %s: %w", path, file.Name, err)
	}
	for _, r := range span.Ranges {
		persisted.AddRange(r)
	}
	w.obs.Finalized(file)
	return nil
}
