package ftp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"time"

	jftp "github.com/jlaffaye/ftp"
)

// deadlineConn gives every Read and Write its own deadline, so no FTP call on
// the control or data connection can hang longer than the I/O timeout.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// tlsDataConn closes a TLS data connection the way servers need: it sends
// close_notify and reads until the server closes. Closing a TLS 1.3 socket
// with the server's session tickets unread makes the kernel reset it, and
// vsftpd then drops the end of the upload ("426 Failure reading network
// stream").
type tlsDataConn struct {
	*tls.Conn
}

func (c *tlsDataConn) Close() error {
	err := c.Conn.Handshake()
	if err == nil {
		err = c.Conn.CloseWrite()
	}
	if err == nil {
		_, err = io.Copy(io.Discard, c.Conn)
	}
	return errors.Join(err, c.Conn.Close())
}

// dial opens and logs in one control connection. Every connection it makes
// has deadlines; with TLS the control connection is upgraded by AUTH TLS and
// every data connection is TLS too, resuming the control connection's
// session (vsftpd's require_ssl_reuse).
func dial(ctx context.Context, cfg *Config) (*jftp.ServerConn, error) {
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
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
	c, err := jftp.Dial(cfg.Addr, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Login(cfg.User, cfg.Password); err != nil {
		_ = c.Quit()
		return nil, err
	}
	return c, nil
}

// replyCode returns the FTP reply code in err, or 0 when err carries none.
func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// connBroken reports whether err means the connection is no longer usable:
// an error with no FTP reply code (EOF, reset, timeout, TLS failure) or a
// 421/426 from the server. Any other reply is the server refusing one command
// on a healthy connection.
func connBroken(err error) bool {
	if err == nil {
		return false
	}
	code := replyCode(err)
	return code == 0 || code == 421 || code == 426
}
