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
