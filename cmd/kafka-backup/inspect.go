package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/tree"
)

// Exit statuses of verify, ls and cat.
const (
	exitProblems = 1 // the backup has problems (verify), or a file cannot be read
	exitFailed   = 2 // the command could not run: usage, location unreachable
)

// ftpSourceFlags are the options of a command that reads a backup from an
// FTP server: the same as restore's "FTP source" options.
func ftpSourceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "password", Category: "FTP source", Usage: "FTP password; else the environment variable " + tree.PasswordEnv + ", else the one in the URL"},
		&cli.StringFlag{Name: "ftp-ca-file", Category: "FTP source", Usage: "PEM file of CA certificates trusted for ftps://, on top of the system's"},
		&cli.BoolFlag{Name: "ftp-skip-verify", Category: "FTP source", Usage: "do not check the FTPS server's certificate (tests only)"},
		&cli.StringFlag{Name: "ftp-server-name", Category: "FTP source", Usage: "name the FTPS server's certificate must hold; the URL's host when empty"},
		&cli.DurationFlag{Name: "ftp-connect-timeout", Category: "FTP source", Value: 10 * time.Second, Usage: "bound on connecting, TLS and login"},
		&cli.DurationFlag{Name: "ftp-timeout", Category: "FTP source", Value: 30 * time.Second, Usage: "bound on every read and write; a broken download goes on from where it stopped (REST)"},
		&cli.IntFlag{Name: "ftp-connections", Category: "FTP source", Value: 4, Usage: "connections to the server, one listing or download each"},
		&cli.BoolFlag{Name: "ftp-no-epsv", Category: "FTP source", Usage: "passive mode with PASV only, for servers or firewalls that mishandle EPSV"},
	}
}

// ftpSourceOptions returns the tree options the ftpSourceFlags give.
func ftpSourceOptions(c *cli.Context) tree.Options {
	return tree.Options{
		Password:           c.String("password"),
		CAFile:             c.String("ftp-ca-file"),
		InsecureSkipVerify: c.Bool("ftp-skip-verify"),
		ServerName:         c.String("ftp-server-name"),
		ConnectTimeout:     c.Duration("ftp-connect-timeout"),
		IOTimeout:          c.Duration("ftp-timeout"),
		MaxConnections:     c.Int("ftp-connections"),
		DisableEPSV:        c.Bool("ftp-no-epsv"),
	}
}

// selectionFlags choose topics and partitions.
func selectionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "topic", Aliases: []string{"t"}, Usage: "only this topic (repeatable); all topics of the backup when not given; a topic the backup does not have is an error"},
		&cli.IntSliceFlag{Name: "partition", Aliases: []string{"p"}, Usage: "only this partition, in every selected topic (repeatable)"},
		&cli.IntFlag{Name: "parallel", Value: 4, Usage: "partitions read at once (on FTP, also bounded by --ftp-connections)"},
	}
}

func selection(c *cli.Context, cmd string) (tree.Filter, int, error) {
	f, err := selectionFilter(c, cmd)
	if err != nil {
		return f, 0, err
	}
	n := c.Int("parallel")
	if n < 1 {
		return f, 0, fmt.Errorf("%s: --parallel must be at least 1", cmd)
	}
	return f, n, nil
}

// selectionFilter returns the topics and partitions --topic and
// --partition select.
func selectionFilter(c *cli.Context, cmd string) (tree.Filter, error) {
	f := tree.Filter{Topics: splitList(c.StringSlice("topic"))}
	for _, p := range c.IntSlice("partition") {
		if p < 0 || p > 1<<31-1 {
			return f, fmt.Errorf("%s: --partition %d: not a partition number", cmd, p)
		}
		f.Partitions = append(f.Partitions, int32(p))
	}
	return f, nil
}

// oneArg returns the command's only argument, what it is.
func oneArg(c *cli.Context, cmd, what string) (string, error) {
	args := c.Args().Slice()
	if len(args) != 1 {
		for _, a := range args[min(1, len(args)):] {
			if strings.HasPrefix(a, "-") {
				return "", fmt.Errorf("%s: option %s after %s: options go before it (kafka-backup %s [options] %s)", cmd, a, what, cmd, what)
			}
		}
		return "", fmt.Errorf("%s: give exactly one %s, not %d; see kafka-backup %s --help", cmd, what, len(args), cmd)
	}
	return args[0], nil
}

