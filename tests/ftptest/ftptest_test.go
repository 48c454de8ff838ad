package ftptest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// opTimeout bounds every network operation of the test clients so that a
// broken server makes the tests fail instead of hanging.
const opTimeout = 5 * time.Second

// deadlineConn sets a fresh deadline before every Read and Write.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(c.timeout))

	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.timeout))

	return c.Conn.Write(p)
}

// deadlineDialer returns a dial func for ftp.DialWithDialFunc whose
// connections time out after timeout of inactivity per operation. jlaffaye/ftp
// uses the dial func for the control connection (first call) and for every
// data connection, and does NOT wrap data connections in TLS itself when a
// dial func is set, so with dataTLS != nil every connection but the first is
// wrapped here. A dial func must therefore not be shared between clients.
func deadlineDialer(timeout time.Duration, dataTLS *tls.Config) func(network, address string) (net.Conn, error) {
	var calls atomic.Int32

	return func(network, address string) (net.Conn, error) {
		raw, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}

		var c net.Conn = &deadlineConn{Conn: raw, timeout: timeout}
		if dataTLS != nil && calls.Add(1) > 1 {
			c = tls.Client(c, dataTLS)
		}

		return c, nil
	}
}

// connect dials srv with per-operation deadlines, without logging in.
func connect(t *testing.T, srv *ftptest.Server, opts ...ftp.DialOption) (*ftp.ServerConn, error) {
	t.Helper()

	opts = append([]ftp.DialOption{ftp.DialWithDialFunc(deadlineDialer(opTimeout, nil))}, opts...)

	c, err := ftp.Dial(srv.Addr, opts...)
	if err != nil {
		return nil, err
	}

	t.Cleanup(func() { _ = c.Quit() })

	return c, nil
}

// login dials srv and logs in, failing the test on error.
func login(t *testing.T, srv *ftptest.Server, opts ...ftp.DialOption) *ftp.ServerConn {
	t.Helper()

	c, err := connect(t, srv, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}

	if err := c.Login(srv.User, srv.Password); err != nil {
		t.Fatalf("login: %v", err)
	}

	return c
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()

	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want FTP reply %d", err, err, code)
	}

	if te.Code != code {
		t.Fatalf("reply code = %d (%q), want %d", te.Code, te.Msg, code)
	}

	t.Logf("client saw reply %d %s", te.Code, te.Msg)
}

func wantNoReply(t *testing.T, err error) {
	t.Helper()

	if err == nil {
		t.Fatal("operation succeeded, want a connection error")
	}

	var te *textproto.Error
	if errors.As(err, &te) {
		t.Fatalf("err = %v, want a connection error, not FTP reply %d", err, te.Code)
	}

	t.Logf("client saw connection error: %v", err)
}

func wantTimeout(t *testing.T, err error) {
	t.Helper()

	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v (%T), want a timeout", err, err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()

	deadline := time.Now().Add(opTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}

		time.Sleep(5 * time.Millisecond)
	}
}

func payload(t *testing.T, n int) []byte {
	t.Helper()

	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}

	return b
}

func stor(t *testing.T, c *ftp.ServerConn, name string, data []byte) {
	t.Helper()

	if err := c.Stor(name, bytes.NewReader(data)); err != nil {
		t.Fatalf("Stor %s: %v", name, err)
	}
}

func retr(t *testing.T, c *ftp.ServerConn, name string) []byte {
	t.Helper()

	r, err := c.Retr(name)
	if err != nil {
		t.Fatalf("Retr %s: %v", name, err)
	}

	b, err := io.ReadAll(r)
	if errClose := r.Close(); err == nil {
		err = errClose
	}

	if err != nil {
		t.Fatalf("Retr %s: %v", name, err)
	}

	return b
}

func localSize(t *testing.T, srv *ftptest.Server, name string) int64 {
	t.Helper()

	fi, err := os.Stat(srv.LocalPath(name))
	if err != nil {
		t.Fatalf("stat %s: %v", name, err)
	}

	return fi.Size()
}

func wantLocal(t *testing.T, srv *ftptest.Server, name string, want []byte) {
	t.Helper()

	got, err := os.ReadFile(srv.LocalPath(name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}

	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d (content differs)", name, len(got), len(want))
	}
}

