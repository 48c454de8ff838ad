package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/output"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/units"
)

// Field names of the kafka_backup output's metadata block.
const (
	fieldMetadata       = "metadata"
	fieldMetaBrokers    = "seed_brokers"
	fieldMetaTLS        = "tls"
	fieldMetaSASL       = "sasl"
	fieldMetaMechanism  = "mechanism"
	fieldMetaUser       = "username"
	fieldMetaPassword   = "password"
	fieldMetaInterval   = "interval"
	fieldMetaGroups     = "consumer_groups"
	fieldMetaTopicConfs = "topic_configs"
)

// metadataSpec is the metadata block: where the source cluster is and what
// to snapshot. Its tls block is Benthos' own, as the redpanda input has it;
// sasl has the redpanda input's field names, with the mechanisms PLAIN,
// SCRAM-SHA-256 and SCRAM-SHA-512 only (the input's own client fields live
// in an internal package of Redpanda Connect that plugins cannot import).
func metadataSpec() *service.ConfigField {
	return service.NewObjectField(fieldMetadata,
		service.NewStringListField(fieldMetaBrokers).
			Description("The source cluster's brokers, as the input's `seed_brokers`. Items with commas are split.").
			Example([]string{"kafka:9092"}),
		service.NewTLSToggledField(fieldMetaTLS),
		service.NewObjectListField(fieldMetaSASL,
			service.NewStringEnumField(fieldMetaMechanism, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512").
				Description("The SASL mechanism."),
			service.NewStringField(fieldMetaUser).Description("SASL user.").Default(""),
			service.NewStringField(fieldMetaPassword).Description("SASL password.").Default("").Secret(),
		).Description("SASL authentication, as the redpanda input's `sasl` (PLAIN and SCRAM only); the first entry is used.").
			Optional().Advanced(),
		service.NewStringField(fieldMetaInterval).
			Description("Time between snapshots. A Go duration (`30s`, `5m`), days (`1day`) or a bare number of seconds.").
			Default("1m").
			LintRule(units.DurationLintRule(fieldMetadata+"."+fieldMetaInterval)),
		service.NewStringListField(fieldMetaGroups).
			Description("Regular expressions (RE2, each matching a whole group name) of the consumer groups whose committed offsets on the backed-up topics are recorded, for `restore --consumer-groups`. None when empty.").
			Default([]string{}).
			Example([]string{".*"}).Example([]string{"orders-.*", "billing"}),
		service.NewBoolField(fieldMetaTopicConfs).
			Description("Record each topic's configs set on the topic (retention, cleanup policy, …), for `restore --create-topics`.").
			Default(true),
	).Description("Snapshots of the source cluster's metadata, stored in the backup under `@metadata/`: for every topic the output has written, its partition count, replication factor and configs set on it, and the committed offsets of matching consumer groups on it. Taken once the output has written its first records, when it first writes a topic, every `interval`, and at shutdown. A cluster that cannot be reached is logged and counted (`kafka_backup_metadata_errors`); the backup of records never waits for it. Without this block no snapshot is taken.").
		LintRule(`root = if this.type() == "object" && this.seed_brokers.or([]).length() == 0 { ["metadata.seed_brokers: is empty: give the source cluster's brokers (as the input's seed_brokers), or remove the metadata block"] }`).
		Optional()
}

// newSnapshotter reads the metadata block and returns a Snapshotter that
// stores its files in the tree cfg writes (through the FTP destination's
// uploads when up is set), with cfg's Observer telling it the topics
// written; nil without the block.
func newSnapshotter(conf *service.ParsedConfig, mgr *service.Resources, cfg *rolling.Config, up metadata.Uploader) (*metadata.Snapshotter, error) {
	// The block's defaults are filled in whether it is written or not:
	// seed_brokers, which has none, tells whether it was.
	if !conf.Contains(fieldMetadata, fieldMetaBrokers) {
		return nil, nil
	}
	mc := conf.Namespace(fieldMetadata)
	field := func(f string) string { return fieldMetadata + "." + f }
	brokers, err := mc.FieldStringList(fieldMetaBrokers)
	if err != nil {
		return nil, err
	}
	var seeds []string
	for _, b := range brokers {
		for _, s := range strings.Split(b, ",") {
			if s = strings.TrimSpace(s); s != "" {
				seeds = append(seeds, s)
			}
		}
	}
	if len(seeds) == 0 {
		// No block (some config paths fill the list in empty): the lint
		// rule refuses a block written without brokers.
		return nil, nil
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	tc, tlsOn, err := mc.FieldTLSToggled(fieldMetaTLS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field(fieldMetaTLS), err)
	}
	if tlsOn {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if mc.Contains(fieldMetaSASL) {
		list, err := mc.FieldObjectList(fieldMetaSASL)
		if err != nil {
			return nil, err
		}
		if len(list) > 0 {
			m, err := saslOpt(list[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", field(fieldMetaSASL), err)
			}
			opts = append(opts, m)
		}
	}
	s, err := mc.FieldString(fieldMetaInterval)
	if err != nil {
		return nil, err
	}
	interval, err := units.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field(fieldMetaInterval), err)
	}
	exprs, err := mc.FieldStringList(fieldMetaGroups)
	if err != nil {
		return nil, err
	}
	groups, err := metadata.CompileGroups(field(fieldMetaGroups), exprs)
	if err != nil {
		return nil, err
	}
	topicConfigs, err := mc.FieldBool(fieldMetaTopicConfs)
	if err != nil {
		return nil, err
	}
	var store metadata.Store = metadata.LocalStore{Root: cfg.Dir}
	if up != nil {
		ss := metadata.SpoolStore{Spool: cfg.Dir, Dest: up}
		if err := ss.Requeue(); err != nil {
			return nil, err
		}
		store = ss
	}
	m := mgr.Metrics()
	taken, failed := m.NewCounter("kafka_backup_metadata_snapshots"), m.NewCounter("kafka_backup_metadata_errors")
	taken.Incr(0)
	failed.Incr(0)
	snap, err := metadata.New(metadata.Config{
		ClientOpts: opts, Interval: interval, Groups: groups, TopicConfigs: topicConfigs,
		Instance: cfg.Instance, Store: store, Log: mgr.Logger(),
		Taken: func() { taken.Incr(1) }, Failed: func() { failed.Incr(1) },
	})
	if err != nil {
		return nil, err
	}
	if cfg.Observer == nil {
		cfg.Observer = output.NewObserver(mgr)
	}
	cfg.Observer = topicObserver{Observer: cfg.Observer, snap: snap}
	return snap, nil
}

// saslOpt is the franz-go option of one sasl entry.
func saslOpt(c *service.ParsedConfig) (kgo.Opt, error) {
	mech, err := c.FieldString(fieldMetaMechanism)
	if err != nil {
		return nil, err
	}
	user, err := c.FieldString(fieldMetaUser)
	if err != nil {
		return nil, err
	}
	pass, err := c.FieldString(fieldMetaPassword)
	if err != nil {
		return nil, err
	}
	switch mech {
	case "PLAIN":
		return kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()), nil
	case "SCRAM-SHA-256":
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()), nil
	case "SCRAM-SHA-512":
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()), nil
	}
	return nil, fmt.Errorf("mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mech)
}

