package inspect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// Batch header fields List reads (docs/FORMAT.md).
const (
	hdrLength          = 8
	hdrMagic           = 16
	hdrLastOffsetDelta = 23
	hdrFirstTimestamp  = 27
	hdrMaxTimestamp    = 35
	hdrNumRecords      = 57
	logOverhead        = 12 // base offset and length, not counted by the length
	maxBatchLength     = 1 << 30
)

// FileInfo is what the batch headers of a final file say about it.
type FileInfo struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"` // bytes, as listed
	Batches int    `json:"batches"`
	Records int64  `json:"records"` // from the batch headers
	// FirstOffset is the first batch's base offset, LastOffset the last
	// offset of the last batch; absent for a file without a batch.
	FirstOffset *int64 `json:"first_offset,omitempty"`
	LastOffset  *int64 `json:"last_offset,omitempty"`
	// MinTimestamp is the least timestamp of the records (read from the
	// records: a batch's first timestamp is its first record's, not its
	// least), MaxTimestamp the greatest max timestamp of the batches (ms
	// since the epoch).
	MinTimestamp *int64 `json:"min_timestamp,omitempty"`
	MaxTimestamp *int64 `json:"max_timestamp,omitempty"`
	// Error says why the walk stopped before the end of the file (a torn
	// or corrupt batch); the fields above cover the batches before.
	Error string `json:"error,omitempty"`
}

// PartitionInfo is one partition folder as List sees it.
type PartitionInfo struct {
	Topic        string     `json:"topic"`
	Partition    int32      `json:"partition"`
	Files        []FileInfo `json:"files"`
	Records      int64      `json:"records"`
	Bytes        int64      `json:"bytes"`
	FirstOffset  *int64     `json:"first_offset,omitempty"`
	LastOffset   *int64     `json:"last_offset,omitempty"`
	MinTimestamp *int64     `json:"min_timestamp,omitempty"`
	MaxTimestamp *int64     `json:"max_timestamp,omitempty"`
	Leftovers    []Leftover `json:"leftovers"`
	Stray        []string   `json:"stray"`
	// PrunedBelow is the offset below which a prune deleted the files
	// (layout.PrunedNote); absent when never pruned.
	PrunedBelow *int64 `json:"pruned_below,omitempty"`
	// Error is set when the folder could not be listed.
	Error string `json:"error,omitempty"`
}

// ListReport is the result of List.
type ListReport struct {
	Location   string           `json:"location"`
	Partitions []*PartitionInfo `json:"partitions"`
	// Stray are the names below the location (and in the selected topic
	// folders, as topic/name) that are neither topic nor partition
	// folders; one that is not a regular file or folder says what it is.
	Stray []string `json:"stray"`
	// Metadata are the metadata snapshots (snapshots.go); absent without.
	Metadata *Snapshots `json:"metadata,omitempty"`
	Files    int        `json:"files"`
	Records  int64      `json:"records"`
	Bytes    int64      `json:"bytes"`
	// Errors counts files that could not be read in full and folders that
	// could not be listed.
	Errors int `json:"errors"`
}

// ListOptions configures List.
type ListOptions struct {
	Filter
	// Parallel is how many partitions are read at once; 4 when 0.
	Parallel int
}

