package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/output"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// Field names of the kafka_backup input (the FTP ones are shared with
// fs.ftp of the output).
const (
	fieldInTopics      = "topics"
	fieldInSkipCorrupt = "skip_corrupt"
)

// InputSpec is the configuration spec of the kafka_backup input.
func InputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Local").
		Summary("Reads a kafka-backup tree (a local folder or an FTP/FTPS server) and emits one message per backed-up record, with the metadata the `redpanda` input sets, partition by partition, each in offset order across its files. The input ends when everything is read.").
		Description(`
Reads the files the `+"`kafka_backup`"+` output wrote, `+"`<path>/<topic>/<partition>/<first offset>`"+`: topic by topic (sorted), partition by
partition, each partition in offset order across its files whatever their layout (files that interleave, as a `+"`kafka_franz`"+`
input leaves them when a batch comes late, are merged by offset), every batch's CRC checked. Each Kafka RecordBatch of a file
becomes one message batch, each record one message. Hidden in-progress and upload files are skipped (with a warning), and an
offset held by two files is emitted once, from the file read first. When everything is read the input ends, and with it the
pipeline.

The input keeps no position: a pipeline stopped before the end (a signal, a crash) reads the backup again from its start when it
runs again. The `+"`kafka_backup`"+` output then skips the offsets its files already hold; any other output gets those records twice.

### Metadata

The same as the `+"`redpanda`"+` input:

- `+"`kafka_key`"+`: the key as bytes; nil for a null key
- `+"`kafka_topic`"+`, `+"`kafka_partition`"+` (int), `+"`kafka_offset`"+` (int): where the record was
- `+"`kafka_timestamp_ms`"+`, `+"`kafka_timestamp_unix`"+`: its timestamp, in milliseconds and seconds
- `+"`kafka_tombstone_message`"+`: true for a null value (the message content is then empty)
- every header as metadata (a string; nil for a null header value; the last one wins among duplicates)
- `+"`__rpcn_kafka_headers`"+`: the exact header list (`+"`[]kgo.RecordHeader`"+`: order, duplicates, null values)

Unlike with the `+"`redpanda`"+` input, a record header named like one of the `+"`kafka_*`"+` keys does not overwrite them.

### What reaches Kafka

The `+"`kafka_backup`"+` output takes all of it back exactly (key, null key, value, tombstone, headers, timestamp, topic, partition,
offset): input to output copies a backup. The stock Kafka outputs (`+"`redpanda`"+`, `+"`kafka_franz`"+`) cannot carry all of it: they write
the message content as the value, the key from an interpolation (`+"`key: ${! @kafka_key }`"+`), the timestamp from an interpolation,
and the headers from metadata strings (`+"`metadata: {include_patterns: [...]}`"+`). So duplicate header names keep one value, a null
header value becomes the string `+"`null`"+`, header order is lost, and a null key or value survives only while the pipeline passes
it on unchanged (a processor that rewrites it as a string makes it empty); the offsets are Kafka's to give. To put a backup back into Kafka exactly, use `+"`kafka-backup restore`"+`.

### Order

Each partition leaves the input in offset order. Benthos keeps that order to the output only when: the pipeline has no
processors or `+"`pipeline.threads: 1`"+` (by default one thread per CPU processes batches side by side, and they overtake each
other; `+"`input.processors`"+` run in order in the input); the output has `+"`max_in_flight: 1`"+` (more writes batches side by
side; the `+"`kafka_backup`"+` output's default is 1024, and it starts a new file for a batch below the open file's offsets: the copy
then interleaves); and no batch is rejected by the output (a rejected batch is sent again after the ones read since).

### Damaged files

Run `+"`kafka-backup verify`"+` first. A torn or corrupt batch stops the input there, after the records before it: it logs an error
naming the file, the byte and the offset, keeps failing (the pipeline does not end) and never skips data silently. With
`+"`skip_corrupt: true`"+` it logs the error, skips the rest of that file and goes on with the partition. A read that fails (an
FTP connection lost) is retried, opening the file again at the batch that failed.`).
		Fields(
			// A URL field: `kafka-backup echo` scrubs a value holding a
			// password (ftp://user:pass@host/…) whole.
			service.NewURLField(fieldPath).
				Description("The backup to read: a local folder (the `kafka_backup` output's `path`), or `ftp://USER@HOST[:PORT]/PATH` / `ftps://USER@HOST[:PORT]/PATH` (explicit FTPS, AUTH TLS) for a backup written with `fs.schema: ftp`, PATH being the output's `path`. A password written in the URL is shown as `!!!SECRET_SCRUBBED!!!` by `echo`: prefer `password` or the environment.").
				Example("/backups").Example("ftps://backup@ftp.example.com/kafka"),
			service.NewStringListField(fieldInTopics).
				Description("Topics to read; all topics of the backup when empty. A topic the backup does not have is an error.").
				Default([]string{}).
				Example([]string{"orders"}),
			service.NewStringField(fieldFTPPassword).
				Description("FTP password. When empty: the environment variable `"+tree.PasswordEnv+"`, else the password in `path`. A secret: never logged.").
				Default("").
				Secret(),
			service.NewTLSField(fieldFTPTLS).
				Description("Certificate settings of an `ftps://` path (`root_cas`, `root_cas_file`, `skip_cert_verify` for tests, client certificates). Data connections resume the control connection's TLS session.").
				Advanced(),
			service.NewStringField(fieldFTPServerName).
				Description("Name the FTPS server's certificate must hold; the host of `path` when empty.").
				Default("").
				Advanced(),
			service.NewStringField(fieldFTPConnTimeout).
				Description("Bound on dialing, TLS and logging in to the FTP server.").
				Default("10s").
				LintRule(units.DurationLintRule(fieldFTPConnTimeout)).
				Advanced(),
			service.NewStringField(fieldFTPTimeout).
				Description("Bound on every FTP read and write; a download that breaks goes on where it stopped on a new connection.").
				Default("30s").
				LintRule(units.DurationLintRule(fieldFTPTimeout)).
				Advanced(),
			service.NewIntField(fieldFTPMaxConns).
				Description("FTP connections at most (listings and the file being read).").
				Default(defaultFTPMaxConns).
				Advanced(),
			service.NewBoolField(fieldFTPEPSV).
				Description("Use EPSV for passive data connections, else PASV.").
				Default(true).
				Advanced(),
			service.NewBoolField(fieldInSkipCorrupt).
				Description("When a batch is torn or corrupt: `false` stops the input there (it keeps reporting the error); `true` logs it, skips the rest of that file and goes on with the partition's other files.").
				Default(false),
		)
}

