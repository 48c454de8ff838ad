// Command barewriter is the baseline of `make bench`: what a backup costs
// without Benthos. A plain franz-go consumer in a consumer group writes the
// records it polls into the same files kafka_backup writes — Kafka
// RecordBatch v2 made by segment.Encoder, one file per partition rolled at
// -file-size, under <dir>/<topic>/<partition>/<first offset> — writes the
// partitions of one poll in parallel (up to -parallel at once, like
// kafka_backup's max_in_flight), fsyncs each write (as kafka_backup's default
// `fsync: batch`), and commits the polled offsets synchronously after the
// write, so that a commit means the records are on disk.
//
// It runs until SIGINT/SIGTERM, then closes (finalizes) its files and leaves
// the group.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/units"
)

func main() {
	var (
		brokers   = flag.String("brokers", "127.0.0.1:9092", "seed brokers, comma separated")
		topics    = flag.String("topics", "bench", "topics, comma separated")
		group     = flag.String("group", "barewriter", "consumer group")
		dir       = flag.String("dir", "", "folder the files are written below (required)")
		fileSize  = flag.String("file-size", "100MB", "roll a partition's file before it would exceed this")
		fetchMax  = flag.String("fetch-max-bytes", "50MiB", "kgo.FetchMaxBytes")
		fetchPart = flag.String("fetch-max-partition-bytes", "1MiB", "kgo.FetchMaxPartitionBytes")
		fetchWait = flag.Duration("fetch-max-wait", 5*time.Second, "kgo.FetchMaxWait")
		fsync     = flag.Bool("fsync", true, "fsync every write before committing")
		parallel  = flag.Int("parallel", 16, "write up to this many partitions of one poll at once (kafka_backup's max_in_flight)")
	)
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "barewriter: -dir is required")
		os.Exit(2)
	}
	cfg := config{dir: *dir, fsync: *fsync, parallel: *parallel, fetchWait: *fetchWait}
	var err error
	if cfg.fileSize, err = units.ParseSize(*fileSize); err == nil {
		var fm, fp int64
		if fm, err = units.ParseSize(*fetchMax); err == nil {
			if fp, err = units.ParseSize(*fetchPart); err == nil {
				err = run(cfg, strings.Split(*brokers, ","), strings.Split(*topics, ","), *group, int32(fm), int32(fp))
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "barewriter:", err)
		os.Exit(1)
	}
}

type config struct {
	dir       string
	fileSize  int64
	fsync     bool
	parallel  int
	fetchWait time.Duration
}

func run(cfg config, brokers, topics []string, group string, fetchMax, fetchPart int32) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	w := &writer{cfg: cfg, parts: map[tp]*part{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and its commit.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(fetchMax),
		kgo.FetchMaxPartitionBytes(fetchPart),
		kgo.FetchMaxWait(cfg.fetchWait),
		// A revoked partition's file is finalized before the group moves on.
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { w.closeParts(m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { w.closeParts(m) }),
	)
	if err != nil {
		return err
	}
	// The poll that ended the loop blocked rebalances: allow the final one.
	defer cl.CloseAllowingRebalance()

	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetching %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		var jobs []kgo.FetchTopicPartition
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				jobs = append(jobs, p)
			}
		})
		if err := w.writeAll(jobs); err != nil {
			return err
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("commit: %w", err)
		}
		cl.AllowRebalance()
	}
	return w.closeAll()
}

type tp struct {
	topic     string
	partition int32
}

// writer holds one open file per partition.
type writer struct {
	cfg   config
	mu    sync.Mutex
	parts map[tp]*part
}

// part is a partition's open file.
type part struct {
	dir   string
	f     *os.File
	tmp   string // in-progress path
	final string // final path
	size  int64
}

// scratch is what one write needs while it runs: the encoder and its
// buffers, pooled rather than kept per partition so that memory follows the
// writes in flight, not the partition count.
type scratch struct {
	enc  *segment.Encoder
	recs []segment.Record
	buf  []byte
}

