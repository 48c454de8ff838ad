package output

import (
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/rolling"
)

// observer logs and counts what the rolling writer does.
type observer struct {
	log        *service.Logger
	records    *service.MetricCounter
	bytes      *service.MetricCounter
	files      *service.MetricCounter
	skipped    *service.MetricCounter
	outOfOrder *service.MetricCounter
	errors     *service.MetricCounter
}

func newObserver(mgr *service.Resources) *observer {
	m := mgr.Metrics()
	return &observer{
		log:        mgr.Logger(),
		records:    m.NewCounter("kafka_backup_records_written", "topic", "partition"),
		bytes:      m.NewCounter("kafka_backup_bytes_written", "topic", "partition"),
		files:      m.NewCounter("kafka_backup_files_finalized", "reason"),
		skipped:    m.NewCounter("kafka_backup_records_skipped", "reason"),
		outOfOrder: m.NewCounter("kafka_backup_out_of_order_batches"),
		errors:     m.NewCounter("kafka_backup_errors"),
	}
}

func (o *observer) Written(topic string, partition int32, records, bytes int) {
	p := strconv.Itoa(int(partition))
	o.records.Incr(int64(records), topic, p)
	o.bytes.Incr(int64(bytes), topic, p)
}

func (o *observer) Finalized(f rolling.File) {
	o.files.Incr(1, string(f.Reason))
	o.log.With(
		"topic", f.Topic, "partition", f.Partition,
		"first_offset", f.FirstOffset, "last_offset", f.LastOffset,
		"records", f.Records, "bytes", f.Bytes, "reason", string(f.Reason),
	).Infof("finalized %s/%d/%s", f.Topic, f.Partition, f.Name)
}

func (o *observer) Skipped(topic string, partition int32, reason rolling.SkipReason, records int) {
	o.skipped.Incr(int64(records), string(reason))
	o.log.Debugf("skipped %d records of %s/%d: %s", records, topic, partition, reason)
}

func (o *observer) OutOfOrder(topic string, partition int32, offset, after int64) {
	o.outOfOrder.Incr(1)
	o.log.Warnf("%s/%d: a batch starting at offset %d arrived after offset %d was written; nothing is lost, the records go to a new file. This happens with kafka_franz and max_in_flight > 1: use the redpanda input for ordered files (logged once per partition)", topic, partition, offset, after)
}

func (o *observer) Error(err error) {
	o.errors.Incr(1)
	o.log.Errorf("%v", err)
}
