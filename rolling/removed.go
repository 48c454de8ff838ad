package rolling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kafka-backup/kafka-backup/offsets"
)

// checkOnDisk makes sure the path of the open file still names it, as it
// may not when a cleanup job or an operator removed the partition's folder
// or the file while it was written: what is written then goes into a file no
// one will ever see. If the path is gone, the file's complete batches, all
// of them acknowledged or about to be, are copied from the open file to a
// new file at the same path, the partition's folder made again if need be,
// and what the destination holds is read again. It returns an error naming
// the file and the cause whenever the path did not name the file, even when
// the records were saved, so the batch being written fails and is delivered
// again; it costs one stat.
func (w *Writer) checkOnDisk(ctx context.Context, p *partition) error {
	id, err := pathID(p.cur.Path)
	if err == nil && id == p.fID {
		return nil
	}
	cause := "the path names another file"
	if err != nil {
		cause = err.Error()
	}
	lost := fmt.Errorf("%s was removed while it was being written (%s): its partition folder or the file itself was deleted, by an operator or a cleanup job", p.cur.Path, cause)
	p.unsaved = true
	if serr := w.saveRemoved(p); serr != nil {
		// The open file, unlinked, is the last copy of its acknowledged
		// records: it stays open, and every write and roll fails and tries
		// again until they are saved (the cause may pass: a full disk, a
		// file where the folder was).
		return fmt.Errorf("%w; offsets %s of %s/%d, acknowledged, are only in the removed file kafka-backup holds open, and could not be written again (%w): "+
			"it is tried again at every write and roll, and they are LOST if kafka-backup stops before it succeeds", lost, offsets.Format(p.cur.Ranges, 0), p.topic, p.id, serr)
	}
	p.unsaved = false
	lost = fmt.Errorf("%w; its %d records were written again to a new file at the same path, and this batch is delivered again", lost, p.cur.Records)
	if rerr := w.reload(ctx, p); rerr != nil {
		lost = errors.Join(lost, rerr)
	}
	return lost
}

// onDisk reports whether the path of p's open file names it; only called
// after checkOnDisk failed.
func (w *Writer) onDisk(p *partition) bool {
	id, err := pathID(p.cur.Path)
	return err == nil && id == p.fID
}

// saveRemoved copies the complete batches of the open file, whose path was
// removed, into a new file at the same path, which becomes the open file.
func (w *Writer) saveRemoved(p *partition) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("making the folder again: %w", err)
	}
	f, id, err := createLocked(p.cur.Path)
	if err != nil {
		return fmt.Errorf("making the file again: %w", err)
	}
	_, err = io.Copy(f, io.NewSectionReader(p.f, 0, p.cur.Bytes))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = SyncDir(p.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(p.cur.Path)
		return fmt.Errorf("copying the removed file to a new one: %w", err)
	}
	p.f.Close()
	p.f, p.fID = f, id
	return nil
}

// reload forgets which offsets of p are in files and reads it again from
// what is on disk: the destination's final files, the open file and the
// rolled files waiting to be published that are still there. It makes the
// partition's folder again if it is gone. Offsets that counted as written and
// are no longer on disk were acknowledged: Kafka does not deliver them again,
// so the error names them as lost (those of rolled files removed once).
func (w *Writer) reload(ctx context.Context, p *partition) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("making the folder of %s/%d again: %w", p.topic, p.id, err)
	}
	ranges, err := w.cfg.Destination.Persisted(ctx, p.topic, p.id)
	if err != nil {
		return fmt.Errorf("reading again which offsets of %s/%d are backed up: %w", p.topic, p.id, err)
	}
	written := offsets.SetOf(ranges)
	if p.f != nil {
		for _, r := range p.cur.Ranges {
			written.AddRange(r)
		}
	}
	var errs []error
	var removed []File
	left := p.unpubl[:0]
	for _, f := range p.unpubl {
		if _, err := os.Stat(f.Path); err != nil {
			removed = append(removed, f)
			errs = append(errs, fmt.Errorf("%s, rolled and waiting to be finalized as %s, was removed: offsets %s of %s/%d are LOST from the backup: %w", f.Path, f.Name, offsets.Format(f.Ranges, 0), p.topic, p.id, err))
			continue
		}
		for _, r := range f.Ranges {
			written.AddRange(r)
		}
		left = append(left, f)
	}
	p.unpubl = left
	known := offsets.SetOf(written.Ranges()) // what is on disk, and the removed rolled files named above
	for _, f := range removed {
		for _, r := range f.Ranges {
			known.AddRange(r)
		}
	}
	if gone := p.written.Minus(known); len(gone) > 0 {
		errs = append(errs, fmt.Errorf("offsets %s of %s/%d, acknowledged, were in final files that are no longer at the destination (%s was removed): they are LOST from the backup, and Kafka will not deliver them again; restore them from another copy, or reset the consumer group to re-read them if the topic still holds them",
			offsets.Format(gone, 0), p.topic, p.id, p.dir))
	}
	p.written = *written
	return errors.Join(errs...)
}
