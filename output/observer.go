package output

import (
	"strconv"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/rolling"
)

// Observer logs and counts what the rolling writer and the FTP uploader do,
// through the Benthos logger and metrics. It implements rolling.Observer and
// ftp.Observer.
type Observer struct {
	log        *service.Logger
	records    *service.MetricCounter
	bytes      *service.MetricCounter
	files      *service.MetricCounter
	skipped    *service.MetricCounter
	outOfOrder *service.MetricCounter
	refused    *service.MetricCounter
	errors     *service.MetricCounter
	uploads    *service.MetricCounter
	uploadErrs *service.MetricCounter
	uploadTime *service.MetricTimer
	spool      *service.MetricGauge
	openFiles  *service.MetricGauge
}

// Observer observes the writer (rolling.Observer).
var _ rolling.Observer = (*Observer)(nil)

// NewObserver returns an Observer reporting to mgr's logger and metrics.
func NewObserver(mgr *service.Resources) *Observer {
	m := mgr.Metrics()
	o := &Observer{
		log:        mgr.Logger(),
		records:    m.NewCounter("kafka_backup_records_written", "topic", "partition"),
		bytes:      m.NewCounter("kafka_backup_bytes_written", "topic", "partition"),
		files:      m.NewCounter("kafka_backup_files_finalized", "reason"),
		skipped:    m.NewCounter("kafka_backup_records_skipped", "reason"),
		outOfOrder: m.NewCounter("kafka_backup_out_of_order_batches"),
		refused:    m.NewCounter("kafka_backup_partitions_refused"),
		errors:     m.NewCounter("kafka_backup_errors"),
		uploads:    m.NewCounter("kafka_backup_uploads"),
		uploadErrs: m.NewCounter("kafka_backup_upload_errors"),
		uploadTime: m.NewTimer("kafka_backup_upload_latency_ns"),
		spool:      m.NewGauge("kafka_backup_spool_bytes"),
		openFiles:  m.NewGauge("kafka_backup_open_files"),
	}
	// Counters of rare events exist at 0 from the start, so an alert on
	// their increase sees the first one.
	for _, c := range []*service.MetricCounter{o.errors, o.outOfOrder, o.refused, o.uploads, o.uploadErrs} {
		c.Incr(0)
	}
	return o
}

// Written implements the observer interfaces.
func (o *Observer) Written(topic string, partition int32, records, bytes int) {
	p := strconv.Itoa(int(partition))
	o.records.Incr(int64(records), topic, p)
	o.bytes.Incr(int64(bytes), topic, p)
}

// Finalized implements the observer interfaces.
func (o *Observer) Finalized(f rolling.File) {
	o.files.Incr(1, string(f.Reason))
	o.log.With(
		"topic", f.Topic, "partition", f.Partition,
		"first_offset", f.FirstOffset, "last_offset", f.LastOffset,
		"records", f.Records, "bytes", f.Bytes, "reason", string(f.Reason),
	).Infof("finalized %s/%d/%s", f.Topic, f.Partition, f.Name)
}

// Skipped implements the observer interfaces.
func (o *Observer) Skipped(topic string, partition int32, reason rolling.SkipReason, records int) {
	o.skipped.Incr(int64(records), string(reason))
	o.log.Debugf("skipped %d records of %s/%d: %s", records, topic, partition, reason)
}

// OutOfOrder implements the observer interfaces.
func (o *Observer) OutOfOrder(topic string, partition int32, offset, after int64, first bool) {
	o.outOfOrder.Incr(1)
	if !first {
		return
	}
	o.log.Warnf("%s/%d: a batch starting at offset %d arrived after offset %d was written; nothing is lost, the records go to a new file. With the kafka_franz input this happens when a batch failed and was delivered again, or reached the output more than 100ms after later ones: set the output's max_in_flight: 1 (slower), or use the redpanda input, for files always in offset order (logged once per partition)", topic, partition, offset, after)
}

// Refused implements the observer interfaces. It counts in
// kafka_backup_partitions_refused and in kafka_backup_errors; the error,
// logged, names the partition.
func (o *Observer) Refused(_ string, _ int32, err error) {
	o.refused.Incr(1)
	o.errors.Incr(1)
	o.log.Errorf("%v", err)
}

// Error implements the observer interfaces.
func (o *Observer) Error(err error) {
	o.errors.Incr(1)
	o.log.Errorf("%v", err)
}

// Warn implements the observer interfaces.
func (o *Observer) Warn(err error) {
	o.log.Warnf("%v", err)
}

// Uploaded implements the observer interfaces.
func (o *Observer) Uploaded(remotePath string, bytes int64, took time.Duration) {
	o.uploads.Incr(1)
	o.uploadTime.Timing(took.Nanoseconds())
	o.log.With("bytes", bytes, "seconds", took.Seconds()).Infof("uploaded %s", remotePath)
}

// UploadFailed implements the observer interfaces.
func (o *Observer) UploadFailed(remotePath string, attempt int, err error) {
	o.uploadErrs.Incr(1)
	o.log.With("attempt", attempt).Errorf("uploading %s failed, retrying with backoff: %v", remotePath, err)
}

// SpoolBytes implements the observer interfaces.
func (o *Observer) SpoolBytes(bytes int64) { o.spool.Set(bytes) }

// OpenFiles implements the observer interfaces.
func (o *Observer) OpenFiles(n int) { o.openFiles.Set(int64(n)) }
