package rolling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// ErrRecreated is wrapped by the error of a Write refused because the
// partition's topic was deleted and recreated (see layout.RecreatedNote).
var ErrRecreated = errors.New("the topic was deleted and recreated")

// RecordSource is a Destination that can read back one record it holds. The
// Writer uses it to compare a record delivered again with the stored one
// when the record is not in a file on local disk (an FTP destination whose
// files were uploaded and removed from the spool).
type RecordSource interface {
	// StoredRecord returns the record at offset off of a partition as a
	// final file holds it, and false when it cannot find it.
	StoredRecord(ctx context.Context, topic string, partition int32, off int64) (segment.Record, bool, error)
}

// NoteKeeper is a Destination whose final files are not in the Writer's
// folder (FTP): it keeps the layout.RecreatedNote beside them too, where verify
// looks.
type NoteKeeper interface {
	// Folder names the partition's folder at the destination, for messages.
	Folder(topic string, partition int32) string
	// KeepNote stores note as layout.RecreatedNote in the partition's folder.
	KeepNote(ctx context.Context, topic string, partition int32, note []byte) error
	// Note returns the layout.RecreatedNote of the partition's folder, and false
	// when it has none.
	Note(ctx context.Context, topic string, partition int32) ([]byte, bool, error)
}

// sourceError is an error of a RecordSource (a server that cannot be
// reached), as opposed to one reading a local file.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// checkRedelivered compares rec, delivered again at an offset p's files hold
// already, with the stored record. A different record means the offsets
// started again: the topic was deleted and recreated. p is then refused: the
// note is left in its folder and the error returned, now and for every later
// Write. The Writer calls it only for the first record of a run of such
// records, so it costs one batch read per restart or rebalance, not one per
// record. compared is false when no stored record was found to compare
// with.
func (w *Writer) checkRedelivered(ctx context.Context, p *partition, rec *segment.Record) (compared bool, err error) {
	stored, where, err := w.storedRecord(ctx, p, rec.Offset)
	if err != nil {
		if errors.Is(err, segment.ErrCorrupt) || errors.Is(err, segment.ErrTorn) {
			// verify reports the damage; the offsets the file holds are
			// counted as held as before.
			return false, nil
		}
		err = fmt.Errorf("%s/%d: reading the stored record at offset %d to compare it with the one delivered again: %w", p.topic, p.id, rec.Offset, err)
		var se *sourceError
		if errors.As(err, &se) {
			// The destination cannot be reached: backing up goes on into
			// the spool, as Persisted does; the run is not compared.
			w.obs.Error(fmt.Errorf("%w; the records delivered again from it are skipped as persisted without the check that the topic was not recreated", err))
			return true, nil
		}
		return false, err
	}
	if where == "" {
		return false, nil
	}
	if sameContents(&stored, rec) {
		return true, nil
	}
	folders := "the folder " + p.dir
	nk, keeps := w.cfg.Destination.(NoteKeeper)
	if keeps {
		folders = "the folder " + nk.Folder(p.topic, p.id) + " on the server, and the spool folder " + p.dir + ","
	}
	refusal := fmt.Errorf("%s/%d: %w: offset %d was delivered again with other contents (timestamp %s, %d value bytes) than the record backed up at that offset in %s (timestamp %s, %d value bytes), "+
		"so the partition's offsets started again. None of its records is acknowledged until the old backup is moved away: "+
		"stop kafka-backup, move %s out of the backup location (it is the old topic's backup; delete %s from the moved copy), "+
		"check that the consumer group has no committed offset for the topic beyond its new end offset (reset it to the earliest offset if so), and start again: "+
		"the new topic is then backed up from its first offset",
		p.topic, p.id, ErrRecreated, rec.Offset, formatMillis(rec.Timestamp), len(rec.Value), where, formatMillis(stored.Timestamp), len(stored.Value),
		folders, layout.RecreatedNote)
	p.refused = refusal
	note := []byte(fmt.Sprintf("%s\n%s\n", time.Now().UTC().Format(time.RFC3339), refusal))
	if err := os.WriteFile(filepath.Join(p.dir, layout.RecreatedNote), note, 0o644); err != nil {
		w.obs.Error(fmt.Errorf("%s/%d: writing %s: %w", p.topic, p.id, layout.RecreatedNote, err))
	}
	if keeps {
		if err := nk.KeepNote(ctx, p.topic, p.id, note); err != nil {
			w.obs.Error(fmt.Errorf("%s/%d: storing %s in %s (verify of the server will not see the refusal): %w", p.topic, p.id, layout.RecreatedNote, nk.Folder(p.topic, p.id), err))
		}
	}
	w.obs.Refused(p.topic, p.id, refusal)
	return true, refusal
}

