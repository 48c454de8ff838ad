package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
)

// ftpReader streams one file with RETR. When the transfer breaks, it goes
// on from where it stopped (REST) on a new connection.
type ftpReader struct {
	s    *ftpSource
	ctx  context.Context
	path string
	size int64 // from SIZE; -1 when unknown

	c      *jftp.ServerConn // while a transfer is open
	resp   *jftp.Response
	pos    int64 // bytes delivered
	failed int   // attempts in a row that broke without progress
	err    error // sticky: io.EOF or the error that ended the read
}

// start opens a transfer from pos, on a new connection after a broken one.
func (r *ftpReader) start() error {
	for {
		c, _, err := r.s.acquire(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		if r.size < 0 {
			if n, err := c.FileSize(r.path); err == nil {
				r.size = n
			} else if ftpconn.Broken(err) {
				r.s.release(c, true)
				if r.retry(err) != nil {
					return r.fail(err)
				}
				continue
			}
		}
		resp, err := c.RetrFrom(r.path, uint64(r.pos))
		if err == nil {
			r.c, r.resp = c, resp
			return nil
		}
		broken := ftpconn.Broken(err)
		r.s.release(c, broken)
		if !broken {
			if notExist(err) && r.pos == 0 {
				err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
			}
			return r.fail(err)
		}
		if r.retry(err) != nil {
			return r.fail(err)
		}
	}
}

// retry counts a broken attempt and waits before the next; it returns an
// error when no attempt is left.
func (r *ftpReader) retry(err error) error {
	r.failed++
	if r.failed >= maxAttempts {
		return err
	}
	return sleep(r.ctx, time.Duration(r.failed)*500*time.Millisecond)
}

func (r *ftpReader) fail(err error) error {
	r.err = fmt.Errorf("reading %s on %s at byte %d: %w", r.path, r.s.cfg.Addr, r.pos, err)
	return r.err
}

// finish ends the open transfer: the server's closing reply is read, and the
// connection is kept when the transfer ended cleanly.
func (r *ftpReader) finish(complete bool) error {
	if r.resp == nil {
		return nil
	}
	if !complete {
		// Stop the download now rather than drain it (see
		// ftpconn.tlsDataConn).
		_ = r.resp.SetDeadline(time.Now())
	}
	err := r.resp.Close()
	// A connection whose transfer was cut short may still have replies
	// coming: never reuse it.
	r.s.release(r.c, err != nil || !complete)
	r.c, r.resp = nil, nil
	return err
}

func (r *ftpReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if err := r.ctx.Err(); err != nil {
			_ = r.finish(false)
			return 0, r.fail(err)
		}
		if r.resp == nil {
			if err := r.start(); err != nil {
				return 0, err
			}
		}
		n, err := r.resp.Read(p)
		r.pos += int64(n)
		if n > 0 {
			r.failed = 0
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			cerr := r.finish(true)
			switch {
			case r.size >= 0 && r.pos > r.size:
				r.err = r.fail(fmt.Errorf("%d bytes, more than the %d bytes SIZE announced", r.pos, r.size))
				return n, r.err
			case r.size >= 0 && r.pos == r.size, r.size < 0 && cerr == nil:
				// Every byte arrived; a bad closing reply then does not
				// matter.
				r.err = io.EOF
				return n, io.EOF
			}
			err = cerr
			if err == nil {
				err = fmt.Errorf("the transfer ended after %d of %d bytes", r.pos, r.size)
			}
		} else {
			_ = r.finish(false)
		}
		if !ftpconn.Broken(err) && ftpconn.ReplyCode(err) != 0 && ftpconn.ReplyCode(err) != 451 {
			r.err = r.fail(err)
			return n, r.err
		}
		if rerr := r.retry(err); rerr != nil {
			r.err = r.fail(err)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Close ends the transfer, cutting it short when unread bytes remain.
func (r *ftpReader) Close() error {
	_ = r.finish(false)
	if r.err == nil {
		r.err = errors.New("read after Close")
	}
	return nil
}
