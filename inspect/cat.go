package inspect

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/kafka-backup/kafka-backup/segment"
)

// EncodingBase64 is the value of an *_encoding field of a JSONRecord whose
// bytes are base64 (standard encoding, with padding).
const EncodingBase64 = "base64"

// JSONRecord is one record as Cat writes it, one JSON object per line:
//
//	{"offset":5,"timestamp":1714564800000,"key":"k","value":null,"headers":[{"key":"h","value":"v"}]}
//
// A null key, value or header value is JSON null; an empty one is "". Bytes
// that are valid UTF-8 are written as a JSON string; other bytes (or all
// bytes, with CatOptions.Base64) are base64 and flagged by the matching
// *_encoding field set to "base64", which is absent otherwise.
type JSONRecord struct {
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"` // ms since the Unix epoch
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []JSONHeader `json:"headers"` // in record order, duplicates kept; [] when none
}

// JSONHeader is a record header in a JSONRecord.
type JSONHeader struct {
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

// encode returns b as a JSON string value and its encoding ("" or base64);
// nil for null.
func encode(b []byte, force bool) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if !force && utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, EncodingBase64
}

func decode(s *string, enc, what string) ([]byte, error) {
	switch {
	case s == nil:
		return nil, nil
	case enc == "":
		return []byte(*s), nil
	case enc == EncodingBase64:
		b, err := base64.StdEncoding.DecodeString(*s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s: unknown encoding %q", what, enc)
}

// NewJSONRecord converts a record; with forceBase64 every key, value and
// header value is base64 (header keys only when not UTF-8).
func NewJSONRecord(r segment.Record, forceBase64 bool) JSONRecord {
	j := JSONRecord{Offset: r.Offset, Timestamp: r.Timestamp, Headers: make([]JSONHeader, len(r.Headers))}
	j.Key, j.KeyEncoding = encode(r.Key, forceBase64)
	j.Value, j.ValueEncoding = encode(r.Value, forceBase64)
	for i, h := range r.Headers {
		jh := &j.Headers[i]
		if k, enc := encode([]byte(h.Key), false); enc == "" {
			jh.Key = *k
		} else {
			jh.Key, jh.KeyEncoding = *k, enc
		}
		jh.Value, jh.ValueEncoding = encode(h.Value, forceBase64)
	}
	return j
}

// Record converts back: the exact record, null-aware.
func (j JSONRecord) Record() (segment.Record, error) {
	r := segment.Record{Offset: j.Offset, Timestamp: j.Timestamp}
	var err error
	if r.Key, err = decode(j.Key, j.KeyEncoding, "key"); err != nil {
		return r, err
	}
	if r.Value, err = decode(j.Value, j.ValueEncoding, "value"); err != nil {
		return r, err
	}
	if len(j.Headers) > 0 {
		r.Headers = make([]segment.Header, len(j.Headers))
	}
	for i, h := range j.Headers {
		k, err := decode(&h.Key, h.KeyEncoding, fmt.Sprintf("header %d key", i))
		if err != nil {
			return r, err
		}
		v, err := decode(h.Value, h.ValueEncoding, fmt.Sprintf("header %d value", i))
		if err != nil {
			return r, err
		}
		r.Headers[i] = segment.Header{Key: string(k), Value: v}
	}
	return r, nil
}

// CatOptions configures Cat.
type CatOptions struct {
	// FromOffset and ToOffset, when set, bound the offsets written (both
	// inclusive).
	FromOffset, ToOffset *int64
	// Base64 writes every key, value and header value as base64, not only
	// those that are not valid UTF-8.
	Base64 bool
}

// CatResult is what Cat read and wrote.
type CatResult struct {
	Batches int   // batches read
	Records int64 // records written
}

// Cat reads a backup file from r and writes its records to w as JSON lines
// (JSONRecord). When a batch cannot be read it stops there, having written
// the records before it, and returns an error naming the byte and the
// offsets.
func Cat(ctx context.Context, r io.Reader, w io.Writer, opts CatOptions) (CatResult, error) {
	var res CatResult
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	rd := segment.NewReader(r)
	last := int64(-1)
	fail := func(err error) (CatResult, error) {
		_ = bw.Flush()
		after := "no record before it"
		if last >= 0 {
			after = fmt.Sprintf("the records up to offset %d before it were read", last)
		}
		var be *segment.BatchError
		if errors.As(err, &be) {
			return res, fmt.Errorf("byte %d: %w; %s", be.Position, be.Err, after)
		}
		return res, fmt.Errorf("%w; %s", err, after)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		res.Batches++
		if opts.FromOffset != nil && b.LastOffset < *opts.FromOffset {
			last = b.LastOffset
			continue
		}
		if opts.ToOffset != nil && b.BaseOffset > *opts.ToOffset {
			break // offsets only grow within a file
		}
		recs, err := b.Records()
		if err != nil {
			return fail(err)
		}
		for _, rec := range recs {
			last = rec.Offset
			if opts.FromOffset != nil && rec.Offset < *opts.FromOffset || opts.ToOffset != nil && rec.Offset > *opts.ToOffset {
				continue
			}
			if err := enc.Encode(NewJSONRecord(rec, opts.Base64)); err != nil {
				return res, err
			}
			res.Records++
		}
	}
	return res, bw.Flush()
}
