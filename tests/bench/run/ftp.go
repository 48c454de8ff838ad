package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// benchTB lets the test helpers of tests/ftpd run outside a test: they take
// a testing.TB and use only the methods defined here (the embedded nil
// interface supplies testing.TB's unexported method; any other method would
// panic). Fatal and Skip end the helper with a panic that startPureFtpd
// recovers.
type benchTB struct {
	testing.TB
	cleanups []func()
	failed   bool
}

type tbAbort struct {
	skip bool
	msg  string
}

func (t *benchTB) Helper()                         {}
func (t *benchTB) Name() string                    { return "bench" }
func (t *benchTB) Logf(format string, args ...any) { fmt.Printf("ftpd: "+format+"\n", args...) }
func (t *benchTB) Errorf(format string, args ...any) {
	t.failed = true
	fmt.Fprintf(os.Stderr, "ftpd: "+format+"\n", args...)
}
func (t *benchTB) Failed() bool { return t.failed }
func (t *benchTB) Fatalf(format string, args ...any) {
	panic(tbAbort{msg: fmt.Sprintf(format, args...)})
}
func (t *benchTB) Fatal(args ...any) { panic(tbAbort{msg: fmt.Sprint(args...)}) }
func (t *benchTB) Skipf(format string, args ...any) {
	panic(tbAbort{skip: true, msg: fmt.Sprintf(format, args...)})
}
func (t *benchTB) Skip(args ...any)   { panic(tbAbort{skip: true, msg: fmt.Sprint(args...)}) }
func (t *benchTB) Cleanup(f func())   { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) TempDir() string    { d, _ := os.MkdirTemp("", "kb-bench-"); return d }
func (t *benchTB) Setenv(k, v string) { _ = os.Setenv(k, v) }

// close runs the cleanups, last registered first.
func (t *benchTB) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// ftpServer is a running pure-ftpd.
type ftpServer struct {
	*ftpd.Server
	tb *benchTB
}

// startPureFtpd starts pure-ftpd as tests/ftpd does for the tests. skip is
// set when it is not installed (or this does not run as root).
func startPureFtpd() (s *ftpServer, skip string, err error) {
	tb := &benchTB{}
	defer func() {
		if r := recover(); r != nil {
			tb.close()
			a, ok := r.(tbAbort)
			if !ok {
				panic(r)
			}
			if a.skip {
				s, skip, err = nil, a.msg, nil
			} else {
				s, skip, err = nil, "", errors.New(a.msg)
			}
		}
	}()
	srv := ftpd.StartPureFtpd(tb, ftpd.Options{PassivePorts: 32})
	return &ftpServer{Server: srv, tb: tb}, "", nil
}

func (s *ftpServer) stop() { s.tb.close() }

// clear removes everything below the server's root folder path.
func (s *ftpServer) clear(path string) error { return os.RemoveAll(s.Path(path)) }

// segmentCounter counts the records in the final files below a folder, from
// batch headers; final files never change, so each is read once.
type segmentCounter struct {
	seen map[string]int64
}

func newSegmentCounter() *segmentCounter { return &segmentCounter{seen: map[string]int64{}} }

// count returns the records in final files below dir, how many final files
// there are, and the hidden (in-progress or uploading) files left.
func (c *segmentCounter) count(dir string) (records int64, files int, hidden []string, err error) {
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		if _, ok := layout.ParseFileName(name); !ok {
			if strings.HasPrefix(name, ".") && name != ".kafka-backup.ranges" {
				hidden = append(hidden, p)
			}
			return nil
		}
		files++
		if n, ok := c.seen[p]; ok {
			records += n
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		span, err := segment.ReadSpan(f, st.Size())
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		c.seen[p] = span.Records
		records += span.Records
		return nil
	})
	return records, files, hidden, err
}