func stdout(c *cli.Context) io.Writer {
	if c.App.Writer != nil {
		return c.App.Writer
	}
	return os.Stdout
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// withSignals runs fn with a context that ends on Ctrl-C or SIGTERM.
func withSignals(fn func(ctx context.Context, c *cli.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return fn(ctx, c)
	}
}

const locationHelp = `LOCATION is a local folder, or ftp://USER@HOST[:PORT]/PATH or
ftps://USER@HOST[:PORT]/PATH (explicit FTPS, AUTH TLS) for a backup made with
fs.schema: ftp; PATH is the output's path. The FTP password comes from
--password, else the environment variable ` + tree.PasswordEnv + `, else the
URL (ftp://user:password@host/…, which shows in your shell history).
Options go before LOCATION.`

// verifyCommand is `kafka-backup verify`.
func verifyCommand() *cli.Command {
	return &cli.Command{
		Name: "verify",
		// No "help" subcommand: a location named h or help is a location.
		HideHelpCommand: true,
		Usage:           "Read every file of a backup in full and check it: CRCs, records, names, offsets, gaps, overlaps, leftovers",
		ArgsUsage:       "LOCATION",
		Description: `Reads every final file of a backup tree, <LOCATION>/<topic>/<partition>/<first offset>,
in full and checks:

  - every batch: its length, magic and CRC-32C, and every record decoded
    (decompressed when the batch is compressed);
  - the end of the file: a file that ends inside a batch is torn;
  - the name: it must be the offset of the file's first record;
  - offsets strictly increasing inside the file (batch by batch and record by
    record), every record inside its batch's offset range;
  - that the bytes read are the size the folder listing gives.

Per partition it reports the offsets held, gaps (offsets between them no file
holds: compacted topics, transaction markers, offset_from, or lost files),
overlaps (the same offsets in two files), files that interleave, hidden
in-progress (.…inprogress) and FTP upload (.…upload) files left in the
folder, and stray names: in the partition folders, in the topic folders and
at the root, and anything that is not a regular file (a FIFO, a socket, a
device, a symbolic link out of the tree), which is never opened. On an FTP
server it checks each folder's marker (.kafka-backup.ranges, which a
restarted backup trusts to skip what is already uploaded) against the files:
every file it lists must be there and hold the offsets it claims. A location
without any partition folder is an error (unless --allow-empty): vsftpd, for
one, lists a missing folder as an empty one. Nothing is changed.

Each problem names the file, the byte where it is and the offset: for a torn
or corrupt batch the base offset its header states, else the offset after the
last good record. Errors: corrupt, torn, misnamed, empty, offset_order, size,
read, marker, missing, no_partitions, pruned (an unreadable prune note). Warnings:
gap, overlap, interleaved, leftover, stray, pruned (a file below the point
where kafka-backup prune cut the partition: an interrupted prune left it). A
pruned partition starts at the offset its note .kafka-backup.pruned gives
("pruned below offset N"); the offsets below it are not reported.
A gap is a warning because compaction and transactions leave
gaps too: on a topic that is neither, a gap is lost files. The base offset and
length of a batch are outside its CRC (as in Kafka): damage there shows as a
torn or corrupt batch, a misnamed file or broken offset order, or, in the last
batch of a file, as shifted offsets (a gap or an overlap).

Exit status: 0 when no error was found (warnings allowed, unless --strict), 1
when the backup has errors (or warnings, with --strict), 2 when verify could
not run (bad options, the location cannot be listed).

` + locationHelp + `

Examples:
  kafka-backup verify /backups
  kafka-backup verify --json --topic orders /backups | jq '.partitions[].problems[]'
  KAFKA_BACKUP_FTP_PASSWORD=… kafka-backup verify ftps://backup@ftp.example.com/kafka`,
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON document (partitions with files, offsets, gaps, overlaps, leftovers and problems; totals; ok) instead of text"},
			&cli.BoolFlag{Name: "strict", Usage: "warnings (gaps, overlaps, interleaved files, leftovers, stray names) fail verification too (exit status 1)"},
			&cli.BoolFlag{Name: "allow-empty", Usage: "a location (or a --topic/--partition selection) without any partition folder is not an error"},
		}, selectionFlags()...), ftpSourceFlags()...),
		Action: withSignals(runVerify),
	}
}