var scratches = sync.Pool{New: func() any {
	e, _ := segment.NewEncoder(segment.None)
	return &scratch{enc: e}
}}

func (w *writer) part(t string, p int32) (*part, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := tp{t, p}
	if pt := w.parts[k]; pt != nil {
		return pt, nil
	}
	pt := &part{dir: filepath.Join(w.cfg.dir, t, strconv.Itoa(int(p)))}
	if err := os.MkdirAll(pt.dir, 0o755); err != nil {
		return nil, err
	}
	w.parts[k] = pt
	return pt, nil
}

func (w *writer) writeAll(jobs []kgo.FetchTopicPartition) error {
	if w.cfg.parallel < 2 || len(jobs) < 2 {
		for _, j := range jobs {
			if err := w.write(j); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, w.cfg.parallel)
	for i := range jobs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = w.write(jobs[i])
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// write appends the records of one fetched partition to its file, rolling
// the file before it would exceed the size.
func (w *writer) write(j kgo.FetchTopicPartition) error {
	p, err := w.part(j.Topic, j.Partition)
	if err != nil {
		return err
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	recs := sc.recs[:0]
	for _, r := range j.Records {
		rec := segment.Record{Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value}
		if len(r.Headers) > 0 {
			rec.Headers = make([]segment.Header, len(r.Headers))
			for i, h := range r.Headers {
				rec.Headers[i] = segment.Header{Key: h.Key, Value: h.Value}
			}
		}
		recs = append(recs, rec)
	}
	sc.recs = recs
	for len(recs) > 0 {
		if p.f == nil {
			if err := p.open(recs[0].Offset); err != nil {
				return err
			}
		}
		// As many batches as fit in the file.
		buf, n := sc.buf[:0], 0
		for n < len(recs) {
			var k int
			buf, k = sc.enc.AppendBatch(buf, recs[n:], w.cfg.fileSize-p.size-int64(len(buf)))
			if k == 0 {
				break
			}
			n += k
		}
		if n == 0 {
			if p.size > 0 {
				// The file is full.
				if err := p.finish(w.cfg.fsync); err != nil {
					return err
				}
				continue
			}
			// One record larger than a file: it gets a file alone.
			buf, n = sc.enc.AppendBatch(buf, recs[:1], 1<<62)
		}
		sc.buf = buf
		if _, err := p.f.Write(buf); err != nil {
			return err
		}
		p.size += int64(len(buf))
		if w.cfg.fsync {
			if err := p.f.Sync(); err != nil {
				return err
			}
		}
		if recs = recs[n:]; len(recs) > 0 {
			if err := p.finish(w.cfg.fsync); err != nil {
				return err
			}
		}
	}
	// Let the fetched records go: they are in the file.
	clear(sc.recs)
	return nil
}

func (p *part) open(first int64) error {
	name := strconv.FormatInt(first, 10)
	p.final = filepath.Join(p.dir, name)
	p.tmp = filepath.Join(p.dir, "."+name+".inprogress")
	f, err := os.OpenFile(p.tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.f, p.size = f, 0
	return nil
}

// finish closes the open file and renames it to its final name.
func (p *part) finish(fsync bool) error {
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	if err == nil {
		err = os.Rename(p.tmp, p.final)
	}
	if err == nil && fsync {
		var d *os.File
		if d, err = os.Open(p.dir); err == nil {
			err = errors.Join(d.Sync(), d.Close())
		}
	}
	return err
}

func (w *writer) closeParts(m map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			if pt := w.parts[tp{t, p}]; pt != nil {
				if err := pt.finish(w.cfg.fsync); err != nil {
					fmt.Fprintln(os.Stderr, "barewriter:", err)
				}
				delete(w.parts, tp{t, p})
			}
		}
	}
}

func (w *writer) closeAll() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for k, pt := range w.parts {
		errs = append(errs, pt.finish(w.cfg.fsync))
		delete(w.parts, k)
	}
	return errors.Join(errs...)
}
