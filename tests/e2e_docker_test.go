package tests

// No Docker engine runs where the tests run, so the image is checked without
// one: TestDockerBuild reads the Dockerfile, copies the repository as the
// build context .dockerignore leaves, runs the Dockerfile's own `go build`
// line in it (flags and environment taken from the Dockerfile, not copied
// here) and checks the binary is what the distroless runtime image needs:
// static, stripped, stamped with the version, able to lint every config the
// image may be given. TestDockerfile checks the runtime stage's
// declarations.

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const repoRoot = ".."

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct {
	line  int    // where it starts
	cmd   string // upper case: FROM, RUN, …
	args  string // the rest, as written
	stage int    // index of its FROM, -1 before the first
}

// dockerStage is a FROM and what follows it.
type dockerStage struct {
	image, alias string
	instrs       []dockerInstr
}

// parseDockerfile splits a Dockerfile into instructions and stages: comment
// lines are dropped (also inside continuations, as Docker does), a trailing
// backslash continues a line.
func parseDockerfile(t *testing.T, text string) (global []dockerInstr, stages []dockerStage) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	var cur strings.Builder
	start := 0
	n := 0
	stage := -1
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := dockerInstr{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stage++
			f := strings.Fields(in.args)
			var img, alias string
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					alias = f[i+1]
					i++
				case img == "":
					img = f[i]
				}
			}
			stages = append(stages, dockerStage{image: img, alias: alias})
		}
		in.stage = stage
		if stage < 0 {
			global = append(global, in)
		} else {
			stages[stage].instrs = append(stages[stage].instrs, in)
		}
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a builder and a runtime stage", len(stages))
	}
	return global, stages
}

// shellWords splits a shell command line into words, with quotes and
// ${VAR}/$VAR expansion from vars (unset variables expand to ""). It
// rejects what would make the line more than one simple command.
func shellWords(t *testing.T, s string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	expand := func(i int) int { // s[i] == '$'; returns the index after the reference
		j := i + 1
		var name string
		if j < len(s) && s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				t.Fatalf("unterminated ${ in %q", s)
			}
			name = s[j+1 : j+end]
			j += end + 1
			if strings.ContainsAny(name, ":-+=?#%/") {
				t.Fatalf("shell parameter expansion ${%s} is not supported by this test's parser", name)
			}
		} else {
			k := j
			for k < len(s) && (s[k] == '_' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= 'a' && s[k] <= 'z' || s[k] >= '0' && s[k] <= '9') {
				k++
			}
			name, j = s[j:k], k
		}
		w.WriteString(vars[name])
		inWord = true
		return j
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for i < len(s) && s[i] != '"' {
				switch {
				case s[i] == '$':
					i = expand(i)
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0:
					w.WriteByte(s[i+1])
					i += 2
				default:
					w.WriteByte(s[i])
					i++
				}
			}
			if i >= len(s) {
				t.Fatalf("unterminated \" in %q", s)
			}
			i++
		case c == '$':
			i = expand(i)
		case strings.IndexByte(";&|<>`()", c) >= 0:
			t.Fatalf("the go build RUN line must be one simple command for this test to follow it; found %q in %q", c, s)
		default:
			w.WriteByte(c)
			inWord = true
			i++
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// dockerBuild is the Dockerfile's go build command, resolved.
type dockerBuild struct {
	env     []string // NAME=value: the stage's ENV and the RUN line's assignments
	args    []string // after "go": build, flags, packages
	out     string   // the -o path in the builder
	workdir string
	stage   dockerStage
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// findGoBuild finds the RUN line that builds what the runtime stage copies
// to /kafka-backup, and resolves its words with the build arguments
// (defaults, overridden by args as `docker build --build-arg` would).
func findGoBuild(t *testing.T, global []dockerInstr, stages []dockerStage, buildArgs map[string]string) dockerBuild {
	t.Helper()
	final := stages[len(stages)-1]
	var from, src string
	for _, in := range final.instrs {
		if in.cmd != "COPY" {
			continue
		}
		f := strings.Fields(in.args)
		var flags, paths []string
		for _, x := range f {
			if strings.HasPrefix(x, "--") {
				flags = append(flags, x)
			} else {
				paths = append(paths, x)
			}
		}
		if len(paths) == 2 && paths[1] == "/kafka-backup" {
			src = paths[0]
			for _, fl := range flags {
				if v, ok := strings.CutPrefix(fl, "--from="); ok {
					from = v
				}
			}
		}
	}
	if from == "" || src == "" {
		t.Fatal("Dockerfile: the runtime stage has no COPY --from=<builder> <binary> /kafka-backup")
	}
	var b dockerBuild
	found := false
	for _, st := range stages {
		if st.alias == from {
			b.stage, found = st, true
		}
	}
	if !found {
		t.Fatalf("Dockerfile: no stage named %q", from)
	}
	vars := map[string]string{}
	declare := func(args string) {
		for _, a := range strings.Fields(args) {
			name, def, _ := strings.Cut(a, "=")
			if v, ok := buildArgs[name]; ok {
				vars[name] = v
			} else {
				vars[name] = strings.Trim(def, `"`)
			}
		}
	}
	for _, in := range global {
		if in.cmd == "ARG" {
			declare(in.args)
		}
	}
	var runs []dockerInstr
	for _, in := range b.stage.instrs {
		switch in.cmd {
		case "ARG":
			declare(in.args)
		case "ENV":
			for _, a := range shellWords(t, in.args, vars) {
				name, val, ok := strings.Cut(a, "=")
				if !ok {
					t.Fatalf("Dockerfile line %d: use ENV NAME=value", in.line)
				}
				vars[name] = val
				b.env = append(b.env, a)
			}
		case "WORKDIR":
			b.workdir = in.args
		case "RUN":
			if !strings.Contains(in.args, "go build") {
				continue
			}
			words := shellWords(t, in.args, vars)
			for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=…, --network=…
				words = words[1:]
			}
			var env []string
			for len(words) > 0 && assignment.MatchString(words[0]) {
				env = append(env, words[0])
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				t.Fatalf("Dockerfile line %d: cannot read the go build command from %q", in.line, in.args)
			}
			for i, w := range words {
				if w == "-o" && i+1 < len(words) && words[i+1] == src {
					b.out = src
					b.args = words[1:]
					b.env = append(b.env, env...)
					runs = append(runs, in)
				}
			}
		}
	}
	if len(runs) != 1 {
		t.Fatalf("Dockerfile: %d RUN lines build %s in stage %q, want exactly one", len(runs), src, from)
	}
	return b
}

