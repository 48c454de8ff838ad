package rolling

import (
	"context"
	"fmt"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// Fsync says when the Writer fsyncs an in-progress file.
type Fsync int

const (
	// FsyncBatch fsyncs after every Write, before it returns: an
	// acknowledged record survives a process crash and a power loss.
	FsyncBatch Fsync = iota
	// FsyncRoll fsyncs when a file rolls, before it is renamed: an
	// acknowledged record survives a process crash (it is in the page
	// cache) but the last unrolled records can be lost to a power loss.
	FsyncRoll
	// FsyncNever leaves flushing to the operating system entirely.
	FsyncNever
)

// ParseFsync returns the policy called s: "batch", "roll" or "never".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "batch":
		return FsyncBatch, nil
	case "roll":
		return FsyncRoll, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("unknown fsync policy %q: use batch, roll or never", s)
}

// Reason says why a file rolled.
type Reason string

// The reasons a file rolls.
const (
	ReasonSize       Reason = "size"         // the next records would make it exceed the maximum size
	ReasonIdle       Reason = "idle"         // no records for the idle timeout
	ReasonAge        Reason = "age"          // open for the maximum age
	ReasonOutOfOrder Reason = "out_of_order" // records arrived with lower offsets than the file's last
	ReasonShutdown   Reason = "shutdown"     // the Writer was closed
	ReasonError      Reason = "error"        // a write failed; the file keeps its complete batches
)

// SkipReason says why records were not written.
type SkipReason string

// The reasons records are skipped.
const (
	SkipOffsetFrom SkipReason = "offset_from" // below the configured start offset
	SkipPersisted  SkipReason = "persisted"   // already in a file: a replay after a restart or retry
)

// File describes a file that has rolled: complete, closed, and still under its
// in-progress name.
type File struct {
	Topic        string
	Partition    int32
	Path         string // the in-progress file on local disk
	Name         string // the final name, in the same folder
	FirstOffset  int64
	LastOffset   int64
	Records      int64
	Bytes        int64
	MaxTimestamp int64
	MinTimestamp int64
	// Ranges are the offsets the file's batches cover, contiguous batches
	// merged. The file holds no offset outside them.
	Ranges         []offsets.Range
	Reason         Reason
	Fsync          bool // whether the destination must fsync what it makes of it
	Opened, Closed time.Time
}

// Destination takes files that have rolled and makes them final.
type Destination interface {
	// Publish makes f final, for example by renaming it to f.Name. When it
	// returns nil the Writer forgets f; when it fails the Writer tries again
	// later and f stays on disk under its in-progress name.
	Publish(ctx context.Context, f File) error
	// Persisted returns the offset ranges already held by final files of a
	// partition. The Writer calls it when it first sees a partition and skips
	// records inside those ranges, so a replay never puts an offset in two
	// final files.
	Persisted(ctx context.Context, topic string, partition int32) ([]offsets.Range, error)
}

// Observer is told what the Writer does, for logs and metrics. Its methods
// must be fast and safe for concurrent use.
type Observer interface {
	Written(topic string, partition int32, records int, bytes int)
	Finalized(f File)
	Skipped(topic string, partition int32, reason SkipReason, records int)
	// OutOfOrder is called for every batch that arrives below the open
	// file's last offset; first is true the first time for a partition.
	OutOfOrder(topic string, partition int32, offset, after int64, first bool)
	// OpenFiles is called with the number of open in-progress files
	// whenever it changes.
	OpenFiles(n int)
	Error(err error)
	// Refused is called once per run for a partition the Writer refuses
	// because its topic was deleted and recreated: err (wrapping
	// ErrRecreated) says what was found and what to do. Every Write to it
	// fails with err until the old backup is moved away.
	Refused(topic string, partition int32, err error)
}

// Config configures a Writer.
type Config struct {
	Dir         string        // root folder; partition folders are made below it
	Instance    string        // id of this running instance, unique among writers of Dir
	MaxSize     int64         // a file never exceeds this unless one record alone is larger
	IdleTimeout time.Duration // a file rolls after this long without records
	MaxAge      time.Duration // a file rolls this long after it opened; 0 is no limit
	Fsync       Fsync
	Compression segment.Compression
	Naming      layout.Naming
	// OffsetFrom returns the lowest offset to back up for a partition; nil
	// backs up everything.
	OffsetFrom  func(topic string, partition int32) int64
	Destination Destination
	Observer    Observer // nil observes nothing
}

type nopObserver struct{}

func (nopObserver) Written(string, int32, int, int) {}

func (nopObserver) Finalized(File) {}

func (nopObserver) Skipped(string, int32, SkipReason, int) {}

func (nopObserver) OutOfOrder(string, int32, int64, int64, bool) {}

func (nopObserver) OpenFiles(int) {}

func (nopObserver) Error(error) {}

func (nopObserver) Refused(string, int32, error) {}
