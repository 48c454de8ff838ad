package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/units"
)

// topicInfo is what the target cluster says about a topic: its partition
// count, or that it does not exist.
type topicInfo struct {
	exists     bool
	partitions int32
}

// describe asks the target cluster about topics.
func (r *run) describe(ctx context.Context, topics []string) (map[string]topicInfo, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil, fmt.Errorf("asking the target cluster about topics %s: %w", strings.Join(topics, ", "), err)
	}
	out := map[string]topicInfo{}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			out[*t.Topic] = topicInfo{}
		case err != nil:
			return nil, fmt.Errorf("target topic %s: %w", *t.Topic, err)
		default:
			out[*t.Topic] = topicInfo{exists: true, partitions: int32(len(t.Partitions))}
		}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("the target cluster did not answer about topic %s", t)
		}
	}
	return out, nil
}

// checkTargets makes sure every target topic exists with enough partitions
// for the backup, creating missing ones when asked. It refuses (ErrRefused)
// before anything is produced, naming each topic and both partition counts.
func (r *run) checkTargets(ctx context.Context, plan []*topicPlan) (created []string, err error) {
	var targets []string
	for _, tp := range plan {
		if tp.needed > 0 {
			targets = append(targets, tp.target)
		}
	}
	if len(targets) == 0 {
		return nil, nil
	}
	info, err := r.describe(ctx, targets)
	if err != nil {
		return nil, err
	}
	var problems []string
	var create []*topicPlan
	for _, tp := range plan {
		if tp.needed == 0 {
			continue
		}
		from := ""
		if tp.target != tp.topic {
			from = fmt.Sprintf(" (restoring backup topic %s)", tp.topic)
		}
		ti := info[tp.target]
		tp.exists = ti.exists
		switch {
		case !ti.exists && r.cfg.CreateTopics:
			create = append(create, tp)
		case !ti.exists:
			problems = append(problems, fmt.Sprintf(
				"target topic %s does not exist%s: the backup has %d partitions; create it with at least %d partitions, or pass --create-topics",
				tp.target, from, tp.folders, tp.needed))
		case ti.partitions < tp.needed:
			problems = append(problems, fmt.Sprintf(
				"target topic %s has %d partitions, fewer than the %d the backup of %s uses (partitions 0 to %d hold records): add partitions to it or restore into another topic with --rename",
				tp.target, ti.partitions, tp.needed, tp.topic, tp.needed-1))
		case ti.partitions > tp.folders:
			fmt.Fprintf(r.log, "note: target topic %s has %d partitions, the backup of %s has %d: the extra ones get no records\n",
				tp.target, ti.partitions, tp.topic, tp.folders)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrRefused, strings.Join(problems, "; "))
	}
	if r.cfg.DryRun {
		for _, tp := range create {
			_, confs := r.createRequestConfigs(tp)
			fmt.Fprintf(r.log, "dry run: would create topic %s with %d partitions and %s\n", tp.target, r.createPartitions(tp), confs)
		}
		return nil, nil
	}
	if len(create) > 0 {
		if created, err = r.create(ctx, create); err != nil {
			return created, err
		}
		for _, tp := range create {
			tp.exists = true
		}
	}
	r.warnNonEmpty(ctx, plan, created)
	return created, nil
}

