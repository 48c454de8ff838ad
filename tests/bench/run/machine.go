package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// machine describes where the benchmark ran.
type machine struct {
	CPU    string // model name
	Cores  int    // logical CPUs
	Memory string
	Disk   string // file system and device of the work folder
	Go     string
	Kernel string
}

func describeMachine(goCmd, workDir string) machine {
	m := machine{CPU: "unknown", Cores: runtime.NumCPU(), Memory: "unknown", Disk: "unknown", Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if out, err := exec.Command(goCmd, "version").Output(); err == nil {
		m.Go = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Disk = describeDisk(workDir)
	return m
}

// describeDisk names the file system workDir is on, its device, whether the
// device is rotational and its size.
func describeDisk(dir string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return "unknown"
	}
	// Find the mount whose device number matches, in /proc/self/mountinfo.
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
	want := fmt.Sprintf("%d:%d", major, minor)
	var fstype, source, mnt string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[2] != want {
			continue
		}
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		// Prefer the mount that contains dir most specifically.
		if strings.HasPrefix(dir, f[4]) && len(f[4]) >= len(mnt) {
			mnt, fstype, source = f[4], f[sep+1], f[sep+2]
		}
	}
	if fstype == "" {
		return "unknown"
	}
	desc := fmt.Sprintf("%s on %s", fstype, source)
	dev := filepath.Base(source)
	sys := "/sys/class/block/" + dev
	if _, err := os.Stat(sys); err == nil {
		// A partition's queue settings are its disk's.
		q := sys + "/queue"
		if _, err := os.Stat(q); err != nil {
			if real, err := filepath.EvalSymlinks(sys); err == nil {
				q = filepath.Dir(real) + "/queue"
			}
		}
		var parts []string
		if r, err := os.ReadFile(q + "/rotational"); err == nil {
			if strings.TrimSpace(string(r)) == "1" {
				parts = append(parts, "rotational")
			} else {
				parts = append(parts, "non-rotational")
			}
		}
		if s, err := os.ReadFile(sys + "/size"); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64); err == nil {
				parts = append(parts, fmt.Sprintf("%.0f GB", float64(n)*512/1e9))
			}
		}
		if strings.HasPrefix(dev, "vd") || strings.HasPrefix(dev, "xvd") {
			parts = append(parts, "virtual disk")
		}
		if len(parts) > 0 {
			desc += " (" + strings.Join(parts, ", ") + ")"
		}
	}
	return desc
}
