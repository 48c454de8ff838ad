// Package segment reads and writes kafka-backup files: Kafka log segments,
// that is a plain sequence of RecordBatch v2 (magic 2, CRC32C), the format
// Kafka keeps on its own disks. docs/FORMAT.md specifies it byte by byte.
//
// Encoder turns records into batches and Reader turns batches back into
// records. Neither touches a file system.
package segment

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one Kafka record as a backup file keeps it. A nil Key or Value is
// Kafka's null; an empty non-nil slice is an empty key or value.
type Record struct {
	Offset    int64    // the record's offset in its partition
	Timestamp int64    // milliseconds since the Unix epoch
	Key       []byte   // nil is a null key
	Value     []byte   // nil is a null value (a tombstone)
	Headers   []Header // in the order of the original record, duplicates kept
}

// Header is one record header, franz-go's own type. A nil Value is a null
// header value.
type Header = kmsg.Header

// Compression is the codec of a batch, with Kafka's numbering (the low three
// bits of a batch's attributes).
type Compression int8

// The codecs Kafka defines.
const (
	None   Compression = Compression(kgo.CodecNone)
	Gzip   Compression = Compression(kgo.CodecGzip)
	Snappy Compression = Compression(kgo.CodecSnappy)
	LZ4    Compression = Compression(kgo.CodecLz4)
	Zstd   Compression = Compression(kgo.CodecZstd)
)

var compressionNames = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// CompressionNames lists the names ParseCompression accepts.
func CompressionNames() []string { return append([]string(nil), compressionNames...) }

// ParseCompression returns the codec with the given name (none, gzip,
// snappy, lz4 or zstd).
func ParseCompression(s string) (Compression, error) {
	for i, n := range compressionNames {
		if strings.EqualFold(s, n) {
			return Compression(i), nil
		}
	}
	return 0, fmt.Errorf("unknown compression %q: use one of %s", s, strings.Join(compressionNames, ", "))
}

// String returns the codec's name.
func (c Compression) String() string {
	if c >= 0 && int(c) < len(compressionNames) {
		return compressionNames[c]
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// Batch header layout, offsets from the start of a batch.
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	// HeaderSize is the size of a RecordBatch v2 header: every batch is at
	// least this long.
	HeaderSize = 61
	// logOverhead is the part of the header not counted in the batch's
	// length field (base offset and the length itself).
	logOverhead = 12
)
