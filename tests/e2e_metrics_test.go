package tests

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// ourMetrics are the metrics kafka-backup registers (output/observer.go),
// with the labels each must carry. Benthos adds label and path (the
// component's label and its place in the config, root.output).
var ourMetrics = map[string][]string{
	"kafka_backup_records_written":      {"topic", "partition"},
	"kafka_backup_bytes_written":        {"topic", "partition"},
	"kafka_backup_files_finalized":      {"reason"},
	"kafka_backup_records_skipped":      {"reason"},
	"kafka_backup_out_of_order_batches": nil,
	"kafka_backup_partitions_refused":   nil,
	"kafka_backup_errors":               nil,
	"kafka_backup_uploads":              nil,
	"kafka_backup_upload_errors":        nil,
	"kafka_backup_upload_latency_ns":    nil,
	"kafka_backup_spool_bytes":          nil,
	"kafka_backup_open_files":           nil,
}

// The reasons README's Metrics table documents.
var (
	finalizeReasons = []string{"size", "idle", "age", "out_of_order", "shutdown", "error", "recovered"}
	skipReasons     = []string{"offset_from", "persisted"}
)

// promSample is one line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var promLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$`)
var promLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseProm parses the Prometheus text exposition format.
func parseProm(text string) ([]promSample, error) {
	var out []promSample
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := promLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("not a sample: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		s := promSample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range promLabel.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out, nil
}

// scrape is one /metrics scrape.
type scrape []promSample

// family returns the samples of metric name (a summary's or histogram's
// _sum, _count and _bucket samples included).
func (s scrape) family(name string) []promSample {
	var out []promSample
	for _, x := range s {
		base := x.name
		for _, suffix := range []string{"_sum", "_count", "_bucket"} {
			if b, ok := strings.CutSuffix(base, suffix); ok && b == name {
				base = b
			}
		}
		if base == name {
			out = append(out, x)
		}
	}
	return out
}

// sum adds the values of metric name's samples whose labels include match.
func (s scrape) sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, x := range s {
		if x.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			ok = ok && x.labels[k] == v
		}
		if ok {
			total += x.value
		}
	}
	return total
}

