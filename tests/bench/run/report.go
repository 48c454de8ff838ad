package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// report is everything one invocation measured.
type report struct {
	machine          machine
	opts             *options
	load0, load1     float64
	started          time.Time
	finished         time.Time
	cases            []*caseResult
	ftpSkip          string
	gobench          []goBench
	gobenchErr       string
	gobenchAttempted bool
}

func (rep *report) caseByID(id string) *caseResult {
	for _, c := range rep.cases {
		if c.c.id == id {
			return c
		}
	}
	return nil
}

func (cr *caseResult) row(input, row string) *rowResult {
	for _, r := range cr.rows {
		if r.row == row && (r.input == input || row == "bare") && r.skipped == "" {
			return r
		}
	}
	return nil
}

// otherCores is how many cores other processes used on average while the
// case's rows ran (the machine's busy time minus the measured process and
// the broker).
func (cr *caseResult) otherCores() float64 {
	var other, wall time.Duration
	for _, r := range cr.rows {
		if r.skipped == "" {
			other += r.otherCPU
			wall += r.elapsed
		}
	}
	if wall == 0 {
		return 0
	}
	return other.Seconds() / wall.Seconds()
}

// loaded says whether other work took a noticeable share of the machine.
func (rep *report) loaded(cr *caseResult) bool {
	return cr.otherCores() > 0.25*float64(rep.machine.Cores)
}

func (rep *report) anyLoaded() bool {
	for _, cr := range rep.cases {
		if rep.loaded(cr) {
			return true
		}
	}
	return false
}

func (rep *report) loadNote(cr *caseResult) string {
	cores := rep.machine.Cores
	if rep.loaded(cr) {
		return fmt.Sprintf("**the machine was loaded**: other processes used %.1f of its %d cores on average during the rows (1-minute load average %.1f before the case), so absolute numbers are low and noisy", cr.otherCores(), cores, cr.load)
	}
	return fmt.Sprintf("the machine was quiet: other processes used %.2f of its %d cores on average during the rows", cr.otherCores(), cores)
}

// caseMarkdown is the block of one case: how it was measured and its table.
func (rep *report) caseMarkdown(cr *caseResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s with `%s`: %s; %s.", rep.started.Format("2006-01-02"), rep.opts.command, cr.c.describe(), rep.loadNote(cr))
	if rep.opts.note != "" {
		fmt.Fprintf(&b, " Note: %s.", rep.opts.note)
	}
	if rep.opts.repeat > 1 && cr.c.id == "main" {
		fmt.Fprintf(&b, " Each row ran %d times (in rounds over all rows); the table shows the run with the median time.", rep.opts.repeat)
	}
	b.WriteString("\n\n")
	b.WriteString(tableMarkdown(cr, rep.opts.repeat > 1 && cr.c.id == "main"))
	b.WriteString("\n")
	if cr.c.id == "scale-large" || cr.c.id == "scale-partitions" {
		for _, r := range cr.rows {
			if r.skipped == "" {
				fmt.Fprintf(&b, "- RSS of %s → %s over the run (highest sampled while 0–25 / 25–50 / 50–75 / 75–100 %% of the records were committed): %s MB.\n",
					r.input, r.label(), quarters(r.rssByQ))
			}
		}
	}
	for _, r := range cr.rows {
		if r.row == "ftp" && r.skipped == "" && r.uploaded > 0 {
			fmt.Fprintf(&b, "- FTP with %s: committed (in the spool) after %.1f s; every record in a final file on the server after %.1f s (%.1f MB/s), which includes waiting for the last file of each partition to roll (`roll_duration: 3s`). pure-ftpd's own CPU is not in the CPU column.\n",
				r.input, r.elapsed.Seconds(), r.uploaded.Seconds(), cr.mb(r.uploaded))
		}
		if r.skipped != "" && r.row == "ftp" {
			fmt.Fprintf(&b, "- FTP with %s: not run: %s.\n", r.input, r.skipped)
		}
	}
	if rep.ftpSkip != "" && containsRow(cr, "ftp") {
		fmt.Fprintf(&b, "- The FTP server did not start: %s.\n", rep.ftpSkip)
	}
	return b.String()
}