func runVerify(ctx context.Context, c *cli.Context) error {
	loc, err := oneArg(c, "verify", "LOCATION")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	filter, parallel, err := selection(c, "verify")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	src, err := tree.Open(ctx, loc, ftpSourceOptions(c))
	if err != nil {
		return cli.Exit(fmt.Errorf("verify: %w", err), exitFailed)
	}
	defer src.Close()
	rep, err := inspect.Verify(ctx, src, inspect.VerifyOptions{Filter: filter, Parallel: parallel, AllowEmpty: c.Bool("allow-empty")})
	if err != nil {
		return cli.Exit(fmt.Errorf("verify: %w", err), exitFailed)
	}
	w := stdout(c)
	if c.Bool("json") {
		if err := writeJSON(w, rep); err != nil {
			return cli.Exit(fmt.Errorf("verify: %w", err), exitFailed)
		}
	} else {
		rep.WriteText(w)
	}
	switch {
	case rep.Errors > 0:
		return cli.Exit(fmt.Sprintf("verify: %d errors in %s", rep.Errors, src), exitProblems)
	case rep.Warnings > 0 && c.Bool("strict"):
		return cli.Exit(fmt.Sprintf("verify: %d warnings in %s (--strict)", rep.Warnings, src), exitProblems)
	}
	return nil
}

// lsCommand is `kafka-backup ls`.
func lsCommand() *cli.Command {
	return &cli.Command{
		Name: "ls",
		// No "help" subcommand: a location named h or help is a location.
		HideHelpCommand: true,
		Usage:           "List a backup: per topic and partition its files, first and last offset, records, bytes and time range",
		ArgsUsage:       "LOCATION",
		Description: `Lists a backup tree, <LOCATION>/<topic>/<partition>/<first offset>: per partition
the number of files, the first and last offset, records, bytes and the time
range, then a table of its files with the same for each file; hidden
in-progress and upload files and stray names are listed below it (names at
the root and in topic folders that are not topic or partition folders, and
anything that is not a regular file, which is never opened).

Every file is read once (each batch's CRC checked, its records decoded for
their timestamps; kafka-backup verify checks more). Offsets are those of the
batches (docs/FORMAT.md): first is the first batch's base offset, last the
last batch's last offset. Times are the least record timestamp and the
greatest max timestamp of the batches, RFC3339 in UTC (in JSON: milliseconds
since the epoch): timestamps need not grow with offsets.

Exit status: 0, 1 when a file cannot be read in full (torn or damaged,
listed with the error) or a partition folder cannot be listed, 2 when ls
could not run.

` + locationHelp + `

Examples:
  kafka-backup ls /backups
  kafka-backup ls --summary --topic orders /backups
  kafka-backup ls --json ftp://backup@ftp.example.com/kafka | jq '.partitions[] | {topic, partition, records}'`,
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the listing as one JSON document (partitions, each with files, offsets, records, bytes, timestamps in ms, leftovers) instead of text"},
			&cli.BoolFlag{Name: "summary", Usage: "one line per partition, without the table of files (text output only)"},
		}, selectionFlags()...), ftpSourceFlags()...),
		Action: withSignals(runLs),
	}
}

