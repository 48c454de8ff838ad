package layout

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PrunedNote is the file a prune (kafka-backup prune, or the output's
// retention) leaves in a partition folder: the offset below which the
// partition's files were deleted on purpose. It is written, atomically
// (under a temporary name, then renamed), before any file is deleted, and
// only ever raised. Readers report the partition as "pruned below offset
// N" instead of a loss; files still holding offsets below N are the
// remains of an interrupted prune (docs/FORMAT.md).
const PrunedNote = ".kafka-backup.pruned"

// Pruned is the content of a PrunedNote.
type Pruned struct {
	// Below is the partition's first offset after the prune: every offset
	// below it was deleted on purpose.
	Below int64
	// Time is when the prune ran, Cutoff the time its files' records were
	// older than.
	Time, Cutoff time.Time
}

// Format returns the note's bytes: "below N", "time T" and "cutoff T"
// lines (RFC 3339, UTC).
func (p Pruned) Format() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "below %d\n", p.Below)
	fmt.Fprintf(&b, "time %s\n", p.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "cutoff %s\n", p.Cutoff.UTC().Format(time.RFC3339))
	return b.Bytes()
}

// ParsePruned parses a PrunedNote. The "below" line is required; other
// lines are informative and unknown ones are ignored.
func ParsePruned(data []byte) (Pruned, error) {
	var p Pruned
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		key, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch key {
		case "below":
			n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
			if err != nil || n < 0 {
				return p, fmt.Errorf("%s: %q is not an offset", PrunedNote, val)
			}
			p.Below, found = n, true
		case "time", "cutoff":
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(val))
			if err != nil {
				continue
			}
			if key == "time" {
				p.Time = t
			} else {
				p.Cutoff = t
			}
		}
	}
	if !found {
		return p, fmt.Errorf("%s has no \"below <offset>\" line", PrunedNote)
	}
	return p, nil
}
