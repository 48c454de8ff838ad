package ftptest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
)

// generation is one run of the server between a start and a Stop.
type generation struct {
	s         *Server
	ln        net.Listener // raw control listener
	serveDone chan struct{}
	serveErr  error          // written before serveDone is closed
	handlers  sync.WaitGroup // one per accepted control connection

	// Guarded by s.mu.
	stopped bool
	conns   map[*trackedConn]struct{}  // all open control and data connections
	ctrl    map[string]*trackedConn    // control connections by remote address
	pasv    map[*pasvListener]struct{} // passive listeners not yet accepted on
}

var errStopped = errors.New("ftptest: server stopped")

func closedErr(op string) error {
	return &net.OpError{Op: op, Net: "tcp", Err: net.ErrClosed}
}

// track wraps and registers c; it closes c and returns false if the
// generation is stopped. Call with s.mu held.
func (g *generation) trackLocked(c net.Conn, control bool) (*trackedConn, bool) {
	if g.stopped {
		_ = c.Close()

		return nil, false
	}

	tc := &trackedConn{Conn: c, g: g, closed: make(chan struct{})}
	g.conns[tc] = struct{}{}

	if control {
		tc.ctrlKey = c.RemoteAddr().String()
		g.ctrl[tc.ctrlKey] = tc
	}

	return tc, true
}

// dropControl closes the control connection whose remote address is key.
// ftpserverlib then closes the client's data connection as well.
func (g *generation) dropControl(key string) {
	g.s.mu.Lock()
	c := g.ctrl[key]
	g.s.mu.Unlock()

	if c != nil {
		_ = c.Close()
	}
}

// freezeGate is installed by Freeze; thawed is closed by Unfreeze.
type freezeGate struct {
	thawed chan struct{}
}

// waitThawed blocks while the server is frozen; it returns an error if closed
// is closed first.
func (s *Server) waitThawed(closed <-chan struct{}, op string) error {
	g := s.frozen.Load()
	if g == nil {
		return nil
	}

	select {
	case <-g.thawed:
		return nil
	case <-closed:
		return closedErr(op)
	}
}

// trackedConn is a server-side connection that Stop can close and Freeze can
// stall.
type trackedConn struct {
	net.Conn
	g         *generation
	ctrlKey   string // non-empty for control connections
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if err := c.g.s.waitThawed(c.closed, "read"); err != nil {
		return 0, err
	}

	n, err := c.Conn.Read(p)
	if n > 0 {
		// Data that arrived while frozen is held back until Unfreeze.
		if errFrozen := c.g.s.waitThawed(c.closed, "read"); errFrozen != nil {
			return 0, errFrozen
		}
	}

	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if err := c.g.s.waitThawed(c.closed, "write"); err != nil {
		return 0, err
	}

	return c.Conn.Write(p)
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)

		s := c.g.s
		s.mu.Lock()
		delete(c.g.conns, c)
		if c.ctrlKey != "" && c.g.ctrl[c.ctrlKey] == c {
			delete(c.g.ctrl, c.ctrlKey)
		}
		s.mu.Unlock()
	})

	return c.Conn.Close()
}

// ctrlListener is the control listener handed to ftpserverlib.
type ctrlListener struct {
	net.Listener
	g *generation
}

func (l *ctrlListener) Accept() (net.Conn, error) {
	s := l.g.s

	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}

		s.mu.Lock()
		s.counts.Connections++

		if take(&s.pending.RejectConnections, &s.counts.Fired.RejectConnections) {
			s.mu.Unlock()
			reject(c)

			continue
		}

		tc, ok := l.g.trackLocked(c, true)
		if ok {
			// Done in mainDriver.ClientDisconnected, which ftpserverlib calls
			// exactly once for every connection Accept returns.
			l.g.handlers.Add(1)
		}
		s.mu.Unlock()

		if !ok {
			return nil, closedErr("accept")
		}

		return tc, nil
	}
}

func reject(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "421 "+ErrInjected.Error()+": service not available\r\n")
	_ = c.Close()
}

// pasvListener wraps the passive data listeners ftpserverlib creates. They
// listen on all interfaces (ftpserverlib offers no way to choose), so
// connections from non-loopback addresses are refused here.
type pasvListener struct {
	net.Listener
	g *generation
}

func (l *pasvListener) Accept() (net.Conn, error) {
	s := l.g.s

	// ftpserverlib accepts at most once per listener and closes the raw
	// listener itself, so Stop only needs to know about listeners that have
	// not accepted yet.
	defer func() {
		s.mu.Lock()
		delete(l.g.pasv, l)
		s.mu.Unlock()
	}()

	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}

		if addr, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !addr.IP.IsLoopback() {
			_ = c.Close()

			continue
		}

		s.mu.Lock()
		tc, ok := l.g.trackLocked(c, false)
		s.mu.Unlock()

		if !ok {
			return nil, closedErr("accept")
		}

		return tc, nil
	}
}

// mainDriver implements ftpserverlib's MainDriver for one generation.
type mainDriver struct {
	s  *Server
	g  *generation
	ln net.Listener
}

var (
	_ ftpserver.MainDriver                        = (*mainDriver)(nil)
	_ ftpserver.MainDriverExtensionPassiveWrapper = (*mainDriver)(nil)
	_ ftpserver.ClientDriver                      = (*clientFs)(nil)
)

func (d *mainDriver) GetSettings() (*ftpserver.Settings, error) {
	tlsRequired := ftpserver.ClearOrEncrypted
	if d.s.tlsConfig != nil {
		tlsRequired = ftpserver.MandatoryEncryption
	}

	return &ftpserver.Settings{
		Listener:            d.ln,
		PublicHost:          "127.0.0.1",
		Banner:              "ftptest",
		DisableActiveMode:   true,
		ConnectionTimeout:   10,
		TLSRequired:         tlsRequired,
		DefaultTransferType: ftpserver.TransferTypeBinary,
	}, nil
}

func (d *mainDriver) ClientConnected(ftpserver.ClientContext) (string, error) {
	return "ftptest server ready", nil
}

func (d *mainDriver) ClientDisconnected(ftpserver.ClientContext) {
	d.g.handlers.Done()
}

var errBadCredentials = errors.New("ftptest: invalid user or password")

func (d *mainDriver) AuthUser(cc ftpserver.ClientContext, user, pass string) (ftpserver.ClientDriver, error) {
	s := d.s

	s.mu.Lock()
	fail := take(&s.pending.FailLogins, &s.counts.Fired.FailLogins)
	s.mu.Unlock()

	if fail {
		return nil, injected("login refused")
	}

	if user != s.User || pass != s.Password {
		return nil, errBadCredentials
	}

	s.mu.Lock()
	s.counts.Logins++
	s.mu.Unlock()

	return &clientFs{Fs: s.fs, s: s, g: d.g, ctrlKey: cc.RemoteAddr().String()}, nil
}

var errNoTLS = errors.New("ftptest: TLS not enabled (start the server with ftptest.WithTLS)")

func (d *mainDriver) GetTLSConfig() (*tls.Config, error) {
	if d.s.tlsConfig == nil {
		return nil, errNoTLS
	}

	return d.s.tlsConfig, nil
}

func (d *mainDriver) WrapPassiveListener(ln net.Listener) (net.Listener, error) {
	s := d.s

	s.mu.Lock()
	defer s.mu.Unlock()

	if d.g.stopped {
		_ = ln.Close()

		return nil, errStopped
	}

	pl := &pasvListener{Listener: ln, g: d.g}
	d.g.pasv[pl] = struct{}{}

	return pl, nil
}
