package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafka-backup/kafka-backup/restore"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// restoreCommand is `kafka-backup restore`: the backup's records back into
// Kafka.
func restoreCommand() *cli.Command {
	return &cli.Command{
		Name: "restore",
		// No "help" subcommand: a location named h or help is a location.
		HideHelpCommand: true,
		Usage:           "Produce the records of a backup back to Kafka: same topic (or --rename) and partition, key, value, headers and timestamp",
		ArgsUsage:       "LOCATION",
		Description: `Reads a backup tree, <LOCATION>/<topic>/<partition>/<first offset>, and produces
every record to the same partition of the same topic (or the one --rename
gives) on the cluster at --brokers, with its key, value, headers and timestamp
unchanged: null keys, tombstones (null values) and null header values stay
null, headers keep their order and duplicates. Each partition's files are read
in offset order and its records produced in that order by an idempotent
producer with acks=all. Kafka gives the restored records new offsets.

LOCATION is a local folder, or ftp://USER@HOST[:PORT]/PATH or
ftps://USER@HOST[:PORT]/PATH (explicit FTPS, AUTH TLS) for a backup made with
fs.schema: ftp; PATH is the output's path. The FTP password comes from
--password, else the environment variable KAFKA_BACKUP_FTP_PASSWORD, else the
URL (ftp://user:password@host/…, which shows in your shell history).

Options go before LOCATION. Before producing anything, restore checks every
target topic: a missing one is refused unless --create-topics, and one with
fewer partitions than the backup uses is refused, naming the topic and both
counts. Records are not deduplicated against what the target already holds:
restoring twice writes the records twice.

While reading: the same offset in two files (overlapping files) is restored
once, from the file read first, and counted; offsets no file holds are
reported as gaps (compacted topics, transactions, offset_from), not errors;
hidden in-progress and upload files are listed and not restored. A torn or
corrupt batch stops its partition with an error naming the file and the byte,
after the records before it; the other partitions go on, and restore exits
non-zero. The summary at the end gives per partition the source offsets
restored, gaps, duplicates skipped and errors, and how to go on after a
failure: each failed partition's advice is --topic, --partition and
--from-offset the lowest offset the target did not acknowledge (the other
options as before); records acknowledged above it, which going on restores
twice, are counted.

Batches are limited to each target topic's max.message.bytes, asked of the
cluster (Kafka's default 1048588 when it cannot be asked), or to
--max-batch-bytes. A record larger than the limit in a batch of its own is
not sent: its partition stops there, with the advice to go on from it after
raising the limit; --dry-run lists every such record and exits non-zero.

A selection without a single final file (only in-progress files, or
nothing) is an error: a backup finalizes at start the in-progress files its
last run left, so start it once, then restore. Final files that the offset
or time options leave out are not: that restore exits 0 with 0 records.

With the backup's metadata snapshots (the output's metadata block,
LOCATION/@metadata): --create-topics creates a missing topic with the
partition count and configs of the latest snapshot holding it (at or before
--until), --topic-config KEY=VALUE over them; an existing topic's configs are
compared and differences reported, never changed. --consumer-groups REGEX
commits, once the partitions are restored, each matching group's offset
translated to the target: the first restored record whose source offset is at
least the committed one; below the first restored record, the first; past the
last, the partition's end. A group with active members on the target is
refused before anything is created or produced; --dry-run prints each commit.
--offsets-file FILE saves the source→target offsets for kafka-backup
restore-offsets.

Progress goes to stderr (a bar on a terminal, else a line every 5 seconds), the
summary to stdout.

Examples:
  kafka-backup restore --brokers kafka:9092 /backups
  kafka-backup restore --brokers kafka:9092 --topic orders --rename orders=orders-restored --create-topics /backups
  kafka-backup restore --brokers kafka:9092 --until 2024-05-01T12:00:00Z ftps://backup@ftp.example.com/kafka
  kafka-backup restore --dry-run /backups`,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "brokers", Aliases: []string{"b"}, EnvVars: []string{"KAFKA_BROKERS"}, Usage: "target cluster's seed brokers, HOST:PORT[,HOST:PORT…] (required, except with --dry-run)"},
			&cli.StringSliceFlag{Name: "topic", Aliases: []string{"t"}, Usage: "restore this backup topic (repeatable); all topics of the backup when not given"},
			&cli.IntSliceFlag{Name: "partition", Aliases: []string{"p"}, Usage: "restore only this partition, in every selected topic (repeatable); to go on after a failure in one partition"},
			&cli.StringSliceFlag{Name: "rename", Usage: "produce the records of backup topic OLD to topic NEW, as OLD=NEW (repeatable)"},
			&cli.Int64Flag{Name: "from-offset", DefaultText: "the first", Usage: "restore only offsets from this one on, in every partition (inclusive)"},
			&cli.Int64Flag{Name: "to-offset", DefaultText: "the last", Usage: "restore only offsets up to this one, in every partition (inclusive)"},
			&cli.StringFlag{Name: "since", Usage: "start each partition at its first record with a timestamp at or after this time (RFC3339, e.g. 2024-05-01T12:00:00Z, or milliseconds since the epoch); every record after it is restored"},
			&cli.StringFlag{Name: "until", Usage: "point-in-time restore: stop each partition before its first record with a timestamp after this time (RFC3339 or milliseconds)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "read and check every file (CRC, records) and report what would be restored; produce nothing (with --brokers, also check the target topics)"},
			&cli.BoolFlag{Name: "create-topics", Usage: "create missing target topics with the partition count and configs of the backup's metadata snapshot (without one: the backup's partition count and broker defaults); existing topics' configs are compared, not changed"},
			&cli.IntFlag{Name: "replication-factor", Value: -1, Usage: "replication factor of topics --create-topics creates; -1 is the broker's default"},
			&cli.IntFlag{Name: "parallel", Value: 4, Usage: "partitions restored at once"},
			&cli.StringFlag{Name: "max-batch-bytes", DefaultText: "each target topic's max.message.bytes", Usage: "largest producer batch; a record larger than this, in a batch of its own, cannot be restored and stops its partition (keep it at most the target topic's max.message.bytes); size units as in the config (1MB, 4MiB)"},
			&cli.DurationFlag{Name: "stall-timeout", Value: 2 * time.Minute, Usage: "give up when the target acknowledges nothing for this long"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "how progress is shown on stderr: auto (a bar on a terminal, else log lines), bar, log or none"},
		}, append(append(kafkaTargetFlags(), restoreMetadataFlags()...), ftpSourceFlags()...)...),
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRestore(ctx, c)
		},
	}
}

