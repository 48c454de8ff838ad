// Package inspect reads a kafka-backup tree (tree.Source: a local folder or
// an FTP/FTPS server) without changing it, for the `verify`, `ls` and `cat`
// subcommands:
//
//   - Verify reads every final file in full (CRC of every batch, every record
//     decoded), checks that each file's name is its first offset and that its
//     offsets strictly increase, and reports per partition the offsets held,
//     gaps, overlaps between files, and hidden leftover files.
//   - List walks the batch headers of every final file: files, first and last
//     offset, records, bytes and the time range of each partition.
//   - Cat writes the records of one file as JSON lines.
//
// Nothing here writes to the tree.
package inspect

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// Filter selects the partitions of a tree (tree.Filter).
type Filter = tree.Filter

// partitionRef names one partition folder.
type partitionRef struct {
	topic     string
	partition int32
}

// selectPartitions lists the partition folders of src that f selects
// (tree.SelectPartitions).
func selectPartitions(ctx context.Context, src tree.Source, f Filter) ([]partitionRef, error) {
	names, err := tree.SelectPartitions(ctx, src, f)
	if err != nil {
		return nil, err
	}
	out := make([]partitionRef, len(names))
	for i, n := range names {
		out[i] = partitionRef{n.Topic, n.Partition}
	}
	return out, nil
}

// strayName is a name of a tree outside the partition folders.
type strayName struct {
	topic string // the topic folder it is in; "" at the root
	name  string // as shown: "notes.txt", "orders/README", "x (a FIFO)"
	path  string // the whole location
	what  string // what it is when not a regular file or folder
}

// treeStrays returns the names below the root of src (when f selects every
// topic) and in the topic folders f selects that are neither topic nor
// partition folders.
func treeStrays(ctx context.Context, src tree.Source, f Filter) ([]strayName, error) {
	root := strings.TrimSuffix(src.String(), "/")
	var out []strayName
	add := func(topic string, ss []tree.Stray) {
		for _, s := range ss {
			name := s.Name
			if topic != "" {
				name = topic + "/" + s.Name
			}
			sn := strayName{topic: topic, name: name, path: root + "/" + name, what: s.NotRegular}
			if s.NotRegular != "" {
				sn.name += " (" + s.NotRegular + ")"
			}
			out = append(out, sn)
		}
	}
	topics := f.Topics
	if len(topics) == 0 {
		ss, err := src.Stray(ctx, "")
		if err != nil {
			return nil, err
		}
		add("", ss)
		if topics, err = src.Topics(ctx); err != nil {
			return nil, err
		}
	}
	for _, t := range topics {
		ss, err := src.Stray(ctx, t)
		if err != nil {
			return nil, err
		}
		add(t, ss)
	}
	return out, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no topics"
	}
	return strings.Join(s, ", ")
}

// forEach runs fn on every element of refs, parallel at once, and returns
// when all are done or ctx is cancelled.
func forEach(ctx context.Context, refs []partitionRef, parallel int, fn func(i int, ref partitionRef)) {
	if parallel < 1 {
		parallel = 4
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, ref := range refs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i, ref)
		}()
	}
	wg.Wait()
}

// location returns the path of a file of a partition, for messages.
func location(src tree.Source, topic string, partition int32, name string) string {
	root := strings.TrimSuffix(src.String(), "/")
	return fmt.Sprintf("%s/%s/%d/%s", root, topic, partition, name)
}

// ---------------------------------------------------------------------------
// Offsets

// ---------------------------------------------------------------------------
// Formatting

// FormatTime formats milliseconds since the epoch as RFC3339 in UTC with
// milliseconds.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Plural formats a count of things: "1 file", "2,000 files".
func Plural(n int64, what string) string { return plural(n, what) }

// plural formats a count of things: "1 file", "2,000 files".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return units.FormatCount(n) + " " + what + "s"
}

func ptr[T any](v T) *T { return &v }
