package output

import (
	"reflect"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/segment"
)

// redpandaMessage builds a message as the redpanda input does
// (FranzRecordToMessageV1).
func redpandaMessage(r *kgo.Record) *service.Message {
	m := service.NewMessage(r.Value)
	m.MetaSetMut("kafka_key", r.Key)
	m.MetaSetMut("kafka_topic", r.Topic)
	m.MetaSetMut("kafka_partition", int(r.Partition))
	m.MetaSetMut("kafka_offset", int(r.Offset))
	m.MetaSetMut("kafka_timestamp_unix", r.Timestamp.Unix())
	m.MetaSetMut("kafka_timestamp_ms", r.Timestamp.UnixMilli())
	m.MetaSetMut("kafka_tombstone_message", r.Value == nil)
	if len(r.Headers) > 0 {
		for _, h := range r.Headers {
			m.MetaSetMut(h.Key, string(h.Value))
		}
		m.MetaSetMut("__rpcn_kafka_headers", r.Headers)
	}
	return m
}

// franzMessage builds a message as kafka_franz with multi_header does
// (FranzRecordToMessageV0).
func franzMessage(r *kgo.Record) *service.Message {
	m := service.NewMessage(r.Value)
	m.MetaSetMut("kafka_key", string(r.Key))
	m.MetaSetMut("kafka_topic", r.Topic)
	m.MetaSetMut("kafka_partition", int(r.Partition))
	m.MetaSetMut("kafka_offset", int(r.Offset))
	m.MetaSetMut("kafka_timestamp_ms", r.Timestamp.UnixMilli())
	m.MetaSetMut("kafka_tombstone_message", r.Value == nil)
	headers := map[string][]any{}
	for _, h := range r.Headers {
		headers[h.Key] = append(headers[h.Key], string(h.Value))
	}
	for k, v := range headers {
		m.MetaSetMut(k, v)
	}
	return m
}

func TestRecordOfRedpanda(t *testing.T) {
	r := &kgo.Record{Topic: "a.b", Partition: 3, Offset: 77, Key: nil, Value: []byte{},
		Headers: []kgo.RecordHeader{{Key: "z", Value: []byte("1")}, {Key: "a", Value: nil}, {Key: "z", Value: []byte{}}}}
	r.Timestamp = r.Timestamp.Add(1)
	topic, part, rec, err := recordOf(redpandaMessage(r))
	if err != nil {
		t.Fatal(err)
	}
	if topic != "a.b" || part != 3 || rec.Offset != 77 || rec.Key != nil || rec.Value == nil || len(rec.Value) != 0 {
		t.Fatalf("got %s/%d %+v", topic, part, rec)
	}
	want := []segment.Header{{Key: "z", Value: []byte("1")}, {Key: "a", Value: nil}, {Key: "z", Value: []byte{}}}
	if !reflect.DeepEqual(rec.Headers, want) || rec.Headers[1].Value != nil {
		t.Fatalf("headers %q, want %q in order with the null kept", rec.Headers, want)
	}

	r.Value, r.Key = nil, []byte{}
	_, _, rec, _ = recordOf(redpandaMessage(r))
	if rec.Value != nil || rec.Key == nil {
		t.Fatalf("tombstone with empty key: value %v key %v", rec.Value, rec.Key)
	}

	// No headers: the redpanda input sets no header list; metadata a
	// processor added does not become headers.
	r.Headers = nil
	m := redpandaMessage(r)
	m.MetaSetMut("added_by_a_processor", "x")
	if _, _, rec, _ = recordOf(m); rec.Headers != nil {
		t.Fatalf("record without headers got headers %q", rec.Headers)
	}
}

func TestRecordOfKafkaFranz(t *testing.T) {
	r := &kgo.Record{Topic: "t", Partition: 0, Offset: 5, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "z", Value: []byte("1")}, {Key: "a", Value: []byte("x")}, {Key: "z", Value: []byte("2")}}}
	_, _, rec, err := recordOf(franzMessage(r))
	if err != nil {
		t.Fatal(err)
	}
	want := []segment.Header{{Key: "a", Value: []byte("x")}, {Key: "z", Value: []byte("1")}, {Key: "z", Value: []byte("2")}}
	if !reflect.DeepEqual(rec.Headers, want) || string(rec.Key) != "k" {
		t.Fatalf("got %+v, want headers sorted by name, values of one name in order", rec)
	}
	r.Key = nil
	if _, _, rec, _ = recordOf(franzMessage(r)); rec.Key != nil {
		t.Fatal("kafka_franz empty key should become null")
	}
}

func TestRecordOfRejects(t *testing.T) {
	base := &kgo.Record{Topic: "t", Partition: 1, Offset: 9, Value: []byte("v")}
	for name, c := range map[string]struct {
		msg  func() *service.Message
		want string
	}{
		"no metadata": {func() *service.Message { return service.NewMessage([]byte("x")) }, "kafka_topic"},
		"bad partition": {func() *service.Message {
			m := redpandaMessage(base)
			m.MetaSetMut("kafka_partition", "one")
			return m
		}, "kafka_partition"},
		"no offset": {func() *service.Message {
			m := redpandaMessage(base)
			m.MetaDelete("kafka_offset")
			return m
		}, "kafka_offset"},
		"hostile header": {func() *service.Message {
			r := *base
			r.Headers = []kgo.RecordHeader{{Key: "kafka_topic", Value: []byte("../../etc")}}
			return redpandaMessage(&r)
		}, `header named "kafka_topic"`},
	} {
		_, _, _, err := recordOf(c.msg())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v does not mention %s", name, err, c.want)
		}
	}
}

func TestSplitRefusesBadTopic(t *testing.T) {
	for _, topic := range []string{"..", "a/b", ""} {
		_, err := new(partitions).split(service.MessageBatch{redpandaMessage(&kgo.Record{Topic: topic, Value: []byte("v")})})
		if err == nil || !strings.Contains(err.Error(), "topic") {
			t.Errorf("topic %q: %v", topic, err)
		}
	}
}

func TestSplitKeepsOrderPerPartition(t *testing.T) {
	var batch service.MessageBatch
	for i := 0; i < 9; i++ {
		batch = append(batch, redpandaMessage(&kgo.Record{Topic: "t", Partition: int32(i % 3), Offset: int64(i), Value: []byte("v")}))
	}
	ps := &partitions{}
	parts, err := ps.split(batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("%d partitions", len(parts))
	}
	for _, p := range parts {
		for i, r := range p.recs {
			if r.Offset != int64(p.partition)+int64(3*i) {
				t.Fatalf("partition %d: order broken: %+v", p.partition, p.recs)
			}
		}
	}

	// Reused for the next batch: the kept slices are cleared, and a batch
	// with other partitions gets only its own records.
	kept := parts[0].recs[:3]
	ps.reset()
	for _, r := range kept {
		if r.Value != nil {
			t.Fatalf("reset kept a record of the last batch reachable: %+v", r)
		}
	}
	batch = batch[:0]
	for i := 0; i < 4; i++ {
		batch = append(batch, redpandaMessage(&kgo.Record{Topic: "t", Partition: int32(2 + i%2), Offset: int64(100 + i), Value: []byte("w")}))
	}
	if parts, err = ps.split(batch); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].partition != 2 || parts[1].partition != 3 {
		t.Fatalf("second batch: got %+v", parts)
	}
	for _, p := range parts {
		if len(p.recs) != 2 || p.recs[0].Offset != int64(98+p.partition) || p.recs[1].Offset != int64(100+p.partition) {
			t.Fatalf("second batch, partition %d: %+v", p.partition, p.recs)
		}
	}
}
