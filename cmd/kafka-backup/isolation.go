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
	_, res := lintPaths(os.Args[1:])
	mergeResources(conf, res)
	for _, w := range inputWarnings(conf) {
		pConf.Resources().Logger().Warn(w)
	}
	return nil
}

// inputWarnings returns what lint and run say about the Kafka inputs
// feeding kafka_backup in conf: records of aborted transactions read
// (plugin.UncommittedInputs) and batches too small for a fast backup
// (plugin.SmallBatchInputs).
func inputWarnings(conf map[string]any) []string {
	return append(plugin.UncommittedInputs(conf), plugin.SmallBatchInputs(conf)...)
}

// mergeResources appends to conf the input and output resources of the
// resources files (-r), as Benthos does when it runs conf with them: an
// input there may feed kafka_backup in conf.
func mergeResources(conf map[string]any, files []string) {
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // Benthos reports it
		}
		var res map[string]any
		if yaml.Unmarshal(b, &res) != nil {
			continue
		}
		for _, k := range []string{"input_resources", "output_resources"} {
			if l, ok := res[k].([]any); ok {
				have, _ := conf[k].([]any)
				conf[k] = append(have, l...)
			}
		}
	}
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
	paths, res := lintPaths(args[i+1:])
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // lint reports it
		}
		var conf map[string]any
		if yaml.Unmarshal(b, &conf) != nil {
			continue // lint reports it
		}
		mergeResources(conf, res)
		for _, msg := range inputWarnings(conf) {
			fmt.Fprintf(w, "%s: warning: %s\n", path, msg)
		}
	}
}

// lintPaths returns the files `lint` reads from its arguments: paths, glob
// patterns, and folders ending in "/..." walked for YAML files. Flags are
// skipped, but the values of -r/--resources are returned apart, as res: their
// resources are added to every config.
func lintPaths(args []string) (out, res []string) {
	for k := 0; k < len(args); k++ {
		a := args[k]
		if a == "-r" || a == "--resources" || a == "-resources" {
			if k+1 < len(args) {
				k++
				res = append(res, globOr(args[k])...)
			}
			continue
		}
		if strings.HasPrefix(a, "-") {
			f, v, ok := strings.Cut(a, "=")
			if !ok {
				continue
			}
			if f == "-r" || f == "--resources" || f == "-resources" {
				res = append(res, globOr(v)...)
				continue
			}
			a = v
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
		out = append(out, globOr(a)...)
	}
	return out, res
}

// globOr returns the files pattern a matches, or a itself.
func globOr(a string) []string {
	if m, err := filepath.Glob(a); err == nil && len(m) > 0 {
		return m
	}
	return []string{a}
}
