package ftp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	jftp "github.com/jlaffaye/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
)

// PublishMetadata queues a metadata snapshot of the spool (local, under its
// final name) for upload to <Root>/@metadata/<name>. It goes through the
// upload queue as data files do, with their retries and the spool's
// accounting, and is uploaded the same way (uploadMetadata). It returns once
// the file is queued.
func (d *Destination) PublishMetadata(local, name string) error {
	st, err := os.Stat(local)
	if err != nil {
		return err
	}
	d.enqueue(&job{local: local, remote: path.Join(d.cfg.Root, layout.MetadataDir), name: name, size: st.Size(), meta: true})
	return nil
}

// uploadMetadata uploads a snapshot: stored under a hidden temporary name,
// its size checked, renamed to its final name (never replacing a file of
// that name: snapshot names hold the instance and the time, so a taken name
// is this file, uploaded by an attempt whose reply was lost), then deleted
// from the spool. No marker or journal is kept for snapshots. A refusal of
// the server is not turned into the destination's (*Refusal, which stops
// acknowledging records): a snapshot that cannot be stored is retried and
// counted as a failed upload, and never stops the data path.
func (d *Destination) uploadMetadata(c *jftp.ServerConn, j *job) error {
	final := path.Join(j.remote, j.name)
	tmp := path.Join(j.remote, layout.UploadName(j.name, d.cfg.Instance))
	taken, err := nameTaken(c, final)
	if err != nil {
		return err
	}
	if !taken {
		if err := d.makeDirs(c, j.remote); err != nil {
			return err
		}
		if err := storeSpoolFile(c, j, tmp, func(err error) error { return err }); err != nil {
			return err
		}
		if err := c.Rename(tmp, final); err != nil {
			return fmt.Errorf("renaming %s to %s: %w", tmp, j.name, err)
		}
	}
	if err := os.Remove(j.local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting uploaded spool file: %w", err)
	}
	return nil
}
