package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// admin asks the broker for end offsets and a group's commits.
type admin struct {
	cl         *kgo.Client
	topic      string
	partitions int32
}

func newAdmin(addr, topic string, partitions int32) (*admin, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	return &admin{cl: cl, topic: topic, partitions: partitions}, nil
}

func (a *admin) close() { a.cl.Close() }

// endOffsets returns the high watermark of every partition.
func (a *admin) endOffsets(ctx context.Context) ([]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = a.topic
	for p := range a.partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, err
	}
	out := make([]int64, a.partitions)
	seen := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t.Topic, p.Partition, err)
			}
			if p.Partition >= 0 && p.Partition < a.partitions {
				out[p.Partition] = p.Offset
				seen++
			}
		}
	}
	if seen != int(a.partitions) {
		return nil, fmt.Errorf("end offsets: %d of %d partitions answered", seen, a.partitions)
	}
	return out, nil
}

// committed returns the group's committed offset of every partition (0
// where it has none).
func (a *admin) committed(ctx context.Context, group string) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = a.topic
	for p := range a.partitions {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := make([]int64, a.partitions)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 && p.Offset > 0 && p.Partition >= 0 && p.Partition < a.partitions {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}
