package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFaultFinalFilesRemovedReported: a cleanup job deletes a partition
// folder holding only final files (every file rolled, none open) while the
// backup runs. Their records were acknowledged and the group committed past
// them: they are gone from the backup for good. The output must say so,
// naming the offsets, instead of making the folder again in silence.
func TestFaultFinalFilesRemovedReported(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "finalgone"
	b := startBroker(t, 1, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	b.produce(topic, 0, kcatRun{Lines: numbered("before", 100)})
	p := runBackup(t, "finalgone", backupConfig(redpandaInput(b, "finalgone-group", topic), dir, "    roll_duration: 200ms\n"))
	waitCommitted(t, b, "finalgone-group", 1, []string{topic}, p)
	pdir := filepath.Join(dir, topic, "0")
	waitFor(t, "every file of the partition final", func() (bool, string) {
		es, _ := os.ReadDir(pdir)
		for _, e := range es {
			if e.Name()[0] == '.' {
				return false, "in-progress " + e.Name()
			}
		}
		return len(es) > 0, fmt.Sprint(len(es), " files")
	}, p)
	if err := os.RemoveAll(pdir); err != nil {
		t.Fatal(err)
	}
	b.produce(topic, 0, kcatRun{Lines: numbered("after", 20)})
	lost := regexp.MustCompile(`level=error[^\n]*offsets 0-99 of ` + topic + `/0[^\n]*LOST`)
	waitFor(t, "an error naming offsets 0-99 as lost", func() (bool, string) {
		return lost.MatchString(p.logs()), "not logged yet"
	}, p)
	waitCommitted(t, b, "finalgone-group", 1, []string{topic}, p)
	p.stop()
	if n, _ := countRecords(dir); n != 20 {
		t.Fatalf("%d records in files after the deletion, want the 20 produced after it", n)
	}
}

// TestFaultVerifyMissingSelectedPartition: verify --partition naming one
// partition the backup has and one it lacks must not say OK, as it does not
// for a --topic the backup lacks.
func TestFaultVerifyMissingSelectedPartition(t *testing.T) {
	t.Parallel()
	full := faultTree(t, t.TempDir(), "m")
	r, _ := faultRun(t, "", waitTimeout, nil, "verify", "--partition", "0", "--partition", "7", full)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "partition 7") {
		t.Errorf("verify --partition 0 --partition 7 of a backup without partition 7: exit %d, want 1 naming partition 7\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r, _ := faultRun(t, "", waitTimeout, nil, "verify", "--allow-empty", "--partition", "0", "--partition", "7", full); r.code != 0 {
		t.Errorf("the same with --allow-empty: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
}
