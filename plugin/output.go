// Package plugin registers kafka-backup's components with a Benthos
// environment and holds their configuration specs.
package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/output"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// Field names of the kafka_backup output.
const (
	fieldPath         = "path"
	fieldFS           = "fs"
	fieldSchema       = "schema"
	fieldSize         = "size"
	fieldRollDuration = "roll_duration"
	fieldMaxAge       = "max_age"
	fieldCompression  = "compression"
	fieldFsync        = "fsync"
	fieldNaming       = "naming"
	fieldOffsetFrom   = "offset_from"
	fieldMaxInFlight  = "max_in_flight"
	fieldRetention    = "retention"
	fieldRetCheck     = "retention_check"
	fieldRetKeepFiles = "retention_keep_files"

	schemaLocal = "local"
	schemaFTP   = "ftp"
)

// Defaults, chosen as docs/benchmarks.md and the README explain.
const (
	defaultSize         = "100MB"
	defaultRollDuration = "1m"
	defaultMaxAge       = "1h"
	defaultMaxInFlight  = 1024
	defaultRetCheck     = "1h"

	// minFileSize is the smallest size: one batch header and one record.
	minFileSize = segment.HeaderSize + 8
)

// schemaLintRule is the lint rule of fs.schema: one of schemas.
func schemaLintRule(schemas ...string) string {
	quoted := make([]string, len(schemas))
	for i, s := range schemas {
		quoted[i] = strconv.Quote(s)
	}
	return `root = if ![` + strings.Join(quoted, ", ") + `].contains(this) { ["fs.schema: %q is not a destination: use one of ` + strings.Join(schemas, ", ") + `".format(this)] }`
}