func runRestore(ctx context.Context, c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		for _, a := range args[min(1, len(args)):] {
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("restore: option %s after LOCATION: options go before it (kafka-backup restore [options] LOCATION)", a)
			}
		}
		return fmt.Errorf("restore: give exactly one LOCATION (a folder, ftp://… or ftps://…), not %d; see kafka-backup restore --help", len(args))
	}
	cfg := restore.Config{
		Brokers:           splitList(c.StringSlice("brokers")),
		Topics:            splitList(c.StringSlice("topic")),
		DryRun:            c.Bool("dry-run"),
		CreateTopics:      c.Bool("create-topics"),
		ReplicationFactor: int16(c.Int("replication-factor")),
		Parallel:          c.Int("parallel"),
		StallTimeout:      c.Duration("stall-timeout"),
	}
	if len(cfg.Brokers) == 0 && !cfg.DryRun {
		return errors.New("restore: --brokers is required (or KAFKA_BROKERS), except with --dry-run")
	}
	if cfg.Parallel < 1 {
		return errors.New("restore: --parallel must be at least 1")
	}
	if r := c.Int("replication-factor"); r == 0 || r < -1 || r > 32767 {
		return fmt.Errorf("restore: --replication-factor %d: give -1 (the broker's default) or a positive number", r)
	}
	if err := applyRestoreMetadataFlags(c, &cfg); err != nil { // restore_meta.go
		return err
	}
	var err error
	if cfg.Rename, err = parseRenames(c.StringSlice("rename")); err != nil {
		return err
	}
	for _, p := range c.IntSlice("partition") {
		if p < 0 || p > 1<<31-1 {
			return fmt.Errorf("restore: --partition %d: not a partition number", p)
		}
		cfg.Partitions = append(cfg.Partitions, int32(p))
	}
	for _, name := range []string{"from-offset", "to-offset"} {
		if c.IsSet(name) {
			v := c.Int64(name)
			if v < 0 {
				return fmt.Errorf("restore: --%s %d: offsets are not negative", name, v)
			}
			if name == "from-offset" {
				cfg.FromOffset = &v
			} else {
				cfg.ToOffset = &v
			}
		}
	}
	for _, name := range []string{"since", "until"} {
		if !c.IsSet(name) {
			continue
		}
		t, err := parseTime(c.String(name))
		if err != nil {
			return fmt.Errorf("restore: --%s: %w", name, err)
		}
		if name == "since" {
			cfg.Since = &t
		} else {
			cfg.Until = &t
		}
	}
	if c.IsSet("max-batch-bytes") {
		mb, err := units.ParseSize(c.String("max-batch-bytes"))
		if err != nil {
			return fmt.Errorf("restore: --max-batch-bytes: %w", err)
		}
		if mb < 1024 || mb > 1<<30 {
			return fmt.Errorf("restore: --max-batch-bytes %s: give 1KiB to 1GiB", c.String("max-batch-bytes"))
		}
		cfg.MaxBatchBytes = int32(mb)
	}
	kopts, err := kafkaTarget(c).Opts()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	cfg.ClientOpts = kopts

	stderr := c.App.ErrWriter
	if stderr == nil {
		stderr = os.Stderr
	}
	stdout := c.App.Writer
	if stdout == nil {
		stdout = os.Stdout
	}
	cfg.Log = stderr
	switch p := c.String("progress"); p {
	case "auto":
		cfg.Progress = restore.ProgressLog
		if isTerminal(stderr) {
			cfg.Progress = restore.ProgressBar
		}
	case "bar":
		cfg.Progress = restore.ProgressBar
	case "log":
		cfg.Progress = restore.ProgressLog
	case "none":
		cfg.Progress = restore.ProgressNone
	default:
		return fmt.Errorf("restore: --progress %q: use auto, bar, log or none", p)
	}

	src, err := tree.Open(ctx, args[0], ftpSourceOptions(c))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer src.Close()
	cfg.Source = src

	sum, err := restore.Run(ctx, cfg)
	if sum != nil {
		sum.Write(stdout)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, restore.ErrRefused):
		return err // "restore refused: …"
	default:
		return fmt.Errorf("restore failed: %w", err)
	}
}

// splitList splits comma-separated values and drops empty ones (urfave/cli
// splits StringSliceFlag values on commas already; environment variables
// too).
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// parseRenames parses --rename OLD=NEW values.
func parseRenames(vs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range splitList(vs) {
		from, to, ok := strings.Cut(v, "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("restore: --rename %q: give OLD=NEW", v)
		}
		if prev, dup := out[from]; dup && prev != to {
			return nil, fmt.Errorf("restore: --rename: topic %s renamed twice, to %s and to %s", from, prev, to)
		}
		out[from] = to
	}
	return out, nil
}

// parseTime parses RFC3339 (with or without fractions of a second) or
// milliseconds since the Unix epoch.
func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC3339 (2024-05-01T12:00:00Z, 2024-05-01T14:00:00+02:00) nor milliseconds since the epoch", s)
	}
	return t, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
