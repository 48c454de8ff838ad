package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	jftp "github.com/jlaffaye/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
)

// ReadPruned reads the layout.PrunedNote of a partition folder: the offset
// below which a prune deleted its files. ok is false when the folder has
// none.
func ReadPruned(ctx context.Context, src Source, topic string, partition int32) (p layout.Pruned, ok bool, err error) {
	rc, err := src.Open(ctx, topic, partition, layout.PrunedNote)
	if errors.Is(err, fs.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("reading %s: %w", layout.PrunedNote, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return p, false, fmt.Errorf("reading %s: %w", layout.PrunedNote, err)
	}
	p, err = layout.ParsePruned(data)
	if err != nil {
		return p, false, err
	}
	return p, true, nil
}

// LocalRoot returns the folder of a local tree, and false for any other.
// Only kafka-backup prune writes through it.
func LocalRoot(src Source) (string, bool) {
	if s, ok := src.(*localSource); ok {
		return s.root, true
	}
	return "", false
}

// FTPRoot returns the root folder of a tree on an FTP server, and false
// for any other.
func FTPRoot(src Source) (string, bool) {
	if s, ok := src.(*ftpSource); ok {
		return s.root, true
	}
	return "", false
}

// WithFTPConn runs fn on one of the connections of a tree on an FTP server
// (again on a new connection when the one it used broke), for kafka-backup
// prune, the only one that changes a tree. It is an error on another tree.
func WithFTPConn(ctx context.Context, src Source, fn func(*jftp.ServerConn) error) error {
	s, ok := src.(*ftpSource)
	if !ok {
		return fmt.Errorf("%s is not on an FTP server", src)
	}
	return s.withConn(ctx, fn)
}
