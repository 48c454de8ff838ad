// Package ftpd runs real Debian FTP servers (vsftpd and pure-ftpd) on
// 127.0.0.1 for end-to-end tests of the FTP backup destination.
//
// The servers are installed by scripts/ftpd/install.sh (run as root, or via
// `make test`): it unpacks both servers under /opt/kafka-backup-test/ftpd
// (override with $KB_FTPD_PREFIX), creates the local user "kbftp" and the PAM
// service "kafka-backup-ftpd". When any of that is missing, or the tests do
// not run as root, StartVsftpd and StartPureFtpd call t.Skip.
//
// Each server gets its own temporary directory (config, certificate, log and
// the FTP root), a free control port and a small passive port range on
// 127.0.0.1. The FTP user is chrooted to Server.Root, which the test can read
// and write directly. Everything is stopped and removed in t.Cleanup.
package ftpd

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// User and Password are the local account both servers log in with; it is
	// created by scripts/ftpd/install.sh.
	User     = "kbftp"
	Password = "kbftp-pass"

	// PAMService is the PAM service vsftpd authenticates User with
	// (/etc/pam.d/kafka-backup-ftpd, written by scripts/ftpd/install.sh).
	PAMService = "kafka-backup-ftpd"

	// DefaultPrefix is where scripts/ftpd/install.sh unpacks the servers.
	DefaultPrefix = "/opt/kafka-backup-test/ftpd"

	installHint = "run `sudo bash scripts/ftpd/install.sh` (or `make test`) to install the FTP test servers"

	defaultPassivePorts = 16
	startTimeout        = 15 * time.Second
	stopTimeout         = 10 * time.Second
)

// Prefix returns the directory the servers are installed in: $KB_FTPD_PREFIX
// or DefaultPrefix.
func Prefix() string {
	if p := os.Getenv("KB_FTPD_PREFIX"); p != "" {
		return p
	}
	return DefaultPrefix
}

// Options configure a test server.
type Options struct {
	// TLS enables explicit FTPS (AUTH TLS). Logins and data connections are
	// then required to use TLS. The server certificate is self-signed for
	// 127.0.0.1, ::1 and localhost; Server.CAFile / Server.TLSConfig give
	// what a client needs to trust it.
	TLS bool
	// PassivePorts is the size of the passive port range (default 16).
	PassivePorts int
	// ExtraConfig holds extra lines appended to the generated vsftpd.conf
	// (later lines win), e.g. "require_ssl_reuse=NO". Ignored by pure-ftpd.
	ExtraConfig []string
	// ExtraArgs holds extra command-line flags for pure-ftpd, e.g. "-D" to
	// list dot files. Ignored by vsftpd.
	ExtraArgs []string
}

// Server is a running (or stopped) FTP server process.
type Server struct {
	// Name is "vsftpd" or "pure-ftpd".
	Name string
	// Addr is the control address, 127.0.0.1:port. It stays the same across
	// Stop/Start.
	Addr string
	// Host and Port are Addr split.
	Host string
	Port int
	// PassiveMin and PassiveMax bound the passive port range (inclusive).
	PassiveMin, PassiveMax int
	// User and Password log in to the server.
	User, Password string
	// Root is the local directory the FTP user is chrooted to: the FTP path
	// "/a/b" is filepath.Join(Root, "a", "b").
	Root string
	// TLS reports whether the server requires explicit FTPS.
	TLS bool
	// CAFile is the PEM file of the self-signed server certificate (TLS only).
	CAFile string
	// ServerName is the name the certificate is valid for, to put into
	// tls.Config.ServerName (TLS only).
	ServerName string

	t       testing.TB
	dir     string // per-server temporary directory (holds Root)
	bin     string
	args    []string
	logFile string
	uid     int
	gid     int
	home    string // the FTP user's home directory in /etc/passwd

	ports    *reservation
	passiveN int

	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait result, valid after done
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// Path returns the local path of an FTP path (absolute, "/"-separated, as
// seen by the FTP user) or of path elements relative to Root.
func (s *Server) Path(elem ...string) string {
	parts := []string{s.Root}
	for _, e := range elem {
		parts = append(parts, filepath.FromSlash(strings.TrimPrefix(e, "/")))
	}
	return filepath.Join(parts...)
}

// WriteFile creates the file at the FTP path name (and its parent folders)
// directly in Root, owned by the FTP user, as if it had been uploaded.
func (s *Server) WriteFile(t testing.TB, name string, data []byte) {
	t.Helper()
	p := s.Path(name)
	if err := s.MkdirAll(filepath.Dir(p)); err != nil {
		t.Fatalf("ftpd: %v", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("ftpd: %v", err)
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		t.Fatalf("ftpd: %v", err)
	}
}

// MkdirAll creates the local directory dir (which must be inside Root) and
// its missing parents, owned by the FTP user.
func (s *Server) MkdirAll(dir string) error {
	rel, err := filepath.Rel(s.Root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s is not inside %s", dir, s.Root)
	}
	cur := s.Root
	if rel == "." {
		return nil
	}
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return err
		}
		if err := os.Chown(cur, s.uid, s.gid); err != nil {
			return err
		}
	}
	return nil
}

