// Package ftptest provides an embedded FTP/FTPS server for tests, with
// runtime fault injection.
//
// The server is built on github.com/fclairamb/ftpserverlib and serves a real
// directory on disk (a t.TempDir() by default, see [Server.Root] and
// [Server.LocalPath]) through an afero.BasePathFs, so tests can inspect and
// prepare the uploaded files directly.
//
// Typical use:
//
//	srv := ftptest.Start(t, ftptest.WithTLS())
//	srv.Inject(ftptest.Fault{FailWrites: 1, FailRenames: 1})
//	// ... run the code under test against srv.Addr with srv.User/srv.Password
//	// and srv.ClientTLSConfig() ...
//	if got := srv.Counts().Fired.FailWrites; got != 1 { ... }
//
// Only passive data connections are offered (active mode is disabled) and the
// control connection listens on 127.0.0.1. All uploads are binary by default.
//
// Reply codes seen by a github.com/jlaffaye/ftp client for each fault (the
// *textproto.Error is reachable with errors.As):
//
//	RejectConnections  421 from Dial (greeting replaced by "421 ...")
//	FailLogins         530 from Login; the server closes the connection
//	RejectUploads      552 from Stor, before any data is sent; no file is created
//	FailWrites         552 from Stor, after all data was sent; a partial file remains
//	TruncateUploads    no error (226); the stored file is shorter than the upload
//	DropMidUpload      no reply: io.EOF / connection reset; partial file remains
//	FailRenames        550 from Rename; nothing is renamed
//	DropAfterRename    no reply: io.EOF; the rename HAS been applied
//	FailMkdirs         550 from MakeDir
//	FailDeletes        550 from Delete / RemoveDir
//	FailDownloads      552 from Retr of a file (not a folder listing)
//
// Freeze makes the server stop answering on every connection (new ones are
// still accepted by the kernel but get no greeting), which lets tests check
// client-side timeouts; Stop and Restart simulate an outage on the same port
// (no reply is sent for commands or transfers in progress).
//
// Behaviour of the underlying ftpserverlib/afero stack worth knowing:
//   - RNTO onto an existing file replaces it (os.Rename); RNFR of a missing
//     file fails with 550 before RNTO is sent.
//   - MKD is not recursive: a missing parent or an existing directory gives
//     550. RMD removes empty directories only.
//   - LIST and MLSD never include "." or ".." but do include hidden (dot)
//     files; NLST returns paths relative to the current directory.
//   - STOR overwrites (truncates) an existing file; APPE and REST are
//     supported.
//   - Error messages in replies contain the server's local paths.
//   - The passive data listeners bind all interfaces (ftpserverlib does not
//     let us choose); connections from non-loopback addresses are closed.
package ftptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"
)

// Default credentials accepted by a server started without [WithCredentials].
const (
	DefaultUser     = "ftptest"
	DefaultPassword = "ftptest-password"
)

// ErrInjected is wrapped by every error the server's file system returns
// because of an injected [Fault]. Its text ("ftptest: injected fault") appears
// in the message of the corresponding FTP reply.
var ErrInjected = errors.New("ftptest: injected fault")

// stopTimeout bounds how long Stop waits for client handler goroutines.
const stopTimeout = 10 * time.Second

// Server is an embedded FTP server started by [Start]. The exported fields
// are set by Start and must be treated as read-only. All methods are safe for
// concurrent use.
type Server struct {
	// Addr is the control connection address, "127.0.0.1:port". It stays the
	// same across Stop/Restart.
	Addr string
	// Host and Port are the two parts of Addr.
	Host string
	Port int
	// User and Password are the only accepted credentials.
	User, Password string
	// Root is the local directory backing the FTP root "/".
	Root string
	// CertPEM is the PEM encoded self-signed certificate the server presents
	// for FTPS; nil unless the server was started with [WithTLS].
	CertPEM []byte

	t         testing.TB
	fs        afero.Fs
	tlsConfig *tls.Config // server side; nil without WithTLS
	cert      *x509.Certificate
	cutAfter  int64 // -1: half of the first chunk

	lifeMu sync.Mutex // serialises Stop and Restart

	mu      sync.Mutex // guards gen, pending, counts and generation maps
	gen     *generation
	pending Fault
	counts  Counts

	frozen atomic.Pointer[freezeGate]

	stalled chan struct{} // closed by ReleaseUploads; guarded by mu
}

