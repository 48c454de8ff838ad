package restore

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kafka-backup/kafka-backup/units"
)

// progress shows how far the restore is on Log: a bar redrawn in place on a
// terminal, or a line every few seconds.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func (r *run) startProgress(plan []*topicPlan) *progress {
	p := &progress{done: make(chan struct{})}
	if r.cfg.Progress == ProgressNone {
		return p
	}
	var total int64
	for _, tp := range plan {
		for _, ps := range tp.parts {
			total += ps.part.Bytes()
		}
	}
	interval := r.cfg.ProgressInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	bar := r.cfg.Progress == ProgressBar
	if bar {
		interval = 200 * time.Millisecond
	}
	verb := "acknowledged"
	if r.cfg.DryRun {
		verb = "checked"
	}
	start := time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var lastAt time.Time = start
		var lastRecs, lastBytes int64
		for {
			final := false
			select {
			case <-p.done:
				final = true
			case <-tick.C:
			}
			now := time.Now()
			read, recs, bytes := r.readBytes.Load(), r.records.Load(), r.recBytes.Load()
			// Rates over the last interval for the bar, over the whole
			// run for the final line and for log lines.
			since := now.Sub(lastAt).Seconds()
			drecs, dbytes := recs-lastRecs, bytes-lastBytes
			if !bar || final {
				since, drecs, dbytes = now.Sub(start).Seconds(), recs, bytes
			}
			if since <= 0 {
				since = 1e-9
			}
			rate := fmt.Sprintf("%s records/s, %s/s", units.FormatCount(int64(float64(drecs)/since)), units.FormatBytes(int64(float64(dbytes)/since)))
			pct := 100.0
			if total > 0 {
				pct = 100 * float64(read) / float64(total)
			}
			if bar {
				const width = 30
				fill := min(width, int(pct/100*width))
				line := fmt.Sprintf("\r[%s%s] %5.1f%%  %s of %s read  %s records %s  %s ",
					strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct,
					units.FormatBytes(read), units.FormatBytes(total), units.FormatCount(recs), verb, rate)
				if final {
					line += "\n"
				}
				fmt.Fprint(r.log, line)
			} else {
				fmt.Fprintf(r.log, "restore: %.1f%% read (%s of %s), %s records %s, %s\n",
					pct, units.FormatBytes(read), units.FormatBytes(total), units.FormatCount(recs), verb, rate)
			}
			lastAt, lastRecs, lastBytes = now, recs, bytes
			if final {
				return
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}
