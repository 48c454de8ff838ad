package ftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	jftp "github.com/jlaffaye/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// Persisted returns the ranges of a partition's files waiting in the spool
// and of the final files on the server (from its marker; a final file the
// marker does not list, left by a crash between rename and marker update, is
// downloaded and read). The spool's journal is no part of it: the server
// decides.
//
// When the server refuses kafka-backup (*Refusal) it fails and the
// destination is not ready. When the server cannot be reached it says so
// through the Observer and returns the spool's files only, so backups go on
// into the spool while the server is down; records the server holds already
// and that are delivered again are cut from their files before upload.
func (d *Destination) Persisted(ctx context.Context, topic string, partition int32) ([]offsets.Range, error) {
	var out []offsets.Range
	spoolDir := layout.PartitionDir(d.cfg.Spool, topic, partition)
	entries, err := os.ReadDir(spoolDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if _, ok := layout.ParseFileName(e.Name()); ok {
			span, _ := segment.ReadFileSpan(filepath.Join(spoolDir, e.Name()))
			out = append(out, span.Ranges...)
		}
	}
	remote, prunedBelow, err := d.remoteRanges(ctx, topic, partition)
	var refusal *Refusal
	switch {
	case errors.As(err, &refusal):
		d.refuse(refusal)
		return nil, fmt.Errorf("reading which offsets of %s/%d the FTP server holds: %w", topic, partition, err)
	case err != nil:
		d.obs.Error(fmt.Errorf("reading which offsets of %s/%d the FTP server already has: %w; going on with the files in the spool only: records delivered again that the server holds are cut from their files before upload", topic, partition, err))
		return out, nil
	}
	d.checkJournal(spoolDir, topic, partition, remote, prunedBelow)
	return append(out, remote...), nil
}

// remoteRanges returns the offsets the final files of a partition on the
// server hold, and the offset below which a prune deleted its files (0 when
// none did).
func (d *Destination) remoteRanges(ctx context.Context, topic string, partition int32) ([]offsets.Range, int64, error) {
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("connecting to %s: %w", d.cfg.Addr, d.dialRefusal(err))
	}
	defer release()
	d.accepted(true, "")
	dir := path.Join(d.cfg.Root, topic, strconv.Itoa(int(partition)))
	held, _, err := d.remoteFiles(c, dir, "", true)
	if err != nil {
		return nil, 0, err
	}
	below, err := readPrunedBelow(c, dir)
	return held, below, err
}

// remoteFiles returns the offsets the final files in a remote folder hold,
// from its marker, except the file named except. The files the marker does
// not list are downloaded when download is set, and returned in unlisted
// too; else left out.
func (d *Destination) remoteFiles(c *jftp.ServerConn, remote, except string, download bool) (held []offsets.Range, unlisted map[string][]offsets.Range, err error) {
	names, err := c.NameList(remote)
	if err != nil {
		if connBroken(err) {
			return nil, nil, err
		}
		return nil, nil, nil // no folder yet
	}
	ranges, err := readMarker(c, remote)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range names {
		n = path.Base(n)
		if _, ok := layout.ParseFileName(n); !ok || n == except {
			continue
		}
		if rs, ok := ranges[n]; ok {
			held = append(held, rs...)
			continue
		}
		if !download {
			continue
		}
		rs, err := remoteSpan(c, path.Join(remote, n))
		if err != nil {
			return nil, nil, err
		}
		if len(rs) == 0 {
			continue
		}
		held = append(held, rs...)
		if unlisted == nil {
			unlisted = map[string][]offsets.Range{}
		}
		unlisted[n] = rs
	}
	return held, unlisted, nil
}

// remoteSpan downloads one remote file and returns the offsets its complete
// batches cover.
func remoteSpan(c *jftp.ServerConn, p string) ([]offsets.Range, error) {
	resp, err := c.Retr(p)
	if err != nil {
		return nil, fmt.Errorf("downloading %s to read its offsets: %w", p, err)
	}
	defer resp.Close()
	rd := segment.NewReader(resp)
	var rs []offsets.Range
	for {
		b, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, segment.ErrTorn) || errors.Is(err, segment.ErrCorrupt) {
				return rs, nil
			}
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		rs = offsets.Append(rs, offsets.Range{First: b.BaseOffset, Last: b.LastOffset})
	}
}
