package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/tree"
)

// topicPlan is one backup topic to restore.
type topicPlan struct {
	topic, target string
	folders       int32 // highest partition folder + 1
	needed        int32 // highest partition with files + 1
	exists        bool  // the target topic exists (or was created)
	parts         []*partState
}

// plan lists the backup and checks the selection.
func (r *run) plan(ctx context.Context) ([]*topicPlan, error) {
	topics, all, err := tree.SelectTopics(ctx, r.src, r.cfg.Topics)
	if errors.Is(err, tree.ErrNoTopic) {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, t := range all {
		have[t] = true
	}
	selected := map[string]bool{}
	for _, t := range topics {
		selected[t] = true
	}
	for from, to := range r.cfg.Rename {
		if !selected[from] {
			why := "not in the backup"
			if have[from] {
				why = "not selected by --topic"
			}
			return nil, fmt.Errorf("%w: --rename %s=%s: topic %s is %s", ErrRefused, from, to, from, why)
		}
		if err := layout.ValidTopic(to); err != nil {
			return nil, fmt.Errorf("%w: --rename %s=%s: %v", ErrRefused, from, to, err)
		}
	}
	targets := map[string]string{}
	wantParts, foundParts := map[int32]bool{}, map[int32]bool{}
	for _, p := range r.cfg.Partitions {
		wantParts[p] = true
	}
	var plan []*topicPlan
	for _, t := range topics {
		target := t
		if to, ok := r.cfg.Rename[t]; ok {
			target = to
		}
		if prev, dup := targets[target]; dup {
			return nil, fmt.Errorf("%w: topics %s and %s would both be restored into %s: rename one of them", ErrRefused, prev, t, target)
		}
		targets[target] = t
		tp := &topicPlan{topic: t, target: target}
		parts, err := r.src.Partitions(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			tp.folders = max(tp.folders, p+1)
			if len(wantParts) > 0 && !wantParts[p] {
				continue
			}
			foundParts[p] = true
			listing, err := r.src.List(ctx, t, p)
			if err != nil {
				return nil, err
			}
			ps := &partState{part: listing, sum: PartitionSummary{
				Topic: t, Target: target, Partition: p,
				Files: len(listing.Files), FileBytes: listing.Bytes(), Leftovers: listing.Leftovers,
			}}
			if len(listing.Leftovers) > 0 {
				var names []string
				for _, l := range listing.Leftovers {
					names = append(names, fmt.Sprintf("%s (%d bytes)", l.Name, l.Size))
				}
				ps.sum.Warnings = append(ps.sum.Warnings, "not restored, in-progress or upload files: "+strings.Join(names, ", "))
			}
			if len(listing.Stray) > 0 {
				ps.sum.Warnings = append(ps.sum.Warnings, "ignored, not backup files: "+strings.Join(listing.Stray, ", "))
			}
			if listing.Pruned {
				note, ok, err := tree.ReadPruned(ctx, r.src, t, p)
				switch {
				case err != nil:
					ps.sum.Warnings = append(ps.sum.Warnings, fmt.Sprintf("where a prune cut the partition is unknown: %v", err))
				case ok:
					ps.sum.PrunedBelow = note.Below
				}
			}
			if len(listing.Files) > 0 {
				tp.needed = max(tp.needed, p+1)
			}
			tp.parts = append(tp.parts, ps)
		}
		plan = append(plan, tp)
	}
	var missing []string
	for p := range wantParts {
		if !foundParts[p] {
			missing = append(missing, strconv.Itoa(int(p)))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: --partition %s: no such partition folder in the selected topics", ErrRefused, strings.Join(missing, ", "))
	}
	if err := nothingFinal(r.src, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// nothingFinal refuses a plan without a single final file, saying what the
// partitions hold instead. Final files that the offsets or times asked for
// leave out are the user's choice, not this.
func nothingFinal(src tree.Source, plan []*topicPlan) error {
	var parts int
	var left []string
	for _, tp := range plan {
		for _, ps := range tp.parts {
			if len(ps.part.Files) > 0 {
				return nil
			}
			parts++
			for _, l := range ps.part.Leftovers {
				left = append(left, fmt.Sprintf("%s/%d/%s", tp.topic, ps.sum.Partition, l.Name))
			}
		}
	}
	var what string
	switch {
	case len(plan) == 0:
		what = "no topic folder"
	case len(left) > 0:
		if len(left) > 3 {
			left = append(left[:3], fmt.Sprintf("… (%d in all)", len(left)))
		}
		return fmt.Errorf("%w: %s holds in %s only in-progress or upload files (%s), no final file: "+
			"files become final when the backup rolls them (size, roll_duration) or stops cleanly; "+
			"if no backup runs, start the backup once (kafka-backup run with its config): at start it finalizes the in-progress files its last run left; "+
			"then restore again", ErrNothingFinal, src, plural(int64(parts), "selected partition"), strings.Join(left, ", "))
	default:
		what = fmt.Sprintf("%s and no backup file", plural(int64(parts), "selected partition"))
	}
	return fmt.Errorf("%w: %s holds %s: check the location (and --topic, --partition)", ErrNothingFinal, src, what)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no topic"
	}
	return strings.Join(s, ", ")
}
