package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// goBench is one line of `go test -bench` output.
type goBench struct {
	pkg, name   string
	nsOp, mbps  float64
	bytesOp     float64
	allocsOp    float64
	hasMB, hasB bool
}

// runGoBench runs the encoder, reader and rolling writer benchmarks.
func runGoBench(o *options) ([]goBench, error) {
	fmt.Println("\n== go test -run '^$' -bench . -benchmem ./segment/ ./rolling/")
	cmd := exec.Command(o.goCmd, "test", "-run", "^$", "-bench", ".", "-benchmem", "./segment/", "./rolling/")
	cmd.Dir = o.root
	out, err := cmd.CombinedOutput()
	fmt.Print(string(out))
	res := parseGoBench(string(out))
	if err != nil {
		return res, fmt.Errorf("%v (the encoder section keeps what it had)", err)
	}
	return res, nil
}

func parseGoBench(out string) []goBench {
	var res []goBench
	pkg := ""
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(l, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimSpace(p), "github.com/kafka-backup/kafka-backup/")
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		b := goBench{pkg: pkg, name: trimProcs(f[0])}
		for i := 2; i+1 < len(f); i += 2 {
			v := num(f[i])
			switch f[i+1] {
			case "ns/op":
				b.nsOp = v
			case "MB/s":
				b.mbps, b.hasMB = v, true
			case "B/op":
				b.bytesOp, b.hasB = v, true
			case "allocs/op":
				b.allocsOp = v
			}
		}
		res = append(res, b)
	}
	return res
}

// trimProcs drops the -GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 && strings.Trim(name[i+1:], "0123456789") == "" {
		return name[:i]
	}
	return name
}
