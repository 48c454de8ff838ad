package ftpconn

import (
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"testing"
	"time"
)

// TestDeadlineConn checks that every read gets the I/O timeout, and that an
// earlier deadline set explicitly wins.
func TestDeadlineConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &deadlineConn{Conn: a, timeout: 100 * time.Millisecond}
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing to read: %v, want a timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the timeout took %v", took)
	}
	// A deadline in the past fails the next read at once, although the
	// per-call timeout would allow it.
	go b.Write([]byte("x"))
	c.timeout = time.Hour
	c.SetReadDeadline(time.Now().Add(-time.Second))
	start = time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a deadline in the past: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("the past deadline did not apply at once")
	}
	// Cleared: reads work again.
	c.SetDeadline(time.Time{})
	if n, err := io.ReadFull(c, make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("read after clearing the deadline: %d, %v", n, err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := c.Write([]byte("y")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after a deadline in the past: %v", err)
	}
}

func TestBroken(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   int
		broken bool
	}{
		{nil, 0, false},
		{io.EOF, 0, true},
		{&textproto.Error{Code: 550, Msg: "no such file"}, 550, false},
		{&textproto.Error{Code: 421, Msg: "bye"}, 421, true},
		{&textproto.Error{Code: 426, Msg: "aborted"}, 426, true},
	} {
		if got := ReplyCode(tc.err); got != tc.code {
			t.Errorf("ReplyCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
		if got := Broken(tc.err); got != tc.broken {
			t.Errorf("Broken(%v) = %v, want %v", tc.err, got, tc.broken)
		}
	}
}
