package rolling

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kafka-backup/kafka-backup/layout"
)

// StorePruned writes p as the layout.PrunedNote of the local partition folder dir,
// atomically: to a temporary name, fsynced, renamed over the old note, and
// the folder fsynced, so a crash leaves the old note or the new one.
func StorePruned(dir, instance string, p layout.Pruned) error {
	tmp := filepath.Join(dir, layout.TempName(layout.PrunedNote, instance))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(p.Format())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, layout.PrunedNote))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, layout.PrunedNote), err)
	}
	return SyncDir(dir)
}