// shortName drops the type arguments of generic functions from a profile
// name ("ensureLen[go.shape.struct { … }]" becomes "ensureLen[…]").
func shortName(name string) string {
	for {
		i := strings.Index(name, "[go.shape.")
		if i < 0 {
			return name
		}
		depth, j := 0, i
		for ; j < len(name); j++ {
			if name[j] == '[' {
				depth++
			} else if name[j] == ']' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if j == len(name) {
			return name
		}
		name = name[:i] + "[…]" + name[j+1:]
	}
}

func quarters(q [4]int64) string {
	var s []string
	for _, v := range q {
		if v == 0 {
			s = append(s, "—")
		} else {
			s = append(s, fmt.Sprintf("%.0f", float64(v)/1e6))
		}
	}
	return strings.Join(s, " / ")
}

func containsRow(cr *caseResult, row string) bool {
	for _, r := range cr.rows {
		if r.row == row {
			return true
		}
	}
	return false
}

// steadyMB is r's rate in MB/s from 10 % to 90 % of the records committed,
// or 0 when that took too short a time to measure with commits polled every
// 100 ms and made every 200 ms.
func (cr *caseResult) steadyMB(r *rowResult) float64 {
	if r.steady < 500*time.Millisecond {
		return 0
	}
	return float64(cr.bytes) * 0.8 / 1e6 / r.steady.Seconds()
}

func tableMarkdown(cr *caseResult, runs bool) string {
	var b strings.Builder
	b.WriteString("| input | output | MB/s | records/s | steady MB/s | CPU s (sys) | peak RSS MB | × drop | broker CPU s | others' CPU (cores) | max fds | output |")
	if runs {
		b.WriteString(" runs (MB/s) |")
	}
	b.WriteString("\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	if runs {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range cr.rows {
		if r.skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | — | — | — | — | — | — | — | — | — | not run: %s |", r.input, r.label(), r.skipped)
			if runs {
				b.WriteString(" |")
			}
			b.WriteString("\n")
			continue
		}
		ratio := "—"
		dropInput := r.input
		if r.row == "bare" {
			dropInput = "redpanda"
		}
		if d := cr.row(dropInput, "drop"); d != nil && r.row != "drop" {
			ratio = fmt.Sprintf("%.2f", d.elapsed.Seconds()/r.elapsed.Seconds())
			if r.row == "bare" {
				ratio += " (of redpanda)"
			}
		} else if r.row == "drop" {
			ratio = "1"
		}
		steady := "—"
		if mb := cr.steadyMB(r); mb > 0 {
			steady = fmt.Sprintf("%.1f", mb)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.0f | %s | %.1f (%.1f) | %.0f | %s | %.1f | %.2f | %d | %s |",
			r.input, r.label(), cr.mb(r.elapsed), float64(cr.records)/r.elapsed.Seconds(), steady,
			r.cpu.Seconds(), r.sys.Seconds(), float64(r.rss)/1e6, ratio, r.brokerCPU.Seconds(), r.otherCPU.Seconds()/r.elapsed.Seconds(), r.maxFDs, r.check)
		if runs {
			var s []string
			for _, v := range r.mbps {
				s = append(s, fmt.Sprintf("%.0f", v))
			}
			fmt.Fprintf(&b, " %s |", strings.Join(s, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// printTable prints a case's table to the terminal.
func printTable(cr *caseResult) {
	fmt.Printf("\n%s: %s\n\n%s\n", cr.c.title, cr.c.describe(), tableMarkdown(cr, len(cr.rows) > 0 && len(cr.rows[0].mbps) > 1))
}

func (rep *report) machineMarkdown() string {
	m := rep.machine
	var b strings.Builder
	fmt.Fprintf(&b, "Last run %s, `%s`, %.0f s in all.\n\n", rep.started.Format("2006-01-02 15:04 MST"), rep.opts.command, rep.finished.Sub(rep.started).Seconds())
	fmt.Fprintf(&b, "- CPU: %s, %d logical cores\n", m.CPU, m.Cores)
	fmt.Fprintf(&b, "- memory: %s\n", m.Memory)
	fmt.Fprintf(&b, "- disk (work folder): %s\n", m.Disk)
	fmt.Fprintf(&b, "- %s, %s\n", m.Go, m.Kernel)
	fmt.Fprintf(&b, "- 1-minute load average: %.2f at the start, %.2f at the end (the benchmark's own processes included)", rep.load0, rep.load1)
	if rep.anyLoaded() {
		b.WriteString(" — **loaded by other work**: treat the numbers as a demonstration, not as measurements")
	}
	b.WriteString("\n")
	return b.String()
}

func (cr *caseResult) profileMarkdown(rep *report) string {
	pr := cr.profile
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s with `%s`: the `kafka_backup` local row with the `redpanda` input run once more, with `http.debug_endpoints: true`, and `/debug/pprof/profile?seconds=%d` taken from process start (the row took %.1f s and %.1f s of CPU; %s). %.0f ms of CPU samples. Profiles: `go tool pprof -top %s` and `go tool pprof -sample_index=alloc_space -top %s`.\n\n",
		rep.started.Format("2006-01-02"), rep.opts.command, pr.seconds, pr.elapsed.Seconds(), pr.cpu.Seconds(), rep.loadNote(cr), pr.total, pr.cpuFile, pr.allocsFile)
	b.WriteString("Where the CPU goes (flat time of every function, grouped):\n\n| where | CPU ms | share |\n|---|--:|--:|\n")
	for _, k := range pr.buckets {
		if k.ms == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.1f%% |\n", k.name, k.ms, 100*k.ms/max(pr.total, 1))
	}
	b.WriteString("\nTop functions by own (flat) time:\n\n| function | flat % | cum % |\n|---|--:|--:|\n")
	for i, l := range pr.top {
		if i == 20 {
			break
		}
		fmt.Fprintf(&b, "| `%s` | %.1f | %.1f |\n", shortName(l.name), l.flatPct, l.cumPct)
	}
	b.WriteString("\nTop non-runtime functions by cumulative time (what calls the above):\n\n| function | cum % |\n|---|--:|\n")
	n := 0
	for _, l := range pr.cum {
		if strings.HasPrefix(l.name, "runtime.") || strings.HasPrefix(l.name, "internal/") || strings.HasPrefix(l.name, "syscall.") {
			continue
		}
		if n++; n > 20 {
			break
		}
		fmt.Fprintf(&b, "| `%s` | %.1f |\n", shortName(l.name), l.cumPct)
	}
	b.WriteString("\nTop allocations (bytes allocated over the run, `alloc_space`):\n\n| function | MB | % |\n|---|--:|--:|\n")
	for i, l := range pr.allocTop {
		if i == 12 {
			break
		}
		fmt.Fprintf(&b, "| `%s` | %.0f | %.1f |\n", shortName(l.name), l.flat, l.flatPct)
	}
	fmt.Fprintf(&b, "\nHeap in use when half the records were committed (`inuse_space` as of the last GC, %.0f MB in all; `go tool pprof -sample_index=inuse_space -top %s`):\n\n| function | MB | %% |\n|---|--:|--:|\n", pr.heapTotal, pr.heapFile)
	for i, l := range pr.heapTop {
		if i == 10 {
			break
		}
		fmt.Fprintf(&b, "| `%s` | %.1f | %.1f |\n", shortName(l.name), l.flat, l.flatPct)
	}
	return b.String()
}

func (rep *report) encoderMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s: `go test -run '^$' -bench . -benchmem ./segment/ ./rolling/` (4 MiB batches of 1 KiB records, one partition; an op is one 4 MiB batch; see the machine above for its load).\n\n",
		rep.started.Format("2006-01-02"))
	b.WriteString("| package | benchmark | MB/s | B/op | allocs/op |\n|---|---|--:|--:|--:|\n")
	for _, g := range rep.gobench {
		mb := "—"
		if g.hasMB {
			mb = fmt.Sprintf("%.0f", g.mbps)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %.0f | %.0f |\n", g.pkg, g.name, mb, g.bytesOp, g.allocsOp)
	}
	if rep.gobenchErr != "" {
		fmt.Fprintf(&b, "\n`go test -bench` failed part way: %s\n", firstLine(rep.gobenchErr))
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

type verdict struct{ target, measured, result string }

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "**does not hold**"
}

// targets checks the targets against what this run measured.
func (rep *report) targets() []verdict {
	var out []verdict
	notRun := func(t, how string) { out = append(out, verdict{t, "not measured in this run (" + how + ")", "—"}) }
	main := rep.caseByID("main")
	ratioTarget := func(t string, plain bool, row string, other string, factor float64) {
		if main == nil {
			notRun(t, "main comparison")
			return
		}
		any := false
		for _, in := range main.c.inputs {
			if isPlain(in) != plain {
				continue
			}
			a := main.row(in, row)
			o := main.row(in, other)
			if other == "bare" {
				o = main.row("", "bare")
				if in != "redpanda" {
					continue
				}
			}
			if a == nil || o == nil {
				continue
			}
			any = true
			ra, ro := main.mb(a.elapsed), main.mb(o.elapsed)
			m := fmt.Sprintf("%s: %.1f vs %.1f MB/s = %.2f×", in, ra, ro, ra/ro)
			if sa, so := main.steadyMB(a), main.steadyMB(o); sa > 0 && so > 0 {
				m += fmt.Sprintf("; steady: %.1f vs %.1f MB/s = %.2f×", sa, so, sa/so)
			}
			if row == "ftp" && a.uploaded > 0 {
				m += fmt.Sprintf(" (on the server: %.1f MB/s = %.2f×)", main.mb(a.uploaded), main.mb(a.uploaded)/ro)
			}
			out = append(out, verdict{t, m, holds(ra >= factor*ro)})
		}
		if !any {
			notRun(t, "rows not run")
		}
	}
	ratioTarget("plain config: `kafka_backup` local ≥ 0.8 × drop", true, "backup", "drop", 0.8)
	ratioTarget("plain config: FTP ≥ 0.8 × drop (to commit)", true, "ftp", "drop", 0.8)
	ratioTarget("`kafka_backup` local ≥ 0.85 × drop", false, "backup", "drop", 0.85)
	ratioTarget("`kafka_backup` local ≥ bare writer", false, "backup", "bare", 1)
	ratioTarget("`kafka_backup` local ≥ 5 × stock `file`", false, "backup", "file", 5)
	ratioTarget("FTP ≥ 0.8 × drop (to commit)", false, "ftp", "drop", 0.8)

	var enc *goBench
	for i, g := range rep.gobench {
		if g.name == "BenchmarkEncoder/none" {
			enc = &rep.gobench[i]
		}
	}
	if enc == nil {
		notRun("encoder ≥ 1 GB/s, constant allocations per batch", "-gobench")
	} else {
		// "Constant": not per record (4096 records a batch).
		out = append(out, verdict{"encoder ≥ 1 GB/s, constant allocations per batch",
			fmt.Sprintf("%.0f MB/s, %.0f allocs and %.0f B per 4 MiB batch of 4096 records", enc.mbps, enc.allocsOp, enc.bytesOp),
			holds(enc.mbps >= 1000 && enc.allocsOp < 16)})
	}
	rss := func(t string, cr *caseResult, limit float64, how string) {
		if cr == nil {
			notRun(t, how)
			return
		}
		for _, in := range cr.c.inputs {
			for _, row := range []string{"backup", "ftp"} {
				r := cr.row(in, row)
				if r == nil {
					continue
				}
				mb := float64(r.rss) / 1e6
				out = append(out, verdict{t, fmt.Sprintf("%s, %s → %s: %.0f MB", cr.c.describe(), in, r.label(), mb), holds(mb < limit)})
			}
		}
	}
	rss("peak RSS < 200 MB (main load)", main, 200, "main comparison")
	rss("peak RSS < 200 MB (large run)", rep.caseByID("scale-large"), 200, "`-scale large`")
	rss("peak RSS < 300 MB with 1,000 partitions", rep.caseByID("scale-partitions"), 300, "`-scale partitions`")
	return out
}

func (rep *report) targetsMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Checked %s against what `%s` measured (ratios of MB/s from process start to the last commit)", rep.started.Format("2006-01-02"), rep.opts.command)
	if rep.anyLoaded() {
		b.WriteString("; **the machine was loaded** (see each case), so ratios are indicative only")
	}
	b.WriteString(".\n\n| target | measured | result |\n|---|---|---|\n")
	for _, v := range rep.targets() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", v.target, v.measured, v.result)
	}
	return b.String()
}

// docSkeleton is what a document without the markers starts as; hand-written
// text around the blocks is kept across runs.
const docSkeleton = `# Benchmarks

Generated by ` + "`make bench`" + ` (tests/bench/run); the text between ` + "`<!-- bench:… -->`" + `
markers is replaced by each run that measures it, the rest is kept.

## Machine

<!-- bench:machine -->
<!-- /bench:machine -->

## Main comparison

<!-- bench:main -->
<!-- /bench:main -->

## Targets

<!-- bench:targets -->
<!-- /bench:targets -->

## Where the time goes

<!-- bench:profile -->
<!-- /bench:profile -->

## Scale

### 1,000 partitions

<!-- bench:scale-partitions -->
<!-- /bench:scale-partitions -->

### 100-byte records

<!-- bench:scale-small -->
<!-- /bench:scale-small -->

### 5 GiB: flat memory

<!-- bench:scale-large -->
<!-- /bench:scale-large -->

## Encoder and rolling writer (` + "`go test -bench`" + `)

<!-- bench:encoder -->
<!-- /bench:encoder -->
`

// writeDoc replaces the blocks this run measured in the document at path.
func (rep *report) writeDoc(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(old)
	if !strings.Contains(doc, "<!-- bench:") {
		doc = docSkeleton
	}
	doc = replaceBlock(doc, "machine", rep.machineMarkdown())
	for _, cr := range rep.cases {
		doc = replaceBlock(doc, cr.c.id, rep.caseMarkdown(cr))
		if cr.profile != nil {
			doc = replaceBlock(doc, "profile", cr.profileMarkdown(rep))
		}
	}
	if rep.caseByID("main") != nil || len(rep.gobench) > 0 {
		doc = replaceBlock(doc, "targets", rep.targetsMarkdown())
	}
	if len(rep.gobench) > 0 {
		doc = replaceBlock(doc, "encoder", rep.encoderMarkdown())
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// replaceBlock puts content between <!-- bench:name --> and
// <!-- /bench:name -->, appending the block when the markers are missing.
func replaceBlock(doc, name, content string) string {
	begin, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->"
	content = strings.TrimRight(content, "\n") + "\n"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return strings.TrimRight(doc, "\n") + "\n\n" + begin + "\n" + content + end + "\n"
	}
	return doc[:i+len(begin)] + "\n" + content + doc[j:]
}
