package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/restore"
	"github.com/kafka-backup/kafka-backup/tree"
)

// restoreOffsetsCommand is `kafka-backup restore-offsets`: consumer group
// offsets translated again for a restore done earlier, from the offset map
// it saved, without producing.
func restoreOffsetsCommand() *cli.Command {
	return &cli.Command{
		Name:            "restore-offsets",
		HideHelpCommand: true,
		Usage:           "Commit consumer group offsets, translated to records restored earlier (restore --offsets-file), without producing",
		ArgsUsage:       "LOCATION",
		Description: `Reads the consumer groups' committed offsets from the metadata snapshots of
the backup at LOCATION (the latest snapshot holding each topic, or the latest
at or before --until) and the source→target offset map that
'kafka-backup restore --offsets-file FILE' saved, translates each offset as
restore --consumer-groups does (the first restored record at or after it;
below the first: the first; past the last: the partition's end) and commits
it on the target topic of that restore (its --rename included). Nothing is
produced. A group with active members on the target is refused; --dry-run
prints the commits and makes none.

Example:
  kafka-backup restore --brokers kafka:9092 --create-topics --offsets-file restore-map.json /backups
  kafka-backup restore-offsets --brokers kafka:9092 --offsets-file restore-map.json --consumer-groups 'billing|orders-.*' /backups`,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "brokers", Aliases: []string{"b"}, EnvVars: []string{"KAFKA_BROKERS"}, Usage: "target cluster's seed brokers (required, except with --dry-run)"},
			&cli.StringFlag{Name: "offsets-file", Required: true, Usage: "the offset map restore --offsets-file saved"},
			&cli.GenericFlag{Name: "consumer-groups", Value: &repeated{}, Usage: "commit the snapshot's groups matching this regular expression (whole name; repeatable; required)"},
			&cli.StringSliceFlag{Name: "topic", Aliases: []string{"t"}, Usage: "only this backup topic (repeatable)"},
			&cli.StringFlag{Name: "until", Usage: "use the latest snapshot at or before this time (RFC3339 or milliseconds), as the restore's --until"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the commits, make none"},
		}, append(kafkaTargetFlags(), ftpSourceFlags()...)...),
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRestoreOffsets(ctx, c)
		},
	}
}

func runRestoreOffsets(ctx context.Context, c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		return fmt.Errorf("restore-offsets: give exactly one LOCATION (the backup the restore read), not %d; options go before it", len(args))
	}
	cfg := restore.OffsetsConfig{
		MapFile: c.String("offsets-file"),
		Brokers: splitList(c.StringSlice("brokers")),
		Topics:  splitList(c.StringSlice("topic")),
		DryRun:  c.Bool("dry-run"),
	}
	if len(cfg.Brokers) == 0 && !cfg.DryRun {
		return errors.New("restore-offsets: --brokers is required (or KAFKA_BROKERS), except with --dry-run")
	}
	v, _ := c.Generic("consumer-groups").(*repeated)
	if v == nil || len(v.values) == 0 {
		return errors.New("restore-offsets: --consumer-groups is required: give the groups to commit (a regular expression matching whole names, e.g. '.*')")
	}
	var err error
	if cfg.ConsumerGroups, err = metadata.CompileGroups("restore-offsets: --consumer-groups", v.values); err != nil {
		return err
	}
	if c.IsSet("until") {
		t, err := parseTime(c.String("until"))
		if err != nil {
			return fmt.Errorf("restore-offsets: --until: %w", err)
		}
		cfg.Until = &t
	}
	if cfg.ClientOpts, err = kafkaTarget(c).Opts(); err != nil {
		return fmt.Errorf("restore-offsets: %w", err)
	}
	cfg.Log = c.App.ErrWriter
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	src, err := tree.Open(ctx, args[0], ftpSourceOptions(c))
	if err != nil {
		return fmt.Errorf("restore-offsets: %w", err)
	}
	defer src.Close()
	cfg.Source = src
	sum, err := restore.CommitOffsets(ctx, cfg)
	if sum != nil {
		sum.WriteOffsets(stdout(c))
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, restore.ErrRefused):
		return err
	default:
		return fmt.Errorf("restore-offsets failed: %w", err)
	}
}
