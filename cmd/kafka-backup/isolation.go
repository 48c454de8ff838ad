package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	"github.com/kafka-backup/kafka-backup/plugin"
)

// warnUncommittedAtStart logs, when `run` has parsed its config, a warning
// for every Kafka input feeding kafka_backup that reads records of aborted
// transactions (plugin.UncommittedInputs).
func warnUncommittedAtStart(pConf *service.ParsedConfig) error {
	if pConf == nil {
		return nil
	}
	v, err := pConf.FieldAny()
	if err != nil {
		return nil
	}
	// Components are YAML nodes in it: through YAML, it is plain values.
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil
	}
	var conf map[string]any
	if yaml.Unmarshal(b, &conf) != nil {
		return nil
	}
	for _, w := range plugin.UncommittedInputs(conf) {
		pConf.Resources().Logger().Warn(w)
	}
	return nil
}

// warnUncommittedOnLint prints to w, when args (os.Args without the binary)
// are a `lint` command, a warning for every Kafka input feeding kafka_backup
// that reads records of aborted transactions, in every config file linted.
// Lint itself goes on as usual: the warnings do not change its exit code.
func warnUncommittedOnLint(w io.Writer, args []string) {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		i++ // root flags; a value-taking one written with a space ends the search below
	}
	if i == len(args) || args[i] != "lint" {
		return
	}
	for _, path := range lintPaths(args[i+1:]) {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // lint reports it
		}
		var conf map[string]any
		if yaml.Unmarshal(b, &conf) != nil {
			continue // lint reports it
		}
		for _, msg := range plugin.UncommittedInputs(conf) {
			fmt.Fprintf(w, "%s: warning: %s\n", path, msg)
		}
	}
}

// lintPaths returns the files `lint` reads from its arguments: paths, glob
// patterns, and folders ending in "/..." walked for YAML files. Flags are
// skipped, but the value of -r/--resources is a file like the others.
func lintPaths(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			if _, v, ok := strings.Cut(a, "="); ok {
				a = v
			} else {
				continue
			}
		}
		if dir, ok := strings.CutSuffix(a, "/..."); ok {
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
					out = append(out, p)
				}
				return nil
			})
			continue
		}
		if m, err := filepath.Glob(a); err == nil && len(m) > 0 {
			out = append(out, m...)
			continue
		}
		out = append(out, a)
	}
	return out
}
