// Command run is `make bench`: it measures the kafka_backup output against
// what bounds it, end to end, on one machine.
//
// It builds kafka-backup, tests/bench/broker and tests/bench/barewriter,
// starts the broker (kfake, a process of its own) loaded with -size of
// -record-size records over -partitions partitions, and then runs, one
// after another, each until its consumer group has committed the end offset
// of every partition:
//
//   - for each input (redpanda with partition_buffer_bytes 2MiB and
//     max_yield_batch_bytes 4MiB; kafka_franz with batching count 4096,
//     period 100ms, checkpoint_limit 8192; both with commit_period 200ms and
//     fetch_max_wait 250ms, see -fetch-max-wait): input → drop (the
//     ceiling), input → the stock file output with a per-partition path,
//     input → kafka_backup on local disk (the README's settings), input →
//     kafka_backup to a real pure-ftpd on 127.0.0.1 (tests/ftpd; skipped,
//     saying why, when it is not installed);
//   - the same for the plain config of each input (inputs redpanda-plain
//     and kafka_franz-plain): the input with only seed_brokers, topics,
//     consumer_group (and start_offset: earliest for redpanda), the output
//     with only its path (and the FTP server for the FTP row): what a user
//     who tunes nothing gets; no stock file row;
//   - the bare franz-go writer (tests/bench/barewriter).
//
// Each run gets a fresh consumer group and output folder, removed after.
// It reports MB/s (10^6 bytes of record values per second, from process
// start to the last commit), records/s, CPU seconds (user+sys, from the
// child's rusage), peak RSS (rusage maxrss) and the ratio to the drop row
// of the same input; prints the table and updates docs/benchmarks.md (the
// blocks between <!-- bench:NAME --> markers) with the machine, the command,
// a CPU, allocation and heap profile of the kafka_backup local row and the
// encoder's `go test -bench` numbers.
//
// Scale cases (-scale partitions,small,large or all): 1,000 partitions,
// 100-byte records, 5 GiB.
//
//	go run ./tests/bench/run -size 256MiB
//	go run ./tests/bench/run -scale all
//
// It is a program, not a test: `go test ./...` builds it and runs nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kafka-backup/kafka-backup/units"
)

const topic = "bench"

type options struct {
	size, recSize      int64
	partitions         int
	inputs, rows       []string
	scale              []string
	scaleSize          int64
	largeSize          int64
	scaleInputs        []string
	scaleRows          []string
	manyPartitions     int
	smallRecord        int64
	repeat             int
	profile            bool
	gobench            bool
	doc                string
	workDir            string
	keep               bool
	timeout            time.Duration
	note               string
	skipMain           bool
	goCmd, root        string
	command            string
	profileDir         string
	brokerLoadTimeout  time.Duration
	commitPoll         time.Duration
	ftpUploadTimeout   time.Duration
	measureFDsInterval time.Duration
	partitionBuffer    string // redpanda input partition_buffer_bytes
	franzBatch         int    // kafka_franz batching count
	franzCheckpoint    int    // kafka_franz checkpoint_limit
	maxYield           string // redpanda input max_yield_batch_bytes
	extraOutput        string // extra kafka_backup fields (YAML, no indentation)
	env                []string
	verbose            bool
	fetchMaxWait       string // both inputs' fetch_max_wait; "" for the default
	inputExtra         string // extra input fields (YAML, no indentation, ';'-separated)
	buildFlags         []string
}

var (
	allInputs = []string{"redpanda-plain", "kafka_franz-plain", "redpanda", "kafka_franz"}
	allRows   = []string{"drop", "file", "backup", "ftp", "bare"}
	allScale  = []string{"partitions", "small", "large"}
)

