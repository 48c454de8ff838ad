package ftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// The Writer reads back records and keeps its refusal notes through these.
var (
	_ rolling.RecordSource = (*Destination)(nil)
	_ rolling.NoteKeeper   = (*Destination)(nil)
)

// StoredRecord implements rolling.RecordSource: it returns the record at
// offset off of a partition as the server's final files hold it. It
// downloads the file its marker (or, for a file the marker does not list,
// its name) says holds off, up to the batch of off only. The rolling.Writer
// calls it for the first record of a run delivered again, to tell a replay
// from a recreated topic, when the record is no longer in the spool.
func (d *Destination) StoredRecord(ctx context.Context, topic string, partition int32, off int64) (segment.Record, bool, error) {
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return segment.Record{}, false, fmt.Errorf("connecting to %s: %w", d.cfg.Addr, err)
	}
	defer release()
	remote := d.remoteDir(topic, partition)
	names, err := c.NameList(remote)
	if err != nil {
		if connBroken(err) {
			return segment.Record{}, false, err
		}
		return segment.Record{}, false, nil // no folder
	}
	marker, err := readMarker(c, remote)
	if err != nil {
		return segment.Record{}, false, err
	}
	// The files the marker says hold off, then the few named just below it.
	var listed, below []string
	firsts := map[string]int64{}
	for _, n := range names {
		n = path.Base(n)
		first, ok := layout.ParseFileName(n)
		if !ok || first > off {
			continue
		}
		firsts[n] = first
		if rs, ok := marker[n]; ok {
			if offsets.SetOf(rs).Contains(off) {
				listed = append(listed, n)
			}
			continue
		}
		below = append(below, n)
	}
	sort.Slice(below, func(i, j int) bool { return firsts[below[i]] > firsts[below[j]] })
	for _, n := range append(listed, below[:min(3, len(below))]...) {
		rec, ok, err := recordInRemote(c, path.Join(remote, n), off)
		if err != nil || ok {
			return rec, ok, err
		}
	}
	return segment.Record{}, false, nil
}

// recordInRemote reads the remote file p up to the batch holding off, and
// returns the record at off.
func recordInRemote(c *jftp.ServerConn, p string, off int64) (segment.Record, bool, error) {
	resp, err := c.Retr(p)
	if err != nil {
		if connBroken(err) {
			return segment.Record{}, false, err
		}
		return segment.Record{}, false, nil // gone since the listing
	}
	// Closing before the end aborts the transfer; the connection is not
	// used again after a found record.
	defer resp.Close()
	rd := segment.NewReader(resp)
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return segment.Record{}, false, nil
		}
		if err != nil {
			return segment.Record{}, false, fmt.Errorf("reading %s: %w", p, err)
		}
		if off < b.BaseOffset || off > b.LastOffset {
			continue
		}
		recs, err := b.Records()
		if err != nil {
			return segment.Record{}, false, fmt.Errorf("reading %s: %w", p, err)
		}
		for _, r := range recs {
			if r.Offset == off {
				return r, true, nil
			}
		}
		return segment.Record{}, false, nil
	}
}

// remoteDir is the remote folder of a partition.
func (d *Destination) remoteDir(topic string, partition int32) string {
	return path.Join(d.cfg.Root, topic, strconv.Itoa(int(partition)))
}

// Folder implements rolling.NoteKeeper.
func (d *Destination) Folder(topic string, partition int32) string {
	return "ftp://" + d.cfg.Addr + path.Join("/", d.remoteDir(topic, partition))
}

// KeepNote implements rolling.NoteKeeper: it stores note as
// layout.RecreatedNote in the partition's folder on the server, where
// verify finds it.
func (d *Destination) KeepNote(ctx context.Context, topic string, partition int32, note []byte) error {
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", d.cfg.Addr, err)
	}
	defer release()
	remote := d.remoteDir(topic, partition)
	if err := d.makeDirs(c, remote); err != nil {
		return err
	}
	if err := c.Stor(path.Join(remote, layout.RecreatedNote), bytes.NewReader(note)); err != nil {
		return fmt.Errorf("storing %s: %w", path.Join(remote, layout.RecreatedNote), err)
	}
	return nil
}

// Note implements rolling.NoteKeeper: it returns the layout.RecreatedNote
// of the partition's folder on the server, and false when there is none.
func (d *Destination) Note(ctx context.Context, topic string, partition int32) ([]byte, bool, error) {
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("connecting to %s: %w", d.cfg.Addr, err)
	}
	defer release()
	p := path.Join(d.remoteDir(topic, partition), layout.RecreatedNote)
	resp, err := c.Retr(p)
	if err != nil {
		if connBroken(err) {
			return nil, false, err
		}
		return nil, false, nil // no note
	}
	data, err := io.ReadAll(io.LimitReader(resp, 64<<10))
	if cerr := resp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", p, err)
	}
	return data, true, nil
}
