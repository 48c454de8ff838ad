package backuptest

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/kafka-backup/kafka-backup/segment"
)

// RecordDiff says how got differs from want, or returns "" when they are
// the same: offset, timestamp, key and value (a nil slice and an empty one
// differ), and headers (names and values, in order, nil and empty values
// told apart).
func RecordDiff(got, want segment.Record) string {
	var d []string
	if got.Offset != want.Offset || got.Timestamp != want.Timestamp {
		d = append(d, fmt.Sprintf("offset/timestamp %d/%d, want %d/%d", got.Offset, got.Timestamp, want.Offset, want.Timestamp))
	}
	if !sameBytes(got.Key, want.Key) {
		d = append(d, fmt.Sprintf("key %q (nil %v), want %q (nil %v)", got.Key, got.Key == nil, want.Key, want.Key == nil))
	}
	if !sameBytes(got.Value, want.Value) {
		d = append(d, fmt.Sprintf("value %q (nil %v), want %q (nil %v)", got.Value, got.Value == nil, want.Value, want.Value == nil))
	}
	if len(got.Headers) != len(want.Headers) {
		d = append(d, fmt.Sprintf("headers %v, want %v", got.Headers, want.Headers))
	} else {
		for i := range got.Headers {
			g, w := got.Headers[i], want.Headers[i]
			if g.Key != w.Key || !sameBytes(g.Value, w.Value) {
				d = append(d, fmt.Sprintf("header %d %q=%q, want %q=%q", i, g.Key, g.Value, w.Key, w.Value))
			}
		}
	}
	return strings.Join(d, "; ")
}

// sameBytes reports whether a and b hold the same bytes and are both nil or
// both not.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