// OutputSpec is the configuration spec of the kafka_backup output.
func OutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Local").
		Summary("Backs up Kafka topics into files of Kafka RecordBatch v2 (Kafka's own log segment format): one folder per topic partition, each file named after the offset of its first record.").
		Description(`
Feed it from the `+"`redpanda`"+` input (recommended: it keeps the exact header list and null keys) or the `+"`kafka_franz`"+` input.
Each partition's records go to `+"`<path>/<topic>/<partition>/<offset of first record>`"+`. A file is written under a hidden
in-progress name (`+"`.<name>.<instance>.inprogress`"+`) and renamed to its final name when it rolls: when the next
records would make it exceed `+"`size`"+`, after `+"`roll_duration`"+` without records for its partition, after `+"`max_age`"+`, or on
shutdown. A batch is acknowledged only once its records are in the file (and fsynced, with `+"`fsync: batch`"+`).

Records already in a final file are skipped when they are delivered again (after a restart the consumer group resumes from
its last commit), so an offset never lands in two final files with ordered delivery. The first of a run of such records is
compared with the stored one: when they differ, the topic was deleted and recreated, and the partition is refused (nothing
acknowledged, an error saying what to do, a note `+"`.kafka-backup.recreated`"+` that `+"`verify`"+` reports).

Files decode with any Kafka RecordBatch reader; docs/FORMAT.md in the kafka-backup repository specifies them.`).
		Fields(
			service.NewStringField(fieldPath).
				Description("Folder the backup tree is written below: `<path>/<topic>/<partition>/`. Seed key: `path`.").
				Example("/backups"),
			service.NewObjectField(fieldFS,
				service.NewStringField(fieldSchema).
					Description("Where files go: `local` disk or an `ftp` server (FTP or explicit FTPS). Seed key: `fs.schema`.").
					LintRule(schemaLintRule(schemaLocal, schemaFTP)).
					Default(schemaLocal),
				ftpSpec(),
			).Description("The file system the backup is written to.").
				LintRule(hostnameLintRule).
				Optional(),
			service.NewStringField(fieldSize).
				Description("Roll a file before it would exceed this size. A file is larger only when it holds one record that alone is larger. Units: "+strings.Join(units.SizeUnitNames, ", ")+" (upper-case B is bytes, lower-case b is bits) or a bare number of bytes. Seed key: `size`.").
				Default(defaultSize).
				LintRule(units.SizeLintRule(fieldSize, minFileSize)).
				Example("10MB").Example("1GiB"),
			service.NewStringField(fieldRollDuration).
				Description("Finalize a partition's file after this long without new records for that partition. A Go duration (`3s`, `1m30s`), days (`1day`) or a bare number of seconds. Seed key: `roll.duration`.").
				Default(defaultRollDuration).
				LintRule(units.DurationLintRule(fieldRollDuration)).
				Example("3s"),
			service.NewStringField(fieldMaxAge).
				Description("Finalize a file this long after it was opened, even if records keep coming, so a slow but steady partition still produces final files.").
				Default(defaultMaxAge).
				LintRule(units.DurationLintRule(fieldMaxAge)).
				Advanced(),
			service.NewStringEnumField(fieldCompression, segment.CompressionNames()...).
				Description("Compression codec of each batch, as Kafka compresses batches.").
				Default("none").
				Advanced(),
			service.NewStringEnumField(fieldFsync, "batch", "roll", "never").
				Description("When files are fsynced. `batch`: before every acknowledgement (an acknowledged record survives a crash and a power loss). `roll`: when a file rolls (survives a process crash; a power loss can lose what the open files got since they opened). `never`: left to the operating system.").
				Default("batch").
				Advanced(),
			service.NewStringEnumField(fieldNaming, "offset", "kafka").
				Description("File names: `offset` is the plain decimal first offset (`101`); `kafka` is Kafka's segment naming (`00000000000000000101.log`), which `kafka-dump-log.sh --files` reads as is.").
				Default("offset").
				Advanced(),
			service.NewIntMapField(fieldOffsetFrom).
				Description("Lowest offset to back up, by topic (`test: 101`) or by partition (`\"test:0\": 50`); a partition entry wins over its topic's. A filter, never a seek: records below it are acknowledged and not written. Seed keys: `<topic>.offset.from`, `<topic>.<partition>.offset.from`.").
				Default(map[string]any{}).
				LintRule(`root = match {
  this.type() == "object" => this.keys().filter(k -> !k.re_match("^[a-zA-Z0-9._-]{1,249}(:[0-9]+)?$")).map_each(k -> "offset_from: key %q is not a topic name or topic:partition (for example test or \"test:0\")".format(k)),
  this.type() == "number" => if this < 0 { ["offset_from: offset %v is negative: give the lowest offset to back up".format(this)] },
}`).
				Example(map[string]any{"test": 101, "test:0": 50}),
			service.NewOutputMaxInFlightField().
				Description("Batches taken from the input at once. Each partition's records are written in offset order, those of concurrent batches together with one write and one fsync (group commit), those of different partitions in parallel. The `kafka_franz` input hands over each message as a batch of its own unless its `batching` is set: a high value lets a write take many of them; records wait for lower offsets still on their way at most 100ms. `1` writes each batch alone, in the order the input delivers them.").
				Default(defaultMaxInFlight).
				Advanced(),
			service.NewStringField(fieldRetention).
				Description("Prune the partitions this output writes: a final file whose newest record is older than this (`30days`, `720h`) is deleted, by the rules of `kafka-backup prune` (the oldest contiguous run of such files per partition, never a file between two kept ones, the newest `"+fieldRetKeepFiles+"` always kept, the partition's new start recorded in `.kafka-backup.pruned` first). Each instance prunes only the partitions it wrote records of since its previous check, and never touches in-progress or upload names. Empty (the default): off.").
				Default("").
				LintRule(`root = if this != "" { `+strings.TrimPrefix(units.DurationLintRule(fieldRetention), "root = ")+` }`).
				Example("30days"),
			service.NewStringField(fieldRetCheck).
				Description("How often `retention` prunes, at most.").
				Default(defaultRetCheck).
				LintRule(units.DurationLintRule(fieldRetCheck)).
				Advanced(),
			service.NewIntField(fieldRetKeepFiles).
				Description("With `retention`: the newest files of each partition that always stay, old or not, so a partition that went quiet keeps its latest data.").
				Default(1).
				Advanced(),
			metadataSpec(), // plugin/metadata.go
		)
}