func wantMissing(t *testing.T, srv *ftptest.Server, name string) {
	t.Helper()

	if _, err := os.Stat(srv.LocalPath(name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: stat err = %v, want not exist", name, err)
	}
}

// interruptUpload uploads name over c, an endless stream of one random 64 KiB
// chunk, waits until the first chunk has reached srv, calls interrupt
// (srv.Freeze or srv.Stop, say) and, once the stream's writer has stopped,
// checks the error the upload ended with with wantErr. It returns the chunk.
func interruptUpload(t *testing.T, srv *ftptest.Server, c *ftp.ServerConn, name string, interrupt func(), wantErr func(*testing.T, error)) []byte {
	t.Helper()

	chunk := payload(t, 64<<10)
	pr, pw := io.Pipe()
	storErr := make(chan error, 1)

	go func() { storErr <- c.Stor(name, pr) }()

	if _, err := pw.Write(chunk); err != nil {
		t.Fatal(err)
	}

	eventually(t, "first chunk to reach the server", func() bool {
		return srv.Counts().UploadedBytes >= int64(len(chunk))
	})

	interrupt()

	var wg sync.WaitGroup

	wg.Add(1)

	go func() {
		defer wg.Done()

		for {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	}()

	err := <-storErr
	_ = pr.CloseWithError(errors.New("upload aborted"))

	wg.Wait()
	wantErr(t, err)

	return chunk
}

// startWithFile starts a server, logs a client in and uploads size random
// bytes to name; it returns the bytes too.
func startWithFile(t *testing.T, name string, size int) (*ftptest.Server, *ftp.ServerConn, []byte) {
	t.Helper()

	srv, c := startLoggedIn(t)
	data := payload(t, size)
	stor(t, c, name, data)

	return srv, c, data
}

// startLoggedIn starts a server with opts and logs a client in to it.
func startLoggedIn(t *testing.T, opts ...ftptest.Option) (*ftptest.Server, *ftp.ServerConn) {
	t.Helper()

	srv := ftptest.Start(t, opts...)

	return srv, login(t, srv)
}

// wantUploadOnNewConn logs in to srv on a new connection, uploads data to
// name and checks that the server's file holds exactly data.
func wantUploadOnNewConn(t *testing.T, srv *ftptest.Server, name string, data []byte) {
	t.Helper()

	c := login(t, srv)
	stor(t, c, name, data)
	wantLocal(t, srv, name, data)
}

// wantNoOpOnNewConn logs in to srv on a new connection and checks that it
// answers NOOP.
func wantNoOpOnNewConn(t *testing.T, srv *ftptest.Server) {
	t.Helper()

	if err := login(t, srv).NoOp(); err != nil {
		t.Fatal(err)
	}
}

func names(entries []*ftp.Entry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name)
	}

	slices.Sort(out)

	return out
}

