package ftp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
)

// journalScope is the first line of every journal of this destination:
// server, user and remote folder (never the password).
func (d *Destination) journalScope() string {
	return layout.JournalHeader(fmt.Sprintf("ftp://%s@%s%s", d.cfg.User, d.cfg.Addr, path.Join("/", d.cfg.Root)))
}

func (d *Destination) appendJournal(dir string, j *job) error {
	f, err := os.OpenFile(filepath.Join(dir, layout.JournalName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line := layout.FormatRangeLine(j.name, j.ranges)
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		line = d.journalScope() + line
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

// checkJournals removes, with a warning, the journals in the spool that
// belong to another destination (another server, user or path) or name none
// (written by an older version): the spool was used for another backup, and
// what its journals list says nothing about this one.
func (d *Destination) checkJournals() error {
	scope := d.journalScope()
	others := map[string][]string{} // scope line → journals
	err := filepath.WalkDir(d.cfg.Spool, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != layout.JournalName {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if first+"\n" == scope || len(data) == 0 {
			return nil
		}
		others[first] = append(others[first], p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the upload journals in the spool %s: %w", d.cfg.Spool, err)
	}
	for first, paths := range others {
		of := "a destination it does not name (an older kafka-backup)"
		if s, ok := strings.CutPrefix(first, layout.JournalHeaderPrefix); ok {
			of = "another destination, " + s
		}
		d.obs.Warn(fmt.Errorf("the spool %s holds %d upload journals (%s) of %s, not of this one, %s: not trusted, removed; the server decides what is backed up",
			d.cfg.Spool, len(paths), layout.JournalName, of, strings.TrimSpace(strings.TrimPrefix(scope, layout.JournalHeaderPrefix))))
		for _, p := range paths {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing the journal of another destination: %w", err)
			}
		}
	}
	return nil
}

// checkJournal compares a partition's journal with what the server holds:
// files the journal says this spool uploaded whose offsets the server does
// not hold are reported, and the journal is rewritten with the files the
// server confirms. Files wholly below prunedBelow were deleted by a prune:
// they are dropped from the journal without a word.
func (d *Destination) checkJournal(spoolDir, topic string, partition int32, held []offsets.Range, prunedBelow int64) {
	p := filepath.Join(spoolDir, layout.JournalName)
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	var gone []string
	var kept strings.Builder
	kept.WriteString(d.journalScope())
	journal := layout.ParseRanges(data)
	names := make([]string, 0, len(journal))
	for n := range journal {
		names = append(names, n)
	}
	sort.Strings(names)
	hs := offsets.SetOf(held)
	for _, n := range names {
		rs := journal[n]
		if rs[len(rs)-1].Last < prunedBelow {
			continue // pruned
		}
		ok := true
		for _, r := range rs {
			ok = ok && hs.Covers(r.First, r.Last)
		}
		if !ok {
			gone = append(gone, strings.TrimSpace(layout.FormatRangeLine(n, rs)))
			continue
		}
		kept.WriteString(layout.FormatRangeLine(n, rs))
	}
	if len(gone) == 0 {
		return
	}
	d.obs.Warn(fmt.Errorf("%s/%d: %d files this spool uploaded to %s are not on the server any more (name and offsets: %s): deleted or moved there? Records delivered again are backed up again; offsets not delivered again are missing from the backup unless restored to the server",
		topic, partition, len(gone), d.cfg.Addr, strings.Join(gone, "; ")))
	tmp := filepath.Join(spoolDir, layout.JournalTempName)
	if err := os.WriteFile(tmp, []byte(kept.String()), 0o644); err == nil {
		_ = os.Rename(tmp, p)
	}
}
