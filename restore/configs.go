package restore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// snapTopic returns the snapshot's entry of a backup topic, or nil.
func (r *run) snapTopic(tp *topicPlan) *metadata.Topic {
	if s := r.meta.snaps[tp.topic]; s != nil {
		return s.Topic(tp.topic)
	}
	return nil
}

// createPartitions is the partition count --create-topics gives a topic:
// the snapshot's, or the backup's partition folders when more (or no
// snapshot).
func (r *run) createPartitions(tp *topicPlan) int32 {
	n := tp.folders
	if st := r.snapTopic(tp); st != nil {
		n = max(n, st.Partitions)
	}
	return n
}

// createConfigs are the configs --create-topics gives a topic: the
// snapshot's, then --topic-config over them; an empty --topic-config value
// leaves the config out (the target's default: for one the target refuses).
func (r *run) createConfigs(tp *topicPlan) map[string]string {
	out := map[string]string{}
	if st := r.snapTopic(tp); st != nil {
		for k, v := range st.Configs {
			out[k] = v
		}
	}
	for k, v := range r.cfg.TopicConfigs {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// createRequestConfigs returns a topic's configs for a CreateTopics
// request, sorted, and as text for messages.
func (r *run) createRequestConfigs(tp *topicPlan) ([]kmsg.CreateTopicsRequestTopicConfig, string) {
	m := r.createConfigs(tp)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []kmsg.CreateTopicsRequestTopicConfig
	var text []string
	for _, k := range keys {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(m[k])
		out = append(out, c)
		text = append(text, k+"="+m[k])
	}
	if len(text) == 0 {
		return nil, "broker defaults"
	}
	return out, "configs " + strings.Join(text, ", ")
}

// compareConfigs reports the differences between each existing target
// topic (not created by this run) and its snapshot with --topic-config:
// configs, and the partition count.
func (r *run) compareConfigs(ctx context.Context, adm *kadm.Client, plan []*topicPlan, sum *Summary, created []string) {
	isNew := map[string]bool{}
	for _, t := range created {
		isNew[t] = true
	}
	var topics []string
	byTarget := map[string]*topicPlan{}
	for _, tp := range plan {
		if !tp.exists || isNew[tp.target] || tp.needed == 0 {
			continue
		}
		if st := r.snapTopic(tp); st != nil && st.ConfigsRead || len(r.cfg.TopicConfigs) > 0 {
			topics = append(topics, tp.target)
			byTarget[tp.target] = tp
		}
	}
	if len(topics) == 0 {
		return
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		fmt.Fprintf(r.log, "note: cannot read the configs of target topics %s to compare them with the backup's: %v\n", strings.Join(topics, ", "), err)
		return
	}
	meta, _ := adm.ListTopics(ctx, topics...)
	for _, rc := range rcs {
		tp := byTarget[rc.Name]
		if tp == nil {
			continue
		}
		if rc.Err != nil {
			fmt.Fprintf(r.log, "note: cannot read the configs of target topic %s: %v\n", rc.Name, rc.Err)
			continue
		}
		want := r.createConfigs(tp)
		have := map[string]kadm.Config{}
		for _, c := range rc.Configs {
			have[c.Key] = c
		}
		var diffs []string
		for _, k := range sortedKeys(want) {
			c, ok := have[k]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s: the target does not report it, the backup has %s", k, want[k]))
			case c.Value == nil || *c.Value != want[k]:
				diffs = append(diffs, fmt.Sprintf("%s: target %s (%s), backup %s", k, c.MaybeValue(), sourceName(c.Source), want[k]))
			}
		}
		st := r.snapTopic(tp)
		if st != nil && st.ConfigsRead {
			var extra []string
			for k, c := range have {
				if _, ok := want[k]; !ok && c.Source == kmsg.ConfigSourceDynamicTopicConfig {
					extra = append(extra, fmt.Sprintf("%s: target %s (set on the topic), backup default", k, c.MaybeValue()))
				}
			}
			sort.Strings(extra)
			diffs = append(diffs, extra...)
		}
		if st != nil {
			if td, ok := meta[rc.Name]; ok && td.Err == nil && int32(len(td.Partitions)) != st.Partitions {
				diffs = append(diffs, fmt.Sprintf("partitions: target %d, source %d", len(td.Partitions), st.Partitions))
			}
		}
		for _, d := range diffs {
			line := fmt.Sprintf("target topic %s differs from the backup's (not changed): %s", rc.Name, d)
			sum.Metadata.ConfigDiffs = append(sum.Metadata.ConfigDiffs, line)
			fmt.Fprintf(r.log, "note: %s\n", line)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sourceName says where a config value comes from.
func sourceName(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "set on the topic"
	case kmsg.ConfigSourceDefaultConfig:
		return "default"
	}
	return "from " + strings.ToLower(strings.ReplaceAll(s.String(), "_", " "))
}