func TestBasicOperations(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)

	if srv.Host != "127.0.0.1" || srv.Port == 0 || !strings.HasPrefix(srv.Addr, "127.0.0.1:") {
		t.Fatalf("unexpected address %q (%s, %d)", srv.Addr, srv.Host, srv.Port)
	}

	if err := c.MakeDir("backups"); err != nil {
		t.Fatalf("MakeDir: %v", err)
	}

	if fi, err := os.Stat(srv.LocalPath("/backups")); err != nil || !fi.IsDir() {
		t.Fatalf("backups not created on disk: %v", err)
	}

	// MKD is not recursive and refuses existing directories.
	wantCode(t, c.MakeDir("backups"), 550)
	wantCode(t, c.MakeDir("missing/child"), 550)

	data1 := payload(t, 100_000)
	stor(t, c, "backups/.seg-1.tmp", data1)

	size, err := c.FileSize("backups/.seg-1.tmp")
	if err != nil || size != int64(len(data1)) {
		t.Fatalf("FileSize = %d, %v; want %d", size, err, len(data1))
	}

	if err := c.Rename("backups/.seg-1.tmp", "backups/seg-1"); err != nil {
		t.Fatalf("Rename: %v", err)
	}

	wantLocal(t, srv, "backups/seg-1", data1)
	wantMissing(t, srv, "backups/.seg-1.tmp")

	// Rename onto an existing file replaces it (os.Rename semantics).
	data2 := payload(t, 1234)
	stor(t, c, "backups/.seg-2.tmp", data2)

	if err := c.Rename("backups/.seg-2.tmp", "backups/seg-1"); err != nil {
		t.Fatalf("Rename onto existing file: %v", err)
	}

	wantLocal(t, srv, "backups/seg-1", data2)

	// Renaming a missing file fails at RNFR.
	wantCode(t, c.Rename("backups/nope", "backups/x"), 550)

	// Uploading into a missing directory fails.
	wantCode(t, c.Stor("missing/file", bytes.NewReader(data2)), 550)

	// Hidden files are listed; "." and ".." are not.
	stor(t, c, "backups/.hidden", []byte("x"))

	entries, err := c.List("backups")
	if err != nil {
		t.Fatalf("List: %v", err)
	}

	if got, want := names(entries), []string{".hidden", "seg-1"}; !slices.Equal(got, want) {
		t.Fatalf("List names = %q, want %q", got, want)
	}

	for _, e := range entries {
		if e.Name == "seg-1" && (e.Type != ftp.EntryTypeFile || e.Size != uint64(len(data2))) {
			t.Fatalf("seg-1 entry = %+v", e)
		}
	}

	entries, err = c.List("/")
	if err != nil || len(entries) != 1 || entries[0].Name != "backups" || entries[0].Type != ftp.EntryTypeFolder {
		t.Fatalf("List / = %v, %v", names(entries), err)
	}

	nl, err := c.NameList("backups")
	slices.Sort(nl)

	if err != nil || !slices.Equal(nl, []string{"backups/.hidden", "backups/seg-1"}) {
		t.Fatalf("NameList = %q, %v", nl, err)
	}

	if got := retr(t, c, "backups/seg-1"); !bytes.Equal(got, data2) {
		t.Fatalf("Retr: got %d bytes, want %d", len(got), len(data2))
	}

	if err := c.ChangeDir("backups"); err != nil {
		t.Fatalf("ChangeDir: %v", err)
	}

	if err := c.Delete("seg-1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	if err := c.Delete(".hidden"); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	if err := c.ChangeDirToParent(); err != nil {
		t.Fatalf("ChangeDirToParent: %v", err)
	}

	if err := c.RemoveDir("backups"); err != nil {
		t.Fatalf("RemoveDir: %v", err)
	}

	wantMissing(t, srv, "backups")

	got := srv.Counts()
	want := ftptest.Counts{
		Connections:       1,
		ActiveConnections: 1,
		Logins:            1,
		Uploads:           4, // the upload into a missing directory counts too
		UploadedBytes:     int64(len(data1) + len(data2) + 1),
		Downloads:         1,
		Renames:           2, // the failed RNFR never reaches RNTO
		Mkdirs:            3,
		Removes:           3,
	}

	if got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
}

func TestPASV(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t)
	c := login(t, srv, ftp.DialWithDisabledEPSV(true))

	data := payload(t, 5000)
	stor(t, c, "f", data)

	if got := retr(t, c, "f"); !bytes.Equal(got, data) {
		t.Fatal("Retr over PASV returned different data")
	}
}

func TestBadCredentials(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t, ftptest.WithCredentials("alice", "s3cret"))

	c, err := connect(t, srv)
	if err != nil {
		t.Fatal(err)
	}

	wantCode(t, c.Login("alice", "wrong"), 530)

	wantNoOpOnNewConn(t, srv)
}