// loadNote refuses p when its folder, or its folder at the destination (a
// NoteKeeper), holds a layout.RecreatedNote from an earlier run.
func (w *Writer) loadNote(ctx context.Context, p *partition) error {
	where := filepath.Join(p.dir, layout.RecreatedNote)
	data, err := os.ReadFile(where)
	if errors.Is(err, fs.ErrNotExist) {
		nk, ok := w.cfg.Destination.(NoteKeeper)
		if !ok {
			return nil
		}
		var found bool
		data, found, err = nk.Note(ctx, p.topic, p.id)
		if err != nil {
			// The destination cannot be reached: go on with what the
			// spool knows, as Persisted does.
			w.obs.Error(fmt.Errorf("%s/%d: reading %s in %s: %w; going on without it", p.topic, p.id, layout.RecreatedNote, nk.Folder(p.topic, p.id), err))
			return nil
		}
		if !found {
			return nil
		}
		where = nk.Folder(p.topic, p.id) + "/" + layout.RecreatedNote
	} else if err != nil {
		return fmt.Errorf("%s/%d: reading %s: %w", p.topic, p.id, layout.RecreatedNote, err)
	}
	p.refused = fmt.Errorf("%s/%d: %w: %s says so (%s). Once the old backup is moved out of the backup location, delete %s and start again",
		p.topic, p.id, ErrRecreated, where, bytes.TrimSpace(data), layout.RecreatedNote)
	w.obs.Refused(p.topic, p.id, p.refused)
	return nil
}

// sameContents reports whether two records at the same offset are the same
// record: the same timestamp, key and value. Headers are left out: the
// kafka_franz input makes them from metadata, so a change of input changes
// them, not the record. A null and an empty key or value compare equal for
// the same reason.
func sameContents(a, b *segment.Record) bool {
	return a.Timestamp == b.Timestamp && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value)
}

func formatMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// storedRecord returns the record at off as p's files hold it, and where it
// was found ("" when it was not): the open file, a rolled file waiting for
// the destination, a final file in p's folder (those named at or below off,
// nearest first), or, through a RecordSource, the destination.
func (w *Writer) storedRecord(ctx context.Context, p *partition, off int64) (segment.Record, string, error) {
	var paths []string
	if p.f != nil && covers(p.cur.Ranges, off) {
		paths = append(paths, p.cur.Path)
	}
	for _, f := range p.unpubl {
		if covers(f.Ranges, off) {
			paths = append(paths, f.Path)
		}
	}
	entries, err := os.ReadDir(p.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return segment.Record{}, "", err
	}
	type named struct {
		name  string
		first int64
	}
	var below []named
	for _, e := range entries {
		if first, ok := layout.ParseFileName(e.Name()); ok && first <= off && e.Type().IsRegular() {
			below = append(below, named{e.Name(), first})
		}
	}
	// Nearest first: the record is almost always in the file named just
	// below it; when files interleave (a writer fed out of order), in one
	// named further below.
	sort.Slice(below, func(i, j int) bool { return below[i].first > below[j].first })
	for _, n := range below {
		paths = append(paths, filepath.Join(p.dir, n.name))
	}
	for _, path := range paths {
		rec, ok, err := recordIn(path, off)
		if err != nil {
			return segment.Record{}, "", fmt.Errorf("%s: %w", path, err)
		}
		if ok {
			return rec, path, nil
		}
	}
	if src, ok := w.cfg.Destination.(RecordSource); ok {
		rec, ok, err := src.StoredRecord(ctx, p.topic, p.id, off)
		if err != nil {
			return segment.Record{}, "", &sourceError{err}
		}
		if !ok {
			return segment.Record{}, "", nil
		}
		where := "the destination's files"
		if nk, ok := w.cfg.Destination.(NoteKeeper); ok {
			where = nk.Folder(p.topic, p.id)
		}
		return rec, where, nil
	}
	return segment.Record{}, "", nil
}

func covers(rs []offsets.Range, off int64) bool {
	for _, r := range rs {
		if r.First <= off && off <= r.Last {
			return true
		}
	}
	return false
}

// recordIn returns the record at off in the file at path.
func recordIn(path string, off int64) (segment.Record, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return segment.Record{}, false, nil
	}
	if err != nil {
		return segment.Record{}, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segment.Record{}, false, err
	}
	return segment.RecordAt(f, st.Size(), off)
}
