package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/kafka-backup/kafka-backup/tree"
)

// partition restores one partition: its records in offset order across its
// files, whatever their layout (tree.PartitionReader), so that --to-offset,
// --since and --until cut the same log the source partition was.
func (r *run) partition(ctx context.Context, ps *partState) {
	rd := tree.NewPartitionReader(ctx, r.src, ps.part, tree.ReadOptions{
		OnRead: func(n int) {
			ps.sum.ReadBytes += int64(n)
			r.readBytes.Add(int64(n))
		},
		Warn: func(msg string) { ps.sum.Warnings = append(ps.sum.Warnings, msg) },
	})
	defer rd.Close()
	err := r.read(ctx, ps, rd)
	ps.sum.Duplicates += rd.Duplicates()
	if err != nil {
		ps.stop(ctx, err)
	}
}

// stop records why the partition's reading stopped before its end: the
// run's interruption or stall and a record too large are cut short (finish
// says where to go on); anything else (a file that cannot be read, a
// corrupt batch) is the partition's error.
func (ps *partState) stop(ctx context.Context, err error) {
	switch {
	case errors.Is(err, errTooLarge):
		ps.cut = err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		ps.cutCause = context.Cause(ctx)
		ps.cut = ps.cutCause
		if !errors.Is(ps.cut, errStalled) {
			ps.cut = fmt.Errorf("interrupted (%w) before the partition was restored to its end", ps.cutCause)
		}
	default:
		ps.sum.Err = err
	}
}

// read restores the records rd returns, within the offsets and the time
// window asked for. It returns at the end of the partition, at --until or
// --to-offset, or with the error that stops the partition.
func (r *run) read(ctx context.Context, ps *partState, rd *tree.PartitionReader) error {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if r.cfg.FromOffset != nil {
		from = *r.cfg.FromOffset
	}
	if r.cfg.ToOffset != nil {
		to = *r.cfg.ToOffset
	}
	var since, until int64 = math.MinInt64, math.MaxInt64
	if r.cfg.Since != nil {
		since = r.cfg.Since.UnixMilli()
	}
	if r.cfg.Until != nil {
		until = r.cfg.Until.UnixMilli()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ps.failed.Load() {
			return nil // the produce error is the partition's error
		}
		b, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.readError(ps, err)
		}
		n := int64(b.NumRecords)
		switch {
		case b.LastOffset < from:
			ps.sum.Skipped += n
			ps.skipTo = max(ps.skipTo, b.LastOffset+1)
			continue
		case b.BaseOffset > to:
			return nil // offsets only grow in the reader's order
		case !ps.started && b.MaxTimestamp < since:
			ps.sum.Skipped += n
			ps.skipTo = max(ps.skipTo, b.LastOffset+1)
			continue
		}
		recs, err := b.Records()
		if err != nil {
			return r.readError(ps, err)
		}
		for i := range recs {
			rec := &recs[i]
			switch {
			case rec.Offset < from:
				ps.sum.Skipped++
				ps.skipTo = max(ps.skipTo, rec.Offset+1)
				continue
			case rec.Offset > to:
				return nil
			}
			if !ps.started {
				if rec.Timestamp < since {
					ps.sum.Skipped++
					ps.skipTo = max(ps.skipTo, rec.Offset+1)
					continue
				}
				ps.started = true
			}
			if rec.Timestamp > until {
				ps.sum.Stopped = fmt.Sprintf("--until: the record at offset %d has timestamp %s, after %s",
					rec.Offset, fmtMillis(rec.Timestamp), fmtMillis(until))
				return nil
			}
			if rec.Offset < ps.seen.Max() {
				ps.sum.OutOfOrder++
			}
			if err := r.produce(ctx, ps, rec); err != nil {
				return err
			}
		}
	}
}

// readError describes a file or batch that cannot be read, with the file,
// the byte and the last offset restored before it.
func (r *run) readError(ps *partState, err error) error {
	after := "nothing of this partition was restored before it"
	if m := ps.seen.Max(); m >= 0 {
		after = fmt.Sprintf("the partition is restored up to offset %d", m)
	}
	var re *tree.ReadError
	if !errors.As(err, &re) {
		return fmt.Errorf("%w; %s", err, after)
	}
	where := fmt.Sprintf("file %s/%s/%d/%s", r.src, ps.sum.Topic, ps.sum.Partition, re.File)
	if re.Position >= 0 {
		where += fmt.Sprintf(": byte %d", re.Position)
	}
	if re.After >= 0 {
		where += fmt.Sprintf(" (after offset %d of the file)", re.After)
	}
	return fmt.Errorf("%s: %w; %s; %s", where, re.Err, after, r.pastDamage(ps, re))
}

// pastDamage says where a partition stopped by a batch that cannot be read
// goes on: nothing after that batch in its file can be read, so at the
// partition's next file, the offsets between them lost unless another copy
// (an overlapping file, another backup) holds them. It keeps that offset
// for the summary's Resume.
func (r *run) pastDamage(ps *partState, re *tree.ReadError) string {
	last := max(ps.seen.Max(), re.After)
	next := int64(-1)
	for _, f := range ps.part.Files {
		if f.Name != re.File && f.FirstOffset > last && (next < 0 || f.FirstOffset < next) {
			next = f.FirstOffset
		}
	}
	if next < 0 {
		return "the rest of that file cannot be read, and no later file of this partition holds more"
	}
	ps.nextFile, ps.hasNext = next, true
	lost := fmt.Sprintf("offset %d is", last+1)
	if next-1 > last+1 {
		lost = fmt.Sprintf("offsets %d-%d are", last+1, next-1)
	}
	return fmt.Sprintf("the rest of that file cannot be read: %s lost unless another copy holds them; to go on with the partition's next file, restore it again with --topic %s --partition %d --from-offset %d, the other options as before",
		lost, ps.sum.Topic, ps.sum.Partition, next)
}

func fmtMillis(ms int64) string {
	return fmt.Sprintf("%s (%d)", time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00"), ms)
}
