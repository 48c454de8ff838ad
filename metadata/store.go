package metadata

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/kafka-backup/kafka-backup/layout"
)

// Store keeps snapshot files in a backup tree.
type Store interface {
	// Put stores a snapshot file named name (Name) in the tree's layout.MetadataDir
	// folder: written under a hidden in-progress name, then renamed, so a
	// file with a snapshot's name is always whole.
	Put(ctx context.Context, name string, data []byte) error
}

// InProgressName is the hidden name a snapshot file has while it is
// written (layout.SnapshotInProgressName).
func InProgressName(name string) string { return layout.SnapshotInProgressName(name) }

// LocalStore stores snapshots in <Root>/@metadata on local disk.
type LocalStore struct {
	Root string // the backup tree's root, the output's path
}

// Put writes the file under its in-progress name, fsyncs it, renames it to
// name and fsyncs the folder. It never replaces a file named name.
func (s LocalStore) Put(_ context.Context, name string, data []byte) error {
	return writeFile(filepath.Join(s.Root, layout.MetadataDir), name, data)
}

// writeFile writes data to dir/name through a hidden in-progress file.
func writeFile(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the snapshot folder: %w", err)
	}
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("snapshot %s exists already: not replaced", final)
	}
	tmp := filepath.Join(dir, InProgressName(name))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing snapshot %s: %w", final, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("fsync folder %s after writing %s: %w", dir, name, err)
		}
	}
	return nil
}

// Uploader uploads a file of the local spool to the backup tree on a
// server. destination/ftp.Destination is one.
type Uploader interface {
	// PublishMetadata queues the spool file local for upload as
	// <root>/<layout.MetadataDir>/<name>, as data files are uploaded (a hidden
	// temporary name, the size checked, then renamed), and deletes it from
	// the spool once uploaded. It returns once the file is queued.
	PublishMetadata(local, name string) error
}

// SpoolStore stores snapshots for an FTP destination: the file is written
// into <Spool>/@metadata (hidden, then renamed) and handed to the
// destination's upload queue.
type SpoolStore struct {
	Spool string
	Dest  Uploader
}

// MaxSpooled is how many snapshots may wait in the spool for upload: while
// as many wait (the server refuses them, or is down), Put takes no more, so
// that their retries never crowd out the uploads of records.
const MaxSpooled = 10

// Put writes the snapshot into the spool and queues its upload, unless
// MaxSpooled snapshots wait there already.
func (s SpoolStore) Put(_ context.Context, name string, data []byte) error {
	dir := filepath.Join(s.Spool, layout.MetadataDir)
	waiting, err := s.waiting()
	if err != nil {
		return err
	}
	if len(waiting) >= MaxSpooled {
		return fmt.Errorf("%d snapshots wait in the spool %s for upload (%s the oldest): not taking more until the server takes them; see the FTP upload failures of %s",
			len(waiting), dir, waiting[0], layout.MetadataDir)
	}
	if err := writeFile(dir, name, data); err != nil {
		return err
	}
	return s.Dest.PublishMetadata(filepath.Join(dir, name), name)
}

// waiting lists the snapshots in the spool, not uploaded yet, sorted.
func (s SpoolStore) waiting() ([]string, error) {
	es, err := os.ReadDir(filepath.Join(s.Spool, layout.MetadataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the spool's snapshots: %w", err)
	}
	var names []string
	for _, e := range es {
		if _, ok := ParseName(e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Requeue queues the snapshots a previous run left in the spool, not
// uploaded, and removes the in-progress files it left (never whole).
func (s SpoolStore) Requeue() error {
	dir := filepath.Join(s.Spool, layout.MetadataDir)
	names, err := s.waiting()
	if err != nil {
		return err
	}
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if n := e.Name(); e.Type().IsRegular() && len(n) > 0 && n[0] == '.' {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, s.Dest.PublishMetadata(filepath.Join(dir, n), n))
	}
	return errors.Join(errs...)
}