// newOutput builds a kafka_backup output from its parsed config.
func newOutput(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	var none service.BatchPolicy
	cfg, maxInFlight, err := rollingConfig(conf)
	if err != nil {
		return nil, none, 0, err
	}
	schema, err := conf.FieldString(fieldFS, fieldSchema)
	if err != nil {
		return nil, none, 0, err
	}
	switch schema {
	case schemaLocal:
		snap, err := newSnapshotter(conf, mgr, &cfg, nil)
		if err != nil {
			return nil, none, 0, err
		}
		out := output.New(cfg, local.New(cfg.Dir), mgr, maxInFlight)
		dir := cfg.Dir
		if err := setRetention(conf, mgr, out, func(ctx context.Context) (tree.Source, error) { return tree.Open(ctx, dir, tree.Options{}) }, nil); err != nil {
			return nil, none, 0, err
		}
		return withMetadata(out, snap), none, maxInFlight, nil
	case schemaFTP:
		obs := output.NewObserver(mgr)
		cfg.Observer = obs
		dest, err := newFTPDestination(conf.Namespace(fieldFS, fieldFTP), &cfg, obs)
		if err != nil {
			return nil, none, 0, err
		}
		snap, err := newSnapshotter(conf, mgr, &cfg, dest)
		if err != nil {
			_ = dest.Close(context.Background())
			return nil, none, 0, err
		}
		out := output.New(cfg, dest, mgr, maxInFlight)
		if err := setRetention(conf, mgr, out, ftpTree(dest.Settings()), dest.LockMarker); err != nil {
			_ = dest.Close(context.Background())
			return nil, none, 0, err
		}
		return withMetadata(out, snap), none, maxInFlight, nil
	}
	return nil, none, 0, fmt.Errorf("fs.schema: %q is not a destination: use %s or %s", schema, schemaLocal, schemaFTP)
}

// setRetention reads the retention fields and turns retention on when
// retention is set; open opens the destination as a tree, lock (FTP) holds
// its marker updates of a partition.
func setRetention(conf *service.ParsedConfig, mgr *service.Resources, out *output.Output, open func(context.Context) (tree.Source, error),
	lock func(string, int32) func()) error {
	age, err := conf.FieldString(fieldRetention)
	if err != nil || strings.TrimSpace(age) == "" {
		return err
	}
	r := output.Retention{Open: open, LockMarker: lock}
	if r.Age, err = units.ParseDuration(age); err != nil {
		return fmt.Errorf("%s: %w (e.g. 30days)", fieldRetention, err)
	}
	check, err := conf.FieldString(fieldRetCheck)
	if err != nil {
		return err
	}
	if r.Check, err = units.ParseDuration(check); err != nil {
		return fmt.Errorf("%s: %w (e.g. 1h)", fieldRetCheck, err)
	}
	if r.KeepFiles, err = conf.FieldInt(fieldRetKeepFiles); err != nil {
		return err
	}
	if r.KeepFiles < 0 {
		return fmt.Errorf("%s: %d: must be 0 or more", fieldRetKeepFiles, r.KeepFiles)
	}
	out.SetRetention(r, mgr)
	return nil
}

// ftpTree returns the opener of the FTP destination's server as a tree.
func ftpTree(fc ftp.Config) func(context.Context) (tree.Source, error) {
	u := url.URL{Scheme: "ftp", User: url.User(fc.User), Host: fc.Addr, Path: path.Join("/", fc.Root)}
	if fc.TLS != nil {
		u.Scheme = "ftps"
	}
	opts := tree.Options{Password: fc.Password, TLS: fc.TLS, ConnectTimeout: fc.ConnectTimeout, IOTimeout: fc.IOTimeout, MaxConnections: 1, DisableEPSV: fc.DisableEPSV}
	loc := u.String()
	return func(ctx context.Context) (tree.Source, error) { return tree.Open(ctx, loc, opts) }
}

