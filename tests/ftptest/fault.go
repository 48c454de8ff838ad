package ftptest

import (
	"fmt"
	"os"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"
)

// Fault is a set of failures to inject with [Server.Inject]. Every field is
// the number of upcoming operations of that kind that fail; each failing
// operation consumes one. Zero means no failure.
//
// An upload (STOR/APPE) consumes at most one fault, checked in the order
// RejectUploads, FailWrites, DropMidUpload, TruncateUploads, StallUploads. A rename
// consumes FailRenames before DropAfterRename. Operations that fail on their
// own (for example an upload into a missing directory) consume no fault,
// except RejectUploads, FailRenames, FailMkdirs and FailDeletes which fire
// before the file system is touched.
//
// The same type is used in [Counts.Fired] to count fired faults.
type Fault struct {
	// RejectConnections: the next N control connections get
	// "421 ftptest: injected fault" instead of the greeting and are closed.
	RejectConnections int
	// FailLogins: the next N logins (PASS) are refused with 530, whatever the
	// credentials; the server then closes the connection.
	FailLogins int

	// RejectUploads: the next N uploads are refused with 552 ("storage limit
	// exceeded") when the file is opened, before any data is transferred. No
	// file is created or truncated.
	RejectUploads int
	// FailWrites: the next N uploads read all the data the client sends, but
	// only a prefix reaches the file (see [WithCutAfter]) and the transfer
	// ends with 552 ("storage limit exceeded") instead of 226. The partial
	// file is left in place.
	FailWrites int
	// DropMidUpload: the next N uploads store a prefix of the data (see
	// [WithCutAfter]), then the server closes the control and the data
	// connection without a reply. The partial file is left in place.
	DropMidUpload int
	// TruncateUploads: the next N uploads silently store only a prefix of the
	// data (see [WithCutAfter]) and still succeed with 226, so only a size
	// check can detect them.
	TruncateUploads int
	// StallUploads: the next N uploads store all the data, then wait before
	// the transfer ends (and the client gets its 226) until
	// [Server.ReleaseUploads], Stop or Restart: a slow server, holding a
	// client between its STOR and its next command for as long as the test
	// wants.
	StallUploads int

	// FailRenames: the next N renames (RNTO) fail with 550 without renaming.
	FailRenames int
	// DropAfterRename: the next N renames are performed, then the control
	// connection is closed before the reply is sent: the client sees an
	// error although the file was renamed.
	DropAfterRename int

	// FailMkdirs: the next N directory creations (MKD) fail with 550.
	FailMkdirs int
	// FailDeletes: the next N removals (DELE, RMD) fail with 550.
	FailDeletes int
	// StallDeletes: the next N removals wait until [Server.ReleaseUploads],
	// Stop or Restart, then fail with 550 without removing anything: a
	// client killed while its removal waits never removed the file.
	StallDeletes int
	// FailDownloads: the next N downloads (RETR) of a file fail when it is
	// opened, with 552 as ftpserverlib answers a storage error: a reply
	// other than 550 (file not found) and not a broken connection.
	FailDownloads int
}

// Counts are cumulative counters since [Start] (across restarts), returned by
// [Server.Counts].
type Counts struct {
	// Connections is the number of control connections accepted, including
	// those closed by RejectConnections.
	Connections int
	// ActiveConnections is the number of control connections currently open
	// on the server side. The server notices that a client went away only
	// when it reads from the connection, so poll when asserting on it.
	ActiveConnections int
	// Logins is the number of successful logins.
	Logins int
	// Uploads is the number of STOR/APPE commands that reached the file
	// system, including failed and faulted ones.
	Uploads int
	// UploadedBytes is the number of bytes written to files by uploads.
	UploadedBytes int64
	// Downloads is the number of RETR commands that reached the file system.
	Downloads int
	// Renames is the number of RNTO commands that reached the file system,
	// including faulted ones.
	Renames int
	// Mkdirs is the number of MKD commands (directory creations), including
	// faulted ones.
	Mkdirs int
	// Removes is the number of DELE/RMD commands, including faulted ones.
	Removes int
	// Fired counts, per kind, the faults that fired.
	Fired Fault
}

// take consumes one fault from *pending, recording it in *fired. Call with
// s.mu held.
func take(pending, fired *int) bool {
	if *pending <= 0 {
		return false
	}

	*pending--
	*fired++

	return true
}

func injected(what string) error {
	return fmt.Errorf("%w: %s", ErrInjected, what)
}

var errStorage = fmt.Errorf("%w: %w", ErrInjected, ftpserver.ErrStorageExceeded)

// clientFs is the afero.Fs handed to ftpserverlib for one logged-in client.
// Methods that are not overridden go straight to the BasePathFs.
type clientFs struct {
	afero.Fs
	s       *Server
	g       *generation
	ctrlKey string // remote address of the client's control connection
}

