// Package prune deletes the old files of a kafka-backup tree (docs/FORMAT.md,
// "Pruning"), for `kafka-backup prune` and the kafka_backup output's
// retention. Per partition only the oldest contiguous run of final files
// whose newest record is older than a cutoff goes, never a file between two
// kept ones, and the newest KeepFiles files always stay. Before any file is
// deleted the partition's layout.PrunedNote is raised to the partition's
// new first offset and, on an FTP server, the deleted files' lines are
// removed from the range marker: a crash in between leaves files the marker
// no longer claims (read for their offsets, harmless) and files below the
// note (deleted by the next prune), never a marker claiming deleted files.
// Hidden names (in-progress files, FTP uploads) are never touched.
package prune

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/tree"
)

// Options configures a prune.
type Options struct {
	tree.Filter
	// Cutoff: a final file whose newest record's timestamp is before it is
	// prunable.
	Cutoff time.Time
	// KeepFiles is how many of each partition's newest final files always
	// stay, prunable or not.
	KeepFiles int
	// Apply deletes; otherwise the prune is a dry run that only reports.
	Apply bool
	// Snapshots prunes the metadata snapshots too.
	Snapshots bool
	// Instance names the temporary files a prune writes (notes, markers).
	Instance string
	// Now is the time written in the notes; time.Now when nil.
	Now func() time.Time
	// LockMarker, when set, is held while a partition's marker is
	// rewritten and its files deleted (the output's retention passes its
	// FTP destination's, so that its uploads do not rewrite the marker
	// meanwhile).
	LockMarker func(topic string, partition int32) (unlock func())
}

