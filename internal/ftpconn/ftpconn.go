// Package ftpconn dials FTP and FTPS control connections the way
// kafka-backup needs them, for the FTP destination (uploads) and the backup
// tree reader (restore): every read and write on the control and on each data
// connection has its own deadline, explicit TLS (AUTH TLS) covers the data
// connections too, resuming the control connection's TLS session, and TLS
// data connections are closed with close_notify.
package ftpconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"sync"
	"time"

	jftp "github.com/jlaffaye/ftp"
)

// Config says how to reach and log in to a server.
type Config struct {
	Addr     string      // host:port
	User     string      // login user
	Password string      // login password; never logged
	TLS      *tls.Config // explicit FTPS (AUTH TLS) when not nil; data connections too

	ConnectTimeout time.Duration // bound on dialing each connection; with Dial's context, on TLS and login
	IOTimeout      time.Duration // bound on every read and write on a connection
	DisableEPSV    bool          // use PASV only, for servers that mishandle EPSV
	// ListHidden makes List send "LIST -a" (instead of MLSD when the server
	// has it) so that servers hiding dot files by default (vsftpd, pure-ftpd)
	// list them.
	ListHidden bool
}

// deadlineConn gives every Read and Write its own deadline, so no FTP call on
// the control or data connection can hang longer than the I/O timeout. A
// deadline set explicitly (SetDeadline, SetReadDeadline, SetWriteDeadline)
// still applies when it is earlier: a deadline in the past makes the next
// calls fail at once, as net.Conn promises.
type deadlineConn struct {
	net.Conn
	timeout time.Duration

	mu     sync.Mutex
	rd, wd time.Time // explicit deadlines; zero is none
}

func (c *deadlineConn) deadline(explicit *time.Time) time.Time {
	d := time.Now().Add(c.timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !explicit.IsZero() && explicit.Before(d) {
		return *explicit
	}
	return d
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(c.deadline(&c.rd)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.deadline(&c.wd)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd, c.wd = t, t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wd = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// tlsDataConn closes a TLS data connection the way servers need: it sends
// close_notify and reads until the server closes. Closing a TLS 1.3 socket
// with the server's session tickets unread makes the kernel reset it, and
// vsftpd then drops the end of the upload ("426 Failure reading network
// stream"). A reader that wants to stop a download early sets a deadline in
// the past first: Close then sends close_notify without draining the rest.
type tlsDataConn struct {
	*tls.Conn
}

func (c *tlsDataConn) Close() error {
	if !c.Conn.ConnectionState().HandshakeComplete {
		// The server refused the command (550 on RETR of a missing file)
		// and never spoke TLS here (an empty upload is handshaken by
		// jlaffaye/ftp itself before Close). A handshake now would fail,
		// and a failed handshake makes crypto/tls forget the session:
		// vsftpd then refuses the next data connection (522, session
		// reuse required).
		return c.Conn.Close()
	}
	err := c.Conn.CloseWrite()
	if err == nil {
		_, err = io.Copy(io.Discard, c.Conn)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = nil // a download stopped early, or a refused command
	}
	return errors.Join(err, c.Conn.Close())
}

// Dial opens and logs in one control connection. Every connection it makes
// has deadlines; with TLS the control connection is upgraded by AUTH TLS and
// every data connection is TLS too, resuming the control connection's
// session (vsftpd's require_ssl_reuse).
//
// ctx bounds the dialing of every connection the returned ServerConn makes,
// data connections included: pass a context that lives as long as the
// connection is used.
func Dial(ctx context.Context, cfg Config) (*jftp.ServerConn, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 30 * time.Second
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
	if cfg.TLS != nil {
		// A session cache of this control connection's own: vsftpd wants
		// each data connection to resume the session of its control
		// connection, and a cache shared by several connections to one
		// server hands out whichever session came last.
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	}
	first := true
	dialFunc := func(network, addr string) (net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		defer cancel()
		c, err := dialer.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := net.Conn(&deadlineConn{Conn: c, timeout: cfg.IOTimeout})
		if cfg.TLS != nil && !first {
			// A data connection: jlaffaye/ftp leaves TLS to us when it
			// dials through our function.
			conn = &tlsDataConn{tls.Client(conn, cfg.TLS)}
		}
		first = false
		return conn, nil
	}
	opts := []jftp.DialOption{jftp.DialWithDialFunc(dialFunc), jftp.DialWithDisabledEPSV(cfg.DisableEPSV)}
	if cfg.TLS != nil {
		opts = append(opts, jftp.DialWithExplicitTLS(cfg.TLS))
	}
	if cfg.ListHidden {
		opts = append(opts, jftp.DialWithForceListHidden(true))
	}
	c, err := jftp.Dial(cfg.Addr, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Login(cfg.User, cfg.Password); err != nil {
		_ = c.Quit()
		if !Broken(err) || ReplyCode(err) == 0 && !networkError(err) {
			// jlaffaye/ftp returns a refused USER as a bare message,
			// without its reply code.
			err = &LoginError{Err: err}
		}
		return nil, err
	}
	return c, nil
}

// LoginError is the server refusing the login (USER/PASS): wrong
// credentials, or a login the server accepts only over TLS. Retrying does not
// help; the operator must change the configuration or the server.
type LoginError struct {
	Err error
}

func (e *LoginError) Error() string { return "login refused: " + e.Err.Error() }

// Unwrap returns the server's answer.
func (e *LoginError) Unwrap() error { return e.Err }

// networkError reports whether err comes from the connection rather than
// from the server's answer: a timeout, a reset, an early end.
func networkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}

// ReplyCode returns the FTP reply code in err, or 0 when err carries none.
func ReplyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// Broken reports whether err means the connection is no longer usable: an
// error with no FTP reply code (EOF, reset, timeout, TLS failure) or a
// 421/426 from the server. Any other reply is the server refusing one command
// on a healthy connection.
func Broken(err error) bool {
	if err == nil {
		return false
	}
	code := ReplyCode(err)
	return code == 0 || code == 421 || code == 426
}
