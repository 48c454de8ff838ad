package tree_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
)

// TestPartitionRandomLayouts: layouts a writer fed out of order leaves (a
// batch below the open file's last offset opens a new file), plus copies of
// runs of batches under the other naming (a second instance after a
// rebalance): every offset is returned once, in order, none late.
func TestPartitionRandomLayouts(t *testing.T) {
	for seed := uint64(0); seed < 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 9))
		nb := 5 + rng.IntN(40)
		order := make([]int, nb)
		for i := range order {
			order[i] = i
		}
		// Local swaps, as concurrent deliveries of one partition make.
		for i := 0; i < nb; i++ {
			j := min(nb-1, i+rng.IntN(4))
			order[i], order[j] = order[j], order[i]
		}
		type file struct {
			first int64
			runs  [][]int64
		}
		var files []*file
		var cur *file
		last := int64(-1)
		for _, b := range order {
			offs := span(int64(b)*10, int64(b)*10+9)
			if cur == nil || offs[0] < last || rng.IntN(6) == 0 {
				cur = &file{first: offs[0]}
				files = append(files, cur)
			}
			cur.runs = append(cur.runs, offs)
			last = offs[9]
		}
		root := t.TempDir()
		for _, f := range files {
			backuptest.WriteFile(t, root, "t", 0, fmt.Sprint(f.first), runs(t, 1+rng.IntN(10), f.runs...))
		}
		// A copy of a run of consecutive batches.
		if nb > 3 {
			a := rng.IntN(nb - 2)
			bEnd := a + 1 + rng.IntN(min(5, nb-a-1))
			var rs [][]int64
			for b := a; b <= bEnd; b++ {
				rs = append(rs, span(int64(b)*10, int64(b)*10+9))
			}
			backuptest.WriteFile(t, root, "t", 0, layout.NameKafka.FileName(int64(a)*10), runs(t, 1+rng.IntN(10), rs...))
		}
		res := readAll(t, backuptest.OpenTree(t, root))
		want := span(0, int64(nb)*10-1)
		if fmt.Sprint(res.offsets) != fmt.Sprint(want) || res.rd.Late() != 0 || len(res.errs) > 0 {
			var desc []string
			for _, f := range files {
				desc = append(desc, fmt.Sprintf("%d:%v", f.first, f.runs))
			}
			sort.Strings(desc)
			t.Fatalf("seed %d: layout %v\ngot %v\nlate %d errs %v warnings %v", seed, desc, res.offsets, res.rd.Late(), res.errs, res.warnings)
		}
	}
}
