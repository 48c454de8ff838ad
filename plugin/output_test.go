package plugin

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	_ "github.com/redpanda-data/connect/v4/public/components/kafka"

	"github.com/kafka-backup/kafka-backup/rolling"
)

func testEnv(t *testing.T) *service.Environment {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	return env
}

// benthosConfigs returns the Benthos pipeline configs below dir: YAML files
// with an input or output section.
func benthosConfigs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var top map[string]any
		if yaml.Unmarshal(b, &top) == nil && (top["input"] != nil || top["output"] != nil) {
			out[path] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfigExamples lints every pipeline config in config/ and builds the
// kafka_backup output of each, so a bad value fails here before a user
// meets it.
func TestConfigExamples(t *testing.T) {
	env := testEnv(t)
	configs := benthosConfigs(t, "../config")
	if len(configs) < 4 {
		t.Fatalf("found %d configs in config/, want at least 4", len(configs))
	}
	linter := env.FullConfigSchema("", "").NewStreamConfigLinter().SetSkipEnvVarCheck(true)
	for path, b := range configs {
		lints, err := linter.LintYAML(b)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for _, l := range lints {
			t.Errorf("%s: %s", path, l.Error())
		}
		var top struct {
			Output map[string]yaml.Node `yaml:"output"`
		}
		if err := yaml.Unmarshal(b, &top); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		node, ok := top.Output["kafka_backup"]
		if !ok {
			continue
		}
		section, _ := yaml.Marshal(&node)
		// Environment variables take their defaults, as with none set.
		withDefaults := regexp.MustCompile(`\$\{[A-Z_]+:?([^}]*)\}`).ReplaceAllString(string(section), "$1")
		parsed, err := OutputSpec().ParseYAML(withDefaults, env)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if _, _, err := rollingConfig(parsed); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func parse(t *testing.T, yml string) (rolling.Config, int, error) {
	t.Helper()
	parsed, err := OutputSpec().ParseYAML(yml, testEnv(t))
	if err != nil {
		return rolling.Config{}, 0, err
	}
	return rollingConfig(parsed)
}

func TestRollingConfig(t *testing.T) {
	cfg, inFlight, err := parse(t, `
path: /b
size: 10MB
roll_duration: 3s
offset_from: {test: 101, "test:0": 50, "a.b.c": 7}
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != "/b" || cfg.MaxSize != 10_000_000 || cfg.IdleTimeout != 3*time.Second || cfg.MaxAge != time.Hour || inFlight != defaultMaxInFlight || cfg.Fsync != rolling.FsyncBatch {
		t.Fatalf("unexpected config %+v, max_in_flight %d", cfg, inFlight)
	}
	for _, c := range []struct {
		topic string
		part  int32
		want  int64
	}{{"test", 0, 50}, {"test", 1, 101}, {"a.b.c", 3, 7}, {"other", 0, 0}} {
		if got := cfg.OffsetFrom(c.topic, c.part); got != c.want {
			t.Errorf("offset_from %s:%d = %d, want %d", c.topic, c.part, got, c.want)
		}
	}
	if cfg.Instance == "" || strings.ContainsAny(cfg.Instance, "./") {
		t.Errorf("instance id %q", cfg.Instance)
	}
}

func TestRollingConfigErrorsNameTheField(t *testing.T) {
	for yml, field := range map[string]string{
		"path: /b\nsize: 4Bit":              "size",
		"path: /b\nsize: 10mb":              "size",
		"path: /b\nroll_duration: 0s":       "roll_duration",
		"path: /b\nmax_age: soon":           "max_age",
		"path: ''":                          "path",
		"path: /b\noffset_from: {'t:x': 1}": "offset_from",
		"path: /b\noffset_from: {'a/b': 1}": "offset_from",
		"path: /b\noffset_from: {t: -1}":    "offset_from",
		"path: /b\nmax_in_flight: 0":        "max_in_flight",
	} {
		_, _, err := parse(t, yml)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: error %v does not name %s", yml, err, field)
		}
	}
}

// TestLintRules checks that lint names the field for each bad value the
// issue lists.
func TestLintRules(t *testing.T) {
	linter := testEnv(t).FullConfigSchema("", "").NewStreamConfigLinter()
	for _, c := range []struct{ field, want string }{
		{"size: 0MB", "size"},
		{"size: 10mb", "size"},
		{"size: -1MB", "size"},
		{"roll_duration: 3 weeks", "roll_duration"},
		{"roll_duration: 0", "roll_duration"},
		{"fs: {schema: s3}", "fs.schema"},
		{`offset_from: {"test:x": 1}`, "offset_from"},
		{`offset_from: {"bad/topic": 1}`, "offset_from"},
		{`offset_from: {test: -1}`, "offset_from"},
	} {
		conf := "input:\n  stdin: {}\noutput:\n  kafka_backup:\n    path: /b\n    " + c.field + "\n"
		lints, err := linter.LintYAML([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		if len(lints) == 0 || !strings.Contains(lints[0].Error(), c.want) {
			t.Errorf("%s: lints %v do not name %s", c.field, lints, c.want)
		}
	}
	good := "input:\n  stdin: {}\noutput:\n  kafka_backup:\n    path: /b\n    size: 1.5GiB\n    roll_duration: 1day\n    offset_from: {a.b: 1, \"a.b:3\": 0}\n"
	if lints, err := linter.LintYAML([]byte(good)); err != nil || len(lints) != 0 {
		t.Errorf("good config: %v %v", lints, err)
	}
}

// TestLintFTPNeedsHostname: an ftp destination without a hostname fails lint
// naming fs.ftp.hostname (Issue 12 row 10); with one, or a local destination,
// it passes, as does a hostname from an environment variable.
func TestLintFTPNeedsHostname(t *testing.T) {
	linter := testEnv(t).FullConfigSchema("", "").NewStreamConfigLinter().SetSkipEnvVarCheck(true)
	lint := func(fs string) []string {
		t.Helper()
		conf := "input:\n  stdin: {}\noutput:\n  kafka_backup:\n    path: /b\n    fs: " + fs + "\n"
		lints, err := linter.LintYAML([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range lints {
			out = append(out, l.Error())
		}
		return out
	}
	for _, fs := range []string{
		`{schema: ftp}`,
		`{schema: ftp, ftp: {}}`,
		`{schema: ftp, ftp: {user: u, port: 2121}}`,
		`{schema: ftp, ftp: {hostname: ""}}`,
		`{schema: ftp, ftp: {hostname: " "}}`,
	} {
		if lints := lint(fs); len(lints) != 1 || !strings.Contains(lints[0], "fs.ftp.hostname") {
			t.Errorf("fs: %s: lints %q, want one naming fs.ftp.hostname", fs, lints)
		}
	}
	// Environment variables are replaced before lint: an unset one is empty.
	t.Setenv("KB_TEST_FTP_HOST", "ftp.example.com")
	if lints := lint(`{schema: ftp, ftp: {hostname: "${KB_TEST_FTP_HOST_UNSET}"}}`); len(lints) != 1 {
		t.Errorf("hostname from an unset variable: lints %q, want one", lints)
	}
	for _, fs := range []string{
		`{schema: ftp, ftp: {hostname: ftp.example.com}}`,
		`{schema: ftp, ftp: {hostname: "${KB_TEST_FTP_HOST}"}}`,
		`{schema: local}`,
		`{}`,
	} {
		if lints := lint(fs); len(lints) != 0 {
			t.Errorf("fs: %s: lints %q, want none", fs, lints)
		}
	}
}

// TestFTPWithoutHostnameFails: the output itself refuses an ftp destination
// without a hostname (for `run --chilled`, which runs despite lint errors).
func TestFTPWithoutHostnameFails(t *testing.T) {
	env := testEnv(t)
	for _, yml := range []string{"path: /b\nfs: {schema: ftp}", "path: /b\nfs: {schema: ftp, ftp: {hostname: ' '}}"} {
		parsed, err := OutputSpec().ParseYAML(yml, env)
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = newOutput(parsed, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), "fs.ftp.hostname") {
			t.Errorf("%q: %v, want an error naming fs.ftp.hostname", yml, err)
		}
	}
}
