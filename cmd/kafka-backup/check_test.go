package main

import (
	"reflect"
	"testing"
)

// node stands for the YAML node a parsed config keeps a component as.
type node struct{ v any }

func (n node) Decode(v any) error {
	*(v.(*any)) = n.v
	return nil
}

// TestWalkConfig: every franz-go component is found with its path, inside
// YAML nodes, lists and nested components; others are not.
func TestWalkConfig(t *testing.T) {
	root := map[string]any{
		"input": node{map[string]any{"broker": map[string]any{"inputs": []any{
			map[string]any{"redpanda": map[string]any{"metadata_max_age": "2s"}},
			map[string]any{"kafka_franz": map[string]any{"metadata_max_age": "1m"}},
		}}}},
		"output":           node{map[string]any{"kafka_backup": map[string]any{"path": "/b"}}},
		"output_resources": []node{{map[string]any{"kafka_franz": map[string]any{"metadata_max_age": "1s"}}}},
		"http":             map[string]any{"address": "x"},
	}
	got := map[string]any{}
	walkConfig("", plain(root), func(path string, fields map[string]any) { got[path] = fields["metadata_max_age"] })
	want := map[string]any{
		"input.broker.inputs.0.redpanda":    "2s",
		"input.broker.inputs.1.kafka_franz": "1m",
		"output_resources.0.kafka_franz":    "1s",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("found %v, want %v", got, want)
	}
}
