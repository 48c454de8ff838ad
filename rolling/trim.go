package rolling

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// NamingOf returns the naming a final file name uses.
func NamingOf(name string) layout.Naming {
	if strings.HasSuffix(name, ".log") {
		return layout.NameKafka
	}
	return layout.NamePlain
}

// TrimCovered rewrites the finished file f.Path without its batches whose
// offsets covered reports as already held by final files: two writers backed
// up the same records (a rebalance moved the partition while the first still
// had its file open). The trimmed file gets the final name of its new first
// offset and is stored at pathFor(that name), replacing f.Path; when the
// first batch is kept, the name stays and the trimmed file replaces f.Path
// itself. ok is false when every batch was covered and f.Path was deleted. A
// batch only partly covered is kept whole: nothing is lost. When no batch is
// covered, f is returned untouched.
func TrimCovered(f File, covered func(offsets.Range) bool, pathFor func(name string) string) (trimmed File, ok bool, err error) {
	return trimCovered(f, covered, pathFor, false)
}

// TrimCoveredRecords is TrimCovered, except that a batch only partly covered
// is written again with its records whose offsets covered does not report:
// for a file whose name is taken by another writer's file that ends inside
// its first batch, which keeping that batch whole would never let go.
func TrimCoveredRecords(f File, covered func(offsets.Range) bool, pathFor func(name string) string) (trimmed File, ok bool, err error) {
	return trimCovered(f, covered, pathFor, true)
}

func trimCovered(f File, covered func(offsets.Range) bool, pathFor func(name string) string, records bool) (trimmed File, ok bool, err error) {
	in, err := os.Open(f.Path)
	if err != nil {
		return f, false, err
	}
	defer in.Close()
	tmpPath := f.Path + ".trim"
	out, err := os.OpenFile(tmpPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return f, false, err
	}
	defer out.Close()
	t := f
	t.Ranges, t.Records, t.Bytes = nil, 0, 0
	rd := segment.NewReader(in)
	dropped := 0
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			os.Remove(tmpPath)
			return f, false, fmt.Errorf("reading %s: %w", f.Path, err)
		}
		r := offsets.Range{First: b.BaseOffset, Last: b.LastOffset}
		if covered(r) {
			dropped++
			continue
		}
		raw, rs, n, cut, err := b.Raw(), []offsets.Range{r}, int(b.NumRecords), false, error(nil)
		if records {
			raw, rs, n, cut, err = uncovered(b, covered)
		}
		if err != nil {
			os.Remove(tmpPath)
			return f, false, fmt.Errorf("reading %s: %w", f.Path, err)
		}
		if cut {
			dropped++
		}
		if n == 0 {
			continue
		}
		if t.Records == 0 {
			t.FirstOffset = rs[0].First
		}
		if _, err := out.Write(raw); err != nil {
			os.Remove(tmpPath)
			return f, false, fmt.Errorf("writing %s: %w", tmpPath, err)
		}
		for _, r := range rs {
			t.Ranges = offsets.Append(t.Ranges, r)
		}
		t.LastOffset = rs[len(rs)-1].Last
		t.Records += int64(n)
		t.Bytes += int64(len(raw))
	}
	if t.Records == 0 {
		out.Close()
		os.Remove(tmpPath)
		return f, false, os.Remove(f.Path)
	}
	if err := out.Sync(); err != nil {
		os.Remove(tmpPath)
		return f, false, err
	}
	out.Close()
	t.Name = NamingOf(f.Name).FileName(t.FirstOffset)
	switch {
	case dropped == 0:
		os.Remove(tmpPath)
		return f, true, nil
	case t.Name == f.Name:
		// The first batch is kept, and with it the name and the path.
		if err := os.Rename(tmpPath, f.Path); err != nil {
			os.Remove(tmpPath)
			return f, false, err
		}
		return t, true, nil
	}
	t.Path = pathFor(t.Name)
	if t.Path != f.Path {
		if _, err := os.Lstat(t.Path); err == nil {
			os.Remove(tmpPath)
			return f, false, fmt.Errorf("cannot trim %s: %s exists", f.Path, t.Path)
		}
	}
	if err := os.Rename(tmpPath, t.Path); err != nil {
		return f, false, err
	}
	if t.Path != f.Path {
		if err := os.Remove(f.Path); err != nil {
			return t, true, err
		}
	}
	return t, true, nil
}

// uncovered returns batch b as it is when covered reports none of its
// records' offsets, else its other records encoded again: raw, the batches'
// ranges and the number of records, and cut true.
func uncovered(b *segment.Batch, covered func(offsets.Range) bool) (raw []byte, rs []offsets.Range, n int, cut bool, err error) {
	whole := []offsets.Range{{First: b.BaseOffset, Last: b.LastOffset}}
	recs, err := b.Records()
	if err != nil {
		return nil, nil, 0, false, err
	}
	keep := recs[:0:0]
	for _, r := range recs {
		if !covered(offsets.Range{First: r.Offset, Last: r.Offset}) {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(recs) {
		return b.Raw(), whole, int(b.NumRecords), false, nil
	}
	enc, err := segment.NewEncoder(b.Codec)
	if err != nil {
		return nil, nil, 0, false, err
	}
	for left := keep; len(left) > 0; {
		var k int
		raw, k = enc.AppendBatch(raw, left, math.MaxInt64)
		if k == 0 {
			return nil, nil, 0, false, fmt.Errorf("encoding again the records of the batch at offset %d", b.BaseOffset)
		}
		rs = append(rs, offsets.Range{First: left[0].Offset, Last: left[k-1].Offset})
		left = left[k:]
	}
	return raw, rs, len(keep), true, nil
}
