package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWarnUncommittedResourceFile: the Kafka input reading uncommitted
// records is in a resources file (-r), the kafka_backup output in the main
// config: lint warns as it does when both are in one file.
func TestWarnUncommittedResourceFile(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "res.yaml")
	main := filepath.Join(dir, "main.yaml")
	os.WriteFile(res, []byte("input_resources:\n  - label: src\n    redpanda:\n      seed_brokers: [localhost:9092]\n      topics: [t]\n      consumer_group: g\n"), 0o644)
	os.WriteFile(main, []byte("input:\n  resource: src\noutput:\n  kafka_backup:\n    path: /b\n"), 0o644)
	for _, args := range [][]string{
		{"lint", "-r", res, main},
		{"lint", "--resources", res, main},
		{"lint", "--resources=" + res, main},
	} {
		var b strings.Builder
		warnUncommittedOnLint(&b, args)
		if !strings.Contains(b.String(), "input_resources") || !strings.Contains(b.String(), "read_committed") {
			t.Errorf("%q: warnings %q, want one about the redpanda input of %s", args, b.String(), res)
		}
	}
	// A resources file feeding no kafka_backup: no warning.
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("input:\n  resource: src\noutput:\n  stdout: {}\n"), 0o644)
	var b strings.Builder
	warnUncommittedOnLint(&b, []string{"lint", "-r", res, other})
	if b.String() != "" {
		t.Errorf("warnings %q for a config without kafka_backup", b.String())
	}
}