func (c *clientFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	s := c.s

	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		s.mu.Lock()
		s.counts.Downloads++
		s.mu.Unlock()

		f, err := c.Fs.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		if st, serr := f.Stat(); serr == nil && !st.IsDir() {
			s.mu.Lock()
			fail := take(&s.pending.FailDownloads, &s.counts.Fired.FailDownloads)
			s.mu.Unlock()
			if fail {
				f.Close()
				return nil, &os.PathError{Op: "open", Path: name, Err: errStorage}
			}
		}
		return f, nil
	}

	s.mu.Lock()
	s.counts.Uploads++
	reject := take(&s.pending.RejectUploads, &s.counts.Fired.RejectUploads)
	s.mu.Unlock()

	if reject {
		return nil, &os.PathError{Op: "open", Path: name, Err: errStorage}
	}

	f, err := c.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	mode := uploadNormal
	switch {
	case take(&s.pending.FailWrites, &s.counts.Fired.FailWrites):
		mode = uploadFail
	case take(&s.pending.DropMidUpload, &s.counts.Fired.DropMidUpload):
		mode = uploadDrop
	case take(&s.pending.TruncateUploads, &s.counts.Fired.TruncateUploads):
		mode = uploadTruncate
	case take(&s.pending.StallUploads, &s.counts.Fired.StallUploads):
		mode = uploadStall
	}
	s.mu.Unlock()

	return &uploadFile{File: f, fs: c, name: name, mode: mode, cut: s.cutAfter}, nil
}

func (c *clientFs) Create(name string) (afero.File, error) {
	return c.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (c *clientFs) Rename(oldname, newname string) error {
	s := c.s

	s.mu.Lock()
	s.counts.Renames++
	fail := take(&s.pending.FailRenames, &s.counts.Fired.FailRenames)
	drop := !fail && take(&s.pending.DropAfterRename, &s.counts.Fired.DropAfterRename)
	s.mu.Unlock()

	if fail {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: injected("rename refused")}
	}

	err := c.Fs.Rename(oldname, newname)
	if drop {
		c.g.dropControl(c.ctrlKey)
	}

	return err
}

func (c *clientFs) mkdirFault(name string) error {
	s := c.s

	s.mu.Lock()
	defer s.mu.Unlock()

	s.counts.Mkdirs++
	if take(&s.pending.FailMkdirs, &s.counts.Fired.FailMkdirs) {
		return &os.PathError{Op: "mkdir", Path: name, Err: injected("mkdir refused")}
	}

	return nil
}

func (c *clientFs) Mkdir(name string, perm os.FileMode) error {
	if err := c.mkdirFault(name); err != nil {
		return err
	}

	return c.Fs.Mkdir(name, perm)
}

func (c *clientFs) MkdirAll(name string, perm os.FileMode) error {
	if err := c.mkdirFault(name); err != nil {
		return err
	}

	return c.Fs.MkdirAll(name, perm)
}

func (c *clientFs) removeFault(name string) error {
	s := c.s

	s.mu.Lock()
	defer s.mu.Unlock()

	s.counts.Removes++
	if take(&s.pending.FailDeletes, &s.counts.Fired.FailDeletes) {
		return &os.PathError{Op: "remove", Path: name, Err: injected("delete refused")}
	}
	if take(&s.pending.StallDeletes, &s.counts.Fired.StallDeletes) {
		s.mu.Unlock()
		s.waitRelease()
		s.mu.Lock()
		return &os.PathError{Op: "remove", Path: name, Err: injected("delete stalled, then refused")}
	}

	return nil
}

func (c *clientFs) Remove(name string) error {
	if err := c.removeFault(name); err != nil {
		return err
	}

	return c.Fs.Remove(name)
}

func (c *clientFs) RemoveAll(name string) error {
	if err := c.removeFault(name); err != nil {
		return err
	}

	return c.Fs.RemoveAll(name)
}

type uploadMode int

const (
	uploadNormal uploadMode = iota
	uploadFail
	uploadDrop
	uploadTruncate
	uploadStall
)

// uploadFile wraps a file opened for writing by an upload. ftpserverlib uses
// it from a single goroutine (the transfer goroutine).
type uploadFile struct {
	afero.File
	fs      *clientFs
	name    string
	mode    uploadMode
	cut     int64 // bytes to store for cutting faults; -1: half of the first chunk
	stored  int64
	dropped bool
}

func (f *uploadFile) addBytes(n int) {
	if n <= 0 {
		return
	}

	f.fs.s.mu.Lock()
	f.fs.s.counts.UploadedBytes += int64(n)
	f.fs.s.mu.Unlock()
}

func (f *uploadFile) Write(p []byte) (int, error) {
	if f.mode == uploadNormal || f.mode == uploadStall {
		n, err := f.File.Write(p)
		f.addBytes(n)

		return n, err
	}

	if f.cut < 0 {
		f.cut = int64(len(p) / 2)
	}

	keep := min(max(f.cut-f.stored, 0), int64(len(p)))
	if keep > 0 {
		n, err := f.File.Write(p[:keep])
		f.stored += int64(n)
		f.addBytes(n)

		if err != nil {
			return n, err
		}
	}

	if f.mode == uploadDrop && f.stored >= f.cut {
		f.drop()

		return int(keep), injected("connection dropped mid-upload")
	}

	// Pretend the rest was written.
	return len(p), nil
}

func (f *uploadFile) drop() {
	if f.dropped {
		return
	}

	f.dropped = true
	f.fs.g.dropControl(f.fs.ctrlKey)
}

func (f *uploadFile) Close() error {
	err := f.File.Close()

	switch f.mode {
	case uploadFail:
		return &os.PathError{Op: "write", Path: f.name, Err: errStorage}
	case uploadDrop:
		// The cut point was not reached (short upload): drop now.
		f.drop()

		return injected("connection dropped mid-upload")
	case uploadStall:
		f.fs.s.waitRelease()
	case uploadNormal, uploadTruncate:
	}

	return err
}