// File is a final file a prune deletes (or would).
type File struct {
	Name        string `json:"name"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
	Size        int64  `json:"size"`
	// MaxTimestamp is its newest record's timestamp, ms since the epoch.
	MaxTimestamp int64 `json:"max_timestamp"`
}

// Partition is what a prune did (or would do) to one partition.
type Partition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Files     []File `json:"files"` // deleted, or to delete in a dry run
	Bytes     int64  `json:"bytes"` // their size
	Kept      int    `json:"kept_files"`
	// NewFirstOffset is where the partition starts after the prune (its
	// PrunedNote); absent when nothing is pruned.
	NewFirstOffset *int64 `json:"new_first_offset,omitempty"`
	// PrunedBefore is the PrunedNote's offset before this prune, if any.
	PrunedBefore *int64 `json:"pruned_before,omitempty"`
	// Stop says why the run of prunable files ends where it does.
	Stop  string `json:"stop,omitempty"`
	Error string `json:"error,omitempty"`
}

// Snapshot is a metadata snapshot a prune deletes (or would).
type Snapshot struct {
	Name string    `json:"name"`
	Time time.Time `json:"time"`
}

// Report is the result of Run.
type Report struct {
	Location   string       `json:"location"`
	Cutoff     time.Time    `json:"cutoff"`
	KeepFiles  int          `json:"keep_files"`
	DryRun     bool         `json:"dry_run"`
	Partitions []*Partition `json:"partitions"`
	Snapshots  []Snapshot   `json:"snapshots"`
	// SnapshotError says why snapshots were not pruned.
	SnapshotError string `json:"snapshot_error,omitempty"`
	Files         int    `json:"files"`
	Bytes         int64  `json:"bytes"`
	Errors        int    `json:"errors"`
}

// Run prunes the partitions of src that opts selects and, with
// opts.Snapshots, its metadata snapshots. An error of one partition is in
// its report and does not stop the others; the error returned is one that
// stops the whole prune (the tree cannot be listed).
func Run(ctx context.Context, src tree.Source, opts Options) (*Report, error) {
	refs, err := tree.SelectPartitions(ctx, src, opts.Filter)
	if err != nil {
		return nil, err
	}
	rep := &Report{Location: src.String(), Cutoff: opts.Cutoff, KeepFiles: opts.KeepFiles, DryRun: !opts.Apply,
		Partitions: []*Partition{}, Snapshots: []Snapshot{}}
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := PrunePartition(ctx, src, r.Topic, r.Partition, opts)
		rep.Partitions = append(rep.Partitions, p)
		rep.Files += len(p.Files)
		rep.Bytes += p.Bytes
		if p.Error != "" {
			rep.Errors++
		}
	}
	if opts.Snapshots {
		snaps, err := PruneSnapshots(ctx, src, opts)
		rep.Snapshots = append(rep.Snapshots, snaps...)
		if err != nil {
			rep.SnapshotError = err.Error()
			rep.Errors++
		}
	}
	return rep, nil
}

// PrunePartition prunes one partition folder of src (a dry run unless
// opts.Apply). Its Error says what went wrong, if anything.
func PrunePartition(ctx context.Context, src tree.Source, topic string, partition int32, opts Options) *Partition {
	p := &Partition{Topic: topic, Partition: partition, Files: []File{}}
	if err := prunePartition(ctx, src, p, opts); err != nil {
		p.Error = err.Error()
	}
	return p
}

func prunePartition(ctx context.Context, src tree.Source, p *Partition, opts Options) error {
	part, err := src.List(ctx, p.Topic, p.Partition)
	if err != nil {
		return err
	}
	below := int64(-1) // the note's offset; -1 without a note
	if part.Pruned {
		note, ok, err := tree.ReadPruned(ctx, src, p.Topic, p.Partition)
		if err != nil {
			return fmt.Errorf("%w: fix or delete the note (it must say \"below <offset>\") and prune again", err)
		}
		if ok {
			below = note.Below
			p.PrunedBefore = &below
		}
	}
	keep := max(opts.KeepFiles, 0)
	candidates := part.Files[:max(len(part.Files)-keep, 0)]
	var run []File
	for _, f := range candidates {
		fi, err := readFile(ctx, src, p.Topic, p.Partition, f)
		if err != nil {
			p.Stop = fmt.Sprintf("%s cannot be read (%v): it and the files after it stay", f.Name, err)
			break
		}
		if fi.LastOffset >= below && fi.MaxTimestamp >= opts.Cutoff.UnixMilli() {
			p.Stop = fmt.Sprintf("%s holds records up to %s, not older than the cutoff", f.Name, time.UnixMilli(fi.MaxTimestamp).UTC().Format(time.RFC3339))
			break
		}
		run = append(run, fi)
	}
	if p.Stop == "" && len(candidates) < len(part.Files) {
		p.Stop = fmt.Sprintf("the newest %s always stay (--keep-files, retention_keep_files)", inspect.Plural(int64(keep), "file"))
	}
	// The run ends below the first kept file: a file of the run holding
	// offsets at or above it (files that interleave) stays, with the files
	// after it.
	var next int64 = -1 // first offset of the first kept file
	for {
		if len(run) < len(part.Files) {
			next = part.Files[len(run)].FirstOffset
		} else if n := len(run); n > 0 {
			next = maxLast(run) + 1
		}
		if len(run) == 0 || maxLast(run) < next {
			break
		}
		run = run[:len(run)-1]
		p.Stop = fmt.Sprintf("%s holds offsets at or above the next file's first offset: files interleave, the run stops before it", part.Files[len(run)].Name)
	}
	p.Kept = len(part.Files) - len(run)
	if len(run) == 0 {
		return nil
	}
	newBelow := max(next, below)
	p.NewFirstOffset = &newBelow
	p.Files = run
	for _, f := range run {
		p.Bytes += f.Size
	}
	if !opts.Apply {
		return nil
	}
	ed, err := editorOf(src, opts.Instance)
	if err != nil {
		return err
	}
	if newBelow > below {
		// Another prune (an instance that owned the partition before a
		// rebalance) may have raised the note since the listing: it is
		// never lowered.
		if note, ok, err := tree.ReadPruned(ctx, src, p.Topic, p.Partition); err == nil && ok {
			below = max(below, note.Below)
		}
	}
	if newBelow > below {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		note := layout.Pruned{Below: newBelow, Time: now(), Cutoff: opts.Cutoff}
		if err := ed.storeNote(ctx, p.Topic, p.Partition, note); err != nil {
			return fmt.Errorf("recording the prune point before deleting anything: %w; nothing was deleted", err)
		}
	}
	names := make([]string, len(run))
	for i, f := range run {
		names[i] = f.Name
	}
	if opts.LockMarker != nil {
		defer opts.LockMarker(p.Topic, p.Partition)()
	}
	if err := ed.dropFromMarker(ctx, p.Topic, p.Partition, names); err != nil {
		return fmt.Errorf("removing the files from the FTP marker before deleting them: %w; nothing was deleted, prune again", err)
	}
	for i, f := range run {
		if err := ed.remove(ctx, p.Topic, p.Partition, f.Name); err != nil {
			p.Files, p.Bytes = run[:i], 0
			for _, d := range p.Files {
				p.Bytes += d.Size
			}
			return fmt.Errorf("deleting %s: %w; the files below offset %d are pruned (%s), prune again to delete the rest", f.Name, err, newBelow, layout.PrunedNote)
		}
	}
	// Once more: a writer's marker update that crossed the first may have
	// brought lines back (a writer drops the lines below the note itself).
	if err := ed.dropFromMarker(ctx, p.Topic, p.Partition, names); err != nil {
		return fmt.Errorf("checking the FTP marker after the deletes: %w; verify reports the lines of deleted files it still has, prune again to drop them", err)
	}
	return nil
}

func maxLast(fs []File) int64 {
	m := int64(-1)
	for _, f := range fs {
		m = max(m, f.LastOffset)
	}
	return m
}

// readFile reads the batch headers of a final file: its offsets and newest
// timestamp.
func readFile(ctx context.Context, src tree.Source, topic string, partition int32, f tree.File) (File, error) {
	out := File{Name: f.Name, Size: f.Size, FirstOffset: -1, LastOffset: -1, MaxTimestamp: -1}
	rc, err := src.Open(ctx, topic, partition, f.Name)
	if err != nil {
		return out, err
	}
	defer rc.Close()
	err = inspect.WalkHeaders(rc, f.Size, func(h inspect.BatchHeader) {
		if out.FirstOffset < 0 {
			out.FirstOffset = h.BaseOffset
		}
		out.LastOffset = max(out.LastOffset, h.LastOffset)
		out.MaxTimestamp = max(out.MaxTimestamp, h.MaxTimestamp)
	})
	if err != nil {
		return out, err
	}
	if out.FirstOffset < 0 {
		return out, errors.New("the file holds no batch")
	}
	return out, nil
}

// PruneSnapshots prunes the metadata snapshots of src: a snapshot older
// than the cutoff goes unless it is the newest one, or the newest holding
// one of its topics (restore takes a topic's configs and group offsets from
// the latest snapshot holding it). A snapshot that cannot be read stays.
func PruneSnapshots(ctx context.Context, src tree.Source, opts Options) ([]Snapshot, error) {
	snaps, _, err := tree.LoadSnapshots(ctx, src)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	newest := map[string]string{} // topic → the newest snapshot holding it
	for i, s := range snaps {     // sorted by time
		for _, t := range s.Topics {
			newest[t.Name] = s.Name
		}
		if i == len(snaps)-1 {
			keep[s.Name] = true
		}
	}
	for _, n := range newest {
		keep[n] = true
	}
	var out []Snapshot
	for _, s := range snaps {
		t, ok := metadata.ParseName(s.Name)
		if !ok || keep[s.Name] || !t.Before(opts.Cutoff) {
			continue
		}
		out = append(out, Snapshot{Name: s.Name, Time: t})
	}
	if !opts.Apply || len(out) == 0 {
		return out, nil
	}
	ed, err := editorOf(src, opts.Instance)
	if err != nil {
		return nil, err
	}
	for i, s := range out {
		if err := ed.removeSnapshot(ctx, s.Name); err != nil {
			return out[:i], fmt.Errorf("deleting snapshot %s: %w", s.Name, err)
		}
	}
	return out, nil
}

// editor changes a tree: the only writes a prune makes.
type editor interface {
	storeNote(ctx context.Context, topic string, partition int32, p layout.Pruned) error
	dropFromMarker(ctx context.Context, topic string, partition int32, names []string) error
	remove(ctx context.Context, topic string, partition int32, name string) error
	removeSnapshot(ctx context.Context, name string) error
}

func editorOf(src tree.Source, instance string) (editor, error) {
	if instance == "" {
		instance = "prune"
	}
	if root, ok := tree.LocalRoot(src); ok {
		return localEditor{root: root, instance: instance}, nil
	}
	if root, ok := tree.FTPRoot(src); ok {
		return ftpEditor{src: src, root: root, instance: instance}, nil
	}
	return nil, fmt.Errorf("%s: this kind of tree cannot be pruned", src)
}

type localEditor struct{ root, instance string }

func (e localEditor) storeNote(_ context.Context, topic string, partition int32, p layout.Pruned) error {
	return rolling.StorePruned(layout.PartitionDir(e.root, topic, partition), e.instance, p)
}

func (localEditor) dropFromMarker(context.Context, string, int32, []string) error { return nil }

func (e localEditor) remove(_ context.Context, topic string, partition int32, name string) error {
	err := os.Remove(filepath.Join(layout.PartitionDir(e.root, topic, partition), name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted since the listing: by another prune
	}
	return err
}

func (e localEditor) removeSnapshot(_ context.Context, name string) error {
	err := os.Remove(filepath.Join(e.root, layout.MetadataDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

type ftpEditor struct {
	src            tree.Source
	root, instance string
}

func (e ftpEditor) dir(topic string, partition int32) string {
	return path.Join(e.root, topic, fmt.Sprint(partition))
}

func (e ftpEditor) storeNote(ctx context.Context, topic string, partition int32, p layout.Pruned) error {
	return tree.WithFTPConn(ctx, e.src, func(c *jftp.ServerConn) error {
		return ftp.StoreNote(c, e.dir(topic, partition), layout.PrunedNote, e.instance, p.Format())
	})
}

func (e ftpEditor) dropFromMarker(ctx context.Context, topic string, partition int32, names []string) error {
	return tree.WithFTPConn(ctx, e.src, func(c *jftp.ServerConn) error {
		return ftp.DropFromMarker(c, e.dir(topic, partition), e.instance, names)
	})
}

func (e ftpEditor) remove(ctx context.Context, topic string, partition int32, name string) error {
	return e.delete(ctx, path.Join(e.dir(topic, partition), name))
}

func (e ftpEditor) removeSnapshot(ctx context.Context, name string) error {
	return e.delete(ctx, path.Join(e.root, layout.MetadataDir, name))
}

// delete deletes a file on the server; a file already gone (a reply lost
// on a broken connection, then the retry) is not an error.
func (e ftpEditor) delete(ctx context.Context, p string) error {
	return tree.WithFTPConn(ctx, e.src, func(c *jftp.ServerConn) error {
		err := c.Delete(p)
		if err != nil && !ftpconn.Broken(err) {
			if _, serr := c.FileSize(p); serr != nil && !ftpconn.Broken(serr) {
				return nil // gone
			}
		}
		return err
	})
}