// newInput builds a kafka_backup input from its parsed config.
func newInput(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
	in := &backupInput{log: mgr.Logger()}
	var err error
	if in.location, err = conf.FieldString(fieldPath); err != nil {
		return nil, err
	}
	if in.location == "" {
		return nil, fmt.Errorf("%s: is empty: give the backup's folder or ftp:// URL", fieldPath)
	}
	if in.topics, err = conf.FieldStringList(fieldInTopics); err != nil {
		return nil, err
	}
	if in.opts.Password, err = conf.FieldString(fieldFTPPassword); err != nil {
		return nil, err
	}
	lower := strings.ToLower(in.location)
	if strings.HasPrefix(lower, "ftps://") {
		tc, err := conf.FieldTLS(fieldFTPTLS)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fieldFTPTLS, err)
		}
		tc = tc.Clone()
		if tc.ServerName, err = conf.FieldString(fieldFTPServerName); err != nil {
			return nil, err
		}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		in.opts.TLS = tc // tree.Open adds the host as server name and a session cache
	}
	for f, dst := range map[string]*time.Duration{fieldFTPConnTimeout: &in.opts.ConnectTimeout, fieldFTPTimeout: &in.opts.IOTimeout} {
		s, err := conf.FieldString(f)
		if err != nil {
			return nil, err
		}
		if *dst, err = units.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	if in.opts.MaxConnections, err = conf.FieldInt(fieldFTPMaxConns); err != nil {
		return nil, err
	}
	if in.opts.MaxConnections < 1 {
		return nil, fmt.Errorf("%s: %d: must be at least 1", fieldFTPMaxConns, in.opts.MaxConnections)
	}
	epsv, err := conf.FieldBool(fieldFTPEPSV)
	if err != nil {
		return nil, err
	}
	in.opts.DisableEPSV = !epsv
	if in.skipCorrupt, err = conf.FieldBool(fieldInSkipCorrupt); err != nil {
		return nil, err
	}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	return service.AutoRetryNacksBatched(in), nil
}

