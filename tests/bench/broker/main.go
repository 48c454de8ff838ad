// Command broker is the Kafka broker of `make bench`: a one-broker kfake
// cluster (franz-go's in-memory Kafka) as a process of its own, so that its
// CPU and memory are not counted in the measured consumer's.
//
// It creates one topic, loads it with franz-go's producer and then serves
// until its standard input closes or it gets SIGINT/SIGTERM. It prints
// progress lines on standard output:
//
//	addr 127.0.0.1:41234
//	loaded records=1048576 bytes=1073741824 seconds=4.21
//
// The records: keys "key-<n>", values of -record-size bytes, the first half
// random and the second half text (compressible about 2:1, as log and JSON
// payloads often are), spread evenly over the partitions (record n to
// partition n mod partitions), timestamps the produce time, no headers.
// -size is the total of the values.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/units"
)

func main() {
	var (
		topic      = flag.String("topic", "bench", "topic to create and load")
		partitions = flag.Int("partitions", 8, "partitions of the topic")
		sizeFlag   = flag.String("size", "1GiB", "total value bytes to produce (units as in kafka_backup's size: 256MiB, 1GiB, …); 0 for none")
		recFlag    = flag.String("record-size", "1KiB", "value size of each record")
		port       = flag.Int("port", 0, "port to listen on, on 127.0.0.1 (0: any free port)")
		batchFlag  = flag.String("batch", "1MiB", "producer batch size (ProducerBatchMaxBytes)")
	)
	flag.Parse()
	if err := run(*topic, *partitions, *sizeFlag, *recFlag, *port, *batchFlag); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

func run(topic string, partitions int, sizeFlag, recFlag string, port int, batchFlag string) error {
	var size int64
	if sizeFlag != "0" {
		var err error
		if size, err = units.ParseSize(sizeFlag); err != nil {
			return err
		}
	}
	recSize, err := units.ParseSize(recFlag)
	if err != nil {
		return err
	}
	batch, err := units.ParseSize(batchFlag)
	if err != nil {
		return err
	}
	if partitions < 1 || partitions > 1<<20 {
		return fmt.Errorf("-partitions %d out of range", partitions)
	}

	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.SeedTopics(int32(partitions), topic),
	)
	if err != nil {
		return fmt.Errorf("starting kfake: %w", err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	fmt.Printf("addr %s\n", addr)

	// Stop on SIGINT/SIGTERM or when the parent closes standard input.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()

	start := time.Now()
	n := size / recSize
	if err := load(ctx, addr, topic, int32(partitions), n, int(recSize), int32(batch)); err != nil {
		return err
	}
	fmt.Printf("loaded records=%d bytes=%d seconds=%.2f\n", n, n*recSize, time.Since(start).Seconds())
	<-ctx.Done()
	return nil
}

// load produces n records of recSize value bytes round the partitions.
func load(ctx context.Context, addr, topic string, partitions int32, n int64, recSize int, batch int32) error {
	if n == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(batch),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedBytes(256<<20),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	// A pool of distinct values, shared by the records (the producer only
	// reads them): generating 5 GiB of random bytes would take longer than
	// the benchmark.
	const poolSize = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([][]byte, poolSize)
	for i := range pool {
		v := make([]byte, recSize)
		for j := range v {
			if j < recSize/2 {
				v[j] = byte(rng.Uint32())
			} else {
				v[j] = "kafka backup "[j%13]
			}
		}
		pool[i] = v
	}

	var failed atomic.Pointer[error]
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	for i := int64(0); i < n; i++ {
		if e := failed.Load(); e != nil {
			return fmt.Errorf("producing: %w", *e)
		}
		if ctx.Err() != nil {
			return errors.New("interrupted while loading")
		}
		cl.Produce(ctx, &kgo.Record{
			Topic:     topic,
			Partition: int32(i % int64(partitions)),
			Key:       fmt.Appendf(nil, "key-%d", i),
			Value:     pool[i%poolSize],
		}, done)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if e := failed.Load(); e != nil {
		return fmt.Errorf("producing: %w", *e)
	}
	return nil
}
