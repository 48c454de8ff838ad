package plugin

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
)

// fieldIsolation is the field of the stock Kafka inputs (redpanda,
// kafka_franz) that says whether records of open and aborted transactions
// are read; its default reads them.
const (
	fieldIsolation = "transaction_isolation_level"
	readCommitted  = "read_committed"
)

// kafkaInputs are the stock Kafka inputs that have fieldIsolation.
var kafkaInputs = map[string]bool{"redpanda": true, "kafka_franz": true}

// UncommittedInputs returns a warning for every stock Kafka input of a
// pipeline config (the whole config, as YAML decodes it) that reads records
// of aborted transactions, when the config has a kafka_backup output: such
// records would be backed up and restored as if committed. Inputs anywhere
// below input and input_resources are found (broker, sequence, fallback…).
// A value "${VAR:default}" is read from the environment, as Benthos does.
func UncommittedInputs(conf map[string]any) []string {
	var out []string
	for _, in := range kafkaInputsFeedingBackup(conf) {
		level, _ := in.fields[fieldIsolation].(string)
		if level = interpolate(level); level != readCommitted {
			if level == "" {
				level = "read_uncommitted, the default"
			}
			out = append(out, fmt.Sprintf("%s.%s reads records of aborted and open transactions (%s: %s): they would be backed up and restored as if committed; set %s: %s", in.path, in.name, fieldIsolation, level, fieldIsolation, readCommitted))
		}
	}
	return out
}

// The redpanda input's field bounding the batches it hands over, and its
// default.
const (
	fieldMaxYield   = "max_yield_batch_bytes"
	defaultMaxYield = "32KB"
)

// SmallBatchInputs returns a warning for every redpanda input feeding a
// kafka_backup output that leaves max_yield_batch_bytes at its 32KB default.
// That input hands over one batch per partition and the next only once the
// output acknowledged it, which kafka_backup does after the write and its
// fsync: 32KB a round makes the backup several times slower than the input
// can read (docs/benchmarks.md, "The plain config").
func SmallBatchInputs(conf map[string]any) []string {
	var out []string
	for _, in := range kafkaInputsFeedingBackup(conf) {
		if in.name != "redpanda" {
			continue
		}
		v := in.fields[fieldMaxYield]
		if s, ok := v.(string); ok {
			v = interpolate(s)
		}
		if v == nil || v == "" || v == defaultMaxYield {
			out = append(out, fmt.Sprintf("%s.%s hands over batches of at most %s (%s, the default), one per partition until kafka_backup has written and fsynced it: the backup runs at a fraction of what the input can read; set %s: 4MiB and partition_buffer_bytes: 2MiB", in.path, in.name, defaultMaxYield, fieldMaxYield, fieldMaxYield))
		}
	}
	return out
}

// kafkaInput is a stock Kafka input component of a config: where it is, its
// name and its fields.
type kafkaInput struct {
	path, name string
	fields     map[string]any
}

// kafkaInputsFeedingBackup returns the stock Kafka inputs anywhere below
// input and input_resources of conf, in a stable order, when conf has a
// kafka_backup output; none otherwise.
func kafkaInputsFeedingBackup(conf map[string]any) []kafkaInput {
	if !hasKey(conf["output"], "kafka_backup") && !hasKey(conf["output_resources"], "kafka_backup") {
		return nil
	}
	var out []kafkaInput
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				sub, isMap := v[k].(map[string]any)
				if kafkaInputs[k] && (isMap || v[k] == nil) {
					out = append(out, kafkaInput{path: path, name: k, fields: sub})
					continue
				}
				walk(path+"."+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(path+"["+strconv.Itoa(i)+"]", e)
			}
		}
	}
	walk("input", conf["input"])
	walk("input_resources", conf["input_resources"])
	return out
}

// hasKey reports whether key is a map key anywhere in v.
func hasKey(v any, key string) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == key || hasKey(e, key) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasKey(e, key) {
				return true
			}
		}
	}
	return false
}

var envRefValue = regexp.MustCompile(`^\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::(.*))?\}$`)

// interpolate resolves a value that is one environment variable reference,
// "${VAR}" or "${VAR:default}".
func interpolate(s string) string {
	m := envRefValue.FindStringSubmatch(s)
	if m == nil {
		return s
	}
	if v, ok := os.LookupEnv(m[1]); ok && v != "" {
		return v
	}
	return m[2]
}
