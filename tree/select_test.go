package tree_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/tree"
)

func TestSelectPartitions(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/0", "a/1", "b/0", "b/2"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := tree.Open(context.Background(), root, tree.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, c := range []struct {
		f    tree.Filter
		want []tree.PartitionName
	}{
		{tree.Filter{}, []tree.PartitionName{{"a", 0}, {"a", 1}, {"b", 0}, {"b", 2}}},
		{tree.Filter{Topics: []string{"b", "b"}}, []tree.PartitionName{{"b", 0}, {"b", 2}}},
		{tree.Filter{Partitions: []int32{0}}, []tree.PartitionName{{"a", 0}, {"b", 0}}},
	} {
		got, err := tree.SelectPartitions(context.Background(), src, c.f)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("SelectPartitions(%+v) = %v, %v; want %v", c.f, got, err, c.want)
		}
	}
	_, err = tree.SelectPartitions(context.Background(), src, tree.Filter{Topics: []string{"a", "nope"}})
	if !errors.Is(err, tree.ErrNoTopic) || !strings.Contains(err.Error(), "no topic nope in the backup") || !strings.Contains(err.Error(), "it has a, b") {
		t.Errorf("a topic the backup does not hold: %v", err)
	}
}
