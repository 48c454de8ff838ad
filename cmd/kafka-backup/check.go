package main

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// franzMinMetadataAge is the Kafka client's (franz-go's) least metadata age,
// kgo.MetadataMinAge's default, which the stock Kafka components keep. With a
// metadata_max_age below it the client refuses to start: the component logs
// "metadata max age … is erroneously less than metadata min age" every second
// and never connects, although lint accepts the config (the stock
// components' specs have no rule for it, and ours cannot add one).
const franzMinMetadataAge = 5 * time.Second

// franzComponents are the stock components built on franz-go's client that
// have a metadata_max_age field.
var franzComponents = map[string]bool{"redpanda": true, "kafka_franz": true, "redpanda_common": true}

// onConfigParse runs, once `run` has parsed its config and before anything
// starts, every check of ours: the warnings first, then the refusals.
func onConfigParse(pConf *service.ParsedConfig) error {
	if err := warnUncommittedAtStart(pConf); err != nil {
		return err
	}
	return checkConfig(pConf)
}

// checkConfig refuses, before anything runs, a config the stock components
// accept in lint but cannot run with, naming the field and the fix.
func checkConfig(pConf *service.ParsedConfig) error {
	root, err := pConf.FieldAny()
	if err != nil {
		return nil // nothing to check
	}
	var problems []string
	walkConfig("", plain(root), func(path string, fields map[string]any) {
		v, ok := fields["metadata_max_age"].(string)
		if !ok {
			return
		}
		if d, err := time.ParseDuration(v); err == nil && d < franzMinMetadataAge {
			problems = append(problems, fmt.Sprintf("%s.metadata_max_age: %s is below %s, the Kafka client's least metadata age: the client refuses it and never connects; set %s or more",
				path, v, franzMinMetadataAge, franzMinMetadataAge))
		}
	})
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// plain turns a parsed config into maps, lists and values: components are
// kept as YAML nodes, which decode themselves.
func plain(v any) any {
	if n, ok := v.(interface{ Decode(any) error }); ok {
		var out any
		if n.Decode(&out) != nil {
			return nil
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil
		}
		out := make(map[string]any, rv.Len())
		for _, k := range rv.MapKeys() {
			out[k.String()] = plain(rv.MapIndex(k).Interface())
		}
		return out
	case reflect.Slice:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = plain(rv.Index(i).Interface())
		}
		return out
	}
	return v
}

// walkConfig calls fn with the fields of every franz-go component in v and
// its path ("input.redpanda", "input.broker.inputs.1.kafka_franz").
func walkConfig(path string, v any, fn func(path string, fields map[string]any)) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if fields, ok := v[k].(map[string]any); ok && franzComponents[k] {
				fn(join(k), fields)
			}
			walkConfig(join(k), v[k], fn)
		}
	case []any:
		for i, e := range v {
			walkConfig(join(strconv.Itoa(i)), e, fn)
		}
	}
}