func runLs(ctx context.Context, c *cli.Context) error {
	loc, err := oneArg(c, "ls", "LOCATION")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	filter, parallel, err := selection(c, "ls")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	src, err := tree.Open(ctx, loc, ftpSourceOptions(c))
	if err != nil {
		return cli.Exit(fmt.Errorf("ls: %w", err), exitFailed)
	}
	defer src.Close()
	rep, err := inspect.List(ctx, src, inspect.ListOptions{Filter: filter, Parallel: parallel})
	if err != nil {
		return cli.Exit(fmt.Errorf("ls: %w", err), exitFailed)
	}
	w := stdout(c)
	if c.Bool("json") {
		if err := writeJSON(w, rep); err != nil {
			return cli.Exit(fmt.Errorf("ls: %w", err), exitFailed)
		}
	} else {
		rep.WriteText(w, !c.Bool("summary"))
	}
	if rep.Errors > 0 {
		return cli.Exit(fmt.Sprintf("ls: %d of the files and folders of %s could not be read in full", rep.Errors, src), exitProblems)
	}
	return nil
}

// catCommand is `kafka-backup cat`.
func catCommand() *cli.Command {
	return &cli.Command{
		Name: "cat",
		// No "help" subcommand: a location named h or help is a location.
		HideHelpCommand: true,
		Usage:           "Print the records of one backup file as JSON lines",
		ArgsUsage:       "FILE",
		Description: `Reads one backup file (every batch's CRC checked, compressed batches
decompressed) and prints each record on a line of its own:

  {"offset":5,"timestamp":1714564800000,"key":"k","value":"v","headers":[{"key":"h","value":"x"}]}

timestamp is milliseconds since the Unix epoch. A null key, a null value (a
tombstone) and a null header value are JSON null; an empty one is "". Headers
keep their order and duplicates. Bytes that are valid UTF-8 are printed as a
JSON string; other bytes are base64 (standard, padded) and flagged by
"key_encoding":"base64", "value_encoding":"base64" or, in a header,
"key_encoding"/"value_encoding" next to the field; the flags are absent
otherwise. --base64 encodes every key, value and header value that way.

FILE is a local file (or file:///path), or an FTP file given as
ftp://USER@HOST[:PORT]/PATH/<topic>/<partition>/<file> (ftps:// for explicit
FTPS), PATH being the output's path; the FTP options and password work as
for verify. Options go before FILE.

Exit status: 0; 1 when a batch cannot be read (torn or corrupt): the records
before it are printed, then an error naming the byte; 2 when the file cannot
be opened (or bad options).

Examples:
  kafka-backup cat /backups/orders/0/1500
  kafka-backup cat --from-offset 1700 --to-offset 1710 /backups/orders/0/1500 | jq .
  kafka-backup cat ftp://backup@ftp.example.com/kafka/orders/0/1500 | jq -r 'select(.value == null) | .offset'`,
		Flags: append([]cli.Flag{
			&cli.Int64Flag{Name: "from-offset", DefaultText: "the first", Usage: "print only records from this offset on (inclusive)"},
			&cli.Int64Flag{Name: "to-offset", DefaultText: "the last", Usage: "print only records up to this offset (inclusive); reading stops after it"},
			&cli.BoolFlag{Name: "base64", Usage: "print every key, value and header value as base64 (flagged with *_encoding), not only bytes that are not UTF-8"},
		}, ftpSourceFlags()...),
		Action: withSignals(runCat),
	}
}

func runCat(ctx context.Context, c *cli.Context) error {
	file, err := oneArg(c, "cat", "FILE")
	if err != nil {
		return cli.Exit(err, exitFailed)
	}
	var opts inspect.CatOptions
	for _, name := range []string{"from-offset", "to-offset"} {
		if !c.IsSet(name) {
			continue
		}
		v := c.Int64(name)
		if v < 0 {
			return cli.Exit(fmt.Sprintf("cat: --%s %d: offsets are not negative", name, v), exitFailed)
		}
		if name == "from-offset" {
			opts.FromOffset = &v
		} else {
			opts.ToOffset = &v
		}
	}
	opts.Base64 = c.Bool("base64")
	rc, err := tree.OpenFile(ctx, file, ftpSourceOptions(c))
	if err != nil {
		return cli.Exit(fmt.Errorf("cat: %w", err), exitFailed)
	}
	defer rc.Close()
	if _, err := inspect.Cat(ctx, rc, stdout(c), opts); err != nil {
		return cli.Exit(fmt.Errorf("cat: %s: %w", tree.Redact(file), err), exitProblems)
	}
	return nil
}