func main() {
	handleInterrupts()
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags() (*options, error) {
	var (
		size        = flag.String("size", "1GiB", "total record value bytes loaded into the broker (256MiB for a quick run)")
		recSize     = flag.String("record-size", "1KiB", "value size of each record")
		partitions  = flag.Int("partitions", 8, "partitions of the topic")
		inputs      = flag.String("inputs", strings.Join(allInputs, ","), "inputs to measure: redpanda-plain,kafka_franz-plain (the plain configs: nothing tuned),redpanda,kafka_franz (the README's tuned configs)")
		rows        = flag.String("rows", strings.Join(allRows, ","), "rows: drop,file,backup,ftp,bare")
		scale       = flag.String("scale", "", "scale cases to run as well: partitions (1,000 partitions), small (100-byte records), large (-large-size, 5GiB), or all")
		scaleSize   = flag.String("scale-size", "", "size of the partitions and small cases (default: -size)")
		largeSize   = flag.String("large-size", "5GiB", "size of the large case")
		scaleInputs = flag.String("scale-inputs", "redpanda", "inputs of the scale cases")
		scaleRows   = flag.String("scale-rows", "drop,backup,bare", "rows of the scale cases")
		many        = flag.Int("many-partitions", 1000, "partitions of the partitions case")
		small       = flag.String("small-record-size", "100B", "record size of the small case")
		repeat      = flag.Int("repeat", 1, "run every row of the main comparison this many times (rounds over all rows) and report the median")
		profile     = flag.Bool("profile", true, "profile the kafka_backup local row (redpanda input) through /debug/pprof")
		gobench     = flag.Bool("gobench", true, "run go test -bench on ./segment and ./rolling for the encoder section")
		doc         = flag.String("doc", "docs/benchmarks.md", "markdown file to update (relative to the module root); empty: none")
		workDir     = flag.String("dir", "", "work folder for outputs, logs and binaries (default: a new folder in $TMPDIR)")
		keep        = flag.Bool("keep", false, "keep the work folder (outputs, logs, configs)")
		timeout     = flag.Duration("timeout", 15*time.Minute, "limit on each row")
		note        = flag.String("note", "", "a note to print with the results in the document (e.g. \"quiet machine\")")
		skipMain    = flag.Bool("no-main", false, "skip the main comparison (run only -scale cases)")
		profDir     = flag.String("profile-dir", "", "where to keep the profiles (default: $TMPDIR/kafka-backup-bench-profiles)")
		partBuf     = flag.String("partition-buffer", "2MiB", "the redpanda input's partition_buffer_bytes")
		franzBatch  = flag.Int("franz-batch", 4096, "the kafka_franz input's batching count")
		franzCkpt   = flag.Int("franz-checkpoint", 8192, "the kafka_franz input's checkpoint_limit")
		maxYield    = flag.String("max-yield", "4MiB", "the redpanda input's max_yield_batch_bytes")
		extraOut    = flag.String("backup-extra", "", "extra kafka_backup fields for the backup and ftp rows, YAML flow lines separated by ';' (e.g. \"fsync: never;max_in_flight: 64\")")
		fetchWait   = flag.String("fetch-max-wait", "250ms", "both inputs' fetch_max_wait (the inputs' default is 5s, which adds up to 5 s to a run once most partitions are drained: see docs/benchmarks.md); empty: the inputs' default")
		inputExtra  = flag.String("input-extra", "", "extra fields for both inputs, ';'-separated (e.g. \"fetch_max_bytes: 8MiB\")")
		buildFlags  = flag.String("buildflags", "", "extra go build flags for kafka-backup, e.g. \"-overlay=/tmp/overlay.json\" to try a change without editing the tree")
		verbose     = flag.Bool("v", false, "print each row's commit progress (share of records committed, every 0.5 s)")
		env         = flag.String("env", "", "environment for the measured kafka-backup and barewriter processes, e.g. \"GOMEMLIMIT=150MiB GOGC=50\"")
	)
	flag.Parse()
	o := &options{
		partitions: *partitions, repeat: *repeat, profile: *profile, gobench: *gobench, doc: *doc,
		workDir: *workDir, keep: *keep, timeout: *timeout, note: *note, skipMain: *skipMain,
		manyPartitions: *many, profileDir: *profDir,
		partitionBuffer: *partBuf, franzBatch: *franzBatch, franzCheckpoint: *franzCkpt, maxYield: *maxYield, extraOutput: *extraOut,
		env: strings.Fields(*env), verbose: *verbose, fetchMaxWait: *fetchWait, inputExtra: *inputExtra, buildFlags: strings.Fields(*buildFlags),
		brokerLoadTimeout: 60 * time.Minute, commitPoll: 100 * time.Millisecond,
		ftpUploadTimeout: 5 * time.Minute, measureFDsInterval: 250 * time.Millisecond,
	}
	var err error
	parse := func(s string, dst *int64, name string) {
		if err == nil {
			if *dst, err = units.ParseSize(s); err != nil {
				err = fmt.Errorf("-%s: %w", name, err)
			}
		}
	}
	parse(*size, &o.size, "size")
	parse(*recSize, &o.recSize, "record-size")
	parse(*largeSize, &o.largeSize, "large-size")
	parse(*small, &o.smallRecord, "small-record-size")
	o.scaleSize = o.size
	if *scaleSize != "" {
		parse(*scaleSize, &o.scaleSize, "scale-size")
	}
	if err != nil {
		return nil, err
	}
	list := func(s string, allowed []string, name string) []string {
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if v == "all" {
				return append([]string(nil), allowed...)
			}
			if !slices.Contains(allowed, v) {
				if err == nil {
					err = fmt.Errorf("-%s: unknown %q (use %s)", name, v, strings.Join(allowed, ", "))
				}
				continue
			}
			out = append(out, v)
		}
		return out
	}
	o.inputs = list(*inputs, allInputs, "inputs")
	o.rows = list(*rows, allRows, "rows")
	o.scale = list(*scale, allScale, "scale")
	o.scaleInputs = list(*scaleInputs, allInputs, "scale-inputs")
	o.scaleRows = list(*scaleRows, allRows, "scale-rows")
	if err != nil {
		return nil, err
	}
	if o.repeat < 1 {
		o.repeat = 1
	}
	if o.partitions < 1 || o.manyPartitions < 1 {
		return nil, errors.New("partitions must be at least 1")
	}
	if o.size < o.recSize {
		return nil, errors.New("-size is smaller than one record")
	}
	o.command = "make bench"
	if args := os.Args[1:]; len(args) > 0 {
		o.command = fmt.Sprintf("make bench BENCH_ARGS=%q", strings.Join(args, " "))
	}
	return o, nil
}

