package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// TestFaultRecreatedNoteSurvivesSpoolLoss: Issue 12 row 3 through an FTP
// destination whose spool does not outlive the process (a container's
// emptyDir), with start_offset: latest. A partition refused as recreated
// keeps its note on the server. After a restart with an empty spool the new
// topic is read from its end, which is past what the old files hold, so no
// record comes at a persisted offset and nothing is compared. The server's
// note must still refuse the partition: the new topic's records must not be
// acknowledged into the old topic's folder.
func TestFaultRecreatedNoteSurvivesSpoolLoss(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftpd.StartVsftpd(t, ftpd.Options{})
	logServerOnFailure(t, srv)
	const topic, group = "recreate", "recreate-spool"
	const remote = "/backups/recreate"
	b := startBroker(t, 1, topic)
	spool := filepath.Join(t.TempDir(), "spool")
	dir := srv.Path(remote)
	cfg := strings.Replace(backupConfig(crashInput(b, group, topic), remote, "    roll_duration: 300ms\n"+ftpFS(srv, ftpOpts{spool: spool})),
		"shutdown_timeout: 30s", "shutdown_timeout: 5s", 1)
	latest := strings.Replace(cfg, "start_offset: earliest", "start_offset: latest", 1)

	b.produce(topic, 0, kcatRun{Lines: recreateLines(300)})
	first := runBackupEnv(t, "first", cfg, ftpEnv(srv))
	waitFinalRecords(t, dir, 300, first)
	waitFor(t, "an empty spool", func() (bool, string) {
		left := spoolLeftovers(spool)
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, first)
	waitCommitted(t, b, group, 1, []string{topic}, first)
	first.stop()

	recreateTopic(t, b, topic, 1)
	b.produce(topic, 0, kcatRun{Lines: recreateLines(200)})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	refused := regexp.MustCompile(`level=error.*recreate/0.*recreated`)
	// Records produced while it runs land at 200-299, which the old files
	// hold: compared, refused, the note kept on the server.
	second := runBackupEnv(t, "second", latest, ftpEnv(srv))
	produced := 200
	waitFor(t, "the output to refuse the recreated topic's partition", func() (bool, string) {
		if produced < 290 {
			produced += b.produce(topic, 0, kcatRun{Lines: recreateLines(5)})
		}
		return refused.MatchString(second.logs()), fmt.Sprintf("no error naming the recreation logged yet; %d produced", produced)
	}, second)
	second.stop()
	if _, err := os.Stat(filepath.Join(dir, topic, "0", recreatedNote)); err != nil {
		t.Fatalf("no note on the server: %v", err)
	}

	// The spool is lost; the new topic grows past the old one's end.
	if err := os.RemoveAll(spool); err != nil {
		t.Fatal(err)
	}
	produced += b.produce(topic, 0, kcatRun{Lines: recreateLines(320 - produced)})
	third := runBackupEnv(t, "third", latest, ftpEnv(srv))
	waitFor(t, "the output to refuse the partition the server's note refuses, or the group to commit it", func() (bool, string) {
		got, err := committed(cl, group, topic, 1)
		if err != nil {
			return false, err.Error()
		}
		if off, ok := got[0]; ok && off > 320 {
			t.Fatalf("the group committed offset %d: the new topic's records from 320 on were acknowledged into the old topic's folder despite the note on the server", off)
		}
		if produced < 400 {
			produced += b.produce(topic, 0, kcatRun{Lines: recreateLines(5)})
		}
		return refused.MatchString(third.logs()), fmt.Sprintf("no error naming the recreation logged yet; committed %v", got)
	}, third)
	third.stop()
}
