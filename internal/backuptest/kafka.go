package backuptest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/segment"
)

// EndOffsets returns the end offsets of partitions 0 to n-1 of topic on the
// cluster at brokers, or the error of the request or of the first partition
// that has one (kerr.UnknownTopicOrPartition for a missing topic).
func EndOffsets(brokers []string, topic string, n int32) ([]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range n {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("%s/%d: %w", topic, p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

// ReadTopic reads every record of partitions 0 to n-1 of topic on the
// cluster at brokers, from the start up to their end offsets when it is
// called, by partition in offset order. It fails the test on an error, or
// when the records are not all read within timeout.
func ReadTopic(t testing.TB, brokers []string, topic string, n int32, timeout time.Duration) map[int32][]segment.Record {
	t.Helper()
	ends, err := EndOffsets(brokers, topic, n)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	offs := map[int32]kgo.Offset{}
	var want int64
	for p := range n {
		offs[p] = kgo.NewOffset().AtStart()
		want += ends[p]
	}
	out := map[int32][]segment.Record{}
	if want == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for got := int64(0); got < want; {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %d of %d records before the timeout", topic, got, want)
		}
		fetches.EachError(func(tp string, p int32, err error) { t.Fatalf("reading %s/%d: %v", tp, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], FromKgo(r))
			got++
		})
	}
	return out
}

// FromKgo returns the segment.Record of a record kgo consumed.
func FromKgo(r *kgo.Record) segment.Record {
	rec := segment.Record{
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Key:       r.Key,
		Value:     r.Value,
	}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, segment.Header{Key: h.Key, Value: h.Value})
	}
	return rec
}