// List walks the batch headers of every final file of the selected
// partitions. Record data is neither read into memory nor checked (local
// files are read header by header; an FTP file is streamed once): use Verify
// for that.
func List(ctx context.Context, src tree.Source, opts ListOptions) (*ListReport, error) {
	refs, err := selectPartitions(ctx, src, opts.Filter)
	if err != nil {
		return nil, err
	}
	rep := &ListReport{Location: src.String(), Partitions: make([]*PartitionInfo, len(refs)), Stray: []string{}}
	strays, err := treeStrays(ctx, src, opts.Filter)
	if err != nil {
		return nil, err
	}
	for _, s := range strays {
		rep.Stray = append(rep.Stray, s.name)
	}
	forEach(ctx, refs, opts.Parallel, func(i int, ref partitionRef) {
		rep.Partitions[i] = listPartition(ctx, src, ref)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(opts.Topics) == 0 {
		listSnapshots(ctx, src, rep) // snapshots.go
	}
	for _, p := range rep.Partitions {
		rep.Files += len(p.Files)
		rep.Records += p.Records
		rep.Bytes += p.Bytes
		if p.Error != "" {
			rep.Errors++
		}
		for _, f := range p.Files {
			if f.Error != "" {
				rep.Errors++
			}
		}
	}
	return rep, nil
}

func listPartition(ctx context.Context, src tree.Source, ref partitionRef) *PartitionInfo {
	pi := &PartitionInfo{Topic: ref.topic, Partition: ref.partition, Files: []FileInfo{}, Leftovers: []Leftover{}, Stray: []string{}}
	part, err := src.List(ctx, ref.topic, ref.partition)
	if err != nil {
		pi.Error = err.Error()
		return pi
	}
	for _, l := range part.Leftovers {
		pi.Leftovers = append(pi.Leftovers, Leftover{Name: l.Name, Size: l.Size, Kind: leftoverKind(l.Name)})
	}
	if part.Pruned {
		note, ok, err := tree.ReadPruned(ctx, src, ref.topic, ref.partition)
		if err != nil {
			pi.Error = err.Error()
			return pi
		}
		if ok {
			pi.PrunedBelow = ptr(note.Below)
		}
	}
	for _, s := range part.Stray {
		if what := part.NotRegular[s]; what != "" {
			s += " (" + what + ")"
		}
		pi.Stray = append(pi.Stray, s)
	}
	for _, f := range part.Files {
		if ctx.Err() != nil {
			return pi
		}
		fi := fileInfo(ctx, src, ref, f)
		pi.Files = append(pi.Files, fi)
		pi.Records += fi.Records
		pi.Bytes += f.Size
		if fi.FirstOffset != nil && (pi.FirstOffset == nil || *fi.FirstOffset < *pi.FirstOffset) {
			pi.FirstOffset = ptr(*fi.FirstOffset)
		}
		if fi.LastOffset != nil && (pi.LastOffset == nil || *fi.LastOffset > *pi.LastOffset) {
			pi.LastOffset = ptr(*fi.LastOffset)
		}
		if fi.MinTimestamp != nil && (pi.MinTimestamp == nil || *fi.MinTimestamp < *pi.MinTimestamp) {
			pi.MinTimestamp = ptr(*fi.MinTimestamp)
		}
		if fi.MaxTimestamp != nil && (pi.MaxTimestamp == nil || *fi.MaxTimestamp > *pi.MaxTimestamp) {
			pi.MaxTimestamp = ptr(*fi.MaxTimestamp)
		}
	}
	return pi
}

// fileInfo reads one file: offsets and counts from the batch headers, the
// least timestamp from the records (timestamps need not grow with offsets,
// and a batch's first timestamp is its first record's).
func fileInfo(ctx context.Context, src tree.Source, ref partitionRef, f tree.File) FileInfo {
	fi := FileInfo{Name: f.Name, Size: f.Size}
	rc, err := src.Open(ctx, ref.topic, ref.partition, f.Name)
	if err != nil {
		fi.Error = err.Error()
		return fi
	}
	defer rc.Close()
	rd := segment.NewReader(rc)
	for ctx.Err() == nil {
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		var recs []segment.Record
		if err == nil {
			recs, err = b.Records()
		}
		if err != nil {
			fi.Error = err.Error()
			break
		}
		if fi.Batches == 0 {
			fi.FirstOffset = ptr(b.BaseOffset)
		}
		fi.Batches++
		fi.Records += int64(b.NumRecords)
		fi.LastOffset = ptr(b.LastOffset)
		for i := range recs {
			if ts := recs[i].Timestamp; fi.MinTimestamp == nil || ts < *fi.MinTimestamp {
				fi.MinTimestamp = ptr(ts)
			}
		}
		if fi.MaxTimestamp == nil || b.MaxTimestamp > *fi.MaxTimestamp {
			fi.MaxTimestamp = ptr(b.MaxTimestamp)
		}
	}
	if fi.MinTimestamp == nil && fi.MaxTimestamp != nil {
		fi.MinTimestamp = ptr(*fi.MaxTimestamp) // batches without records
	}
	return fi
}

// BatchHeader is what WalkHeaders reports of a batch.
type BatchHeader struct {
	Position       int64 // byte position in the file
	Size           int64 // bytes, header included
	BaseOffset     int64
	LastOffset     int64
	FirstTimestamp int64
	MaxTimestamp   int64
	NumRecords     int32
}

// WalkHeaders calls fn with the header of every batch of a file of the given
// size (-1 when unknown), without checking CRCs or reading records: an
// io.ReaderAt (a local file) is read header by header, any other reader is
// read through. It returns a *segment.BatchError wrapping segment.ErrTorn or
// segment.ErrCorrupt when a header is invalid or the file ends inside a
// batch.
func WalkHeaders(r io.Reader, size int64, fn func(BatchHeader)) error {
	ra, seek := r.(io.ReaderAt)
	seek = seek && size >= 0
	var hdr [segment.HeaderSize]byte
	fail := func(pos int64, err error) error { return &segment.BatchError{Position: pos, Err: err} }
	for pos := int64(0); ; {
		var n int
		var err error
		if seek {
			if pos >= size {
				return nil
			}
			n, err = ra.ReadAt(hdr[:], pos)
		} else {
			n, err = io.ReadFull(r, hdr[:])
		}
		if n < len(hdr) {
			switch {
			case n == 0 && !seek && err == io.EOF:
				return nil
			case err == nil || err == io.EOF || err == io.ErrUnexpectedEOF:
				return fail(pos, segment.ErrTorn)
			default:
				return fail(pos, err)
			}
		}
		length := int64(int32(binary.BigEndian.Uint32(hdr[hdrLength:])))
		if length < segment.HeaderSize-logOverhead || length > maxBatchLength {
			return fail(pos, fmt.Errorf("%w: length field %d out of range", segment.ErrCorrupt, length))
		}
		if hdr[hdrMagic] != 2 {
			return fail(pos, fmt.Errorf("%w: magic %d, want 2", segment.ErrCorrupt, hdr[hdrMagic]))
		}
		base := int64(binary.BigEndian.Uint64(hdr[:]))
		delta := int64(int32(binary.BigEndian.Uint32(hdr[hdrLastOffsetDelta:])))
		nrec := int32(binary.BigEndian.Uint32(hdr[hdrNumRecords:]))
		if base < 0 || delta < 0 || nrec < 0 {
			return fail(pos, fmt.Errorf("%w: base offset %d, last offset delta %d, %d records", segment.ErrCorrupt, base, delta, nrec))
		}
		total := logOverhead + length
		if seek {
			if pos+total > size {
				return fail(pos, segment.ErrTorn)
			}
		} else {
			k, err := io.CopyN(io.Discard, r, total-segment.HeaderSize)
			if err != nil {
				if errors.Is(err, io.EOF) && k < total-segment.HeaderSize {
					return fail(pos, segment.ErrTorn)
				}
				return fail(pos, err)
			}
		}
		fn(BatchHeader{
			Position:       pos,
			Size:           total,
			BaseOffset:     base,
			LastOffset:     base + delta,
			FirstTimestamp: int64(binary.BigEndian.Uint64(hdr[hdrFirstTimestamp:])),
			MaxTimestamp:   int64(binary.BigEndian.Uint64(hdr[hdrMaxTimestamp:])),
			NumRecords:     nrec,
		})
		pos += total
	}
}

// WriteText prints the listing for people. With files, a table of each
// partition's files follows its line.
func (r *ListReport) WriteText(w io.Writer, files bool) {
	fmt.Fprintf(w, "Backup at %s (`kafka-backup verify` checks every record):\n", r.Location)
	for _, s := range r.Stray {
		fmt.Fprintf(w, "stray name %s: neither a topic nor a partition folder, ignored\n", s)
	}
	r.Metadata.writeText(w, files)
	for _, p := range r.Partitions {
		if p.Error != "" {
			fmt.Fprintf(w, "%s/%d: ERROR: %s\n", p.Topic, p.Partition, p.Error)
			continue
		}
		line := fmt.Sprintf("%s/%d: %s", p.Topic, p.Partition, plural(int64(len(p.Files)), "file"))
		if p.FirstOffset != nil {
			line += fmt.Sprintf(", offsets %d-%d", *p.FirstOffset, *p.LastOffset)
		}
		line += fmt.Sprintf(", %s, %s (%d bytes)", plural(p.Records, "record"), units.FormatBytes(p.Bytes), p.Bytes)
		if p.MinTimestamp != nil {
			line += fmt.Sprintf(", %s to %s", FormatTime(*p.MinTimestamp), FormatTime(*p.MaxTimestamp))
		}
		if p.PrunedBelow != nil {
			line += fmt.Sprintf(", pruned below offset %d", *p.PrunedBelow)
		}
		fmt.Fprintln(w, line)
		if files && len(p.Files) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "    FILE\tFIRST\tLAST\tRECORDS\tBATCHES\tBYTES\tLEAST TIMESTAMP\tGREATEST TIMESTAMP")
			for _, f := range p.Files {
				first, last, from, to := "-", "-", "-", "-"
				if f.FirstOffset != nil {
					first, last = fmt.Sprint(*f.FirstOffset), fmt.Sprint(*f.LastOffset)
					from, to = FormatTime(*f.MinTimestamp), FormatTime(*f.MaxTimestamp)
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", f.Name, first, last, f.Records, f.Batches, f.Size, from, to)
			}
			tw.Flush()
		}
		for _, f := range p.Files {
			if f.Error != "" {
				fmt.Fprintf(w, "    ERROR %s: %s\n", f.Name, f.Error)
			}
		}
		for _, l := range p.Leftovers {
			if l.Kind == "recreated" {
				fmt.Fprintf(w, "    REFUSED (%s): the topic was deleted and recreated; kafka_backup refuses this partition and the new topic's records are not in this backup: see `kafka-backup verify`\n", l.Name)
				continue
			}
			fmt.Fprintf(w, "    hidden %s file %s (%d bytes): not part of the backup\n", l.Kind, l.Name, l.Size)
		}
		for _, s := range p.Stray {
			fmt.Fprintf(w, "    stray name %s: ignored\n", s)
		}
	}
	fmt.Fprintf(w, "Total: %s, %s, %s, %s (%d bytes)", plural(int64(len(r.Partitions)), "partition"), plural(int64(r.Files), "file"),
		plural(r.Records, "record"), units.FormatBytes(r.Bytes), r.Bytes)
	if r.Errors > 0 {
		fmt.Fprintf(w, "; %s (run kafka-backup verify)", strings.ToUpper(plural(int64(r.Errors), "error")))
	}
	fmt.Fprintln(w, ".")
}