// Option configures a server in [Start].
type Option func(*config)

type config struct {
	user, password string
	root           string
	tls            bool
	cutAfter       int64
}

// WithTLS enables explicit FTPS (AUTH TLS) with a self-signed certificate
// generated at start-up, valid for 127.0.0.1, ::1 and localhost. TLS is then
// mandatory: a client that sends USER before AUTH TLS gets "421 TLS is
// required", and transfers require PROT P. Use [Server.ClientTLSConfig] or
// [Server.CAPool] / [Server.CertPEM] on the client side.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithCredentials sets the user name and password the server accepts
// (default [DefaultUser] / [DefaultPassword]).
func WithCredentials(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// WithRoot serves dir instead of a fresh t.TempDir(). The directory must
// exist; it is not removed by the server.
func WithRoot(dir string) Option {
	return func(c *config) { c.root = dir }
}

// WithCutAfter makes the upload faults that cut a transfer short
// (FailWrites, DropMidUpload, TruncateUploads) store exactly the first n
// bytes of the upload (fewer if the upload is shorter). By default they
// store half of the first chunk read from the data connection, rounded down,
// which is non-deterministic but always shorter than a non-empty upload.
func WithCutAfter(n int64) Option {
	return func(c *config) {
		if n < 0 {
			n = 0
		}
		c.cutAfter = n
	}
}

// Start starts a server listening on 127.0.0.1 on a free port. It is stopped
// with [Server.Stop] in t.Cleanup. Start fails the test if the server cannot
// be started.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()

	cfg := config{user: DefaultUser, password: DefaultPassword, cutAfter: -1}
	for _, o := range opts {
		o(&cfg)
	}

	if cfg.root == "" {
		cfg.root = t.TempDir()
	}

	root, err := filepath.Abs(cfg.root)
	if err != nil {
		t.Fatalf("ftptest: root %q: %v", cfg.root, err)
	}

	s := &Server{
		User:     cfg.user,
		Password: cfg.password,
		Root:     root,
		t:        t,
		fs:       afero.NewBasePathFs(afero.NewOsFs(), root),
		cutAfter: cfg.cutAfter,
	}

	if cfg.tls {
		if err := s.setupTLS(); err != nil {
			t.Fatalf("ftptest: generating TLS certificate: %v", err)
		}
	}

	g, err := s.startGeneration("127.0.0.1:0", false)
	if err != nil {
		t.Fatalf("ftptest: starting server: %v", err)
	}

	s.Addr = g.ln.Addr().String()

	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		_ = g.ln.Close()
		t.Fatalf("ftptest: parsing listen address %q: %v", s.Addr, err)
	}

	s.Host = host
	s.Port, _ = strconv.Atoi(port)

	s.mu.Lock()
	s.gen = g
	s.mu.Unlock()

	t.Cleanup(s.Stop)

	return s
}

// LocalPath returns the local file system path backing the FTP path name
// (absolute or relative to the FTP root).
func (s *Server) LocalPath(name string) string {
	return filepath.Join(s.Root, filepath.FromSlash(path.Clean("/"+name)))
}

// Inject replaces the set of pending faults by f. Each counter in f is the
// number of upcoming operations of that kind that will fail; Inject(Fault{})
// clears every pending fault. Faults survive Stop/Restart.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.pending = f
}

// Pending returns the faults that have been injected but not fired yet.
func (s *Server) Pending() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.pending
}

// Counts returns a snapshot of the operation and fault counters.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()

	c := s.counts
	if s.gen != nil {
		c.ActiveConnections = len(s.gen.ctrl)
	}

	return c
}

// Freeze makes the server stop answering: reads and writes on every current
// and future connection (control and data) block until [Server.Unfreeze],
// [Server.Stop] or [Server.Restart]. New TCP connections are still accepted
// but never get a greeting; commands sent meanwhile are answered after
// Unfreeze. Calling Freeze on a frozen server does nothing.
func (s *Server) Freeze() {
	s.frozen.CompareAndSwap(nil, &freezeGate{thawed: make(chan struct{})})
}

