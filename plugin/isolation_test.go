package plugin

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestUncommittedInputs(t *testing.T) {
	t.Setenv("KB_TEST_ISOLATION", "read_committed")
	for _, c := range []struct {
		name, conf string
		want       []string // inputs warned about, in order
	}{
		{"redpanda default", "input: {redpanda: {topics: [a]}}\noutput: {kafka_backup: {path: /b}}", []string{"input.redpanda "}},
		{"kafka_franz uncommitted", "input: {kafka_franz: {transaction_isolation_level: read_uncommitted}}\noutput: {kafka_backup: {path: /b}}", []string{"input.kafka_franz "}},
		{"committed", "input: {redpanda: {transaction_isolation_level: read_committed}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"committed from env", "input: {redpanda: {transaction_isolation_level: '${KB_TEST_ISOLATION}'}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"env default", "input: {redpanda: {transaction_isolation_level: '${KB_TEST_UNSET:read_committed}'}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"env default uncommitted", "input: {redpanda: {transaction_isolation_level: '${KB_TEST_UNSET:read_uncommitted}'}}\noutput: {kafka_backup: {path: /b}}", []string{"input.redpanda "}},
		{"empty component", "input: {redpanda: }\noutput: {kafka_backup: {path: /b}}", []string{"input.redpanda "}},
		{"no kafka_backup", "input: {redpanda: {topics: [a]}}\noutput: {drop: {}}", nil},
		{"other input", "input: {stdin: {}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"nested", `
input:
  broker:
    inputs:
      - redpanda: {transaction_isolation_level: read_committed}
      - kafka_franz: {}
input_resources:
  - label: more
    redpanda: {}
output:
  switch:
    cases:
      - output: {kafka_backup: {path: /b}}
`, []string{"input.broker.inputs[1].kafka_franz ", "input_resources[0].redpanda "}},
		{"kafka_franz output is no input", "input: {stdin: {}}\noutput: {broker: {outputs: [{kafka_backup: {path: /b}}, {kafka_franz: {}}]}}", nil},
	} {
		var conf map[string]any
		if err := yaml.Unmarshal([]byte(c.conf), &conf); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := UncommittedInputs(conf)
		if len(got) != len(c.want) {
			t.Errorf("%s: warnings %q, want %d", c.name, got, len(c.want))
			continue
		}
		for i, w := range got {
			if !strings.HasPrefix(w, c.want[i]) || !strings.Contains(w, "set transaction_isolation_level: read_committed") {
				t.Errorf("%s: warning %q, want one about %s and the fix", c.name, w, c.want[i])
			}
		}
	}
}

// TestSmallBatchInputs: a redpanda input feeding kafka_backup with its
// 32KB batches is warned about, naming the fix; set, or from kafka_franz,
// or without kafka_backup, it is not.
func TestSmallBatchInputs(t *testing.T) {
	t.Setenv("KB_TEST_YIELD", "4MiB")
	for _, c := range []struct {
		name, conf string
		want       []string // inputs warned about, in order
	}{
		{"plain redpanda", "input: {redpanda: {topics: [a]}}\noutput: {kafka_backup: {path: /b}}", []string{"input.redpanda "}},
		{"the default written", "input: {redpanda: {max_yield_batch_bytes: 32KB}}\noutput: {kafka_backup: {path: /b}}", []string{"input.redpanda "}},
		{"set", "input: {redpanda: {max_yield_batch_bytes: 4MiB}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"set from env", "input: {redpanda: {max_yield_batch_bytes: '${KB_TEST_YIELD}'}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"kafka_franz", "input: {kafka_franz: {topics: [a]}}\noutput: {kafka_backup: {path: /b}}", nil},
		{"no kafka_backup", "input: {redpanda: {topics: [a]}}\noutput: {drop: {}}", nil},
		{"nested", "input: {broker: {inputs: [{redpanda: {max_yield_batch_bytes: 1MiB}}, {redpanda: {}}]}}\noutput: {kafka_backup: {path: /b}}", []string{"input.broker.inputs[1].redpanda "}},
	} {
		var conf map[string]any
		if err := yaml.Unmarshal([]byte(c.conf), &conf); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := SmallBatchInputs(conf)
		if len(got) != len(c.want) {
			t.Errorf("%s: warnings %q, want %d", c.name, got, len(c.want))
			continue
		}
		for i, w := range got {
			if !strings.HasPrefix(w, c.want[i]) || !strings.Contains(w, "set max_yield_batch_bytes: 4MiB") {
				t.Errorf("%s: warning %q, want one about %s and the fix", c.name, w, c.want[i])
			}
		}
	}
}

// TestConfigExamplesReadCommitted: every example config, Kubernetes ones
// included, reads committed records only, in batches made for a backup.
func TestConfigExamplesReadCommitted(t *testing.T) {
	configs := benthosConfigs(t, "../config")
	for _, f := range yamlFiles(t, "../config/kubernetes") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decodeObjects(t, b) {
			for key, data := range o.Data {
				configs[f+", ConfigMap "+o.Metadata.Name+", "+key] = []byte(data)
			}
		}
	}
	n := 0
	for path, b := range configs {
		var conf map[string]any
		if err := yaml.Unmarshal(b, &conf); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !hasKey(conf["output"], "kafka_backup") {
			continue
		}
		n++
		for _, w := range append(UncommittedInputs(conf), SmallBatchInputs(conf)...) {
			t.Errorf("%s: %s", path, w)
		}
	}
	if n < 6 {
		t.Errorf("%d example configs back up, want at least 6", n)
	}
}