// names returns the metric names (families) with the kafka_backup_ prefix.
func (s scrape) names() []string {
	seen := map[string]bool{}
	for _, x := range s {
		if !strings.HasPrefix(x.name, "kafka_backup_") {
			continue
		}
		name := x.name
		for _, suffix := range []string{"_sum", "_count", "_bucket"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && isOurs(b) {
				name = b
			}
		}
		seen[name] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func isOurs(name string) bool { _, ok := ourMetrics[name]; return ok }

func httpGet(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// prometheusBinary returns the kafka-backup binary, after checking it has
// the prometheus metrics exporter the README promises.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if out, code := kb(t, "list", "metrics"); code != 0 || !strings.Contains(out, "prometheus") {
		t.Fatalf("kafka-backup has no prometheus metrics exporter (`kafka-backup list metrics`: %s)", out)
	}
	return kbBin
}

func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	needKcat(t)
	bin := prometheusBinary(t)

	const topic, parts, perPartition, from = "metrics", 2, 120, 20
	b := startBroker(t, parts, topic)
	for p := int32(0); p < parts; p++ {
		var lines []string
		for i := range perPartition {
			lines = append(lines, fmt.Sprintf("key-%d-%d\t%s", p, i, strings.Repeat("v", 200+i)))
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true})
	}
	srv := ftptest.Start(t)
	srv.Inject(ftptest.Fault{RejectUploads: 1}) // one failed attempt, then a retry
	spool := filepath.Join(t.TempDir(), "spool")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`http:
  enabled: true
  address: 127.0.0.1:%d
metrics:
  prometheus: {}
logger:
  level: INFO
  format: logfmt
shutdown_timeout: 30s
input:
%soutput:
  kafka_backup:
    path: /metrics-backup
    fs:
      schema: ftp
      ftp:
        hostname: %q
        port: %d
        user: %q
        password: "${FTP_PASSWORD}"
        spool: %q
        connect_timeout: 5s
        timeout: 10s
    size: 16KiB
    roll_duration: 1s
    offset_from:
      %s: %d
`, port, redpandaInput(b, "metrics-group", topic)+"    topic_lag_refresh_period: 300ms\n", srv.Host, srv.Port, srv.User, spool, topic, from)
	p := runBinaryEnv(t, bin, "metrics", cfg, []string{"FTP_PASSWORD=" + srv.Password})

	wantWritten := parts * (perPartition - from)
	var last scrape
	waitFor(t, "every record written and uploaded, one upload error", func() (bool, string) {
		code, body, err := httpGet(base + "/metrics")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /metrics: %d %v", code, err)
		}
		ps, err := parseProm(body)
		if err != nil {
			return false, err.Error()
		}
		s := scrape(ps)
		last = s
		written := s.sum("kafka_backup_records_written", nil)
		finalized := s.sum("kafka_backup_files_finalized", nil)
		uploads := s.sum("kafka_backup_uploads", nil)
		lag := s.family("redpanda_lag")
		return written == float64(wantWritten) && finalized > 0 && uploads == finalized &&
				len(lag) == parts && s.sum("redpanda_lag", nil) == 0 &&
				s.sum("kafka_backup_open_files", nil) == 0 && s.sum("kafka_backup_spool_bytes", nil) == 0 &&
				s.sum("kafka_backup_upload_errors", nil) >= 1,
			fmt.Sprintf("written %v of %d, finalized %v, uploads %v, redpanda_lag %d partitions sum %v, open %v, spool bytes %v, upload errors %v",
				written, wantWritten, finalized, uploads, len(lag), s.sum("redpanda_lag", nil), s.sum("kafka_backup_open_files", nil),
				s.sum("kafka_backup_spool_bytes", nil), s.sum("kafka_backup_upload_errors", nil))
	}, p)

	// The counters agree with the server.
	onServer := 0
	if err := walkFiles(srv.LocalPath("/metrics-backup"), func(path string, d fs.DirEntry) error {
		if isFinalName(d.Name()) {
			onServer++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if float64(onServer) != last.sum("kafka_backup_uploads", nil) {
		t.Errorf("%d final files on the server, kafka_backup_uploads %v", onServer, last.sum("kafka_backup_uploads", nil))
	}

	// Every metric, with its labels; counters of rare events exist at 0.
	for name, labels := range ourMetrics {
		fam := last.family(name)
		if len(fam) == 0 {
			t.Errorf("%s is not in /metrics", name)
			continue
		}
		for _, x := range fam {
			for _, l := range labels {
				if x.labels[l] == "" {
					t.Errorf("%s: sample %v has no %s label", name, x.labels, l)
				}
			}
		}
	}
	for p := range parts {
		match := map[string]string{"topic": topic, "partition": strconv.Itoa(p)}
		if got := last.sum("kafka_backup_records_written", match); got != perPartition-from {
			t.Errorf("kafka_backup_records_written%v = %v, want %d", match, got, perPartition-from)
		}
		if got := last.sum("kafka_backup_bytes_written", match); got < (perPartition-from)*200 {
			t.Errorf("kafka_backup_bytes_written%v = %v, want at least %d", match, got, (perPartition-from)*200)
		}
	}
	if got := last.sum("kafka_backup_records_skipped", map[string]string{"reason": "offset_from"}); got != parts*from {
		t.Errorf(`kafka_backup_records_skipped{reason="offset_from"} = %v, want %d`, got, parts*from)
	}
	if last.sum("kafka_backup_files_finalized", map[string]string{"reason": "size"}) == 0 {
		t.Error(`no kafka_backup_files_finalized{reason="size"}: files of 16KiB should have rolled on size`)
	}
	for _, x := range last.family("kafka_backup_files_finalized") {
		if !contains(finalizeReasons, x.labels["reason"]) {
			t.Errorf("kafka_backup_files_finalized reason %q is not one README documents", x.labels["reason"])
		}
	}
	for _, x := range last.family("kafka_backup_records_skipped") {
		if !contains(skipReasons, x.labels["reason"]) {
			t.Errorf("kafka_backup_records_skipped reason %q is not one README documents", x.labels["reason"])
		}
	}
	if got := last.sum("kafka_backup_upload_latency_ns_count", nil); got != last.sum("kafka_backup_uploads", nil) {
		t.Errorf("kafka_backup_upload_latency_ns_count = %v, uploads %v", got, last.sum("kafka_backup_uploads", nil))
	}
	if n := last.sum("kafka_backup_upload_latency_ns_count", nil); n > 0 {
		// Benthos' prometheus exporter records timers in nanoseconds unless
		// use_histogram_timing is set (docs/operations.md).
		t.Logf("kafka_backup_upload_latency_ns: mean %v per upload (summary timing)", last.sum("kafka_backup_upload_latency_ns_sum", nil)/n)
	}
	for _, name := range []string{"kafka_backup_errors", "kafka_backup_out_of_order_batches", "kafka_backup_partitions_refused"} {
		if got := last.sum(name, nil); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
	for _, x := range last.family("redpanda_lag") {
		if x.labels["topic"] != topic || x.labels["partition"] == "" {
			t.Errorf("redpanda_lag labels %v, want topic %s and a partition", x.labels, topic)
		}
	}
	// Benthos' own metrics docs/operations.md relies on.
	for _, name := range []string{"output_error", "output_connection_up", "output_connection_lost", "output_connection_failed", "input_received", "output_sent"} {
		if len(last.family(name)) == 0 {
			t.Errorf("%s is not in /metrics", name)
		}
	}

	// The probes.
	for _, path := range []string{"/ping", "/ready"} {
		code, body, err := httpGet(base + path)
		if err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %v %s", path, code, err, body)
		}
	}

	// docs/operations.md names every metric /metrics shows.
	ops, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := last.names()
	if len(names) < len(ourMetrics) {
		t.Errorf("/metrics shows %d kafka_backup_ metrics, want %d: %v", len(names), len(ourMetrics), names)
	}
	for n := range ourMetrics {
		if !contains(names, n) {
			names = append(names, n) // documented even before it shows
		}
	}
	for _, n := range names {
		if !regexp.MustCompile(`\b` + n + `\b`).Match(ops) {
			t.Errorf("docs/operations.md does not name %s", n)
		}
	}
	for _, n := range []string{"redpanda_lag", "output_error", "output_connection_lost", "output_connection_failed"} {
		if !strings.Contains(string(ops), n) {
			t.Errorf("docs/operations.md does not name %s", n)
		}
	}
	if t.Failed() {
		var ours []string
		for _, x := range last {
			if strings.HasPrefix(x.name, "kafka_backup_") || x.name == "redpanda_lag" {
				ours = append(ours, fmt.Sprintf("%s%v %v", x.name, x.labels, x.value))
			}
		}
		t.Logf("kafka_backup_ samples:\n%s", strings.Join(ours, "\n"))
	}
	p.stop()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