// dockerignore is the parsed .dockerignore: patterns in order, later ones
// winning, "!" re-including.
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool
}

// parseDockerignore reads patterns with Docker's syntax: paths relative to
// the context root, '*' and '?' within a path element, '**' across them; a
// pattern matching a folder excludes all below it.
func parseDockerignore(text string) dockerignore {
	var d dockerignore
	for _, line := range strings.Split(text, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		exclude := true
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			p, exclude = strings.TrimSpace(rest), false
		}
		p = strings.Trim(filepath.ToSlash(filepath.Clean(p)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			exclude bool
		}{regexp.MustCompile(re.String()), exclude})
	}
	return d
}

// excluded reports whether rel (slash-separated, relative to the context)
// or a folder above it is excluded.
func (d dockerignore) excluded(rel string) bool {
	parts := strings.Split(rel, "/")
	out := false
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		for _, p := range d {
			if p.re.MatchString(prefix) {
				out = p.exclude
			}
		}
		if out {
			return true
		}
	}
	return out
}

// buildContext copies the repository into a temporary folder as Docker
// would send it: without what .dockerignore excludes.
func buildContext(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignore := parseDockerignore(string(b))
	for _, must := range []string{".git", "kafka-backup", "kafka-backup-demo"} {
		if !ignore.excluded(must) {
			t.Errorf(".dockerignore does not exclude %s", must)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd/kafka-backup/main.go"} {
		if ignore.excluded(keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
	dst := t.TempDir()
	copied := 0
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore.excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			copied++
			return copyTo(path, target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build context: %d files", copied)
	return dst
}

func copyTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile by someone editing the tree
		}
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerBuild builds the binary the way the Dockerfile does and checks
// it: static (no interpreter, no shared library), stripped (no symbol table,
// no DWARF), trimmed paths, the version stamped from the VERSION build
// argument, `--version`, and `lint` of every Benthos config under config/,
// including those embedded in the Kubernetes ConfigMaps.
func TestDockerBuild(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux; the ELF checks need a linux build")
	}
	global, stages := parseDockerfile(t, readDockerfile(t))
	const version = "v9.8.7-dockertest"
	const built = "2030-01-02T03:04:05Z"
	b := findGoBuild(t, global, stages, map[string]string{
		"VERSION": version, "DATE_BUILT": built, "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH,
	})
	t.Logf("Dockerfile build (stage %q, workdir %s): %s go %s", b.stage.alias, b.workdir, strings.Join(b.env, " "), strings.Join(b.args, " "))
	if !strings.HasPrefix(b.stage.image, "golang:") {
		t.Errorf("builder stage FROM %s, want golang:<version>", b.stage.image)
	}
	envs := strings.Join(b.env, " ")
	if !strings.Contains(" "+envs+" ", " CGO_ENABLED=0 ") {
		t.Errorf("the build does not set CGO_ENABLED=0: %s", envs)
	}
	var ldflags []string
	flags := map[string]bool{}
	for i, a := range b.args {
		flags[a] = true
		if v, ok := strings.CutPrefix(a, "-ldflags="); ok {
			ldflags = strings.Fields(v)
		} else if a == "-ldflags" && i+1 < len(b.args) {
			ldflags = strings.Fields(b.args[i+1])
		}
	}
	ld := map[string]bool{}
	for i, f := range ldflags {
		ld[f] = true
		if f == "-X" && i+1 < len(ldflags) {
			ld["-X "+ldflags[i+1]] = true
		}
	}
	for _, want := range []string{"-trimpath", "./cmd/kafka-backup"} {
		if !flags[want] {
			t.Errorf("the go build line lacks %s: go %s", want, strings.Join(b.args, " "))
		}
	}
	for _, want := range []string{"-s", "-w", "-X main.version=" + version, "-X main.dateBuilt=" + built} {
		if !ld[want] {
			t.Errorf("the go build line's -ldflags lack %q: %q", want, ldflags)
		}
	}

	ctxDir := buildContext(t)
	bin := filepath.Join(t.TempDir(), "kafka-backup")
	args := append([]string(nil), b.args...)
	for i := range args {
		if args[i] == "-o" {
			args[i+1] = bin
		}
	}
	goCmd := "go"
	if _, err := exec.LookPath(goCmd); err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = ctxDir // WORKDIR, where COPY . . put the context
	cmd.Env = append(os.Environ(), b.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s (in the .dockerignore'd context): %v\n%s", strings.Join(args, " "), err, out)
	}

	// Static and stripped.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it is dynamically linked and will not start on distroless/static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info", ".debug_line"} {
		if f.Section(s) != nil {
			t.Errorf("the binary has a %s section: not stripped (-s -w)", s)
		}
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOOS"] != "linux" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q GOOS=%q", settings["CGO_ENABLED"], settings["-trimpath"], settings["GOOS"])
	}

	// The version and build date are stamped.
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version: "+version) || !strings.Contains(string(out), "Date: "+built) {
		t.Errorf("--version: %v\n%s", err, out)
	}

	// Every config the image may be given lints, with the environment
	// variables it needs (Kubernetes: what the container's env provides).
	for name, cfg := range lintableConfigs(t) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "lint", path)
		cmd.Env = os.Environ()
		for _, m := range envRefRE.FindAllStringSubmatch(cfg, -1) {
			if m[2] == "" {
				cmd.Env = append(cmd.Env, m[1]+"=placeholder")
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("lint %s: %v\n%s", name, err, out)
		}
	}

	// The address the image EXPOSEs is the HTTP server's default.
	minimal := filepath.Join(t.TempDir(), "minimal.yaml")
	if err := os.WriteFile(minimal, []byte("input:\n  stdin: {}\noutput:\n  drop: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "echo", minimal).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "address: 0.0.0.0:4195") {
		t.Errorf("echo: the HTTP server's default address is not 0.0.0.0:4195: %v\n%s", err, out)
	}
}

