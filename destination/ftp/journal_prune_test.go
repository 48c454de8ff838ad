package ftp_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// TestJournalAfterPrune: files this spool uploaded that a prune deleted
// since (below the partition's prune note) are not reported as missing from
// the server: the prune deleted them on purpose.
func TestJournalAfterPrune(t *testing.T) {
	srv := ftptest.Start(t)
	spool := t.TempDir()
	jdir := filepath.Join(spool, "test", "0")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	scope := layout.JournalHeader("ftp://" + srv.User + "@" + srv.Addr + "/backup/10MB")
	if err := os.WriteFile(filepath.Join(jdir, layout.JournalName), []byte(scope+"0 0-99\n100 100-199\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := srv.LocalPath("/backup/10MB/test/0")
	if err := os.MkdirAll(remote, 0o755); err != nil {
		t.Fatal(err)
	}
	note := layout.Pruned{Below: 100, Time: time.Now(), Cutoff: time.Now()}.Format()
	if err := os.WriteFile(filepath.Join(remote, layout.PrunedNote), note, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool })
	if _, err := r.dest.Persisted(context.Background(), "test", 0); err != nil {
		t.Fatal(err)
	}
	r.ev.mu.Lock()
	warnings := append([]string(nil), r.ev.warnings...)
	r.ev.mu.Unlock()
	if len(warnings) != 1 || strings.Contains(warnings[0], "0 0-99") || !strings.Contains(warnings[0], "100 100-199") {
		t.Errorf("warnings %q, want one, about file 100 only (file 0 was pruned)", warnings)
	}
}
