package tests

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/segment"
)

// The plain config (issue 13): the shortest config that works, nothing
// tuned. Over a backlog on several partitions it must give one file per
// partition, in offset order, and never count a batch out of order.

// plainInputs are the plain configs of the two Kafka inputs: the fields a new
// user writes and nothing else (redpanda needs start_offset to read a
// backlog from the start; kafka_franz does by default).
var plainInputs = map[string]string{
	"kafka_franz": `  kafka_franz:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
`,
	"redpanda": `  redpanda:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
    start_offset: earliest
`,
}

func TestPlainConfigKafkaFranz(t *testing.T) { testPlainConfig(t, "kafka_franz") }

func TestPlainConfigRedpanda(t *testing.T) { testPlainConfig(t, "redpanda") }

func testPlainConfig(t *testing.T, input string) {
	t.Parallel()
	needKcat(t)
	const topic, parts, perPartition = "plain", 6, 4000
	b := startBroker(t, parts, topic)
	for p := int32(0); p < parts; p++ {
		lines := make([]string, perPartition)
		for i := range lines {
			lines[i] = fmt.Sprintf("key-%d-%d\t%d-%d-%s", p, i, p, i, strings.Repeat("v", 100+i%200))
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true})
	}
	truth := b.groundTruth(topic, parts)

	dir := t.TempDir()
	port := freePort(t)
	group := "plain-" + input
	// The plain config, with the HTTP server on for /metrics.
	cfg := fmt.Sprintf("http:\n  enabled: true\n  address: 127.0.0.1:%d\ninput:\n", port) +
		fmt.Sprintf(plainInputs[input], b.addr, topic, group) +
		fmt.Sprintf("output:\n  kafka_backup:\n    path: %q\n", dir)
	p := runBackup(t, "plain-"+input, cfg)
	waitCommitted(t, b, group, parts, []string{topic}, p)

	var outOfOrder, written float64
	waitFor(t, "/metrics with every record written", func() (bool, string) {
		code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /metrics: %d %v", code, err)
		}
		ps, err := parseProm(body)
		if err != nil {
			return false, err.Error()
		}
		s := scrape(ps)
		if len(s.family("kafka_backup_out_of_order_batches")) == 0 {
			return false, "no kafka_backup_out_of_order_batches in /metrics"
		}
		outOfOrder = s.sum("kafka_backup_out_of_order_batches", nil)
		written = s.sum("kafka_backup_records_written", nil)
		return written == parts*perPartition, fmt.Sprintf("%v of %d records written", written, parts*perPartition)
	}, p)
	if outOfOrder != 0 {
		t.Errorf("kafka_backup_out_of_order_batches is %v after a backlog read from the start, want 0", outOfOrder)
	}
	p.stop()
	if strings.Contains(p.logs(), "arrived after offset") {
		t.Errorf("the log warns of batches out of order")
	}

	bk := verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: truth}})
	for part := int32(0); part < parts; part++ {
		files := bk.files[topic][part]
		if len(files) != 1 {
			var names []string
			for _, f := range files {
				names = append(names, fmt.Sprintf("%d..%d", f.recs[0].Offset, f.recs[len(f.recs)-1].Offset))
			}
			t.Errorf("%s/%d: %d files (%s), want one: the plain config leaves a partition's backlog in one file", topic, part, len(files), strings.Join(names, ", "))
			continue
		}
		for i, r := range files[0].recs {
			if r.Offset != int64(i) {
				t.Errorf("%s/%d: record %d of the file has offset %d: not in offset order", topic, part, i, r.Offset)
				break
			}
		}
	}
}

// TestCreateKafkaBackup: `kafka-backup create <input>//kafka_backup` prints a
// config that lints and, with the environment variables it names, backs up a
// topic; `kafka-backup --help` describes this binary.
func TestCreateKafkaBackup(t *testing.T) {
	t.Parallel()
	needKcat(t)
	out, code := kb(t, "--help")
	if first, _, _ := strings.Cut(strings.TrimPrefix(out, "NAME:\n"), "\n"); code != 0 || strings.Contains(out, "mundane") || !strings.Contains(first, "kafka-backup - back up Kafka topics") {
		t.Errorf("kafka-backup --help (exit %d) does not describe kafka-backup: first line %q", code, first)
	}
	for _, cmd := range []string{"create", "restore", "verify", "ls", "demo"} {
		if !strings.Contains(out, "\n   "+cmd+" ") {
			t.Errorf("kafka-backup --help does not list the %s command:\n%s", cmd, out)
		}
	}

	const topic, parts, perPartition = "created", 2, 300
	b := startBroker(t, parts, topic)
	for p := int32(0); p < parts; p++ {
		lines := make([]string, perPartition)
		for i := range lines {
			lines[i] = fmt.Sprintf("key-%d\tvalue-%d-%d", i, p, i)
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true})
	}
	truth := b.groundTruth(topic, parts)
	for _, input := range []string{"kafka_franz", "redpanda"} {
		t.Run(input, func(t *testing.T) {
			cfg, code := kb(t, "create", input+"//kafka_backup")
			if code != 0 {
				t.Fatalf("kafka-backup create %s//kafka_backup: exit %d:\n%s", input, code, cfg)
			}
			path := filepath.Join(t.TempDir(), "created.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, code := kb(t, "lint", path); code != 0 || strings.TrimSpace(out) != "" {
				t.Fatalf("the created config does not lint (exit %d): %s\n%s", code, out, cfg)
			}
			dir := t.TempDir()
			group := "created-" + input
			p := runBinaryEnv(t, kbBin, "created-"+input, cfg, []string{
				"KAFKA_BROKERS=" + b.addr, "BACKUP_TOPICS=" + topic, "BACKUP_GROUP=" + group, "BACKUP_PATH=" + dir,
			})
			waitCommitted(t, b, group, parts, []string{topic}, p)
			p.stop()
			verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: truth}})
		})
	}
}
