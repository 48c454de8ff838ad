// Package backuptest holds test fixtures that the tests of several packages
// (inspect, restore, plugin, tests) share: segment files of records written
// where kafka-backup writes them, a backup tree opened for the length of a
// test, records compared field by field, and a topic's records read back
// from Kafka.
package backuptest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
)

// Encode returns rs encoded as record batches of perBatch records each,
// compressed with codec.
func Encode(t testing.TB, rs []segment.Record, perBatch int, codec segment.Compression) []byte {
	t.Helper()
	enc, err := segment.NewEncoder(codec)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for i := 0; i < len(rs); {
		var n int
		buf, n = enc.AppendBatch(buf, rs[i:min(len(rs), i+perBatch)], 1<<30)
		if n == 0 {
			t.Fatal("encoder wrote nothing")
		}
		i += n
	}
	return buf
}

// WriteFile writes data as the file name of a partition's folder below root
// (root/topic/partition/name), creating the folders, and returns its path.
func WriteFile(t testing.TB, root, topic string, partition int32, name string, data []byte) string {
	t.Helper()
	dir := layout.PartitionDir(root, topic, partition)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteSegment writes rs as the file name of a partition's folder below root,
// encoded as by Encode, and returns its path.
func WriteSegment(t testing.TB, root, topic string, partition int32, name string, rs []segment.Record, perBatch int, codec segment.Compression) string {
	t.Helper()
	return WriteFile(t, root, topic, partition, name, Encode(t, rs, perBatch, codec))
}

// OpenTree opens the backup tree at loc (a folder or an ftp:// URL, as
// tree.Open takes it) and closes it when the test ends.
func OpenTree(t testing.TB, loc string) tree.Source {
	t.Helper()
	src, err := tree.Open(context.Background(), loc, tree.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// WriteSnapshot writes a metadata snapshot taken at ts by instance, holding
// topics (of partitions partitions each), into root's metadata folder, and returns its
// name.
func WriteSnapshot(t testing.TB, root string, ts time.Time, instance string, partitions int32, topics ...string) string {
	t.Helper()
	s := &metadata.Snapshot{Format: metadata.Format, Time: ts, Reason: "interval", Instance: instance, Groups: []metadata.Group{}}
	for _, n := range topics {
		s.Topics = append(s.Topics, metadata.Topic{Name: n, Partitions: partitions, ReplicationFactor: 1})
	}
	data, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	name := metadata.Name(ts, instance)
	dir := filepath.Join(root, layout.MetadataDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}
