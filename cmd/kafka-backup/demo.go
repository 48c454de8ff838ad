package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
)

const demoTopic = "demo-orders"

// demoCommand is `kafka-backup demo`: the whole backup with no Kafka
// installed.
func demoCommand(env *service.Environment) *cli.Command {
	return &cli.Command{
		Name: "demo",
		// No "help" subcommand: kafka-backup demo --help shows the help.
		HideHelpCommand: true,
		Usage:           "Back up sample records from an embedded Kafka broker to ./kafka-backup-demo and show the files",
		Description: `Starts an in-process Kafka-protocol broker (franz-go's kfake) on 127.0.0.1,
produces sample records to topic demo-orders (3 partitions; keys, a null key,
headers with a duplicate name, a tombstone), backs them up with the real
pipeline (redpanda input -> kafka_backup output), prints the files it wrote and
exits. The folder is emptied first.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: "kafka-backup-demo", Usage: "folder to back up into (emptied first)"},
			&cli.IntFlag{Name: "records", Value: 1000, Usage: "how many records to produce"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up after this long"},
		},
		Action: func(c *cli.Context) error {
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			return runDemo(ctx, env, c.App.Writer, c.String("dir"), c.Int("records"))
		},
	}
}

func runDemo(ctx context.Context, env *service.Environment, out io.Writer, dir string, n int) error {
	if n < 4 {
		return errors.New("--records: give at least 4")
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("emptying %s: %w", dir, err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, demoTopic))
	if err != nil {
		return fmt.Errorf("starting the embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	fmt.Fprintf(out, "embedded Kafka broker on %s, topic %s with 3 partitions\n", strings.Join(brokers, ","), demoTopic)

	if err := produceDemo(ctx, brokers, n); err != nil {
		return err
	}
	fmt.Fprintf(out, "produced %d records (keys, a null key, duplicate headers, a tombstone)\n", n)

	sb := env.NewStreamBuilder()
	if err := sb.SetYAML(fmt.Sprintf(`
input:
  redpanda:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: kafka-backup-demo
    start_offset: earliest
    transaction_isolation_level: read_committed
output:
  kafka_backup:
    path: %q
    size: 16KiB
    roll_duration: 1s
logger:
  level: ERROR
`, brokers[0], demoTopic, dir)); err != nil {
		return fmt.Errorf("demo pipeline config: %w", err)
	}
	stream, err := sb.Build()
	if err != nil {
		return fmt.Errorf("building the demo pipeline: %w", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- stream.Run(context.Background()) }()

	// Wait until every record is in a file, then stop: stopping finalizes
	// the open files.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := countRecords(dir)
		if err != nil {
			return err
		}
		if got >= n {
			break
		}
		select {
		case err := <-runErr:
			return fmt.Errorf("the pipeline stopped early: %v", err)
		case <-ctx.Done():
			_ = stream.StopWithin(5 * time.Second)
			return fmt.Errorf("only %d of %d records were backed up before the timeout", got, n)
		case <-tick.C:
		}
	}
	if err := stream.StopWithin(30 * time.Second); err != nil {
		return fmt.Errorf("stopping the pipeline: %w", err)
	}
	return printTree(out, dir)
}

// produceDemo writes n sample records round-robin over the partitions.
func produceDemo(ctx context.Context, brokers []string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		r := &kgo.Record{
			Topic:     demoTopic,
			Partition: int32(i % 3),
			Key:       fmt.Appendf(nil, "order-%d", i),
			Value:     fmt.Appendf(nil, `{"order":%d,"amount":%d.%02d}`, i, i*7%500, i%100),
			Headers: []kgo.RecordHeader{
				{Key: "source", Value: []byte("demo")},
				{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)},
				{Key: "trace", Value: []byte("duplicate name, kept")},
			},
		}
		switch i {
		case 1:
			r.Key = nil // a null key
		case 2:
			r.Value = nil // a tombstone for order-2
		}
		recs[i] = r
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing sample records: %w", err)
	}
	return nil
}

// countRecords counts the records in every file below dir, in-progress
// files included, from batch headers.
func countRecords(dir string) (int, error) {
	total := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		span, err := segment.ReadFileSpan(path)
		if err != nil && span.Batches == 0 {
			return nil // a file being written: count it next time
		}
		total += int(span.Records)
		return nil
	})
	return total, err
}

// printTree lists the final files below dir with their offsets and sizes.
func printTree(out io.Writer, dir string) error {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	fmt.Fprintf(out, "\nbacked up to %s/<topic>/<partition>/<first offset>:\n", dir)
	fmt.Fprintf(out, "  %-36s %8s %8s %8s %8s\n", "file", "first", "last", "records", "bytes")
	var records, bytes int64
	for _, path := range files {
		rel, _ := filepath.Rel(dir, path)
		span, err := segment.ReadFileSpan(path)
		if _, final := layout.ParseFileName(filepath.Base(path)); !final || err != nil {
			fmt.Fprintf(out, "  %-36s unexpected: %v\n", rel, err)
			continue
		}
		fmt.Fprintf(out, "  %-36s %8d %8d %8d %8d\n", rel, span.FirstOffset, span.LastOffset, span.Records, span.Size)
		records += span.Records
		bytes += span.Size
	}
	fmt.Fprintf(out, "%d files, %d records, %d bytes. Each file is a Kafka log segment (RecordBatch v2); see docs/FORMAT.md.\n", len(files), records, bytes)
	return nil
}