// benchCase is one broker load and the rows run against it.
type benchCase struct {
	id         string // doc block name
	title      string
	partitions int
	recSize    int64
	size       int64
	inputs     []string
	rows       []string
}

func (c benchCase) records() int64 { return c.size / c.recSize }

func (c benchCase) describe() string {
	return fmt.Sprintf("%s of %s records (%d records) over %d partitions", fmtSize(c.records()*c.recSize), fmtSize(c.recSize), c.records(), c.partitions)
}

func run(o *options) error {
	o.goCmd = os.Getenv("GO")
	if o.goCmd == "" {
		o.goCmd = "go"
	}
	out, err := exec.Command(o.goCmd, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return fmt.Errorf("run this inside the kafka-backup module (go env GOMOD: %v)", err)
	}
	o.root = filepath.Dir(strings.TrimSpace(string(out)))

	if o.workDir == "" {
		if o.workDir, err = os.MkdirTemp("", "kafka-backup-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("work folder %s (kept)\n", o.workDir)
	} else {
		defer os.RemoveAll(o.workDir)
		onInterrupt(func() { _ = os.RemoveAll(o.workDir) })
	}
	if o.profileDir == "" {
		o.profileDir = filepath.Join(os.TempDir(), "kafka-backup-bench-profiles")
	}

	load0 := loadAvg()
	m := describeMachine(o.goCmd, o.workDir)
	fmt.Printf("machine: %s, %d cores, %s memory, %s, %s; load average %.2f\n", m.CPU, m.Cores, m.Memory, m.Disk, m.Go, load0)

	bins, err := build(o)
	if err != nil {
		return err
	}
	rep := &report{machine: m, opts: o, load0: load0, started: time.Now()}

	var cases []benchCase
	if !o.skipMain {
		cases = append(cases, benchCase{id: "main", title: "Main comparison", partitions: o.partitions, recSize: o.recSize, size: o.size, inputs: o.inputs, rows: o.rows})
	}
	for _, s := range o.scale {
		switch s {
		case "partitions":
			cases = append(cases, benchCase{id: "scale-partitions", title: fmt.Sprintf("%d partitions", o.manyPartitions), partitions: o.manyPartitions, recSize: o.recSize, size: o.scaleSize, inputs: o.scaleInputs, rows: o.scaleRows})
		case "small":
			cases = append(cases, benchCase{id: "scale-small", title: fmt.Sprintf("%s records", fmtSize(o.smallRecord)), partitions: o.partitions, recSize: o.smallRecord, size: o.scaleSize, inputs: o.scaleInputs, rows: o.scaleRows})
		case "large":
			cases = append(cases, benchCase{id: "scale-large", title: fmt.Sprintf("%s: flat memory", fmtSize(o.largeSize)), partitions: o.partitions, recSize: o.recSize, size: o.largeSize, inputs: o.scaleInputs, rows: o.scaleRows})
		}
	}

	var ftp *ftpServer
	needFTP := false
	for _, c := range cases {
		needFTP = needFTP || slices.Contains(c.rows, "ftp")
	}
	if needFTP {
		var skip string
		ftp, skip, err = startPureFtpd()
		switch {
		case err != nil:
			rep.ftpSkip = "pure-ftpd did not start: " + err.Error()
		case skip != "":
			rep.ftpSkip = skip
		default:
			defer ftp.stop()
			onInterrupt(ftp.stop)
			fmt.Printf("pure-ftpd on %s, root %s\n", ftp.Addr, ftp.Root)
		}
		if rep.ftpSkip != "" {
			fmt.Printf("skipping the FTP rows: %s\n", rep.ftpSkip)
		}
	}

	for _, c := range cases {
		cr, err := runCase(o, bins, c, ftp)
		if err != nil {
			return fmt.Errorf("%s: %w", c.title, err)
		}
		rep.cases = append(rep.cases, cr)
		printTable(cr)
	}

	if o.gobench {
		rep.gobenchAttempted = true
		gb, err := runGoBench(o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: go test -bench: %v\n", err)
			rep.gobenchErr = err.Error()
		}
		rep.gobench = gb
	}
	rep.load1 = loadAvg()
	rep.finished = time.Now()

	fmt.Println()
	fmt.Println(rep.targetsMarkdown())
	if o.doc != "" {
		path := o.doc
		if !filepath.IsAbs(path) {
			path = filepath.Join(o.root, path)
		}
		if err := rep.writeDoc(path); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", path)
	}
	return nil
}

// binaries are the programs build makes.
type binaries struct {
	kafkaBackup, broker, bare string
}

func build(o *options) (binaries, error) {
	dir := filepath.Join(o.workDir, "bin")
	b := binaries{
		kafkaBackup: filepath.Join(dir, "kafka-backup"),
		broker:      filepath.Join(dir, "broker"),
		bare:        filepath.Join(dir, "barewriter"),
	}
	for pkg, out := range map[string]string{
		"./cmd/kafka-backup":       b.kafkaBackup,
		"./tests/bench/broker":     b.broker,
		"./tests/bench/barewriter": b.bare,
	} {
		// As `make build`, without stripping (profiles keep their symbols).
		args := []string{"build", "-trimpath", "-o", out}
		if pkg == "./cmd/kafka-backup" {
			args = append(args, o.buildFlags...)
		}
		cmd := exec.Command(o.goCmd, append(args, pkg)...)
		cmd.Dir = o.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// rowResult is one measured run.
type rowResult struct {
	input, row string
	skipped    string // why the row did not run

	elapsed   time.Duration // process start to the last commit
	steady    time.Duration // from 10% to 90% of the records committed: no start-up, no end game
	uploaded  time.Duration // FTP: process start to every record on the server
	cpu       time.Duration // user+sys of the measured process
	sys       time.Duration // the sys (kernel) part of cpu
	rss       int64         // peak RSS, bytes
	brokerCPU time.Duration // the broker's CPU from start to the last commit
	otherCPU  time.Duration // everybody else's CPU in that time (the machine's load)
	maxFDs    int
	rssByQ    [4]int64 // the highest RSS seen while 0-25 %, 25-50 %, 50-75 %, 75-100 % of the records were committed
	check     string   // what the output folder held, or what was wrong with it
	mbps      []float64
}

func (r *rowResult) label() string {
	switch r.row {
	case "drop":
		return "drop (ceiling)"
	case "file":
		return "stock `file`"
	case "backup":
		return "`kafka_backup` local"
	case "ftp":
		return "`kafka_backup` FTP (pure-ftpd)"
	case "bare":
		return "bare franz-go writer"
	}
	return r.row
}

type caseResult struct {
	c       benchCase
	rows    []*rowResult // in run order, medians
	records int64
	bytes   int64 // record value bytes
	load    float64
	brokerS float64 // seconds the broker took to load

	profile    *profileResult // the kafka_backup local row's profile (main case)
	profileErr string
}

// mb is the rate in MB/s (10^6 bytes) of the record values over d.
func (cr *caseResult) mb(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(cr.bytes) / 1e6 / d.Seconds()
}

func runCase(o *options, bins binaries, c benchCase, ftp *ftpServer) (*caseResult, error) {
	fmt.Printf("\n== %s: %s\n", c.title, c.describe())
	start := time.Now()
	b, err := startBroker(bins.broker, filepath.Join(o.workDir, "broker-"+c.id+".log"), o.brokerLoadTimeout,
		"-topic", topic, "-partitions", fmt.Sprint(c.partitions),
		"-size", fmt.Sprint(c.records()*c.recSize), "-record-size", fmt.Sprint(c.recSize))
	if err != nil {
		return nil, err
	}
	defer b.stop()
	undo := onInterrupt(b.stop)
	defer undo()
	cr := &caseResult{c: c, load: loadAvg(), brokerS: time.Since(start).Seconds()}

	adm, err := newAdmin(b.addr, topic, int32(c.partitions))
	if err != nil {
		return nil, err
	}
	defer adm.close()
	ctx := context.Background()
	ends, err := adm.endOffsets(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range ends {
		cr.records += e
	}
	cr.bytes = cr.records * c.recSize

	type key struct{ input, row string }
	var order []key
	for _, in := range c.inputs {
		for _, row := range c.rows {
			if row != "bare" && !(row == "file" && isPlain(in)) {
				order = append(order, key{in, row})
			}
		}
	}
	if slices.Contains(c.rows, "bare") {
		order = append(order, key{"franz-go", "bare"})
	}
	runs := map[key][]*rowResult{}
	n := 0
	rounds := o.repeat
	if c.id != "main" {
		rounds = 1 // scale cases are long: once
	}
	for round := 0; round < rounds; round++ {
		for _, k := range order {
			n++
			r := &rowResult{input: k.input, row: k.row}
			if k.row == "ftp" && ftp == nil {
				r.skipped = "no FTP server"
				runs[k] = append(runs[k], r)
				continue
			}
			dir := filepath.Join(o.workDir, fmt.Sprintf("%s-%d-%s-%s", c.id, n, k.input, k.row))
			group := fmt.Sprintf("bench-%s-%d-%s-%s-%d", c.id, n, k.input, k.row, time.Now().UnixNano())
			fmt.Printf("-- %-12s %-30s ", k.input, r.label())
			if err := runRow(ctx, o, bins, b, adm, ends, cr, r, group, dir, ftp, nil); err != nil {
				fmt.Println("FAILED")
				return cr, fmt.Errorf("%s → %s: %w", k.input, k.row, err)
			}
			fmt.Printf("%7.1f MB/s  %5.1f s  CPU %5.1f s  RSS %5.0f MB  %s\n",
				cr.mb(r.elapsed), r.elapsed.Seconds(), r.cpu.Seconds(), float64(r.rss)/1e6, r.check)
			runs[k] = append(runs[k], r)
			if !o.keep {
				_ = os.RemoveAll(dir)
				if k.row == "ftp" {
					_ = ftp.clear("/bench")
				}
			}
		}
	}
	for _, k := range order {
		rs := runs[k]
		if rs[0].skipped != "" {
			cr.rows = append(cr.rows, rs[0])
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].elapsed < rs[j].elapsed })
		med := rs[(len(rs)-1)/2] // of an even count, the faster middle run
		for _, r := range rs {
			med.mbps = append(med.mbps, cr.mb(r.elapsed))
		}
		cr.rows = append(cr.rows, med)
	}
	if c.id == "main" && o.profile && cr.row("redpanda", "backup") != nil {
		if cr.profile, err = profileBackup(o, bins, b, adm, ends, cr); err != nil {
			fmt.Fprintf(os.Stderr, "bench: profile: %v\n", err)
			cr.profileErr = err.Error()
		}
	}
	return cr, nil
}

// pipelineConfig is the Benthos config of a row.
func pipelineConfig(o *options, addr, input, row, group, dir string, ftp *ftpServer, httpAddr string) string {
	var b strings.Builder
	if httpAddr != "" {
		fmt.Fprintf(&b, "http:\n  enabled: true\n  address: %q\n  debug_endpoints: true\n", httpAddr)
	} else {
		b.WriteString("http:\n  enabled: false\n")
	}
	b.WriteString("logger:\n  level: INFO\n  format: logfmt\nshutdown_timeout: 60s\ninput:\n")
	switch input {
	case "redpanda-plain":
		// The plain config: what a user who tunes nothing writes. Only
		// commit_period and fetch_max_wait (below) are added, for the
		// measurement: they change when the end is seen, not the rate.
		fmt.Fprintf(&b, `  redpanda:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
    start_offset: earliest
    commit_period: 200ms
`, addr, topic, group)
	case "kafka_franz-plain":
		fmt.Fprintf(&b, `  kafka_franz:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
    commit_period: 200ms
`, addr, topic, group)
	case "redpanda":
		fmt.Fprintf(&b, `  redpanda:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
    start_offset: earliest
    commit_period: 200ms
    partition_buffer_bytes: %s
    max_yield_batch_bytes: %s
`, addr, topic, group, o.partitionBuffer, o.maxYield)
	case "kafka_franz":
		fmt.Fprintf(&b, `  kafka_franz:
    seed_brokers: [%q]
    topics: [%q]
    consumer_group: %q
    start_from_oldest: true
    multi_header: true
    commit_period: 200ms
    checkpoint_limit: %d
    batching:
      count: %d
      period: 100ms
`, addr, topic, group, o.franzCheckpoint, o.franzBatch)
	}
	if o.fetchMaxWait != "" {
		fmt.Fprintf(&b, "    fetch_max_wait: %s\n", o.fetchMaxWait)
	}
	for _, l := range strings.Split(o.inputExtra, ";") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString("    " + l + "\n")
		}
	}
	b.WriteString("output:\n")
	// The output's max_in_flight is its default for every input: it puts
	// kafka_franz's concurrent batches of a partition back in order.
	inflight := ""
	// The plain config's output: path only (and the FTP server).
	sizes := "    size: 100MB\n    roll_duration: 1m\n"
	ftpSizes := "    size: 10MB\n    roll_duration: 3s\n"
	if isPlain(input) {
		sizes, ftpSizes = "", ""
	}
	for _, l := range strings.Split(o.extraOutput, ";") {
		if l = strings.TrimSpace(l); l != "" {
			inflight += "    " + l + "\n"
		}
	}
	switch row {
	case "drop":
		b.WriteString("  drop: {}\n")
	case "file":
		fmt.Fprintf(&b, "  file:\n    path: '%s/${! @kafka_topic }/${! @kafka_partition }'\n    codec: lines\n", dir)
	case "backup":
		fmt.Fprintf(&b, "  kafka_backup:\n    path: %q\n%s%s", dir, sizes, inflight)
	case "ftp":
		fmt.Fprintf(&b, `  kafka_backup:
    path: /bench
    fs:
      schema: ftp
      ftp:
        hostname: %q
        port: %d
        user: %q
        password: ${FTP_PASSWORD}
        spool: %q
%s%s`, ftp.Host, ftp.Port, ftp.User, filepath.Join(dir, "spool"), ftpSizes, inflight)
	}
	return b.String()
}

