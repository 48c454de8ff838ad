package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/restore"
)

// repeated is a repeatable flag value kept whole: unlike StringSliceFlag,
// it does not split on commas, which regular expressions ({1,3}) and config
// values (cleanup.policy=compact,delete) hold.
type repeated struct{ values []string }

// Set adds one value.
func (r *repeated) Set(v string) error {
	r.values = append(r.values, v)
	return nil
}

// String returns the values, for help output.
func (r *repeated) String() string { return strings.Join(r.values, " ") }

// restoreMetadataFlags are the restore flags that use the backup's metadata
// snapshots (docs/FORMAT.md, @metadata).
func restoreMetadataFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: "topic-config", Value: &repeated{}, Usage: "with --create-topics: set this config of the created topics, as KEY=VALUE, over the backup's snapshot (repeatable; e.g. retention.ms=-1); KEY= leaves the snapshot's KEY to the target's default"},
		&cli.GenericFlag{Name: "consumer-groups", Value: &repeated{}, Usage: "commit the offsets of the snapshot's consumer groups matching this regular expression (whole name; repeatable), translated to the restored records' offsets"},
		&cli.StringFlag{Name: "offsets-file", Usage: "save the source→target offsets of the restored records in this JSON file (added to what it holds), for kafka-backup restore-offsets"},
	}
}

// applyRestoreMetadataFlags reads --topic-config and --consumer-groups into
// cfg.
func applyRestoreMetadataFlags(c *cli.Context, cfg *restore.Config) error {
	if v, ok := c.Generic("topic-config").(*repeated); ok && len(v.values) > 0 {
		cfg.TopicConfigs = map[string]string{}
		for _, kv := range v.values {
			k, val, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return fmt.Errorf("restore: --topic-config %q: give KEY=VALUE, e.g. retention.ms=-1", kv)
			}
			if prev, dup := cfg.TopicConfigs[k]; dup && prev != val {
				return fmt.Errorf("restore: --topic-config: %s given twice, %q and %q", k, prev, val)
			}
			cfg.TopicConfigs[k] = val
		}
		if !cfg.CreateTopics {
			return fmt.Errorf("restore: --topic-config sets configs of the topics --create-topics creates: add --create-topics (existing topics are compared, never changed)")
		}
	}
	cfg.OffsetsFile = c.String("offsets-file")
	if v, ok := c.Generic("consumer-groups").(*repeated); ok && len(v.values) > 0 {
		res, err := metadata.CompileGroups("restore: --consumer-groups", v.values)
		if err != nil {
			return err
		}
		cfg.ConsumerGroups = res
	}
	return nil
}

// kafkaTargetFlags are the TLS and SASL flags of the target cluster, shared
// by restore and restore-offsets.
func kafkaTargetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "tls", Category: "Kafka target", Usage: "connect to the brokers with TLS"},
		&cli.StringFlag{Name: "tls-ca-file", Category: "Kafka target", Usage: "PEM file of CA certificates trusted for the brokers, on top of the system's (implies --tls)"},
		&cli.BoolFlag{Name: "tls-skip-verify", Category: "Kafka target", Usage: "do not check the brokers' certificates (tests only; implies --tls)"},
		&cli.StringFlag{Name: "tls-server-name", Category: "Kafka target", Usage: "name the brokers' certificates must hold; each broker's host when empty"},
		&cli.StringFlag{Name: "sasl-mechanism", Category: "Kafka target", Usage: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		&cli.StringFlag{Name: "sasl-user", Category: "Kafka target", Usage: "SASL user"},
		&cli.StringFlag{Name: "sasl-password", Category: "Kafka target", EnvVars: []string{"KAFKA_SASL_PASSWORD"}, Usage: "SASL password (better from the environment variable KAFKA_SASL_PASSWORD)"},
	}
}

// kafkaTarget reads kafkaTargetFlags.
func kafkaTarget(c *cli.Context) restore.Kafka {
	return restore.Kafka{
		TLS:           c.Bool("tls"),
		TLSCAFile:     c.String("tls-ca-file"),
		TLSSkipVerify: c.Bool("tls-skip-verify"),
		TLSServerName: c.String("tls-server-name"),
		SASLMechanism: c.String("sasl-mechanism"),
		SASLUser:      c.String("sasl-user"),
		SASLPassword:  c.String("sasl-password"),
	}
}
