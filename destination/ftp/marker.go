package ftp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"sort"
	"sync"

	jftp "github.com/jlaffaye/ftp"
	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
)

// LockMarker holds the marker updates of this destination in a partition's
// folder until the returned function is called: the output's retention
// takes it while it rewrites the marker and deletes files, so that no update
// of the same process crosses its own.
func (d *Destination) LockMarker(topic string, partition int32) (unlock func()) {
	m := d.markerLock(d.remoteDir(topic, partition))
	m.Lock()
	return m.Unlock
}

// markerLock serializes marker updates of one remote folder.
func (d *Destination) markerLock(dir string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.markers[dir]
	if m == nil {
		m = &sync.Mutex{}
		d.markers[dir] = m
	}
	return m
}

// markerTries bounds how often recordRanges writes the marker again when
// another instance's update replaced its own.
const markerTries = 5

// recordRanges adds files' ranges to their folder's marker, with every line
// this instance recorded there before: it reads the marker, adds the lines,
// stores it under a temporary name and renames it over the old one. Other
// instances update the same marker: after the rename it reads the marker
// back and, when another instance's update replaced its lines, does it
// again; and Close checks them once more. A line lost all the same (updates
// crossing at the same moment) loses no record: readers take the offsets of
// files the marker does not list from the files themselves.
func (d *Destination) recordRanges(c *jftp.ServerConn, remote string, files map[string][]offsets.Range) error {
	m := d.markerLock(remote)
	m.Lock()
	defer m.Unlock()
	d.mu.Lock()
	mine := d.recorded[remote]
	if mine == nil {
		mine = map[string][]offsets.Range{}
		d.recorded[remote] = mine
	}
	for n, rs := range files {
		mine[n] = rs
	}
	fresh := files
	files = maps.Clone(mine)
	d.mu.Unlock()
	checkedPruned := false
	for range markerTries {
		ranges, err := readMarker(c, remote)
		if err != nil {
			return err
		}
		if listsAll(ranges, files) {
			return nil
		}
		if !checkedPruned && lacksOld(ranges, files, fresh) {
			// Lines of this instance the marker no longer has: another
			// instance's update replaced them, or a prune removed them
			// before deleting their files.
			checkedPruned = true
			if err := d.forgetPruned(c, remote, files); err != nil {
				return err
			}
			continue
		}
		for n, rs := range files {
			ranges[n] = rs
		}
		if err := d.writeMarker(c, remote, ranges); err != nil {
			return err
		}
	}
	ranges, err := readMarker(c, remote)
	if err != nil {
		return err
	}
	if !listsAll(ranges, files) {
		d.obs.Warn(fmt.Errorf("%s/%s: other instances' updates kept replacing this one's %d times: some files are not listed; nothing is lost, their offsets are read from the files themselves", remote, layout.MarkerName, markerTries))
	}
	return nil
}

// lacksOld reports whether the marker lacks a line of files other than
// those of fresh.
func lacksOld(marker, files, fresh map[string][]offsets.Range) bool {
	for n := range files {
		if _, ok := marker[n]; !ok && fresh[n] == nil {
			return true
		}
	}
	return false
}

