package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMeasureSettings measures the output's throughput under the settings
// whose defaults were chosen by measurement (max_in_flight, fsync,
// compression), with the redpanda input at its recommended batch size. It
// is a measurement, not a check: it runs only with KAFKA_BACKUP_MEASURE=1
// (KAFKA_BACKUP_MEASURE_MB sets the load, default 200) and prints a table;
// docs/benchmarks.md records its results.
func TestMeasureSettings(t *testing.T) {
	if os.Getenv("KAFKA_BACKUP_MEASURE") == "" {
		t.Skip("a measurement: set KAFKA_BACKUP_MEASURE=1 to run it")
	}
	mb := 200
	if v, err := strconv.Atoi(os.Getenv("KAFKA_BACKUP_MEASURE_MB")); err == nil {
		mb = v
	}
	const partitions, recSize = 8, 1024
	b := startBroker(t, partitions, "load")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	n := mb << 20 / recSize
	// Values are half random, half text: compressible about 2:1, as log
	// and JSON payloads often are.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		val := make([]byte, recSize)
		for j := range val {
			if j < recSize/2 {
				val[j] = byte(rng.Uint32())
			} else {
				val[j] = "kafka backup "[j%13]
			}
		}
		cl.Produce(context.Background(), &kgo.Record{Topic: "load", Key: fmt.Appendf(nil, "key-%d", i), Value: val}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.mu.Lock()
	b.produced["load"] = map[int32]int{}
	for p := int32(0); p < partitions; p++ {
		b.produced["load"][p] = n / partitions
	}
	b.mu.Unlock()

	input := func(group string) string {
		return redpandaInput(b, group, "load") + "    partition_buffer_bytes: 4MiB\n    max_yield_batch_bytes: 4MiB\n"
	}
	cases := []struct{ name, extra string }{
		{"max_in_flight 1", "    max_in_flight: 1\n"},
		{"max_in_flight 4", "    max_in_flight: 4\n"},
		{"max_in_flight 16", "    max_in_flight: 16\n"},
		{"max_in_flight 64", "    max_in_flight: 64\n"},
		{"max_in_flight 1024 (default)", "    max_in_flight: 1024\n"},
		{"fsync roll", "    fsync: roll\n"},
		{"fsync never", "    fsync: never\n"},
		{"compression lz4", "    compression: lz4\n"},
		{"compression zstd", "    compression: zstd\n"},
		{"compression snappy", "    compression: snappy\n"},
	}
	if only := os.Getenv("KAFKA_BACKUP_MEASURE_ONLY"); only != "" {
		var keep []struct{ name, extra string }
		for _, c := range cases {
			if strings.Contains(c.name, only) {
				keep = append(keep, c)
			}
		}
		cases = keep
	}
	for i, c := range append(cases, cases...) {
		group := fmt.Sprintf("measure-%d", i)
		start := time.Now()
		p := runBackup(t, group, backupConfig(input(group), t.TempDir(), c.extra))
		waitCommitted(t, b, group, partitions, []string{"load"}, p)
		took := time.Since(start)
		p.stop()
		t.Logf("%-28s %6.1f MB/s  (%d MiB in %v)", c.name, float64(mb)/took.Seconds(), mb, took.Round(time.Millisecond))
	}
}
