package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of the CPU times in /proc (100 on every
// Linux this runs on; Go has no sysconf without cgo).
const clockTick = 100

// child is a measured process: kafka-backup or the bare writer.
type child struct {
	cmd  *exec.Cmd
	log  string // file holding its stdout and stderr
	done chan struct{}
	err  error
}

func startChild(logFile string, env []string, name string, args ...string) (*child, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after timeout).
func (c *child) stop(timeout time.Duration) error {
	if c.exited() {
		return fmt.Errorf("exited before it was stopped: %v", c.err)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("did not exit within %v of SIGTERM", timeout)
	}
}

// kill ends the process at once, if it still runs.
func (c *child) kill() {
	if !c.exited() {
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// usage returns the user+system CPU time, the system (kernel) part of it and
// the peak RSS (bytes) of the exited process, from its rusage.
func (c *child) usage() (cpu, sys time.Duration, maxRSS int64) {
	st := c.cmd.ProcessState
	if st == nil {
		return 0, 0, 0
	}
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok {
		return st.UserTime() + st.SystemTime(), st.SystemTime(), 0
	}
	return st.UserTime() + st.SystemTime(), st.SystemTime(), ru.Maxrss * 1024 // Linux: KiB
}

// tail returns the last n bytes of the process's log.
func (c *child) tail(n int64) string {
	f, err := os.Open(c.log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, _ := f.Stat()
	if st != nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// procCPU returns the CPU time pid used so far, from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	// Fields after the command: state(0) ppid(1) … utime(11) stime(12).
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTick
}

// procRSS returns the resident set size of pid now (VmRSS), in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// openFDs counts the open file descriptors of pid.
func openFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// machineCPU returns the busy CPU time of the whole machine (all cores)
// since boot, from /proc/stat: everything but idle and iowait.
func machineCPU() time.Duration {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fs := strings.Fields(sc.Text())
	if len(fs) < 5 || fs[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range fs[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTick
}

// loadAvg returns the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// broker is the kfake broker process (tests/bench/broker).
type broker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	log   string
	done  chan struct{}
}

// startBroker starts the broker and waits until it has loaded the topic.
func startBroker(bin, logFile string, timeout time.Duration, args ...string) (*broker, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &broker{cmd: cmd, stdin: stdin, log: logFile, done: make(chan struct{})}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait()
		close(b.done)
	}()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				out, _ := os.ReadFile(logFile)
				return nil, fmt.Errorf("broker exited while loading:\n%s", out)
			}
			if a, ok := strings.CutPrefix(l, "addr "); ok {
				b.addr = a
			}
			if strings.HasPrefix(l, "loaded ") {
				fmt.Printf("broker on %s: %s\n", b.addr, l)
				go func() {
					for range lines {
					}
				}()
				return b, nil
			}
		case <-deadline:
			b.stop()
			return nil, fmt.Errorf("broker did not load within %v", timeout)
		}
	}
}

func (b *broker) pid() int { return b.cmd.Process.Pid }

// stop closes the broker's standard input (it exits on EOF), then kills it
// if it is still there after 10 s.
func (b *broker) stop() {
	_ = b.stdin.Close()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// dirBytes returns the total size of the regular files below dir whose
// names do not start with a dot, and how many there are.
func dirBytes(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		bytes += info.Size()
		files++
		return nil
	})
	return bytes, files, err
}
