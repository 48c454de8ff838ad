package rolling_test

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/rolling"
)

// lockProbeDest is local.New with a Publish that first tries to lock the
// in-progress file it is given, as another instance's recovery would.
type lockProbeDest struct {
	*local.Destination
	free []string // in-progress files found unlocked at Publish
}

func (d *lockProbeDest) Publish(ctx context.Context, f rolling.File) error {
	if g, err := os.Open(f.Path); err == nil {
		if syscall.Flock(int(g.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			d.free = append(d.free, f.Path)
		}
		g.Close()
	}
	return d.Destination.Publish(ctx, f)
}

// TestFinalizeKeepsTheLock: a rolled file stays locked until the
// destination has taken it away from its in-progress name. Unlocked while
// its path still named it, another instance's recovery took it too
// (TestE2EScaleOutLocal: "finalizing recovered … open …: no such file").
func TestFinalizeKeepsTheLock(t *testing.T) {
	dir := t.TempDir()
	dest := &lockProbeDest{Destination: local.New(dir)}
	cfg := baseConfig(dir, nil)
	cfg.Destination = dest
	cfg.MaxSize = 4 << 10
	w := newWriter(t, cfg)
	write(t, w, "p", 0, makeRecords(0, 200, 100, 1))
	closeWriter(t, w)
	if len(dest.free) > 0 {
		t.Errorf("in-progress files another instance could lock while they were published: %v", dest.free)
	}
}