// forgetPruned removes from files, and from the lines this instance writes
// again, the files wholly below the folder's prune point
// (layout.PrunedNote): a prune deleted them, or is about to, and the
// marker must not claim them again.
func (d *Destination) forgetPruned(c *jftp.ServerConn, remote string, files map[string][]offsets.Range) error {
	below, err := readPrunedBelow(c, remote)
	if err != nil || below <= 0 {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, rs := range files {
		if rs[len(rs)-1].Last < below {
			delete(files, n)
			delete(d.recorded[remote], n)
		}
	}
	return nil
}

// readPrunedBelow returns the offset of a folder's layout.PrunedNote, 0
// when it has none.
func readPrunedBelow(c *jftp.ServerConn, dir string) (int64, error) {
	p := path.Join(dir, layout.PrunedNote)
	r, err := c.Retr(p)
	if err != nil {
		if code := ftpconn.ReplyCode(err); code == 550 || code == 450 {
			return 0, nil
		}
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	note, err := layout.ParsePruned(data)
	if err != nil {
		return 0, nil // verify reports it; the lines are kept
	}
	return note.Below, nil
}

// forgetLine removes the line of name, a final file about to be renamed into
// remote, from remote's marker, and from the lines this instance writes
// again: a line written before the file had the name is not about it.
func (d *Destination) forgetLine(c *jftp.ServerConn, remote, name string) error {
	m := d.markerLock(remote)
	m.Lock()
	defer m.Unlock()
	d.mu.Lock()
	delete(d.recorded[remote], name)
	d.mu.Unlock()
	ranges, err := readMarker(c, remote)
	if err != nil {
		return err
	}
	if _, ok := ranges[name]; !ok {
		return nil
	}
	delete(ranges, name)
	return d.writeMarker(c, remote, ranges)
}

// listsAll reports whether marker lists every file of files with its ranges.
func listsAll(marker, files map[string][]offsets.Range) bool {
	for n, rs := range files {
		if old, ok := marker[n]; !ok || layout.FormatRangeLine(n, old) != layout.FormatRangeLine(n, rs) {
			return false
		}
	}
	return true
}

// writeMarker stores a folder's marker: under a temporary name, renamed
// over the old one.
func (d *Destination) writeMarker(c *jftp.ServerConn, remote string, ranges map[string][]offsets.Range) error {
	return storeMarker(c, remote, d.cfg.Instance, ranges, d.storeRefusal)
}

// storeMarker stores a folder's marker under a temporary name of instance,
// renamed over the old one; refusal wraps the error of the upload.
func storeMarker(c *jftp.ServerConn, remote, instance string, ranges map[string][]offsets.Range, refusal func(error) error) error {
	names := make([]string, 0, len(ranges))
	for n := range ranges {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { return ranges[names[a]][0].First < ranges[names[b]][0].First })
	var buf bytes.Buffer
	for _, n := range names {
		buf.WriteString(layout.FormatRangeLine(n, ranges[n]))
	}
	marker := path.Join(remote, layout.MarkerName)
	tmp := path.Join(remote, layout.MarkerTempName(instance))
	if err := c.Stor(tmp, &buf); err != nil {
		return fmt.Errorf("storing %s: %w", tmp, refusal(err))
	}
	return renameOver(c, tmp, marker)
}

// renameOver renames tmp to final, replacing final: deleted first when the
// server refuses to rename over an existing file.
func renameOver(c *jftp.ServerConn, tmp, final string) error {
	if err := c.Rename(tmp, final); err != nil {
		if connBroken(err) {
			return fmt.Errorf("renaming %s: %w", tmp, err)
		}
		if derr := c.Delete(final); derr != nil && connBroken(derr) {
			return derr
		}
		if err := c.Rename(tmp, final); err != nil {
			return fmt.Errorf("renaming %s to %s: %w", tmp, path.Base(final), err)
		}
	}
	return nil
}

// DropFromMarker removes the lines of names from the marker of the remote
// partition folder remote, for kafka-backup prune, before it deletes those
// files: the marker is written under a temporary name of instance and
// renamed over the old one, then read back, and written again when a
// writer's update crossing this one brought a line back. A folder without a
// marker, or whose marker lists none of the names, is left as it is.
func DropFromMarker(c *jftp.ServerConn, remote, instance string, names []string) error {
	for range markerTries {
		ranges, err := readMarker(c, remote)
		if err != nil {
			return err
		}
		n := len(ranges)
		for _, name := range names {
			delete(ranges, name)
		}
		if len(ranges) == n {
			return nil
		}
		if err := storeMarker(c, remote, instance, ranges, func(err error) error { return err }); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s/%s: writers' updates kept bringing back the lines of the files to delete %d times", remote, layout.MarkerName, markerTries)
}

// StoreNote stores data as the file name of the remote folder remote,
// replacing it: under a temporary name of instance, its size checked, then
// renamed over the old one, so a reader sees the old note or the new one,
// never a part. kafka-backup prune stores layout.PrunedNote with it.
func StoreNote(c *jftp.ServerConn, remote, name, instance string, data []byte) error {
	tmp := path.Join(remote, layout.TempName(name, instance))
	if err := c.Stor(tmp, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("storing %s: %w", tmp, err)
	}
	size, err := c.FileSize(tmp)
	if err != nil {
		return fmt.Errorf("checking the size of %s: %w", tmp, err)
	}
	if size != int64(len(data)) {
		return fmt.Errorf("%s has %d bytes on the server, %d were sent", tmp, size, len(data))
	}
	return renameOver(c, tmp, path.Join(remote, name))
}

// readMarker reads a folder's marker; a missing marker is empty.
func readMarker(c *jftp.ServerConn, dir string) (map[string][]offsets.Range, error) {
	r, err := c.Retr(path.Join(dir, layout.MarkerName))
	if err != nil {
		if code := ftpconn.ReplyCode(err); code != 550 && code != 450 {
			// Not "no such file" (a broken connection, 425, 451…): taken
			// as empty, the marker would be rewritten without the lines of
			// every file uploaded before.
			return nil, fmt.Errorf("reading %s: %w", path.Join(dir, layout.MarkerName), err)
		}
		return map[string][]offsets.Range{}, nil // no marker yet
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path.Join(dir, layout.MarkerName), err)
	}
	return layout.ParseRanges(data), nil
}

// settleMarkers checks, once the uploads are over, that the markers this
// instance updated still list its files (another instance's update may have
// replaced them after the check that followed its own), and adds them again
// where not. It stops when ctx ends.
func (d *Destination) settleMarkers(ctx context.Context) {
	d.mu.Lock()
	remotes := make([]string, 0, len(d.recorded))
	for r := range d.recorded {
		remotes = append(remotes, r)
	}
	d.mu.Unlock()
	if len(remotes) == 0 || ctx.Err() != nil {
		return
	}
	c, release, err := d.dialSide(ctx)
	if err != nil {
		return
	}
	defer release()
	for _, r := range remotes {
		if ctx.Err() != nil {
			return
		}
		if err := d.recordRanges(c, r, nil); err != nil {
			d.obs.Warn(fmt.Errorf("checking the marker of %s at shutdown: %w; nothing is lost, files a marker does not list are read for their offsets", r, err))
			return
		}
	}
}
