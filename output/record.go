package output

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/segment"
)

// Metadata keys the Kafka inputs set, and the kafka_backup input sets as
// they do: where a record came from and what it held.
const (
	MetaTopic     = "kafka_topic"
	MetaPartition = "kafka_partition"
	MetaOffset    = "kafka_offset"
	MetaKey       = "kafka_key"
	MetaTimestamp = "kafka_timestamp_ms"
	MetaTsUnix    = "kafka_timestamp_unix"
	MetaTombstone = "kafka_tombstone_message"
	// MetaHeaders holds the exact header list ([]kgo.RecordHeader); of the
	// stock inputs, only the redpanda input sets it.
	MetaHeaders = "__rpcn_kafka_headers"
)

// reservedHeaders are header names the Kafka inputs let overwrite the
// metadata they set from the record itself.
var reservedHeaders = []string{MetaTopic, MetaPartition, MetaOffset, MetaKey, MetaTimestamp, MetaTsUnix, MetaTombstone}

const inputHint = "kafka_backup needs messages straight from the redpanda or kafka_franz input, which set kafka_topic, kafka_partition, kafka_offset and kafka_timestamp_ms"

// recordOf turns a message from a Kafka input into the partition and record
// it came from.
func recordOf(msg *service.Message) (topic string, partition int32, rec segment.Record, err error) {
	headers, hasList := msg.MetaGetMut(MetaHeaders)
	var list []kgo.RecordHeader
	if hasList {
		var ok bool
		if list, ok = headers.([]kgo.RecordHeader); !ok {
			return "", 0, rec, fmt.Errorf("metadata %s is a %T, not the header list the redpanda input sets", MetaHeaders, headers)
		}
		for _, h := range list {
			for _, r := range reservedHeaders {
				if h.Key == r {
					return "", 0, rec, fmt.Errorf("the record has a header named %q, which overwrote the %s metadata the input set, so its real value is unknown and the record cannot be backed up faithfully: drop or route records with this header before kafka_backup (their header list is in metadata %s)", r, r, MetaHeaders)
				}
			}
		}
	}

	t, ok := msg.MetaGetMut(MetaTopic)
	if !ok {
		return "", 0, rec, fmt.Errorf("no %s metadata: %s", MetaTopic, inputHint)
	}
	topic, ok = t.(string)
	if !ok {
		return "", 0, rec, fmt.Errorf("metadata %s is a %T, want a string: %s", MetaTopic, t, inputHint)
	}
	p, err := metaInt(msg, MetaPartition)
	if err != nil {
		return "", 0, rec, err
	}
	if p < 0 || p > 1<<31-1 {
		return "", 0, rec, fmt.Errorf("metadata %s is %d, not a partition number", MetaPartition, p)
	}
	if rec.Offset, err = metaInt(msg, MetaOffset); err != nil {
		return "", 0, rec, err
	}
	if rec.Offset < 0 {
		return "", 0, rec, fmt.Errorf("metadata %s is %d, not an offset", MetaOffset, rec.Offset)
	}
	if rec.Timestamp, err = metaInt(msg, MetaTimestamp); err != nil {
		sec, err2 := metaInt(msg, MetaTsUnix)
		if err2 != nil {
			return "", 0, rec, err
		}
		rec.Timestamp = sec * 1000
	}

	var keyBytes bool
	switch k, _ := msg.MetaGetMut(MetaKey); k := k.(type) {
	case []byte:
		rec.Key = k // redpanda input: nil is a null key
		keyBytes = true
	case string:
		if k != "" { // kafka_franz: an empty key and a null key look alike; null is kept
			rec.Key = []byte(k)
		}
	case nil:
	default:
		return "", 0, rec, fmt.Errorf("metadata %s is a %T, want bytes or a string", MetaKey, k)
	}

	if tomb, _ := msg.MetaGetMut(MetaTombstone); tomb != true {
		v, err := msg.AsBytes()
		if err != nil {
			return "", 0, rec, fmt.Errorf("reading the message value: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		rec.Value = v
	}

	switch {
	case hasList:
		if len(list) > 0 {
			rec.Headers = make([]segment.Header, len(list))
			for i, h := range list {
				rec.Headers[i] = segment.Header{Key: h.Key, Value: h.Value}
			}
		}
	case keyBytes:
		// The redpanda input (a key as bytes) sets the header list for every
		// record that has headers: this one has none. Metadata a processor
		// added is not a header, as it is not for records with headers.
	default:
		rec.Headers = metadataHeaders(msg)
	}
	return topic, int32(p), rec, nil
}

// metadataHeaders turns a message's metadata, except the kafka_* keys the
// input sets and Redpanda Connect's internal __rpcn* keys, into headers,
// sorted by key. A list value (kafka_franz with multi_header) becomes one
// header per element, in order.
func metadataHeaders(msg *service.Message) []segment.Header {
	var hs []segment.Header
	_ = msg.MetaWalkMut(func(k string, v any) error {
		if strings.HasPrefix(k, "kafka_") || strings.HasPrefix(k, "__rpcn") {
			return nil
		}
		if list, ok := v.([]any); ok {
			for _, e := range list {
				hs = append(hs, segment.Header{Key: k, Value: headerValue(e)})
			}
			return nil
		}
		hs = append(hs, segment.Header{Key: k, Value: headerValue(v)})
		return nil
	})
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].Key < hs[j].Key })
	return hs
}

func headerValue(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	default:
		return fmt.Append(nil, v)
	}
}

// metaInt reads an integer metadata value, as the inputs set it (int) or as a
// processor may have left it (other integer types, a decimal string).
func metaInt(msg *service.Message, key string) (int64, error) {
	v, ok := msg.MetaGetMut(key)
	if !ok {
		return 0, fmt.Errorf("no %s metadata: %s", key, inputHint)
	}
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	case uint64:
		return int64(v), nil
	case float64:
		if v == float64(int64(v)) {
			return int64(v), nil
		}
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, nil
		}
	case []byte:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("metadata %s is %v (%T), not an integer: %s", key, v, v, inputHint)
}