// CertPool returns a pool holding the server certificate (nil without TLS).
func (s *Server) CertPool() *x509.CertPool {
	if !s.TLS {
		return nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		s.t.Fatalf("ftpd: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		s.t.Fatalf("ftpd: no certificate in %s", s.CAFile)
	}
	return pool
}

// TLSConfig returns a client TLS config that trusts the server certificate
// and caches sessions (vsftpd requires the data connection to reuse the
// control connection's TLS session). Nil without TLS. Each call returns a
// new config with its own session cache.
func (s *Server) TLSConfig() *tls.Config {
	if !s.TLS {
		return nil
	}
	return &tls.Config{
		RootCAs:            s.CertPool(),
		ServerName:         s.ServerName,
		ClientSessionCache: tls.NewLRUClientSessionCache(16),
	}
}

// Log returns what the server wrote so far: its stdout/stderr and its log
// file (vsftpd: protocol log; pure-ftpd: transfer log). For failure messages.
func (s *Server) Log() string {
	return s.outputs()
}

// Stop kills the server and all its session processes (open control and
// data connections are dropped), and waits until they are gone. The port
// stays reserved for Start. Stop on a stopped server does nothing. It calls
// t.Fatal on failure, so call it from the test goroutine; use StopErr from
// other goroutines.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.StopErr(); err != nil {
		s.t.Fatalf("ftpd: %v", err)
	}
}

// Start starts a stopped server again on the same address and passive ports
// and waits until it accepts connections. Start on a running server does
// nothing. It calls t.Fatal on failure, so call it from the test goroutine;
// use StartErr from other goroutines.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.StartErr(); err != nil {
		s.t.Fatalf("ftpd: %v", err)
	}
}

// StopErr is Stop returning its error instead of failing the test.
func (s *Server) StopErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	p := s.proc
	s.proc = nil
	return killTree(p, stopTimeout)
}

// StartErr is Start returning its error instead of failing the test.
func (s *Server) StartErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		select {
		case <-s.proc.done:
			// exited by itself: start it again
			s.proc = nil
		default:
			return nil
		}
	}
	logf, err := os.OpenFile(s.logFile+".out", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL, // no leftovers when the test binary dies
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(s.Addr, p, startTimeout); err != nil {
		_ = killTree(p, stopTimeout)
		return fmt.Errorf("%s on %s did not come up: %w\n%s", s.Name, s.Addr, err, s.outputs())
	}
	s.proc = p
	return nil
}

func (s *Server) outputs() string {
	var b strings.Builder
	if out, _ := os.ReadFile(s.logFile + ".out"); len(out) > 0 {
		fmt.Fprintf(&b, "--- %s stdout/stderr:\n%s\n", s.Name, out)
	}
	if out, _ := os.ReadFile(s.logFile); len(out) > 0 {
		fmt.Fprintf(&b, "--- %s log:\n%s\n", s.Name, out)
	}
	return b.String()
}

// waitReady polls addr until the server greets with a 220 reply.
func waitReady(addr string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return &exitedError{p.err}
		default:
		}
		lastErr = greet(addr)
		if lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
			return &exitedError{p.err}
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("timeout after %v: %v", timeout, lastErr)
}

func greet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 || !strings.HasPrefix(line, "220") {
			return fmt.Errorf("unexpected greeting %q", line)
		}
		if line[3] == ' ' { // last line of a (multi-line) reply
			_, _ = c.Write([]byte("QUIT\r\n"))
			return nil
		}
	}
}

