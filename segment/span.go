package segment

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/kafka-backup/kafka-backup/offsets"
)

// Range is an inclusive range of offsets (offsets.Range: one type for
// every layer).
type Range = offsets.Range

// Span is what the batch headers of a file say about it.
type Span struct {
	FirstOffset int64 // base offset of the first batch
	LastOffset  int64 // last offset of the last complete batch
	Batches     int
	Records     int64
	Size        int64 // bytes up to the end of the last complete batch
	// Ranges are the offsets the batches cover, contiguous batches merged.
	// A gap between two batches is not covered: the offsets in it may exist
	// in Kafka and never have been written.
	Ranges []Range
}

// ReadFileSpan is ReadSpan of the file at path.
func ReadFileSpan(path string) (Span, error) {
	f, err := os.Open(path)
	if err != nil {
		return Span{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Span{}, err
	}
	return ReadSpan(f, st.Size())
}

// ReadSpan walks the batch headers of a file of the given size without
// reading or checking record data: cheap enough to run on every file of a
// partition at start. It returns the span of the complete batches, and an
// error wrapping ErrTorn or ErrCorrupt (with the span before it) when the file
// does not end on a batch boundary or a header is invalid.
func ReadSpan(r io.ReaderAt, size int64) (Span, error) {
	var s Span
	var hdr [HeaderSize]byte
	for pos := int64(0); pos < size; {
		next, err := headerAt(r, pos, size, &hdr)
		if err != nil {
			return s, err
		}
		base, last := headerOffsets(hdr[:])
		if s.Batches == 0 {
			s.FirstOffset = base
		}
		s.LastOffset = last
		s.Ranges = offsets.Append(s.Ranges, Range{First: base, Last: last})
		s.Records += int64(int32(binary.BigEndian.Uint32(hdr[offNumRecords:])))
		s.Batches++
		pos = next
		s.Size = pos
	}
	return s, nil
}

// RecordAt returns the record at offset off of a file of the given size, and
// false when no complete batch of the file holds it. Like ReadSpan it walks
// the batch headers; only the batch holding off is read, checked and
// decoded. An error wraps ErrTorn or ErrCorrupt when the file is damaged
// before that batch or the batch itself is.
func RecordAt(r io.ReaderAt, size int64, off int64) (Record, bool, error) {
	var hdr [HeaderSize]byte
	for pos := int64(0); pos < size; {
		next, err := headerAt(r, pos, size, &hdr)
		if err != nil {
			return Record{}, false, err
		}
		if base, last := headerOffsets(hdr[:]); off < base || off > last {
			pos = next
			continue
		}
		rd := NewReader(io.NewSectionReader(r, pos, next-pos))
		rd.pos = pos
		b, err := rd.Next()
		if err != nil {
			return Record{}, false, err
		}
		recs, err := b.Records()
		if err != nil {
			return Record{}, false, err
		}
		for _, rec := range recs {
			if rec.Offset == off {
				return rec, true, nil
			}
		}
		return Record{}, false, nil // compacted away inside the batch
	}
	return Record{}, false, nil
}

// headerAt reads and checks the header of the batch at pos, of a file of the
// given size, into hdr, and returns where the next batch starts.
func headerAt(r io.ReaderAt, pos, size int64, hdr *[HeaderSize]byte) (next int64, err error) {
	if size-pos < HeaderSize {
		return 0, &BatchError{Position: pos, Err: ErrTorn}
	}
	// ReadAt may report io.EOF along with a full header that ends the
	// input: only a short read counts.
	if n, err := r.ReadAt(hdr[:], pos); n < len(hdr) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, &BatchError{Position: pos, Err: tornOr(err)}
	}
	length := int64(int32(binary.BigEndian.Uint32(hdr[offLength:])))
	if length < HeaderSize-logOverhead || length > maxBatchLength {
		return 0, &BatchError{Position: pos, Err: fmt.Errorf("%w: bad batch header: length field %d out of range", ErrCorrupt, length)}
	}
	if err := checkHeader(hdr[:]); err != nil {
		return 0, &BatchError{Position: pos, Err: fmt.Errorf("bad batch header: %w", err)}
	}
	if pos+logOverhead+length > size {
		return 0, &BatchError{Position: pos, Err: ErrTorn}
	}
	return pos + logOverhead + length, nil
}

// headerOffsets returns the first and last offset a batch header states.
func headerOffsets(hdr []byte) (base, last int64) {
	base = int64(binary.BigEndian.Uint64(hdr[offBaseOffset:]))
	return base, base + int64(int32(binary.BigEndian.Uint32(hdr[offLastOffsetDelta:])))
}