// rollingConfig reads the settings every destination shares.
func rollingConfig(conf *service.ParsedConfig) (cfg rolling.Config, maxInFlight int, err error) {
	fieldErr := func(field string, err error) error { return fmt.Errorf("%s: %w", field, err) }
	if cfg.Dir, err = conf.FieldString(fieldPath); err != nil {
		return cfg, 0, err
	}
	if cfg.Dir == "" {
		return cfg, 0, fieldErr(fieldPath, fmt.Errorf("is empty: give the folder to back up into"))
	}
	s, err := conf.FieldString(fieldSize)
	if err != nil {
		return cfg, 0, err
	}
	if cfg.MaxSize, err = units.ParseSize(s); err != nil {
		return cfg, 0, fieldErr(fieldSize, err)
	}
	if cfg.MaxSize < minFileSize {
		return cfg, 0, fieldErr(fieldSize, fmt.Errorf("%s is too small: a file must hold at least one batch (%d bytes)", s, minFileSize))
	}
	if s, err = conf.FieldString(fieldRollDuration); err != nil {
		return cfg, 0, err
	}
	if cfg.IdleTimeout, err = units.ParseDuration(s); err != nil {
		return cfg, 0, fieldErr(fieldRollDuration, err)
	}
	if s, err = conf.FieldString(fieldMaxAge); err != nil {
		return cfg, 0, err
	}
	if cfg.MaxAge, err = units.ParseDuration(s); err != nil {
		return cfg, 0, fieldErr(fieldMaxAge, err)
	}
	if s, err = conf.FieldString(fieldCompression); err != nil {
		return cfg, 0, err
	}
	if cfg.Compression, err = segment.ParseCompression(s); err != nil {
		return cfg, 0, fieldErr(fieldCompression, err)
	}
	if s, err = conf.FieldString(fieldFsync); err != nil {
		return cfg, 0, err
	}
	if cfg.Fsync, err = rolling.ParseFsync(s); err != nil {
		return cfg, 0, fieldErr(fieldFsync, err)
	}
	if s, err = conf.FieldString(fieldNaming); err != nil {
		return cfg, 0, err
	}
	if cfg.Naming, err = layout.ParseNaming(s); err != nil {
		return cfg, 0, fieldErr(fieldNaming, err)
	}
	from, err := conf.FieldIntMap(fieldOffsetFrom)
	if err != nil {
		return cfg, 0, err
	}
	if cfg.OffsetFrom, err = offsetFrom(from); err != nil {
		return cfg, 0, fieldErr(fieldOffsetFrom, err)
	}
	if maxInFlight, err = conf.FieldMaxInFlight(); err != nil {
		return cfg, 0, err
	}
	if maxInFlight < 1 {
		return cfg, 0, fieldErr(fieldMaxInFlight, fmt.Errorf("%d: must be at least 1", maxInFlight))
	}
	cfg.Instance = instanceID()
	return cfg, maxInFlight, nil
}

// offsetFrom checks the offset_from map and returns its lookup: a
// topic:partition entry wins over a topic entry.
func offsetFrom(m map[string]int) (func(string, int32) int64, error) {
	if len(m) == 0 {
		return nil, nil
	}
	topics := map[string]int64{}
	parts := map[string]int64{}
	for k, v := range m {
		if v < 0 {
			return nil, fmt.Errorf("%q: %d is negative: give the lowest offset to back up", k, v)
		}
		topic, part, hasPart := strings.Cut(k, ":")
		if err := layout.ValidTopic(topic); err != nil {
			return nil, fmt.Errorf("key %q: %w; write a topic or topic:partition", k, err)
		}
		if !hasPart {
			topics[topic] = int64(v)
			continue
		}
		p, err := strconv.ParseInt(part, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("key %q: %q is not a partition number; write topic:partition, for example test:0", k, part)
		}
		parts[topic+":"+strconv.FormatInt(p, 10)] = int64(v)
	}
	return func(topic string, partition int32) int64 {
		if v, ok := parts[topic+":"+strconv.Itoa(int(partition))]; ok {
			return v
		}
		return topics[topic]
	}, nil
}

// instanceID returns an id unique to this process among the writers of one
// backup tree: the host name (in Kubernetes, the pod name) and random bits.
func instanceID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 40 {
		host = host[:40]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	if host == "" {
		return hex.EncodeToString(b[:])
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// Register adds kafka-backup's components to env.
func Register(env *service.Environment) error {
	if err := env.RegisterBatchInput("kafka_backup", InputSpec(), newInput); err != nil {
		return err
	}
	return env.RegisterBatchOutput("kafka_backup", OutputSpec(), newOutput)
}
