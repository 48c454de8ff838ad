package plugin

import (
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/rolling"
)

// TestMetadataBlock: without the block no Snapshotter; with it one whose
// observer sees the topics written; a bad expression or SASL entry names
// the field.
func TestMetadataBlock(t *testing.T) {
	env := testEnv(t)
	build := func(yml string) (*rolling.Config, bool, error) {
		t.Helper()
		parsed, err := OutputSpec().ParseYAML(yml, env)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := rollingConfig(parsed)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := newSnapshotter(parsed, service.MockResources(), &cfg, nil)
		if snap != nil {
			defer snap.Close(t.Context())
		}
		return &cfg, snap != nil, err
	}
	if cfg, on, err := build("path: /b\n"); err != nil || on || cfg.Observer != nil {
		t.Fatalf("without the block: %v %v", err, on)
	}
	cfg, on, err := build(`path: /b
metadata:
  seed_brokers: ["a:9092,b:9092"]
  consumer_groups: ["orders-.*"]
  sasl: [{mechanism: SCRAM-SHA-256, username: u, password: p}]
  tls: {enabled: true}
`)
	if err != nil || !on {
		t.Fatalf("with the block: %v %v", err, on)
	}
	if _, ok := cfg.Observer.(topicObserver); !ok {
		t.Errorf("observer %T", cfg.Observer)
	}
	cfg.Observer.Written("orders", 0, 1, 10) // passes on to the metrics observer
	if _, _, err := build("path: /b\nmetadata:\n  seed_brokers: [a:9092]\n  consumer_groups: [\"(\"]\n"); err == nil || !strings.Contains(err.Error(), "metadata.consumer_groups") {
		t.Errorf("bad expression: %v", err)
	}
	if _, _, err := build("path: /b\nmetadata:\n  seed_brokers: [a:9092]\n  interval: 0s\n"); err == nil || !strings.Contains(err.Error(), "metadata.interval") {
		t.Errorf("interval 0: %v", err)
	}
}