func TestRejectConnections(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t)
	srv.Inject(ftptest.Fault{RejectConnections: 2})

	for range 2 {
		_, err := connect(t, srv)
		wantCode(t, err, 421)
	}

	wantNoOpOnNewConn(t, srv)

	got := srv.Counts()
	if got.Connections != 3 || got.Fired.RejectConnections != 2 || got.Logins != 1 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestFailLogins(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t)
	srv.Inject(ftptest.Fault{FailLogins: 1})

	c, err := connect(t, srv)
	if err != nil {
		t.Fatal(err)
	}

	wantCode(t, c.Login(srv.User, srv.Password), 530)
	// The server hangs up after a failed login.
	wantNoReply(t, c.NoOp())

	wantNoOpOnNewConn(t, srv)

	if got := srv.Counts(); got.Fired.FailLogins != 1 || got.Logins != 1 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestRejectUploads(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)

	old := []byte("previous content")
	stor(t, c, "existing", old)

	srv.Inject(ftptest.Fault{RejectUploads: 2})

	wantCode(t, c.Stor("existing", bytes.NewReader(payload(t, 1000))), 552)
	wantLocal(t, srv, "existing", old) // not truncated

	wantCode(t, c.Stor("new", bytes.NewReader(payload(t, 1000))), 552)
	wantMissing(t, srv, "new")

	data := payload(t, 1000)
	stor(t, c, "new", data)
	wantLocal(t, srv, "new", data)

	if got := srv.Counts(); got.Fired.RejectUploads != 2 || got.Uploads != 4 || got.Connections != 1 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestFailWrites(t *testing.T) {
	t.Parallel()

	t.Run("CutAfter", func(t *testing.T) {
		t.Parallel()

		srv, c := startLoggedIn(t, ftptest.WithCutAfter(100))
		data := payload(t, 200_000)

		srv.Inject(ftptest.Fault{FailWrites: 1})
		wantCode(t, c.Stor(".tmp", bytes.NewReader(data)), 552)

		if got := localSize(t, srv, ".tmp"); got != 100 {
			t.Fatalf("partial file has %d bytes, want 100", got)
		}

		if p := srv.Pending(); p != (ftptest.Fault{}) {
			t.Fatalf("Pending = %+v", p)
		}

		// The same connection is still usable and the retry succeeds.
		stor(t, c, ".tmp", data)
		wantLocal(t, srv, ".tmp", data)

		if got := srv.Counts(); got.Fired.FailWrites != 1 || got.Uploads != 2 || got.Connections != 1 {
			t.Fatalf("Counts = %+v", got)
		}
	})

	t.Run("DefaultCut", func(t *testing.T) {
		t.Parallel()

		srv, c := startLoggedIn(t)
		data := payload(t, 50_000)

		srv.Inject(ftptest.Fault{FailWrites: 1})
		wantCode(t, c.Stor("f", bytes.NewReader(data)), 552)

		if got := localSize(t, srv, "f"); got >= int64(len(data)) {
			t.Fatalf("partial file has %d bytes, want fewer than %d", got, len(data))
		}

		stor(t, c, "f", data)
		wantLocal(t, srv, "f", data)
	})
}

func TestTruncateUploads(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t, ftptest.WithCutAfter(100))
	data := payload(t, 10_000)

	srv.Inject(ftptest.Fault{TruncateUploads: 1})
	stor(t, c, "f", data) // succeeds!

	size, err := c.FileSize("f")
	if err != nil || size != 100 {
		t.Fatalf("FileSize = %d, %v; want 100", size, err)
	}

	wantLocal(t, srv, "f", data[:100])

	stor(t, c, "f", data)
	wantLocal(t, srv, "f", data)

	if got := srv.Counts(); got.Fired.TruncateUploads != 1 || got.UploadedBytes != 100+10_000 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestDropMidUpload(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name string
		size int
	}{
		{"large", 1 << 20},
		{"shorter-than-cut", 10},
		{"empty", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			srv, c := startLoggedIn(t, ftptest.WithCutAfter(1000))
			data := payload(t, tc.size)

			srv.Inject(ftptest.Fault{DropMidUpload: 1})
			wantNoReply(t, c.Stor(".part", bytes.NewReader(data)))

			if got, want := localSize(t, srv, ".part"), int64(min(tc.size, 1000)); got != want {
				t.Fatalf("partial file has %d bytes, want %d", got, want)
			}

			// The connection is gone.
			wantNoReply(t, c.NoOp())
			eventually(t, "server to close the connection", func() bool {
				return srv.Counts().ActiveConnections == 0
			})

			// Redial: the next upload succeeds.
			wantUploadOnNewConn(t, srv, ".part", data)

			if got := srv.Counts(); got.Fired.DropMidUpload != 1 || got.Connections != 2 || got.Uploads != 2 {
				t.Fatalf("Counts = %+v", got)
			}
		})
	}
}

