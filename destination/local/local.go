// Package local is the local-disk destination: a rolled file is made final by
// renaming it, in its own folder, from its in-progress name to its final name.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// Destination finalizes files in the folder tree the rolling.Writer writes
// in: root/<topic>/<partition>/<name>.
type Destination struct {
	root string
}

// Destination is a rolling.Destination.
var _ rolling.Destination = (*Destination)(nil)

// New returns a Destination for the tree below root.
func New(root string) *Destination { return &Destination{root: root} }

// errFinalExists is wrapped by the error of a rename onto a final name that
// is taken.
var errFinalExists = errors.New("final file exists")

// Publish renames f to its final name. It never replaces an existing final
// file. Another writer may have backed up some of the same records, as when
// a rebalance moved the partition while the first writer still had its file
// open: the batches of f that the final files around its offsets already
// hold are cut from it first, and it is published under the name of its new
// first offset, or deleted when nothing is left. When the name is taken all
// the same, the folder's final files are all read and the same is done; if
// that cannot resolve it, Publish fails and f stays where it is.
func (d *Destination) Publish(_ context.Context, f rolling.File) error {
	dir := filepath.Dir(f.Path)
	_, inst, _ := layout.ParseInProgressName(filepath.Base(f.Path))
	cut := func(f rolling.File, held []offsets.Range) (rolling.File, bool, error) {
		hs := offsets.SetOf(held)
		return rolling.TrimCovered(f, func(r offsets.Range) bool { return hs.Covers(r.First, r.Last) },
			func(name string) string { return filepath.Join(dir, layout.InProgressName(name, inst+"-trim")) })
	}
	held, err := heldAround(dir, f)
	if err != nil {
		return err
	}
	if offsets.Overlap(held, f.Ranges) {
		t, ok, err := cut(f, held)
		if err != nil {
			return fmt.Errorf("cutting from %s the records final files hold already: %w", f.Path, err)
		}
		if !ok {
			return nil // every record of f is in final files already
		}
		f = t
	}
	for {
		err := renameNoReplace(f.Path, filepath.Join(dir, f.Name))
		if err == nil {
			break
		}
		if !errors.Is(err, errFinalExists) {
			return err
		}
		held, rerr := FinalRanges(dir)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		t, ok, terr := cut(f, held)
		if terr != nil {
			return errors.Join(err, terr)
		}
		if !ok {
			return nil // every record of f is in final files already
		}
		if t.Name == f.Name {
			return err // its first batch is only partly held: leave it to an operator
		}
		f = t
	}
	if f.Fsync {
		if err := rolling.SyncDir(dir); err != nil {
			return fmt.Errorf("fsync folder %s after renaming %s: %w", dir, f.Name, err)
		}
	}
	return nil
}

// Persisted reads the offset range of every final file of a partition from
// its batch headers.
func (d *Destination) Persisted(_ context.Context, topic string, partition int32) ([]offsets.Range, error) {
	return FinalRanges(layout.PartitionDir(d.root, topic, partition))
}

// FinalRanges returns the offsets the final files in dir cover, read from
// batch headers only: each file's batches, contiguous ones merged. A missing
// folder holds nothing.
func FinalRanges(dir string) ([]offsets.Range, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []offsets.Range
	for _, e := range entries {
		if _, ok := layout.ParseFileName(e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		rs, err := heldBy(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// heldAround returns the offsets held by the final files of dir that may
// overlap f: those named by an offset inside f's, and the few named just
// below its first offset (one usually; more when files interleave). The
// files below those are not read, so a long-lived folder costs a listing and
// a few headers per file published.
func heldAround(dir string, f rolling.File) ([]offsets.Range, error) {
	const below = 3
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type named struct {
		name  string
		first int64
	}
	var inside, under []named
	for _, e := range entries {
		first, ok := layout.ParseFileName(e.Name())
		switch {
		case !ok || !e.Type().IsRegular() || first > f.LastOffset:
		case first >= f.FirstOffset:
			inside = append(inside, named{e.Name(), first})
		default:
			under = append(under, named{e.Name(), first})
		}
	}
	sort.Slice(under, func(i, j int) bool { return under[i].first > under[j].first })
	var out []offsets.Range
	for _, n := range append(inside, under[:min(below, len(under))]...) {
		rs, err := heldBy(filepath.Join(dir, n.name))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// heldBy returns the offsets of a final file's complete batches; a torn or
// corrupt file holds those before the damage.
func heldBy(path string) ([]offsets.Range, error) {
	span, err := segment.ReadFileSpan(path)
	if span.Batches == 0 && err != nil && !errors.Is(err, segment.ErrTorn) && !errors.Is(err, segment.ErrCorrupt) {
		return nil, err
	}
	return span.Ranges, nil
}

// renameNoReplace renames oldpath to newpath unless newpath exists. It links
// then unlinks, which is atomic against a concurrent creator of newpath, and
// falls back to a checked rename on file systems without hard links.
func renameNoReplace(oldpath, newpath string) error {
	err := os.Link(oldpath, newpath)
	switch {
	case err == nil:
		return os.Remove(oldpath)
	case errors.Is(err, fs.ErrExist):
		if same(oldpath, newpath) {
			// A previous attempt linked but did not unlink.
			return os.Remove(oldpath)
		}
		return fmt.Errorf("%w: %s already exists: leaving %s in place; move one of them away and restart", errFinalExists, newpath, filepath.Base(oldpath))
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EXDEV), errors.Is(err, syscall.EMLINK):
		if _, serr := os.Lstat(newpath); serr == nil {
			return fmt.Errorf("%w: %s already exists: leaving %s in place; move one of them away and restart", errFinalExists, newpath, filepath.Base(oldpath))
		}
		return os.Rename(oldpath, newpath)
	default:
		return err
	}
}

func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
