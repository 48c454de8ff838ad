package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
)

// countingReader counts the bytes read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// verifyFile reads one final file in full and adds its problems to pr.
func verifyFile(ctx context.Context, src tree.Source, ref partitionRef, f tree.File, pr *PartitionReport) VerifiedFile {
	vf := VerifiedFile{Name: f.Name, Size: f.Size, OK: true}
	path := location(src, ref.topic, ref.partition, f.Name)
	problem := func(kind string, pos, off *int64, format string, args ...any) {
		vf.OK = false
		pr.add(Problem{Severity: SeverityError, Kind: kind, File: f.Name, Path: path, Position: pos, Offset: off, Message: fmt.Sprintf(format, args...)})
	}
	rc, err := src.Open(ctx, ref.topic, ref.partition, f.Name)
	if err != nil {
		problem(KindRead, nil, nil, "cannot open: %v", err)
		return vf
	}
	open := true
	closeFile := func() {
		if open {
			open = false
			rc.Close()
		}
	}
	defer closeFile()
	cr := &countingReader{r: rc}
	rd := segment.NewReader(cr)
	last := int64(-1) // highest offset so far
	var orderBad int  // offset order violations after the first reported
	var orderFirst *Problem
	stopped := false
	for {
		if err := ctx.Err(); err != nil {
			return vf
		}
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			stopped = true
			closeFile() // before batchProblem opens it again: FTP connections are bounded
			batchProblem(ctx, src, ref, f, err, last, vf.Records, problem)
			break
		}
		pos := b.Position
		order := func(off int64, format string, args ...any) {
			if orderFirst == nil {
				orderFirst = &Problem{Position: ptr(pos), Offset: ptr(off), Message: fmt.Sprintf(format, args...)}
			} else {
				orderBad++
			}
		}
		flagged := b.BaseOffset <= last
		if flagged {
			order(b.BaseOffset, "the batch starts at offset %d, not after offset %d before it: offsets must strictly increase inside a file", b.BaseOffset, last)
		}
		recs, err := b.Records()
		if err != nil {
			stopped = true
			closeFile() // before batchProblem opens it again: FTP connections are bounded
			batchProblem(ctx, src, ref, f, err, last, vf.Records, problem)
			break
		}
		vf.Batches++
		for i := range recs {
			r := &recs[i]
			switch {
			case r.Offset < b.BaseOffset || r.Offset > b.LastOffset:
				order(r.Offset, "record %d of the batch has offset %d, outside the batch's offsets %d-%d", i, r.Offset, b.BaseOffset, b.LastOffset)
			case r.Offset <= last && !flagged:
				flagged = true
				order(r.Offset, "record %d of the batch has offset %d, not after offset %d before it: offsets must strictly increase inside a file", i, r.Offset, last)
			}
			if vf.Records == 0 {
				vf.FirstOffset = ptr(r.Offset)
				if r.Offset != f.FirstOffset {
					problem(KindMisnamed, ptr(pos), ptr(r.Offset), "named for offset %d, but its first record has offset %d: a file's name must be its first offset (restore and the input read it anyway; rename it to %s)",
						f.FirstOffset, r.Offset, layout.NamePlain.FileName(r.Offset))
				}
			}
			vf.Records++
			if vf.MinTimestamp == nil || r.Timestamp < *vf.MinTimestamp {
				vf.MinTimestamp = ptr(r.Timestamp)
			}
			if vf.MaxTimestamp == nil || r.Timestamp > *vf.MaxTimestamp {
				vf.MaxTimestamp = ptr(r.Timestamp)
			}
			vf.offsets.Add(r.Offset)
			last = max(last, r.Offset)
		}
	}
	vf.BytesRead = cr.n
	if orderFirst != nil {
		msg := orderFirst.Message
		if orderBad > 0 {
			msg += fmt.Sprintf(" (and %d more places in this file)", orderBad)
		}
		problem(KindOffsetOrder, orderFirst.Position, orderFirst.Offset, "%s", msg)
	}
	if len(vf.offsets.Ranges()) > 0 {
		rs := vf.offsets.Ranges()
		vf.FirstOffset, vf.LastOffset = ptr(rs[0].First), ptr(rs[len(rs)-1].Last)
	}
	if !stopped {
		if vf.Records == 0 {
			problem(KindEmpty, nil, ptr(f.FirstOffset), "holds no record (%d bytes): a final file always holds at least one", cr.n)
		}
		if f.Size >= 0 && cr.n != f.Size {
			problem(KindSize, nil, nil, "read %d bytes, but the listing says %d: the file changed while it was read, or the server reports sizes wrongly", cr.n, f.Size)
		}
	}
	return vf
}

// batchProblem reports a batch that cannot be read: torn, corrupt, or a
// read error, with the byte and the offset.
func batchProblem(ctx context.Context, src tree.Source, ref partitionRef, f tree.File, err error, last, records int64, problem func(kind string, pos, off *int64, format string, args ...any)) {
	var be *segment.BatchError
	var pos *int64
	cause := err
	if errors.As(err, &be) {
		pos = ptr(be.Position)
		cause = be.Err
	}
	kind := KindRead
	switch {
	case errors.Is(err, segment.ErrTorn):
		kind = KindTorn
	case errors.Is(err, segment.ErrCorrupt):
		kind = KindCorrupt
	}
	before := "no record before it"
	if records > 0 {
		before = fmt.Sprintf("the %s before it (up to offset %d) are intact", plural(records, "record"), last)
	}
	var off *int64
	stated := ""
	if pos != nil && kind != KindRead {
		if base, ok := peekBaseOffset(ctx, src, ref, f.Name, *pos); ok {
			off = ptr(base)
			stated = fmt.Sprintf("the batch header states base offset %d; ", base)
		}
	}
	if off == nil {
		if records > 0 {
			off = ptr(last + 1)
		} else {
			off = ptr(f.FirstOffset)
		}
	}
	switch kind {
	case KindTorn:
		problem(kind, pos, off, "the file ends inside the batch that starts here (a write that never completed: crash, full disk, cut transfer); %s%s, the rest of the file is lost", stated, before)
	case KindCorrupt:
		problem(kind, pos, off, "%v; %s%s; nothing after it in this file can be read", cause, stated, before)
	default:
		problem(kind, pos, off, "reading stopped: %v; %s", cause, before)
	}
}

// peekBaseOffset reads the base offset of the batch at pos of a file (the
// first 8 bytes of its header, outside the CRC), when the file has them.
func peekBaseOffset(ctx context.Context, src tree.Source, ref partitionRef, name string, pos int64) (int64, bool) {
	rc, err := src.Open(ctx, ref.topic, ref.partition, name)
	if err != nil {
		return 0, false
	}
	defer rc.Close()
	var b [8]byte
	if ra, ok := rc.(io.ReaderAt); ok {
		if n, _ := ra.ReadAt(b[:], pos); n < len(b) {
			return 0, false
		}
	} else {
		if _, err := io.CopyN(io.Discard, rc, pos); err != nil {
			return 0, false
		}
		if _, err := io.ReadFull(rc, b[:]); err != nil {
			return 0, false
		}
	}
	v := int64(uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]))
	return v, v >= 0
}