// killTree kills the server process and all its descendants and waits for
// them. vsftpd's session processes call setsid, so killing the process group
// is not enough, and a process that forks while being killed could leave an
// orphan: so first everything is stopped (SIGSTOP, found through /proc,
// until no new process appears and all are stopped), then killed.
func killTree(p *process, timeout time.Duration) error {
	pid := p.cmd.Process.Pid
	deadline := time.Now().Add(timeout)
	procs := map[int]bool{pid: true}
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	for time.Now().Before(deadline) {
		stable := true
		for _, d := range descendants(pid) {
			if !procs[d] {
				procs[d] = true
				_ = syscall.Kill(d, syscall.SIGSTOP)
				stable = false
			}
		}
		for q := range procs {
			if st := state(q); st != 0 && st != 'T' && st != 't' && st != 'Z' && st != 'X' {
				stable = false // SIGSTOP not taken yet
			}
		}
		if stable {
			break
		}
		time.Sleep(time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for q := range procs {
		_ = syscall.Kill(q, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		return fmt.Errorf("process %d did not exit within %v", pid, timeout)
	}
	for q := range procs {
		for alive(q) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d (child of %d) did not exit within %v", q, pid, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// descendants returns the pids of all descendants of pid, from /proc.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppid(child); ok {
			children[pp] = append(children[pp], child)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// ppid reads the parent pid from /proc/<pid>/stat.
func ppid(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may contain spaces
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st := state(pid)
	return st != 0 && st != 'Z' && st != 'X'
}

// state returns the state letter of pid from /proc/<pid>/stat, 0 if gone.
func state(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may contain spaces
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// newServer does what both servers need: skip checks, the temporary
// directory with Root owned by the FTP user, ports, certificate.
func newServer(t testing.TB, name, bin string, opts Options) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("ftpd: %s needs the tests to run as root (it chroots and switches to user %s); %s", name, User, installHint)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("ftpd: %s not installed (%v); %s", name, err, installHint)
	}
	u, err := user.Lookup(User)
	if err != nil {
		t.Skipf("ftpd: FTP test user %q missing (%v); %s", User, err, installHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	dir, err := os.MkdirTemp("", "kb-"+name+"-")
	if err != nil {
		t.Fatalf("ftpd: %v", err)
	}
	s := &Server{
		Name:     name,
		User:     User,
		Password: Password,
		TLS:      opts.TLS,
		t:        t,
		dir:      dir,
		bin:      bin,
		uid:      uid,
		gid:      gid,
		home:     u.HomeDir,
		Root:     filepath.Join(dir, "root"),
		logFile:  filepath.Join(dir, name+".log"),
	}
	s.ports = &reservation{}
	ports := s.ports
	// One cleanup, registered first so it runs last: stop, release, remove.
	t.Cleanup(func() {
		if err := s.StopErr(); err != nil {
			t.Errorf("ftpd: stopping %s: %v", name, err)
		}
		ports.release()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("ftpd: %v", err)
		}
	})
	// The server switches to the FTP user before entering Root, so the path
	// to it must be traversable.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("ftpd: %v", err)
	}
	if err := os.Mkdir(s.Root, 0o755); err != nil {
		t.Fatalf("ftpd: %v", err)
	}
	if err := os.Chown(s.Root, uid, gid); err != nil {
		t.Fatalf("ftpd: %v", err)
	}

	s.passiveN = opts.PassivePorts
	if s.passiveN <= 0 {
		s.passiveN = defaultPassivePorts
	}
	if err := s.pickPorts(); err != nil {
		t.Fatalf("ftpd: %v", err)
	}

	if opts.TLS {
		s.CAFile = filepath.Join(dir, "cert.pem")
		s.ServerName = "127.0.0.1"
		if err := writeSelfSigned(s.CAFile, filepath.Join(dir, "key.pem")); err != nil {
			t.Fatalf("ftpd: certificate: %v", err)
		}
	}
	return s
}

// pickPorts (re)reserves the control port and the passive range.
func (s *Server) pickPorts() error {
	s.ports.release()
	ctl, pasv, err := s.ports.reserve(s.passiveN)
	if err != nil {
		return err
	}
	s.Host = "127.0.0.1"
	s.Port = ctl
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(ctl))
	s.PassiveMin, s.PassiveMax = pasv, pasv+s.passiveN-1
	return nil
}

// firstStart calls configure (which writes the config / sets s.args from
// the current ports) and starts the server. Ports are only checked to be
// free when picked, so another process may take one before the server binds
// it: then the server exits at once, and new ports are tried.
func (s *Server) firstStart(configure func()) {
	s.t.Helper()
	const attempts = 3
	for i := 1; ; i++ {
		configure()
		err := s.StartErr()
		if err == nil {
			return
		}
		var ee *exitedError
		if i == attempts || !errors.As(err, &ee) {
			s.t.Fatalf("ftpd: %v", err)
		}
		s.t.Logf("ftpd: %v; retrying with other ports", err)
		if err := s.pickPorts(); err != nil {
			s.t.Fatalf("ftpd: %v", err)
		}
	}
}

// exitedError: the server process exited while starting up.
type exitedError struct{ err error }

func (e *exitedError) Error() string { return fmt.Sprintf("process exited: %v", e.err) }