// isPlain says whether input is the plain config of an input (nothing
// tuned: see pipelineConfig).
func isPlain(input string) bool { return strings.HasSuffix(input, "-plain") }

// hooks let the profiler act during a row.
type hooks struct {
	addr      string         // the process's HTTP address (debug endpoints on), set by runRow
	started   func(c *child) // after the process started
	half      func(c *child) // once half the records are committed
	committed func(c *child) // after the last commit, before the stop
}

// runRow runs one row until the group committed the end offsets, stops the
// process and fills r.
func runRow(ctx context.Context, o *options, bins binaries, b *broker, adm *admin, ends []int64, cr *caseResult, r *rowResult, group, dir string, ftp *ftpServer, h *hooks) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var (
		c   *child
		err error
		env []string
	)
	logFile := filepath.Join(dir, "..", filepath.Base(dir)+".log")
	brokerCPU0, machine0 := procCPU(b.pid()), machineCPU()
	t0 := time.Now()
	if r.row == "bare" {
		args := []string{"-brokers", b.addr, "-topics", topic, "-group", group, "-dir", dir}
		if o.fetchMaxWait != "" {
			d, err := units.ParseDuration(o.fetchMaxWait)
			if err != nil {
				return fmt.Errorf("-fetch-max-wait: %w", err)
			}
			args = append(args, "-fetch-max-wait", d.String())
		}
		c, err = startChild(logFile, o.env, bins.bare, args...)
	} else {
		httpAddr := ""
		if h != nil {
			if httpAddr, err = freeAddr(); err != nil {
				return err
			}
			h.addr = httpAddr
		}
		cfg := pipelineConfig(o, b.addr, r.input, r.row, group, dir, ftp, httpAddr)
		cfgFile := filepath.Join(dir, "..", filepath.Base(dir)+".yaml")
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			return err
		}
		env = o.env
		if ftp != nil {
			env = append(slices.Clone(env), "FTP_PASSWORD="+ftp.Password)
		}
		t0 = time.Now()
		c, err = startChild(logFile, env, bins.kafkaBackup, "run", cfgFile)
	}
	if err != nil {
		return err
	}
	defer c.kill()
	if h != nil && h.started != nil {
		h.started(c)
	}

	var total int64
	for _, e := range ends {
		total += e
	}
	deadline := t0.Add(o.timeout)
	tick := time.NewTicker(o.commitPoll)
	defer tick.Stop()
	lastFD := time.Time{}
	var frac float64 // share of the records committed at the last poll
	var t10, t90, lastPrint time.Time
	var progress []string
	for {
		now := time.Now()
		if now.Sub(lastFD) >= o.measureFDsInterval {
			r.maxFDs = max(r.maxFDs, openFDs(c.cmd.Process.Pid))
			q := min(int(frac*4), 3)
			r.rssByQ[q] = max(r.rssByQ[q], procRSS(c.cmd.Process.Pid))
			lastFD = now
		}
		got, err := adm.committed(ctx, group)
		if err == nil {
			var sum int64
			done := true
			for p, e := range ends {
				sum += min(got[p], e)
				if got[p] < e {
					done = false
				}
			}
			if o.verbose && now.Sub(lastPrint) >= 500*time.Millisecond {
				progress = append(progress, fmt.Sprintf("%.1fs:%d%%", now.Sub(t0).Seconds(), sum*100/max(total, 1)))
				if sum*100 >= total*99 && !done {
					var behind []string
					for p, e := range ends {
						if got[p] < e {
							behind = append(behind, fmt.Sprintf("p%d:%d/%d", p, got[p], e))
						}
					}
					progress = append(progress, "(behind "+strings.Join(behind, " ")+")")
				}
				lastPrint = now
			}
			frac = float64(sum) / float64(max(total, 1))
			if t10.IsZero() && sum*10 >= total {
				t10 = now
			}
			if t90.IsZero() && sum*10 >= total*9 {
				t90 = now
			}
			if h != nil && h.half != nil && sum*2 >= total {
				h.half(c)
				h.half = nil
			}
			if done {
				r.elapsed = now.Sub(t0)
				r.steady = t90.Sub(t10)
				break
			}
		}
		if c.exited() {
			return fmt.Errorf("the process exited (%v):\n%s", c.err, c.tail(4000))
		}
		if now.After(deadline) {
			return fmt.Errorf("not done after %v (last commits %v, error %v):\n%s", o.timeout, got, err, c.tail(4000))
		}
		<-tick.C
	}
	if o.verbose {
		fmt.Printf("\n   commits: %s; all at %.1fs\n   ", strings.Join(progress, " "), r.elapsed.Seconds())
	}
	r.brokerCPU = procCPU(b.pid()) - brokerCPU0
	machineBusy := machineCPU() - machine0
	ownCPU := procCPU(c.cmd.Process.Pid)

	if r.row == "ftp" {
		// Committed means in the spool: wait until the server has it all.
		counter := newSegmentCounter()
		for {
			n, _, _, err := counter.count(ftp.Path("/bench"))
			if err == nil && n >= total {
				r.uploaded = time.Since(t0)
				break
			}
			if c.exited() {
				return fmt.Errorf("the process exited (%v):\n%s", c.err, c.tail(4000))
			}
			if time.Since(t0) > o.timeout+o.ftpUploadTimeout {
				return fmt.Errorf("%d of %d records on the FTP server after %v (%v)", n, total, time.Since(t0), err)
			}
			time.Sleep(o.commitPoll)
		}
	}
	if h != nil && h.committed != nil {
		h.committed(c)
	}
	if err := c.stop(2 * time.Minute); err != nil {
		return fmt.Errorf("stopping: %v\n%s", err, c.tail(4000))
	}
	r.cpu, r.sys, r.rss = c.usage()
	r.otherCPU = max(0, machineBusy-ownCPU-r.brokerCPU)

	// What the output holds after the shutdown.
	switch r.row {
	case "backup", "bare", "ftp":
		where := dir
		if r.row == "ftp" {
			where = ftp.Path("/bench")
		}
		n, files, hidden, err := newSegmentCounter().count(where)
		switch {
		case err != nil:
			r.check = "unreadable: " + err.Error()
		case n != total:
			r.check = fmt.Sprintf("MISMATCH: %d of %d records in %d files", n, total, files)
		case len(hidden) > 0:
			r.check = fmt.Sprintf("%d files, %d in-progress left", files, len(hidden))
		default:
			r.check = fmt.Sprintf("%d records in %d files", n, files)
		}
		if r.row == "ftp" {
			if left, _, _ := dirBytes(filepath.Join(dir, "spool")); left > 0 {
				r.check += fmt.Sprintf(", %d bytes left in the spool", left)
			}
		}
	case "file":
		bytes, files, err := dirBytes(dir)
		want := total * (cr.c.recSize + 1) // lines: value and a newline
		switch {
		case err != nil:
			r.check = "unreadable: " + err.Error()
		case bytes != want:
			r.check = fmt.Sprintf("MISMATCH: %d of %d bytes in %d files", bytes, want, files)
		default:
			r.check = fmt.Sprintf("%d bytes in %d files", bytes, files)
		}
	default:
		r.check = "-"
	}
	return nil
}

func fmtSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// Interrupts: the measured processes and the broker die with this process
// (Pdeathsig), but folders and the FTP server need cleaning up.
var (
	interruptMu sync.Mutex
	interruptFn = map[int]func(){}
	interruptN  int
)

// onInterrupt registers fn to run, newest first, on SIGINT or SIGTERM; the
// returned function unregisters it.
func onInterrupt(fn func()) func() {
	interruptMu.Lock()
	defer interruptMu.Unlock()
	interruptN++
	id := interruptN
	interruptFn[id] = fn
	return func() {
		interruptMu.Lock()
		delete(interruptFn, id)
		interruptMu.Unlock()
	}
}

func handleInterrupts() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "\nbench: %v: cleaning up\n", sig)
		interruptMu.Lock()
		ids := slices.Sorted(maps.Keys(interruptFn))
		fns := interruptFn
		interruptFn = map[int]func(){}
		interruptMu.Unlock()
		for i := len(ids) - 1; i >= 0; i-- {
			fns[ids[i]]()
		}
		os.Exit(130)
	}()
}
