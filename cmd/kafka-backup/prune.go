package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/prune"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// pruneCommand is `kafka-backup prune`.
func pruneCommand() *cli.Command {
	return &cli.Command{
		Name: "prune",
		// No "help" subcommand: a location named h or help is a location.
		HideHelpCommand: true,
		Usage:           "Delete the files of a backup whose records are all older than a cutoff (a dry run unless --yes)",
		ArgsUsage:       "LOCATION",
		Description: `Deletes old files of a backup tree, <LOCATION>/<topic>/<partition>/<first offset>.
A final file is prunable when its newest record's timestamp is before the
cutoff (--older-than DURATION before now, or --before TIME). Per partition
only the oldest contiguous run of prunable files goes, never a file between
two kept ones, and the newest --keep-files files always stay, so a partition
that went quiet keeps its latest data. Hidden in-progress and upload files are
never touched.

Before deleting anything, prune records the partition's new first offset in
the note ` + layout.PrunedNote + ` of its folder (ls, verify and restore then report
"pruned below offset N" instead of missing offsets) and, on an FTP server,
removes the files from the folder's marker (.kafka-backup.ranges), so a crash
leaves files the marker no longer claims, never a marker claiming deleted
files. Running prune again finishes an interrupted one.

Metadata snapshots (@metadata) older than the cutoff go too, except the newest
one and, per topic, the newest holding it; not with --topic or --partition.

Without --yes nothing is deleted: prune prints what it would delete (files,
offsets, bytes per partition) and each partition's new first offset.

Exit status: 0, 1 when a partition or snapshot could not be pruned (the
others are), 2 when prune could not run (bad options, the location cannot be
listed).

` + locationHelp + `

Examples:
  kafka-backup prune --older-than 30days /backups
  kafka-backup prune --older-than 30days --yes /backups
  kafka-backup prune --before 2024-05-01T00:00:00Z --topic orders --json --yes ftps://backup@ftp.example.com/kafka`,
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "older-than", Usage: "prune files whose newest record is older than this (30days, 720h); or give --before"},
			&cli.StringFlag{Name: "before", Usage: "prune files whose newest record is before this time (RFC3339 or milliseconds); or give --older-than"},
			&cli.IntFlag{Name: "keep-files", Value: 1, Usage: "the newest files of each partition that always stay, old or not"},
			&cli.BoolFlag{Name: "yes", Usage: "delete; without it prune is a dry run that only prints what it would delete"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON document (partitions with the files, offsets and bytes pruned and the new first offset; snapshots; totals)"},
		}, selectionFlags()[:2]...), ftpSourceFlags()...),
		Action: withSignals(runPrune),
	}
}

// pruneCutoff returns the cutoff --older-than or --before gives.
func pruneCutoff(c *cli.Context, now time.Time) (time.Time, error) {
	switch older, before := c.String("older-than"), c.String("before"); {
	case older != "" && before != "":
		return time.Time{}, fmt.Errorf("prune: give --older-than or --before, not both")
	case older != "":
		d, err := units.ParseDuration(older)
		if err != nil {
			return time.Time{}, fmt.Errorf("prune: --older-than %s: %w (e.g. 30days, 720h)", older, err)
		}
		return now.Add(-d), nil
	case before != "":
		t, err := parseTime(before)
		if err != nil {
			return time.Time{}, fmt.Errorf("prune: --before: %w", err)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("prune: give the cutoff: --older-than DURATION (e.g. 30days) or --before TIME")
}

func runPrune(ctx context.Context, c *cli.Context) error {
	loc, err := oneArg(c, "prune", "LOCATION")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	cutoff, err := pruneCutoff(c, time.Now())
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	if c.Int("keep-files") < 0 {
		return cli.Exit("prune: --keep-files must be 0 or more", exitFailed)
	}
	f, err := selectionFilter(c, "prune")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	src, err := tree.Open(ctx, loc, ftpSourceOptions(c))
	if err != nil {
		return cli.Exit(fmt.Errorf("prune: %w", err), exitFailed)
	}
	defer src.Close()
	host, _ := os.Hostname()
	rep, err := prune.Run(ctx, src, prune.Options{
		Filter:    f,
		Cutoff:    cutoff,
		KeepFiles: c.Int("keep-files"),
		Apply:     c.Bool("yes"),
		Snapshots: len(f.Topics) == 0 && len(f.Partitions) == 0,
		Instance:  fmt.Sprintf("prune-%s-%d", host, os.Getpid()),
	})
	if err != nil {
		return cli.Exit(fmt.Errorf("prune: %w", err), exitFailed)
	}
	w := stdout(c)
	if c.Bool("json") {
		if err := writeJSON(w, rep); err != nil {
			return cli.Exit(fmt.Errorf("prune: %w", err), exitFailed)
		}
	} else {
		writePruneText(w, rep)
	}
	if rep.Errors > 0 {
		return cli.Exit(fmt.Sprintf("prune: %d partitions or snapshots of %s could not be pruned", rep.Errors, src), exitProblems)
	}
	return nil
}

func writePruneText(w io.Writer, rep *prune.Report) {
	mode, verb := "", "deleted"
	if rep.DryRun {
		mode, verb = " DRY RUN, nothing deleted (--yes deletes).", "would be deleted"
	}
	fmt.Fprintf(w, "Prune of %s: files whose newest record is before %s, the newest %d of each partition kept.%s\n",
		rep.Location, rep.Cutoff.UTC().Format(time.RFC3339), rep.KeepFiles, mode)
	for _, p := range rep.Partitions {
		switch {
		case len(p.Files) > 0:
			fmt.Fprintf(w, "  %s/%d: %s, offsets %d-%d, %s %s; new first offset %d (%s kept)\n", p.Topic, p.Partition,
				inspect.Plural(int64(len(p.Files)), "file"), p.Files[0].FirstOffset, p.Files[len(p.Files)-1].LastOffset, units.FormatBytes(p.Bytes), verb, *p.NewFirstOffset,
				inspect.Plural(int64(p.Kept), "file"))
			for _, f := range p.Files {
				fmt.Fprintf(w, "      %s  offsets %d-%d  %s  newest record %s\n", f.Name, f.FirstOffset, f.LastOffset,
					units.FormatBytes(f.Size), time.UnixMilli(f.MaxTimestamp).UTC().Format(time.RFC3339))
			}
		case p.Error == "":
			fmt.Fprintf(w, "  %s/%d: nothing to prune (%s kept)\n", p.Topic, p.Partition, inspect.Plural(int64(p.Kept), "file"))
		}
		if p.Stop != "" && len(p.Files) > 0 {
			fmt.Fprintf(w, "      stops there: %s\n", p.Stop)
		}
		if p.Error != "" {
			fmt.Fprintf(w, "  %s/%d: ERROR: %s\n", p.Topic, p.Partition, p.Error)
		}
	}
	for _, s := range rep.Snapshots {
		fmt.Fprintf(w, "  @metadata/%s %s\n", s.Name, verb)
	}
	if rep.SnapshotError != "" {
		fmt.Fprintf(w, "  @metadata: ERROR: %s\n", rep.SnapshotError)
	}
	fmt.Fprintf(w, "Total: %s, %s, %s %s; %s.\n", inspect.Plural(int64(rep.Files), "file"), units.FormatBytes(rep.Bytes),
		inspect.Plural(int64(len(rep.Snapshots)), "snapshot"), verb, inspect.Plural(int64(rep.Errors), "error"))
}