// topicObserver tells the Snapshotter each topic the writer writes or
// skips records of, and passes everything on.
type topicObserver struct {
	rolling.Observer
	snap *metadata.Snapshotter
}

// Written records the topic and passes the call on.
func (o topicObserver) Written(topic string, partition int32, records int, bytes int) {
	o.snap.Seen(topic)
	o.Observer.Written(topic, partition, records, bytes)
}

// Skipped records the topic and passes the call on.
func (o topicObserver) Skipped(topic string, partition int32, reason rolling.SkipReason, records int) {
	o.snap.Seen(topic)
	o.Observer.Skipped(topic, partition, reason, records)
}

// metadataOutput is a kafka_backup output with a Snapshotter: started once
// the output connects, its last snapshot taken at Close before the output
// closes (so that the FTP destination uploads it with the last files).
type metadataOutput struct {
	out  service.BatchOutput
	snap *metadata.Snapshotter
}

var _ service.BatchOutput = (*metadataOutput)(nil)

// Connect connects the output, then starts the snapshots.
func (m *metadataOutput) Connect(ctx context.Context) error {
	if err := m.out.Connect(ctx); err != nil {
		return err
	}
	m.snap.Start()
	return nil
}

// WriteBatch writes through the output.
func (m *metadataOutput) WriteBatch(ctx context.Context, b service.MessageBatch) error {
	return m.out.WriteBatch(ctx, b)
}

// Close takes the last snapshot, then closes the output.
func (m *metadataOutput) Close(ctx context.Context) error {
	m.snap.Close(ctx)
	return m.out.Close(ctx)
}

// withMetadata wraps out when snap is set.
func withMetadata(out service.BatchOutput, snap *metadata.Snapshotter) service.BatchOutput {
	if snap == nil {
		return out
	}
	return &metadataOutput{out: out, snap: snap}
}