func TestFailRenames(t *testing.T) {
	t.Parallel()

	srv, c, data := startWithFile(t, ".tmp", 10)

	srv.Inject(ftptest.Fault{FailRenames: 1})
	wantCode(t, c.Rename(".tmp", "final"), 550)
	wantLocal(t, srv, ".tmp", data)
	wantMissing(t, srv, "final")

	if err := c.Rename(".tmp", "final"); err != nil {
		t.Fatalf("Rename: %v", err)
	}

	wantLocal(t, srv, "final", data)

	if got := srv.Counts(); got.Fired.FailRenames != 1 || got.Renames != 2 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestDropAfterRename(t *testing.T) {
	t.Parallel()

	srv, c, data := startWithFile(t, ".tmp", 10)

	srv.Inject(ftptest.Fault{DropAfterRename: 1})
	wantNoReply(t, c.Rename(".tmp", "final"))

	// The rename happened although the client saw an error.
	wantLocal(t, srv, "final", data)
	wantMissing(t, srv, ".tmp")

	c = login(t, srv)

	size, err := c.FileSize("final")
	if err != nil || size != int64(len(data)) {
		t.Fatalf("FileSize = %d, %v", size, err)
	}

	wantCode(t, c.Rename(".tmp", "final"), 550) // a blind retry fails at RNFR

	if got := srv.Counts(); got.Fired.DropAfterRename != 1 || got.Renames != 1 || got.Connections != 2 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestFailMkdirs(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)

	srv.Inject(ftptest.Fault{FailMkdirs: 1})
	wantCode(t, c.MakeDir("d"), 550)
	wantMissing(t, srv, "d")

	if err := c.MakeDir("d"); err != nil {
		t.Fatalf("MakeDir: %v", err)
	}

	if got := srv.Counts(); got.Fired.FailMkdirs != 1 || got.Mkdirs != 2 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestFailDeletes(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)

	if err := c.MakeDir("d"); err != nil {
		t.Fatal(err)
	}

	stor(t, c, "d/f", []byte("x"))

	srv.Inject(ftptest.Fault{FailDeletes: 1})
	wantCode(t, c.Delete("d/f"), 550)
	wantLocal(t, srv, "d/f", []byte("x"))

	if err := c.Delete("d/f"); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	srv.Inject(ftptest.Fault{FailDeletes: 1})
	wantCode(t, c.RemoveDir("d"), 550)

	if err := c.RemoveDir("d"); err != nil {
		t.Fatalf("RemoveDir: %v", err)
	}

	wantMissing(t, srv, "d")

	if got := srv.Counts(); got.Fired.FailDeletes != 2 || got.Removes != 4 {
		t.Fatalf("Counts = %+v", got)
	}
}

// TestStallDeletes: a stalled removal waits, with the file still there,
// until ReleaseUploads, then fails with 550 without removing it.
func TestStallDeletes(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)
	stor(t, c, "f", []byte("x"))

	srv.Inject(ftptest.Fault{StallDeletes: 1})
	done := make(chan error, 1)
	go func() { done <- c.Delete("f") }()
	eventually(t, "the removal stalled", func() bool { return srv.Counts().Fired.StallDeletes == 1 })
	select {
	case err := <-done:
		t.Fatalf("the stalled removal returned before ReleaseUploads: %v", err)
	default:
	}
	wantLocal(t, srv, "f", []byte("x"))
	srv.ReleaseUploads()
	wantCode(t, <-done, 550)
	wantLocal(t, srv, "f", []byte("x"))
}

func TestInjectReplacesPendingFaults(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)

	srv.Inject(ftptest.Fault{FailMkdirs: 5, FailDeletes: 1})
	wantCode(t, c.MakeDir("a"), 550)

	if p := srv.Pending(); p != (ftptest.Fault{FailMkdirs: 4, FailDeletes: 1}) {
		t.Fatalf("Pending = %+v", p)
	}

	srv.Inject(ftptest.Fault{})

	if err := c.MakeDir("a"); err != nil {
		t.Fatalf("MakeDir after clearing faults: %v", err)
	}
}

func TestFreeze(t *testing.T) {
	t.Parallel()

	const short = 300 * time.Millisecond

	srv := ftptest.Start(t)
	c := login(t, srv, ftp.DialWithDialFunc(deadlineDialer(short, nil)))

	srv.Freeze()
	srv.Freeze() // idempotent

	start := time.Now()
	err := c.NoOp()
	wantTimeout(t, err)
	t.Logf("NoOp on frozen server: %v after %v", err, time.Since(start))

	// New connections are accepted by the kernel but get no greeting.
	_, err = connect(t, srv, ftp.DialWithDialFunc(deadlineDialer(short, nil)))
	wantTimeout(t, err)

	srv.Unfreeze()
	srv.Unfreeze() // idempotent

	data := payload(t, 1000)
	wantUploadOnNewConn(t, srv, "after", data)
}

