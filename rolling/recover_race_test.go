package rolling

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kafka-backup/kafka-backup/layout"
)

// TestRecoverFileFinalizedMeanwhile: an instance lists a partition folder
// shared with another, live instance, whose in-progress file is renamed to
// its final name before this one opens it. That is the other instance's
// normal work, not an error (TestE2EScaleOutLocal logged it at error level
// and failed).
func TestRecoverFileFinalizedMeanwhile(t *testing.T) {
	gone := filepath.Join(t.TempDir(), layout.InProgressName("219", "other-instance"))
	if err := (&Writer{}).recoverFile(context.Background(), "t", 0, gone, nil); err != nil {
		t.Fatalf("a file finalized by its live writer since the listing: %v", err)
	}
}