// create creates topics with the backup's partition count and waits until
// the cluster's metadata shows them.
func (r *run) create(ctx context.Context, tps []*topicPlan) ([]string, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 60_000
	want := map[string]int32{}
	confs := map[string]string{}
	keys := map[string][]string{}
	for _, tp := range tps {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = tp.target
		rt.NumPartitions = r.createPartitions(tp) // restore/groups.go
		rt.Configs, confs[tp.target] = r.createRequestConfigs(tp)
		for _, c := range rt.Configs {
			keys[tp.target] = append(keys[tp.target], c.Name)
		}
		rt.ReplicationFactor = r.cfg.ReplicationFactor
		req.Topics = append(req.Topics, rt)
		want[tp.target] = rt.NumPartitions
	}
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	var created []string
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			msg := ""
			if t.ErrorMessage != nil {
				msg = ": " + *t.ErrorMessage
			}
			if ks := keys[t.Topic]; len(ks) > 0 {
				example := ks[0]
				for _, k := range ks {
					if strings.Contains(msg, k) {
						example = k
						break
					}
				}
				msg += fmt.Sprintf(" (the configs are the backup's snapshot's, with --topic-config: one the target refuses takes another value with --topic-config KEY=VALUE, or the target's default with --topic-config KEY=, e.g. --topic-config %s=)", example)
			}
			errs = append(errs, fmt.Errorf("creating topic %s with %d partitions and %s: %w%s", t.Topic, want[t.Topic], confs[t.Topic], err, msg))
			continue
		}
		created = append(created, t.Topic)
		fmt.Fprintf(r.log, "created topic %s with %d partitions and %s\n", t.Topic, want[t.Topic], confs[t.Topic])
	}
	sort.Strings(created)
	if len(errs) > 0 {
		return created, errors.Join(errs...)
	}
	// Wait for the new topics to show in the metadata with every partition.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := r.describe(ctx, created)
		ready := err == nil
		for _, t := range created {
			ready = ready && info[t].exists && info[t].partitions >= want[t]
		}
		if ready {
			return created, nil
		}
		if time.Now().After(deadline) {
			return created, fmt.Errorf("topics %s were created but do not show in the cluster's metadata after 30s (%v)", strings.Join(created, ", "), err)
		}
		select {
		case <-ctx.Done():
			return created, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// warnNonEmpty says which target partitions already hold records: the
// restored ones come after them. A failed check is only a note.
func (r *run) warnNonEmpty(ctx context.Context, plan []*topicPlan, created []string) {
	isNew := map[string]bool{}
	for _, t := range created {
		isNew[t] = true
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	for _, tp := range plan {
		if tp.needed == 0 || isNew[tp.target] {
			continue
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = tp.target
		for _, ps := range tp.parts {
			if len(ps.part.Files) == 0 {
				continue
			}
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Partition = ps.sum.Partition
			p.Timestamp = -1 // the end
			rt.Partitions = append(rt.Partitions, p)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return
	}
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return
	}
	for _, t := range resp.Topics {
		var busy []string
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 && p.Offset > 0 {
				busy = append(busy, fmt.Sprintf("%d (end offset %d)", p.Partition, p.Offset))
			}
		}
		if len(busy) > 0 {
			fmt.Fprintf(r.log, "note: target topic %s already holds records in partitions %s: the restored records come after them\n",
				t.Topic, strings.Join(busy, ", "))
		}
	}
}

// setLimits sets each partition's batch limit: --max-batch-bytes when
// given, else its target topic's max.message.bytes, asked of the target
// cluster (for a topic a dry run would create, the broker's
// message.max.bytes), else DefaultMaxMessageBytes with a note.
func (r *run) setLimits(ctx context.Context, plan []*topicPlan) {
	set := func(tp *topicPlan, limit int32, from string) {
		for _, ps := range tp.parts {
			ps.sum.Limit, ps.sum.LimitFrom = limit, from
		}
	}
	if r.cfg.MaxBatchBytes > 0 {
		for _, tp := range plan {
			set(tp, r.cfg.MaxBatchBytes, "--max-batch-bytes")
		}
		return
	}
	if r.cl == nil {
		for _, tp := range plan {
			set(tp, DefaultMaxMessageBytes, "the broker default max.message.bytes; no target asked, --brokers would")
		}
		return
	}
	var topics []string
	missing := false
	for _, tp := range plan {
		if tp.exists {
			topics = append(topics, tp.target)
		} else if tp.needed > 0 {
			missing = true
		}
	}
	limits, err := r.maxMessageBytes(ctx, topics, missing)
	if err != nil {
		fmt.Fprintf(r.log, "note: cannot ask the target cluster for max.message.bytes (%v): batches are limited to the broker default %d; --max-batch-bytes sets the limit\n", err, DefaultMaxMessageBytes)
	}
	for _, tp := range plan {
		switch l, ok := limits[tp.target]; {
		case ok && tp.exists:
			set(tp, l, fmt.Sprintf("max.message.bytes %s of target topic %s", units.FormatCount(int64(l)), tp.target))
		case !tp.exists && limits[""] > 0:
			set(tp, limits[""], fmt.Sprintf("message.max.bytes %s of the target brokers, for topic %s to be created", units.FormatCount(int64(limits[""])), tp.target))
		default:
			set(tp, DefaultMaxMessageBytes, "the broker default max.message.bytes; the target did not say")
		}
	}
}

// maxMessageBytes asks the target cluster for the max.message.bytes of
// topics, and with broker for the brokers' message.max.bytes (under "").
func (r *run) maxMessageBytes(ctx context.Context, topics []string, broker bool) (map[string]int32, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, t := range topics {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeTopic
		rr.ResourceName = t
		rr.ConfigNames = []string{"max.message.bytes"}
		req.Resources = append(req.Resources, rr)
	}
	if broker {
		meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, r.cl)
		if err != nil {
			return nil, err
		}
		if len(meta.Brokers) > 0 {
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType = kmsg.ConfigResourceTypeBroker
			rr.ResourceName = strconv.Itoa(int(meta.Brokers[0].NodeID))
			rr.ConfigNames = []string{"message.max.bytes"}
			req.Resources = append(req.Resources, rr)
		}
	}
	if len(req.Resources) == 0 {
		return nil, nil
	}
	// Broker resources must go to that broker; franz-go routes them.
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil, err
	}
	out := map[string]int32{}
	var errs []error
	for _, res := range resp.Resources {
		name := res.ResourceName
		if res.ResourceType == kmsg.ConfigResourceTypeBroker {
			name = ""
		}
		if err := kerr.ErrorForCode(res.ErrorCode); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", res.ResourceType, res.ResourceName, err))
			continue
		}
		for _, c := range res.Configs {
			if c.Value == nil || (c.Name != "max.message.bytes" && c.Name != "message.max.bytes") {
				continue
			}
			v, err := strconv.ParseInt(*c.Value, 10, 32)
			if err != nil || v <= 0 {
				errs = append(errs, fmt.Errorf("%s %s: %s is %q", res.ResourceType, res.ResourceName, c.Name, *c.Value))
				continue
			}
			out[name] = int32(v)
		}
	}
	return out, errors.Join(errs...)
}