func TestFreezeMidUpload(t *testing.T) {
	t.Parallel()

	const short = 300 * time.Millisecond

	srv := ftptest.Start(t)
	c := login(t, srv, ftp.DialWithDialFunc(deadlineDialer(short, nil)))

	chunk := interruptUpload(t, srv, c, "big", srv.Freeze, wantTimeout)

	srv.Unfreeze()
	wantUploadOnNewConn(t, srv, "small", chunk)
}

func TestStopRestart(t *testing.T) {
	t.Parallel()

	srv, c, data := startWithFile(t, "a", 1000)
	addr := srv.Addr

	srv.Stop()
	srv.Stop() // idempotent

	wantNoReply(t, c.NoOp())

	if _, err := connect(t, srv); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while stopped: err = %v, want connection refused", err)
	}

	if got := srv.Counts().ActiveConnections; got != 0 {
		t.Fatalf("ActiveConnections after Stop = %d", got)
	}

	srv.Restart()

	if srv.Addr != addr {
		t.Fatalf("Addr changed from %s to %s", addr, srv.Addr)
	}

	c = login(t, srv)

	entries, err := c.List("/")
	if err != nil || !slices.Equal(names(entries), []string{"a"}) {
		t.Fatalf("List after restart = %q, %v", names(entries), err)
	}

	// Restart while running drops the current clients.
	srv.Restart()
	wantNoReply(t, c.NoOp())

	wantUploadOnNewConn(t, srv, "b", data)

	// The refused dial while stopped is not counted.
	if got := srv.Counts(); got.Connections != 3 || got.Logins != 3 {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestStopMidUpload(t *testing.T) {
	t.Parallel()

	srv, c := startLoggedIn(t)

	// Stop must not hang on the transfer in progress.
	chunk := interruptUpload(t, srv, c, "big", srv.Stop, wantNoReply)

	srv.Restart()
	wantUploadOnNewConn(t, srv, "big", chunk)
}

func TestStopWhileFrozen(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t)
	c := login(t, srv, ftp.DialWithDialFunc(deadlineDialer(300*time.Millisecond, nil)))

	srv.Freeze()
	wantTimeout(t, c.NoOp())

	srv.Restart() // unfreezes

	wantNoOpOnNewConn(t, srv)
}