// Unfreeze resumes a frozen server. Calling it on a running server does
// nothing.
func (s *Server) Unfreeze() {
	if g := s.frozen.Swap(nil); g != nil {
		close(g.thawed)
	}
}

// Stop closes the listener and every client connection (control and data)
// and waits for the client handlers to finish. Clients then get "connection
// refused" until [Server.Restart]. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()

	s.stopLocked()
}

// Restart stops the server if it is running (see [Server.Stop]), unfreezes
// it and starts it again on the same address. Files, credentials, pending
// faults and counters are kept. Restart fails the test (t.Fatalf) if the
// port cannot be bound again within a few seconds, so it should be called
// from the test goroutine.
func (s *Server) Restart() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()

	s.stopLocked()
	s.Unfreeze()

	g, err := s.startGeneration(s.Addr, true)
	if err != nil {
		s.t.Fatalf("ftptest: restarting server on %s: %v", s.Addr, err)
	}

	s.mu.Lock()
	s.gen = g
	s.mu.Unlock()
}

// ReleaseUploads ends the wait of every upload stalled by
// [Fault.StallUploads] and of every removal stalled by [Fault.StallDeletes];
// those stalled later wait for the next call.
func (s *Server) ReleaseUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
	}
}

// waitRelease blocks until the next ReleaseUploads (or Stop).
func (s *Server) waitRelease() {
	s.mu.Lock()
	if s.stalled == nil {
		s.stalled = make(chan struct{})
	}
	ch := s.stalled
	s.mu.Unlock()
	<-ch
}

func (s *Server) stopLocked() {
	s.ReleaseUploads()
	s.mu.Lock()
	g := s.gen
	s.gen = nil
	s.mu.Unlock()

	if g == nil {
		return
	}

	_ = g.ln.Close()
	<-g.serveDone

	if g.serveErr != nil {
		s.t.Logf("ftptest: serve: %v", g.serveErr)
	}

	// No more control connections can arrive. Mark the generation stopped so
	// that data connections and passive listeners created from now on are
	// closed right away, then close everything that is open: control
	// connections first, so that a transfer failing because its data
	// connection was closed cannot send a reply any more.
	s.mu.Lock()
	g.stopped = true
	var control, data []*trackedConn
	for c := range g.conns {
		if c.ctrlKey != "" {
			control = append(control, c)
		} else {
			data = append(data, c)
		}
	}
	listeners := make([]*pasvListener, 0, len(g.pasv))
	for l := range g.pasv {
		listeners = append(listeners, l)
	}
	s.mu.Unlock()

	for _, c := range control {
		_ = c.Close()
	}

	for _, c := range data {
		_ = c.Close()
	}

	for _, l := range listeners {
		_ = l.Listener.Close()
	}

	done := make(chan struct{})
	go func() {
		g.handlers.Wait()
		close(done)
	}()

	select {
	case <-done:
	case <-time.After(stopTimeout):
		s.t.Logf("ftptest: client handlers still running %v after Stop", stopTimeout)
	}
}

// startGeneration starts a new ftpserverlib server on addr. If retry is set
// it keeps trying for a few seconds while the address is in use.
func (s *Server) startGeneration(addr string, retry bool) (*generation, error) {
	ln, err := listen(addr, retry)
	if err != nil {
		return nil, err
	}

	g := &generation{
		s:         s,
		ln:        ln,
		serveDone: make(chan struct{}),
		conns:     make(map[*trackedConn]struct{}),
		ctrl:      make(map[string]*trackedConn),
		pasv:      make(map[*pasvListener]struct{}),
	}

	srv := ftpserver.NewFtpServer(&mainDriver{s: s, g: g, ln: &ctrlListener{Listener: ln, g: g}})
	if err := srv.Listen(); err != nil {
		_ = ln.Close()

		return nil, err
	}

	go func() {
		g.serveErr = srv.Serve()
		close(g.serveDone)
	}()

	return g, nil
}

func listen(addr string, retry bool) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)

	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !retry || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}

		time.Sleep(20 * time.Millisecond)
	}
}
