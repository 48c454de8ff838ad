package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
)

// maxSnapshotBytes bounds the size of a snapshot file read.
const maxSnapshotBytes = 64 << 20

// isRootFolder reports whether a name below the root is part of the
// backup: a topic folder or the metadata folder.
func isRootFolder(e entry) bool {
	return isTopicFolder(e) || e.dir && e.name == layout.MetadataDir
}

// SnapshotNames lists the snapshot files of the tree's metadata folder
// (layout.MetadataDir), sorted by name (so by time); others are the folder's
// other names (hidden in-progress and upload files among them). A tree
// without the folder has none.
func SnapshotNames(ctx context.Context, src Source) (names, others []string, err error) {
	var es []entry
	switch s := src.(type) {
	case *localSource:
		es, err = s.readDir(filepath.Join(s.root, layout.MetadataDir))
	case *ftpSource:
		es, err = s.list(ctx, path.Join(s.root, layout.MetadataDir))
	default:
		return nil, nil, fmt.Errorf("%s: snapshots cannot be listed from this kind of tree", src)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing the snapshots of %s: %w", src, err)
	}
	for _, e := range es {
		if _, ok := metadata.ParseName(e.name); ok && !e.dir && e.special == "" {
			names = append(names, e.name)
		} else {
			others = append(others, e.name)
		}
	}
	sort.Strings(names)
	sort.Strings(others)
	return names, others, nil
}

// ReadSnapshot returns the bytes of one snapshot file of the tree.
func ReadSnapshot(ctx context.Context, src Source, name string) ([]byte, error) {
	if _, ok := metadata.ParseName(name); !ok {
		return nil, fmt.Errorf("%q is not a snapshot file name", name)
	}
	switch s := src.(type) {
	case *localSource:
		f, err := openRegular(filepath.Join(s.root, layout.MetadataDir, name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f, name)
	case *ftpSource:
		var data []byte
		p := path.Join(s.root, layout.MetadataDir, name)
		err := s.withConn(ctx, func(c *jftp.ServerConn) error {
			r, err := c.Retr(p)
			if err != nil {
				return err
			}
			data, err = readLimited(r, name)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s on %s: %w", p, s.cfg.Addr, err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%s: snapshots cannot be read from this kind of tree", src)
}

func readLimited(r io.Reader, name string) ([]byte, error) {
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxSnapshotBytes {
		return nil, fmt.Errorf("snapshot %s is larger than %d bytes: not a snapshot kafka-backup wrote", name, maxSnapshotBytes)
	}
	return b.Bytes(), nil
}

// BadSnapshot is a snapshot file that cannot be read or parsed.
type BadSnapshot struct {
	Name string
	Err  error
}

// LatestSnapshots returns, for each of topics, the latest snapshot of the
// tree holding it taken at or before until (any time when until is zero),
// as metadata.Latest picks among all, a topic without one left out; the
// files that cannot be read or parsed are returned apart. It reads the
// snapshots newest first, by the time in their names, and stops once every
// topic has one: a long backup holds thousands, a restore needs a few.
func LatestSnapshots(ctx context.Context, src Source, topics []string, until time.Time) (map[string]*metadata.Stored, []BadSnapshot, error) {
	names, _, err := SnapshotNames(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]*metadata.Stored{}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	var bad []BadSnapshot
	for i := len(names) - 1; i >= 0 && len(out) < len(want); i-- {
		n := names[i]
		if at, _ := metadata.ParseName(n); !until.IsZero() && at.After(until) {
			continue
		}
		s, err := readSnapshot(ctx, src, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			bad = append(bad, BadSnapshot{n, err})
			continue
		}
		if !until.IsZero() && s.Time.After(until) {
			continue
		}
		for _, t := range topics {
			if out[t] == nil && s.Topic(t) != nil {
				out[t] = &metadata.Stored{Name: n, Snapshot: s}
			}
		}
	}
	return out, bad, nil
}

// readSnapshot reads and parses one snapshot file of the tree.
func readSnapshot(ctx context.Context, src Source, name string) (*metadata.Snapshot, error) {
	data, err := ReadSnapshot(ctx, src, name)
	if err != nil {
		return nil, err
	}
	return metadata.Decode(data)
}

// LoadSnapshots reads and parses every snapshot of the tree, sorted by
// time (prune weighs them all; restore reads the newest only,
// LatestSnapshots);
// the files that cannot be read or parsed are returned apart.
func LoadSnapshots(ctx context.Context, src Source) ([]metadata.Stored, []BadSnapshot, error) {
	names, _, err := SnapshotNames(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	var out []metadata.Stored
	var bad []BadSnapshot
	for _, n := range names {
		data, err := ReadSnapshot(ctx, src, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			bad = append(bad, BadSnapshot{n, err})
			continue
		}
		s, err := metadata.Decode(data)
		if err != nil {
			bad = append(bad, BadSnapshot{n, err})
			continue
		}
		out = append(out, metadata.Stored{Name: n, Snapshot: s})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, bad, nil
}
