package main

import (
	"fmt"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"
)

// helpTemplate is the top-level help (`kafka-backup --help`): urfave/cli's
// default layout with this binary's own name line and description in place
// of Benthos' stock ones.
const helpTemplate = `NAME:
   kafka-backup - back up Kafka topics into files of Kafka's own log segment format, verify them and restore them

USAGE:
   kafka-backup [global options] command [command options]{{if .Version}}{{if not .HideVersion}}

VERSION:
   {{.Version}}{{end}}{{end}}

DESCRIPTION:
   kafka-backup is Redpanda Connect with the kafka_backup output: the redpanda or
   kafka_franz input reads topics, kafka_backup writes one folder per topic
   partition, each file a Kafka log segment named after its first offset, to local
   disk or an FTP server. An acknowledged record is in a file.

     kafka-backup create redpanda//kafka_backup > backup.yaml   # a config to start from
     kafka-backup lint backup.yaml
     kafka-backup run backup.yaml                               # back up until stopped
     kafka-backup ls /backups                                   # what a backup holds
     kafka-backup verify /backups                               # check every file
     kafka-backup restore -b broker:9092 /backups               # produce it back
     kafka-backup demo                                          # try it, no Kafka needed

   Every Redpanda Connect command works too (list, echo, blobl, test, …).

COMMANDS:{{template "visibleCommandCategoryTemplate" .}}{{if .VisibleFlags}}

GLOBAL OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`

// plainConfigs are the inputs `create` prints for a Kafka input into
// kafka_backup: the fast shape of each (config/local-*.yaml; README, Speed).
var plainConfigs = map[string]string{
	"kafka_franz": `    seed_brokers: ["${KAFKA_BROKERS:localhost:9092}"]
    topics: ["${BACKUP_TOPICS:test}"]
    consumer_group: "${BACKUP_GROUP:kafka-backup}"
    transaction_isolation_level: read_committed # records of aborted transactions are not backed up
    multi_header: true # keep every header, duplicates included
    # Batches of many messages cost Benthos far less than one per message;
    # two batches per partition: the next is read while one is written.
    checkpoint_limit: 8192
    batching:
      count: 4096
      period: 100ms
`,
	"redpanda": `    seed_brokers: ["${KAFKA_BROKERS:localhost:9092}"]
    topics: ["${BACKUP_TOPICS:test}"]
    consumer_group: "${BACKUP_GROUP:kafka-backup}"
    start_offset: earliest # a new group backs up each partition from its first record
    transaction_isolation_level: read_committed # records of aborted transactions are not backed up
    # Larger batches: one write and fsync per 4MiB instead of per 32KB.
    partition_buffer_bytes: 2MiB
    max_yield_batch_bytes: 4MiB
`,
}

const plainOutput = `output:
  kafka_backup:
    path: "${BACKUP_PATH:./backups}"
    # The defaults are made for backups: files of up to 100MB, rolled after 1m
    # without records; each partition's records in offset order, written and
    # fsynced together before they are acknowledged. See
    # kafka-backup list outputs kafka_backup for every field.
    # size: 100MB
    # roll_duration: 1m
`

// createCommand replaces Benthos' create: for a Kafka input into
// kafka_backup (create kafka_franz//kafka_backup, create redpanda//kafka_backup)
// it prints a config that runs as it is; any other expression goes to the
// stock create.
func createCommand(env *service.Environment, stock ...service.CLIOptFunc) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a new kafka-backup config: create redpanda//kafka_backup (or kafka_franz//kafka_backup) prints one that backs up topics",
		ArgsUsage: "[INPUTS/PROCESSORS/OUTPUTS]",
		Description: `Prints a new config to stdout. For a Kafka input into kafka_backup,

  kafka-backup create redpanda//kafka_backup > backup.yaml
  kafka-backup create kafka_franz//kafka_backup > backup.yaml

it is a config that runs as it is, in the fast shape of config/ (brokers, topics, group and path from the
environment variables KAFKA_BROKERS, BACKUP_TOPICS, BACKUP_GROUP and
BACKUP_PATH, with defaults). Any other expression prints Redpanda Connect's
generic config with every field, as its create does:

  kafka-backup create stdin/bloblang/stdout`,
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			expr := c.Args().First()
			if in, ok := kafkaBackupExpr(expr); ok && c.Args().Len() == 1 {
				fmt.Fprint(c.App.Writer, "# kafka-backup run this.yaml\ninput:\n  "+in+":\n"+plainConfigs[in]+plainOutput)
				return nil
			}
			// The stock create, from Benthos' own CLI without this command.
			code, err := service.RunCLIToCode(c.Context, append(stock,
				service.CLIOptSetEnvironment(env),
				service.CLIOptSetArgs(append([]string{"kafka-backup", "create"}, c.Args().Slice()...)...))...)
			if err != nil {
				return err
			}
			if code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

// kafkaBackupExpr reports whether expr is a Kafka input straight into
// kafka_backup, and which input.
func kafkaBackupExpr(expr string) (string, bool) {
	parts := strings.Split(expr, "/")
	if len(parts) != 3 || parts[1] != "" || parts[2] != "kafka_backup" {
		return "", false
	}
	_, ok := plainConfigs[parts[0]]
	return parts[0], ok
}
