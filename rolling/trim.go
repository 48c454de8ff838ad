package rolling

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kafka-backup/kafka-backup/segment"
)

// NamingOf returns the naming a final file name uses.
func NamingOf(name string) Naming {
	if strings.HasSuffix(name, ".log") {
		return NameKafka
	}
	return NamePlain
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
func TrimCovered(f File, covered func(Range) bool, pathFor func(name string) string) (trimmed File, ok bool, err error) {
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
		r := Range{First: b.BaseOffset, Last: b.LastOffset}
		if covered(r) {
			dropped++
			continue
		}
		if t.Records == 0 {
			t.FirstOffset = r.First
		}
		if _, err := out.Write(b.Raw()); err != nil {
			os.Remove(tmpPath)
			return f, false, fmt.Errorf("writing %s: %w", tmpPath, err)
		}
		t.Ranges = segment.AppendRange(t.Ranges, r)
		t.LastOffset = r.Last
		t.Records += int64(b.NumRecords)
		t.Bytes += int64(b.Size)
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
