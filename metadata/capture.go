package metadata

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CaptureOptions says what Capture reads.
type CaptureOptions struct {
	// Topics are the topics to describe.
	Topics []string
	// Groups select the consumer groups whose committed offsets on Topics
	// are read; none when empty.
	Groups []*regexp.Regexp
	// TopicConfigs reads each topic's configs set on the topic.
	TopicConfigs bool
}

// CompileGroups compiles consumer group expressions: each must match a
// whole group name (it is anchored). what names the setting in errors.
func CompileGroups(what string, exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, e := range exprs {
		re, err := regexp.Compile(`^(?:` + e + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a regular expression (Go RE2 syntax, matching the whole group name, e.g. orders-.* or .*): %w", what, e, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// MatchAny reports whether name matches one of res.
func MatchAny(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// Capture reads a snapshot of the cluster adm talks to. It fails only when
// the cluster cannot be asked for its topics at all; what could not be
// read beyond that (a topic's configs, the groups) is listed in the
// snapshot's Errors. Time and TookMillis are set; Reason and Instance are
// the caller's.
func Capture(ctx context.Context, adm *kadm.Client, opts CaptureOptions) (*Snapshot, error) {
	start := time.Now()
	s := &Snapshot{Format: Format, Time: start.UTC()}
	topics := append([]string(nil), opts.Topics...)
	sort.Strings(topics)
	if len(topics) == 0 {
		return nil, errors.New("no topic to describe")
	}
	meta, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("asking the source cluster about topics %s: %w", strings.Join(topics, ", "), err)
	}
	s.ClusterID = meta.Cluster
	var found []string
	for _, t := range topics {
		td, ok := meta.Topics[t]
		switch {
		case !ok:
			s.Errors = append(s.Errors, fmt.Sprintf("topic %s: the cluster did not describe it", t))
			continue
		case td.Err != nil:
			s.Errors = append(s.Errors, fmt.Sprintf("topic %s: %v", t, td.Err))
			continue
		}
		top := Topic{Name: t, Partitions: int32(len(td.Partitions))}
		for _, p := range td.Partitions {
			top.ReplicationFactor = max(top.ReplicationFactor, int16(len(p.Replicas)))
		}
		s.Topics = append(s.Topics, top)
		found = append(found, t)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("the source cluster described none of the topics %s: %s", strings.Join(topics, ", "), strings.Join(s.Errors, "; "))
	}
	if opts.TopicConfigs {
		s.Errors = append(s.Errors, readConfigs(ctx, adm, s, found)...)
	}
	if len(opts.Groups) > 0 {
		s.Errors = append(s.Errors, readGroups(ctx, adm, s, found, opts.Groups)...)
	}
	s.TookMillis = time.Since(start).Milliseconds()
	return s, nil
}

// readConfigs fills the topics' Configs with those set on each topic.
func readConfigs(ctx context.Context, adm *kadm.Client, s *Snapshot, topics []string) (errs []string) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return []string{fmt.Sprintf("topic configs: %v", err)}
	}
	for _, rc := range rcs {
		t := s.Topic(rc.Name)
		if t == nil {
			continue
		}
		if rc.Err != nil {
			errs = append(errs, fmt.Sprintf("configs of topic %s: %v %s", rc.Name, rc.Err, rc.ErrMessage))
			continue
		}
		t.Configs, t.ConfigsRead = map[string]string{}, true
		for _, c := range rc.Configs {
			if c.Source != kmsg.ConfigSourceDynamicTopicConfig || c.Sensitive || c.Value == nil {
				continue
			}
			t.Configs[c.Key] = *c.Value
		}
	}
	return errs
}

// readGroups adds the groups matching res with offsets on topics.
func readGroups(ctx context.Context, adm *kadm.Client, s *Snapshot, topics []string, res []*regexp.Regexp) (errs []string) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return []string{fmt.Sprintf("listing consumer groups: %v", err)}
	}
	var names []string
	for name := range listed {
		if MatchAny(res, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	for _, name := range names {
		resp, err := adm.FetchOffsetsForTopics(ctx, name, topics...)
		if err != nil {
			errs = append(errs, fmt.Sprintf("committed offsets of group %s: %v", name, err))
			continue
		}
		g := Group{Name: name, State: listed[name].State}
		for t, ps := range resp {
			if !want[t] {
				continue
			}
			for p, o := range ps {
				if o.Err != nil {
					errs = append(errs, fmt.Sprintf("committed offset of group %s on %s/%d: %v", name, t, p, o.Err))
					continue
				}
				if o.At < 0 {
					continue // nothing committed (FetchOffsetsForTopics lists every partition)
				}
				g.Offsets = append(g.Offsets, Offset{Topic: t, Partition: p, Offset: o.At, Metadata: o.Metadata})
			}
		}
		if len(g.Offsets) > 0 {
			s.Groups = append(s.Groups, g)
		}
	}
	return errs
}
