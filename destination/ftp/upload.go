package ftp

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	jftp "github.com/jlaffaye/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
)

// upload stores one file under a temporary name, checks its size, renames it
// to its final name, records its range in the marker and deletes the spool
// copy. A final file is never replaced: when the name is taken, before the
// upload or after it (another instance renamed its file to that name while
// this one was stored), the spool copy is trimmed against what the server
// holds instead.
func (d *Destination) upload(c *jftp.ServerConn, j *job) error {
	if j.meta {
		return d.uploadMetadata(c, j)
	}
	if done, err := d.cutHeld(c, j); err != nil || done {
		return err
	}
	final := path.Join(j.remote, j.name)
	tmp := path.Join(j.remote, layout.UploadName(j.name, d.cfg.Instance))

	taken, err := nameTaken(c, final)
	if err != nil {
		return err
	}
	if taken {
		return d.trim(c, j, final)
	}
	if err := d.makeDirs(c, j.remote); err != nil {
		return err
	}
	if err := storeSpoolFile(c, j, tmp, d.storeRefusal); err != nil {
		return err
	}
	// A marker line for the name, while no file has it, describes a file
	// deleted on the server ("rm *" leaves the hidden marker): once this file
	// has the name, readers would take the line for its offsets.
	if err := d.forgetLine(c, j.remote, j.name); err != nil {
		return err
	}
	// Checked again right before the rename: RNTO replaces a file on most
	// servers, and another instance may have taken the name meanwhile.
	if taken, err = nameTaken(c, final); err != nil {
		return err
	}
	if taken {
		if derr := c.Delete(tmp); derr != nil && connBroken(derr) {
			return derr
		}
		return d.trim(c, j, final)
	}
	if err := c.Rename(tmp, final); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, j.name, d.storeRefusal(err))
	}
	if err := d.recordRanges(c, j.remote, map[string][]offsets.Range{j.name: j.ranges}); err != nil {
		return err
	}
	if err := d.appendJournal(filepath.Dir(j.local), j); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A spool folder removed since, its journal with it, does not fail
		// an upload the server holds: the journal is only a hint.
		return fmt.Errorf("recording the upload in the spool: %w", err)
	}
	if err := os.Remove(j.local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting uploaded spool file: %w", err)
	}
	return nil
}

// nameTaken reports whether a file named p exists on the server.
func nameTaken(c *jftp.ServerConn, p string) (bool, error) {
	_, err := c.FileSize(p)
	switch {
	case err == nil:
		return true, nil
	case connBroken(err):
		return false, fmt.Errorf("checking whether %s exists: %w", p, err)
	}
	return false, nil
}

// trim handles a final name taken by another file, another writer's or an
// earlier attempt's: the batches the server's final files hold (the taken
// one read from the marker, or downloaded when the marker does not list it)
// are cut from the spool copy, which is queued again under the name of its
// new first offset, or deleted when nothing is left. The taken file is never
// replaced; when the marker did not list it, it is added.
func (d *Destination) trim(c *jftp.ServerConn, j *job, final string) error {
	held, unlisted, err := d.remoteFiles(c, j.remote, "", true)
	if err != nil {
		return err
	}
	if len(unlisted) > 0 {
		if err := d.recordRanges(c, j.remote, unlisted); err != nil {
			return err
		}
	}
	name := j.name
	// By record: the taken file may end inside the first batch.
	done, err := d.cut(j, held, true)
	switch {
	case err != nil:
		return fmt.Errorf("%s already exists on the server, and cutting what the server holds from the spool copy %s failed: %w", final, j.local, err)
	case done:
		return nil // the server holds every record of it
	case j.name == name:
		return fmt.Errorf("%s already exists on the server and the first batch of the spool copy %s is only partly on the server: not replacing it; compare them and move one away", final, j.local)
	}
	return d.upload(c, j)
}

// cut cuts from j's spool copy the batches whose offsets held covers
// (rolling.TrimCovered) and makes j the upload of what is left, under the
// name of its first offset. done is true when nothing is left. With
// records, a batch only partly held loses its held records
// (rolling.TrimCoveredRecords).
func (d *Destination) cut(j *job, held []offsets.Range, records bool) (done bool, err error) {
	hs := offsets.SetOf(held)
	if _, err := os.Stat(j.local); errors.Is(err, fs.ErrNotExist) {
		// Removed from the spool (its folder deleted): done if the
		// server holds all of it, else lost.
		for _, r := range j.ranges {
			if !hs.Covers(r.First, r.Last) {
				return false, fmt.Errorf("%w: %w", errSpoolFileGone, err)
			}
		}
		return true, nil
	}
	spoolDir := filepath.Dir(j.local)
	f := rolling.File{Path: j.local, Name: j.name, Ranges: j.ranges, Bytes: j.size}
	trim := rolling.TrimCovered
	if records {
		trim = rolling.TrimCoveredRecords
	}
	t, ok, err := trim(f, func(r offsets.Range) bool { return hs.Covers(r.First, r.Last) },
		func(name string) string { return filepath.Join(spoolDir, name) })
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil // the spool copy is deleted
	}
	d.mu.Lock()
	delete(d.queued, j.local)
	d.queued[t.Path] = true
	d.spool += t.Bytes - j.size
	d.mu.Unlock()
	j.local, j.name, j.size, j.ranges = t.Path, t.Name, t.Bytes, t.Ranges
	return false, nil
}

// cutHeld cuts from j's spool copy the batches that other final files on the
// server already hold, by the folder's marker: another instance backed up
// the same records when a rebalance moved the partition while this one still
// had the file open. done is true when nothing of it is left to upload.
// Files the marker does not list are not read; a taken name is still caught
// by upload.
func (d *Destination) cutHeld(c *jftp.ServerConn, j *job) (done bool, err error) {
	held, _, err := d.remoteFiles(c, j.remote, j.name, false)
	if err != nil {
		return false, err
	}
	if !offsets.Overlap(held, j.ranges) {
		return false, nil
	}
	if done, err = d.cut(j, held, false); err != nil {
		return false, fmt.Errorf("cutting from %s the records the server holds already: %w", j.local, err)
	}
	return done, nil
}

// makeDirs creates dir and its parents, ignoring "exists" refusals: servers
// answer those with 550, 521 or 553 alike, so success is judged by the
// upload that follows.
func (d *Destination) makeDirs(c *jftp.ServerConn, dir string) error {
	var p string
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if strings.HasPrefix(dir, "/") || p != "" {
			p += "/"
		}
		p += part
		if err := c.MakeDir(p); err != nil && connBroken(err) {
			return fmt.Errorf("creating folder %s: %w", p, err)
		}
	}
	return nil
}

// storeSpoolFile uploads the spool file of j as tmp and checks the server
// holds all its bytes; refusal wraps the error of the upload.
func storeSpoolFile(c *jftp.ServerConn, j *job, tmp string, refusal func(error) error) error {
	f, err := os.Open(j.local)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", errSpoolFileGone, err)
	}
	if err != nil {
		return fmt.Errorf("opening spool file: %w", err)
	}
	err = c.Stor(tmp, bufio.NewReaderSize(f, 256<<10))
	f.Close()
	if err != nil {
		return fmt.Errorf("storing %s: %w", tmp, refusal(err))
	}
	size, err := c.FileSize(tmp)
	if err != nil {
		return fmt.Errorf("checking the size of %s: %w", tmp, err)
	}
	if size != j.size {
		return fmt.Errorf("%s has %d bytes on the server, %d were sent: retrying", tmp, size, j.size)
	}
	return nil
}