// backupInput reads a backup tree, partition by partition.
type backupInput struct {
	location    string
	opts        tree.Options
	topics      []string
	skipCorrupt bool
	log         *service.Logger

	ctx    context.Context // the input's life: reads outlive a ReadBatch call
	cancel context.CancelFunc

	mu     sync.Mutex
	src    tree.Source
	queue  []inPartition // partitions not started
	cur    *inPartState  // the partition being read
	totals struct{ partitions, records, duplicates, skippedFiles int64 }
}

var _ service.BatchInput = (*backupInput)(nil)

type inPartition struct {
	topic     string
	partition int32
}

// inPartState is the partition being read.
type inPartState struct {
	inPartition
	files int
	rd    *tree.PartitionReader // in offset order across the files
	high  int64                 // highest offset emitted; -1 before the first
	err   error                 // sticky: a torn or corrupt batch, without skip_corrupt

	records int64
}

func (in *backupInput) Connect(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.src != nil {
		return nil
	}
	src, err := tree.Open(ctx, in.location, in.opts)
	if err != nil {
		return err
	}
	names, err := tree.SelectPartitions(ctx, src, tree.Filter{Topics: in.topics})
	if err != nil {
		src.Close()
		if errors.Is(err, tree.ErrNoTopic) {
			return fmt.Errorf("%s: %w", fieldInTopics, err)
		}
		return err
	}
	queue := make([]inPartition, len(names))
	topics := map[string]bool{}
	for i, n := range names {
		queue[i] = inPartition{n.Topic, n.Partition}
		topics[n.Topic] = true
	}
	in.src, in.queue = src, queue
	in.log.Infof("kafka_backup input: reading %d partitions of %d topics from %s", len(queue), len(topics), src)
	return nil
}

var noAck service.AckFunc = func(context.Context, error) error { return nil }

func (in *backupInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.src == nil {
		return nil, nil, service.ErrNotConnected
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := in.ctx.Err(); err != nil {
			return nil, nil, service.ErrEndOfInput
		}
		if in.cur == nil {
			if len(in.queue) == 0 {
				in.log.Infof("kafka_backup input: done: %d records from %d partitions of %s (%d duplicates skipped, %d files skipped)",
					in.totals.records, in.totals.partitions, in.src, in.totals.duplicates, in.totals.skippedFiles)
				return nil, nil, service.ErrEndOfInput
			}
			if err := in.startPartition(in.queue[0]); err != nil {
				return nil, nil, err
			}
			in.queue = in.queue[1:]
		}
		ps := in.cur
		if ps.err != nil {
			return nil, nil, ps.err
		}
		b, err := ps.rd.Next()
		if err == io.EOF {
			in.finishPartition()
			continue
		}
		var recs []segment.Record
		if err == nil {
			recs, err = b.Records()
		}
		if err != nil {
			if err := in.readError(ps, err); err != nil {
				return nil, nil, err
			}
			continue
		}
		if len(recs) == 0 {
			continue // offsets emitted before, from another file
		}
		batch := make(service.MessageBatch, len(recs))
		for i := range recs {
			batch[i] = recordMessage(ps.topic, ps.partition, &recs[i])
			ps.high = max(ps.high, recs[i].Offset)
		}
		ps.records += int64(len(batch))
		return batch, noAck, nil
	}
}

