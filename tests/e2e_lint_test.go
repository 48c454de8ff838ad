package tests

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kb runs the kafka-backup binary with args and returns its combined output
// and exit code.
func kb(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, kbBin, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("kafka-backup %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", 0
	}
}

// lintConfig is a config with a redpanda input (no broker needed to lint)
// and a kafka_backup output with the given fields, indented by four spaces.
func lintConfig(fields string) string {
	return `input:
  redpanda:
    seed_brokers: ["127.0.0.1:9092"]
    topics: ["test", "my.dotted.topic"]
    consumer_group: backup
    transaction_isolation_level: read_committed
    max_yield_batch_bytes: 4MiB
    partition_buffer_bytes: 2MiB
output:
  kafka_backup:
    path: /backups
` + fields
}

// TestLintBadConfigs checks `kafka-backup lint` rejects each bad field with a
// non-zero exit and a message naming the field and the bad value.
func TestLintBadConfigs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, fields string
		want         []string // in the output, all of them
	}{
		{"size zero", "    size: 0MB\n", []string{"size:", `"0MB"`}},
		{"size lower-case unit", "    size: 10mb\n", []string{"size:", `"10mb"`}},
		{"roll_duration weeks", "    roll_duration: 3 weeks\n", []string{"roll_duration:", `"3 weeks"`}},
		{"fs schema s3", "    fs: {schema: s3}\n", []string{"fs.schema:", `"s3"`}},
		{"offset_from bad partition", "    offset_from: {\"test:x\": 1}\n", []string{"offset_from:", `"test:x"`}},
		{"offset_from negative", "    offset_from: {test: -1}\n", []string{"offset_from:", "-1"}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(lintConfig(c.fields)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := kb(t, "lint", path)
			if code == 0 {
				t.Errorf("lint exited 0 on %q:\n%s", c.fields, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("lint output does not mention %s:\n%s", w, out)
				}
			}
		})
	}
}

// TestLintGoodConfig checks `kafka-backup lint` accepts a config setting
// every kafka_backup field.
func TestLintGoodConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "good.yaml")
	cfg := lintConfig(`    fs: {schema: local}
    size: 10MB
    roll_duration: 3s
    max_age: 1day
    compression: zstd
    fsync: roll
    naming: kafka
    max_in_flight: 4
    offset_from:
      test: 101
      "test:0": 50
      "my.dotted.topic:1": 10
`)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := kb(t, "lint", path); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("lint: exit %d on a good config:\n%s\n%s", code, cfg, out)
	}
}

// TestLintWarnsSmallBatches checks `kafka-backup lint` accepts a redpanda
// input left at its 32KB batches but warns, naming the field and the fix.
func TestLintWarnsSmallBatches(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "small.yaml")
	cfg := strings.Replace(lintConfig(""), "    max_yield_batch_bytes: 4MiB\n", "", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := kb(t, "lint", path)
	if code != 0 {
		t.Errorf("lint: exit %d on a config that is slow but valid:\n%s", code, out)
	}
	for _, w := range []string{"warning", "input.redpanda", "max_yield_batch_bytes: 4MiB"} {
		if !strings.Contains(out, w) {
			t.Errorf("lint output does not mention %s:\n%s", w, out)
		}
	}
}

// TestE2EListAndVersion checks `kafka-backup list` shows kafka_backup next to
// the stock Kafka components and `--version` works.
func TestE2EListAndVersion(t *testing.T) {
	t.Parallel()
	out, code := kb(t, "list", "outputs")
	if code != 0 || !strings.Contains(out, "kafka_backup") || !strings.Contains(out, "kafka_franz") {
		t.Errorf("list outputs: exit %d, kafka_backup or kafka_franz missing:\n%s", code, out)
	}
	// kafka_franz is a deprecated input, which list leaves out.
	out, code = kb(t, "list", "inputs")
	if code != 0 || !strings.Contains(out, "redpanda") {
		t.Errorf("list inputs: exit %d, redpanda missing:\n%s", code, out)
	}
	out, code = kb(t, "--version")
	if code != 0 || !strings.Contains(out, "Version:") {
		t.Errorf("--version: exit %d:\n%s", code, out)
	}
}
