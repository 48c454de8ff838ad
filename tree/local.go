package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kafka-backup/kafka-backup/layout"
)

// openLocalFile opens a local file, refusing a folder and anything else
// that is not a regular file.
func openLocalFile(p string) (io.ReadCloser, error) {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a folder: give a file (kafka-backup ls lists them)", p)
	}
	return openRegular(p)
}

type localSource struct {
	root string
	real string // root with every symbolic link resolved, absolute
}

func openLocal(root string) (Source, error) {
	if root == "" {
		return nil, errors.New("backup location is empty")
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("backup location: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("backup location %s: %w", root, errNotDir)
	}
	real, err := filepath.EvalSymlinks(root)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return nil, fmt.Errorf("backup location %s: %w", root, err)
	}
	return &localSource{root: root, real: real}, nil
}

// special says what a file mode is when it is neither a regular file nor a
// folder; "" when it is one of them.
func special(m fs.FileMode) string {
	switch {
	case m.IsRegular(), m.IsDir():
		return ""
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// resolve returns the path a name below the root stands for with symbolic
// links followed, and an error when a link leads out of the tree or to
// nothing.
func (s *localSource) resolve(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("a symbolic link to nothing")
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(s.real, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("a symbolic link out of the tree, to %s", real)
	}
	return real, nil
}

func (s *localSource) String() string { return s.root }

func (s *localSource) Close() error { return nil }

func (s *localSource) readDir(dir string) ([]entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, d := range des {
		e := entry{name: d.Name(), dir: d.IsDir()}
		if d.Type()&fs.ModeSymlink != 0 {
			// A symbolic link counts as what it points to, inside the
			// tree only.
			real, err := s.resolve(filepath.Join(dir, d.Name()))
			if err != nil {
				e.special = err.Error()
				out = append(out, e)
				continue
			}
			info, err := os.Stat(real)
			if err != nil {
				continue // removed since the listing
			}
			e.dir, e.size = info.IsDir(), info.Size()
			if sp := special(info.Mode()); sp != "" {
				e.special = "a symbolic link to " + sp
			}
		} else if sp := special(d.Type()); sp != "" {
			e.special = sp
		} else if !e.dir {
			info, err := d.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // renamed away since the listing
			}
			if err != nil {
				return nil, err
			}
			e.size = info.Size()
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *localSource) Topics(ctx context.Context) ([]string, error) {
	es, err := s.readDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", s.root, err)
	}
	return topicFolders(es), nil
}

func (s *localSource) Stray(ctx context.Context, topic string) ([]Stray, error) {
	dir, folder := s.root, isRootFolder
	if topic != "" {
		if err := layout.ValidTopic(topic); err != nil {
			return nil, err
		}
		dir, folder = filepath.Join(s.root, topic), isPartitionFolder
	}
	es, err := s.readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return strayNames(es, folder), nil
}

func (s *localSource) Partitions(ctx context.Context, topic string) ([]int32, error) {
	if err := layout.ValidTopic(topic); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.root, topic)
	es, err := s.readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return partitionFolders(es), nil
}

func (s *localSource) List(ctx context.Context, topic string, partition int32) (Partition, error) {
	if err := layout.ValidTopic(topic); err != nil {
		return Partition{}, err
	}
	dir := layout.PartitionDir(s.root, topic, partition)
	es, err := s.readDir(dir)
	if err != nil {
		return Partition{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	return classify(topic, partition, es), nil
}

func (s *localSource) Open(ctx context.Context, topic string, partition int32, name string) (io.ReadCloser, error) {
	if err := checkName(topic, name); err != nil {
		return nil, err
	}
	p := filepath.Join(layout.PartitionDir(s.root, topic, partition), name)
	if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if _, err := s.resolve(p); err != nil {
			return nil, fmt.Errorf("%s: %v: not opened", p, err)
		}
	}
	return openRegular(p)
}

// openRegular opens a file for reading, refusing anything but a regular
// file without blocking on it: opening a FIFO waits for a writer, reading
// a device may never end.
func openRegular(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if sp := special(st.Mode()); sp != "" {
		f.Close()
		return nil, fmt.Errorf("%s is %s, not a regular file: not read", p, sp)
	}
	return f, nil
}