// readError handles a file or batch that cannot be read: it returns the
// error ReadBatch returns, or nil to go on with the partition.
func (in *backupInput) readError(ps *inPartState, err error) error {
	var re *tree.ReadError
	if !errors.As(err, &re) {
		return fmt.Errorf("kafka_backup input: %s/%d: %w", ps.topic, ps.partition, err)
	}
	where := fmt.Sprintf("%s/%s/%d/%s", strings.TrimSuffix(in.src.String(), "/"), ps.topic, ps.partition, re.File)
	gone := errors.Is(err, fs.ErrNotExist)
	if gone && re.Position < 0 {
		in.log.Warnf("kafka_backup input: %s: gone since the folder was listed: skipped", where)
		return nil
	}
	pos := ""
	if re.Position >= 0 {
		pos = fmt.Sprintf(" byte %d:", re.Position)
	}
	after := fmt.Sprintf("offsets up to %d of the partition were emitted", ps.high)
	if gone {
		// Deleted after part of it was read (the reader opens a file
		// again at a batch when files interleave): the rest of it is lost
		// to this replay, as with a damaged batch.
		after = fmt.Sprintf("deleted while it was being read, its records from there on were not emitted; %s", after)
	} else if !tree.Damaged(err) {
		// A read that failed: the next read opens the file again at that
		// batch.
		return fmt.Errorf("kafka_backup input: %s:%s %w (%s; the file is read again from there)", where, pos, re.Err, after)
	}
	err = fmt.Errorf("kafka_backup input: %s:%s %w; %s", where, pos, re.Err, after)
	if in.skipCorrupt {
		in.log.Errorf("%v; skip_corrupt: the rest of the file is skipped", err)
		in.totals.skippedFiles++
		return nil
	}
	ps.err = fmt.Errorf("%w; the input stops here (run kafka-backup verify; skip_corrupt: true goes on with the rest of the partition)", err)
	in.log.Errorf("%v", ps.err)
	return ps.err
}

func (in *backupInput) startPartition(p inPartition) error {
	part, err := in.src.List(in.ctx, p.topic, p.partition)
	if err != nil {
		return fmt.Errorf("kafka_backup input: %w", err)
	}
	for _, l := range part.Leftovers {
		in.log.Warnf("kafka_backup input: %s/%d: skipping hidden file %s (%d bytes): in-progress or upload files are not part of the backup", p.topic, p.partition, l.Name, l.Size)
	}
	rd := tree.NewPartitionReader(in.ctx, in.src, part, tree.ReadOptions{
		Warn: func(msg string) { in.log.Warnf("kafka_backup input: %s/%d: %s", p.topic, p.partition, msg) },
	})
	in.cur = &inPartState{inPartition: p, files: len(part.Files), rd: rd, high: -1}
	return nil
}

func (in *backupInput) finishPartition() {
	ps := in.cur
	ps.rd.Close()
	dups := ps.rd.Duplicates()
	msg := fmt.Sprintf("kafka_backup input: %s/%d: %d records from %d files, offsets %s", ps.topic, ps.partition, ps.records, ps.files, offsets.Format(ps.rd.Returned(), 5))
	if dups > 0 {
		msg += fmt.Sprintf("; %d duplicates skipped (offsets in two files)", dups)
	}
	in.log.Info(msg)
	in.totals.partitions++
	in.totals.records += ps.records
	in.totals.duplicates += dups
	in.cur = nil
}

func (in *backupInput) Close(ctx context.Context) error {
	in.cancel()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur != nil {
		in.cur.rd.Close()
	}
	if in.src != nil {
		in.src.Close()
	}
	return nil
}

// recordMessage is a record as the redpanda input delivers it; the kafka_*
// metadata is set after the headers, so a header cannot overwrite it.
func recordMessage(topic string, partition int32, r *segment.Record) *service.Message {
	msg := service.NewMessage(r.Value)
	if len(r.Headers) > 0 {
		hs := make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			switch {
			case h.Value == nil:
				msg.MetaSetMut(h.Key, nil)
			default:
				msg.MetaSetMut(h.Key, string(h.Value))
			}
		}
		msg.MetaSetMut(output.MetaHeaders, hs)
	}
	msg.MetaSetMut(output.MetaKey, r.Key)
	msg.MetaSetMut(output.MetaTopic, topic)
	msg.MetaSetMut(output.MetaPartition, int(partition))
	msg.MetaSetMut(output.MetaOffset, int(r.Offset))
	msg.MetaSetMut(output.MetaTsUnix, time.UnixMilli(r.Timestamp).Unix())
	msg.MetaSetMut(output.MetaTimestamp, r.Timestamp)
	msg.MetaSetMut(output.MetaTombstone, r.Value == nil)
	return msg
}
