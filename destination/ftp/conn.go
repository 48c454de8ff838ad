package ftp

import (
	"context"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
)

// dial opens and logs in one control connection with the destination's
// settings (internal/ftpconn: deadlines on every read and write, explicit TLS
// on control and data connections, TLS session reuse). ctx bounds the dialing
// of every connection it makes.
func dial(ctx context.Context, cfg *Config) (*jftp.ServerConn, error) {
	return ftpconn.Dial(ctx, ftpconn.Config{
		Addr:           cfg.Addr,
		User:           cfg.User,
		Password:       cfg.Password,
		TLS:            cfg.TLS,
		ConnectTimeout: cfg.ConnectTimeout,
		IOTimeout:      cfg.IOTimeout,
		DisableEPSV:    cfg.DisableEPSV,
	})
}

// connBroken reports whether err means the connection is no longer usable:
// an error with no FTP reply code (EOF, reset, timeout, TLS failure) or a
// 421/426 from the server. Any other reply is the server refusing one command
// on a healthy connection.
func connBroken(err error) bool { return ftpconn.Broken(err) }

// sideConnections bounds the connections a destination opens besides its
// uploaders' (at most Config.MaxConnections): reading what the server holds
// when a partition arrives, its recreated-topic note, a stored record, and
// writing a note. Partitions arrive many at once (a start, a rebalance), and
// servers limit logins (pure-ftpd's default is 8 per user or address): one
// login per partition at once was refused with 421.
const sideConnections = 2

// dialSide opens a connection for one of those reads, waiting (within ctx)
// while sideConnections are open. release logs out and frees the place.
func (d *Destination) dialSide(ctx context.Context) (c *jftp.ServerConn, release func(), err error) {
	select {
	case d.side <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, context.Cause(ctx)
	}
	c, err = dial(ctx, &d.cfg)
	if err != nil {
		<-d.side
		return nil, nil, err
	}
	return c, func() { _ = c.Quit(); <-d.side }, nil
}