func TestFTPS(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t, ftptest.WithTLS())

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CertPEM) {
		t.Fatal("CertPEM does not parse")
	}

	tlsConfig := &tls.Config{
		RootCAs:            pool,
		ServerName:         "127.0.0.1",
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
		MinVersion:         tls.VersionTLS12,
	}

	dialTLS := func(t *testing.T) *ftp.ServerConn {
		t.Helper()

		c, err := ftp.Dial(srv.Addr, ftp.DialWithExplicitTLS(tlsConfig), ftp.DialWithTimeout(opTimeout))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}

		t.Cleanup(func() { _ = c.Quit() })

		if err := c.Login(srv.User, srv.Password); err != nil {
			t.Fatalf("login: %v", err)
		}

		return c
	}

	t.Run("Operations", func(t *testing.T) {
		c := dialTLS(t)

		if err := c.MakeDir("tls"); err != nil {
			t.Fatal(err)
		}

		data := payload(t, 300_000)
		stor(t, c, "tls/.tmp", data)

		if err := c.Rename("tls/.tmp", "tls/final"); err != nil {
			t.Fatal(err)
		}

		entries, err := c.List("tls")
		if err != nil || !slices.Equal(names(entries), []string{"final"}) {
			t.Fatalf("List = %q, %v", names(entries), err)
		}

		if got := retr(t, c, "tls/final"); !bytes.Equal(got, data) {
			t.Fatal("Retr returned different data")
		}

		stor(t, c, "tls/empty", nil)
		wantLocal(t, srv, "tls/empty", nil)
	})

	t.Run("ClientTLSConfig", func(t *testing.T) {
		c, err := ftp.Dial(srv.Addr, ftp.DialWithExplicitTLS(srv.ClientTLSConfig()), ftp.DialWithTimeout(opTimeout))
		if err != nil {
			t.Fatal(err)
		}

		t.Cleanup(func() { _ = c.Quit() })

		if err := c.Login(srv.User, srv.Password); err != nil {
			t.Fatal(err)
		}

		stor(t, c, "via-helper", []byte("hello"))
	})

	t.Run("DialFuncWithDeadlines", func(t *testing.T) {
		// With DialWithDialFunc, jlaffaye/ftp leaves data connections in
		// plain text; the dial func has to wrap them (see deadlineDialer).
		c := login(t, srv,
			ftp.DialWithDialFunc(deadlineDialer(opTimeout, tlsConfig)),
			ftp.DialWithExplicitTLS(tlsConfig))

		data := payload(t, 10_000)
		stor(t, c, "deadline", data)

		if got := retr(t, c, "deadline"); !bytes.Equal(got, data) {
			t.Fatal("Retr returned different data")
		}
	})

	t.Run("PlainRefused", func(t *testing.T) {
		c, err := connect(t, srv)
		if err != nil {
			t.Fatal(err)
		}

		// jlaffaye/ftp turns an unexpected USER reply into a plain error.
		err = c.Login(srv.User, srv.Password)
		if err == nil || !strings.Contains(err.Error(), "TLS is required") {
			t.Fatalf("plain login: err = %v, want TLS is required", err)
		}
	})

	t.Run("UntrustedCert", func(t *testing.T) {
		cfg := &tls.Config{ServerName: "127.0.0.1", RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}

		c, err := ftp.Dial(srv.Addr, ftp.DialWithExplicitTLS(cfg), ftp.DialWithTimeout(opTimeout))
		if err == nil {
			// The handshake happens lazily, on the first command after
			// AUTH TLS.
			t.Cleanup(func() { _ = c.Quit() })
			err = c.Login(srv.User, srv.Password)
		}

		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("err = %v (%T), want *tls.CertificateVerificationError", err, err)
		}
	})

	t.Run("Faults", func(t *testing.T) {
		c := dialTLS(t)
		data := payload(t, 100_000)

		srv.Inject(ftptest.Fault{FailWrites: 1})
		wantCode(t, c.Stor("f", bytes.NewReader(data)), 552)

		srv.Inject(ftptest.Fault{DropMidUpload: 1})
		wantNoReply(t, c.Stor("f", bytes.NewReader(data)))

		c = dialTLS(t)
		stor(t, c, "f", data)
		wantLocal(t, srv, "f", data)
	})
}

// TestConcurrentUse exercises Inject, Pending and Counts concurrently with
// several clients; it is mainly a target for the race detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()

	srv := ftptest.Start(t, ftptest.WithCutAfter(10))
	data := payload(t, 20_000)

	const clients = 4

	conns := make([]*ftp.ServerConn, clients)
	for i := range conns {
		conns[i] = login(t, srv)
	}

	// Armed before the clients start, so at least one fault fires however
	// the goroutines are scheduled. Which one fires is up to the race (a
	// rejected open leaves nothing for a failing write), so the check below
	// counts them all.
	faults := ftptest.Fault{FailWrites: 1, FailRenames: 1, TruncateUploads: 1, RejectUploads: 1}
	srv.Inject(faults)

	stop := make(chan struct{})
	injectorDone := make(chan struct{})

	go func() {
		defer close(injectorDone)

		for {
			select {
			case <-stop:
				return
			default:
			}

			srv.Inject(faults)
			_ = srv.Pending()
			_ = srv.Counts()
		}
	}()

	var wg sync.WaitGroup

	for i, c := range conns {
		wg.Add(1)

		go func() {
			defer wg.Done()

			name := string(rune('a' + i))
			for range 10 {
				// Errors are expected: faults keep being injected.
				_ = c.Stor(name+".tmp", bytes.NewReader(data))
				_ = c.Rename(name+".tmp", name)
			}
		}()
	}

	wg.Wait()
	close(stop)
	<-injectorDone

	srv.Inject(ftptest.Fault{})

	for i, c := range conns {
		name := string(rune('a' + i))
		stor(t, c, name, data)
		wantLocal(t, srv, name, data)
	}

	got := srv.Counts()
	fired := got.Fired.FailWrites + got.Fired.FailRenames + got.Fired.TruncateUploads + got.Fired.RejectUploads
	if got.Uploads != clients*11 || fired == 0 {
		t.Fatalf("Counts = %+v", got)
	}

	t.Logf("Counts = %+v", got)
}