// envRefRE matches a Benthos environment interpolation; group 2 is empty
// when it has no default.
var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:[^}]*)?\}`)

// lintableConfigs returns every Benthos config under config/: the files
// with an input or output section, and the configs embedded in ConfigMaps
// (by "file: ConfigMap name/key").
func lintableConfigs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	k8s := 0
	err := filepath.WalkDir(filepath.Join(repoRoot, "config"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc struct {
				Kind     string                `yaml:"kind"`
				Metadata struct{ Name string } `yaml:"metadata"`
				Data     map[string]string     `yaml:"data"`
				Input    any                   `yaml:"input"`
				Output   any                   `yaml:"output"`
			}
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if doc.Input != nil || doc.Output != nil {
				out[path] = string(b)
			}
			if doc.Kind != "ConfigMap" {
				continue
			}
			for key, v := range doc.Data {
				var top map[string]any
				if yaml.Unmarshal([]byte(v), &top) == nil && (top["input"] != nil || top["output"] != nil) {
					out[fmt.Sprintf("%s: ConfigMap %s/%s", path, doc.Metadata.Name, key)] = v
					k8s++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 6 || k8s < 2 {
		t.Fatalf("found %d configs (%d in ConfigMaps) under config/", len(out), k8s)
	}
	return out
}

// TestDockerfile checks the runtime stage: a minimal base, a numeric
// non-root USER, the spool VOLUME, EXPOSE 4195, the entrypoint and the
// default config path, no HEALTHCHECK (the probes are HTTP, documented in
// docs/operations.md), and a builder whose Go matches go.mod.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	_, stages := parseDockerfile(t, readDockerfile(t))
	final := stages[len(stages)-1]
	if !strings.Contains(final.image, "distroless/static") && final.image != "scratch" && !strings.HasPrefix(final.image, "alpine") {
		t.Errorf("runtime stage FROM %s, want a minimal image (distroless/static)", final.image)
	}
	last := map[string]string{}
	var volumes []string
	for _, in := range final.instrs {
		last[in.cmd] = in.args
		if in.cmd == "VOLUME" {
			volumes = append(volumes, in.args)
		}
		if in.cmd == "HEALTHCHECK" {
			t.Errorf("line %d: HEALTHCHECK: the distroless image has no shell or HTTP client to run it; probes use /ping and /ready", in.line)
		}
	}
	user, _, _ := strings.Cut(last["USER"], ":")
	if user == "" || user == "0" || user == "root" || strings.Trim(user, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root user (Kubernetes runAsNonRoot can only verify a numeric one)", last["USER"])
	}
	if !strings.Contains(strings.Join(volumes, " "), "/var/lib/kafka-backup") {
		t.Errorf("VOLUME %v: want /var/lib/kafka-backup (the spool)", volumes)
	}
	if !regexp.MustCompile(`(^|\s)4195(/tcp)?(\s|$)`).MatchString(last["EXPOSE"]) {
		t.Errorf("EXPOSE %q: want 4195 (HTTP server: /ping, /ready, /metrics)", last["EXPOSE"])
	}
	if last["ENTRYPOINT"] != `["/kafka-backup"]` {
		t.Errorf(`ENTRYPOINT %s, want ["/kafka-backup"]`, last["ENTRYPOINT"])
	}
	if last["CMD"] != `["run", "/etc/kafka-backup/config.yaml"]` {
		t.Errorf(`CMD %s, want ["run", "/etc/kafka-backup/config.yaml"]`, last["CMD"])
	}

	// golang:${GO_VERSION} (or a literal tag) at go.mod's Go version.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	var builder string
	for _, st := range stages[:len(stages)-1] {
		if strings.HasPrefix(st.image, "golang:") {
			builder = st.image
		}
	}
	text := readDockerfile(t)
	if d := regexp.MustCompile(`ARG GO_VERSION=(\S+)`).FindStringSubmatch(text); d != nil {
		builder = strings.ReplaceAll(builder, "${GO_VERSION}", d[1])
	}
	if tag := strings.TrimPrefix(builder, "golang:"); tag != string(m[1]) && !strings.HasPrefix(tag, string(m[1])+".") && !strings.HasPrefix(tag, string(m[1])+"-") {
		t.Errorf("builder %s does not match go.mod's go %s", builder, m[1])
	}

	// The probes the image relies on are documented.
	ops, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"/ping", "/ready", "4195", "HEALTHCHECK"} {
		if !strings.Contains(string(ops), w) {
			t.Errorf("docs/operations.md does not mention %s", w)
		}
	}
}
