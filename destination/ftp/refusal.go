package ftp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path"
	"regexp"
	"time"

	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
)

// Refusal is a permanent answer of the server: a refused login, TLS
// required or refused, an untrusted certificate, no permission to store
// files on the path. Retrying does not help until the operator changes the
// configuration or the server, so the destination is not ready while one
// holds (Ready), and records are not acknowledged into the spool: the spool
// is for outages, not for a server that says no.
type Refusal struct {
	Err error
	// Fix says what to change, naming the configuration field.
	Fix string
	// login is true when a successful login ends the refusal; otherwise a
	// successful upload into folder does.
	login  bool
	folder string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%v: %s", r.Err, r.Fix) }

// Unwrap returns the server's answer.
func (r *Refusal) Unwrap() error { return r.Err }

// tlsHint matches server answers that are about TLS.
var tlsHint = regexp.MustCompile(`(?i)encrypt|\bTLS\b|\bSSL\b|cleartext|secure`)

// dialRefusal returns err as a *Refusal when it is a permanent refusal of a
// dial (connection, TLS, login), else err itself.
func (d *Destination) dialRefusal(err error) error {
	if err == nil {
		return nil
	}
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		verify    *tls.CertificateVerificationError
		login     *ftpconn.LoginError
	)
	switch {
	case errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &verify):
		return &Refusal{Err: err, login: true,
			Fix: "the server's TLS certificate is not trusted: give its CA in fs.ftp.tls.root_cas_file (or root_cas), or the name it is issued for in fs.ftp.server_name"}
	case errors.As(err, &login) && tlsHint.MatchString(err.Error()):
		if d.cfg.TLS == nil {
			return &Refusal{Err: err, login: true, Fix: "the server accepts logins over TLS only: enable fs.ftp.tls (explicit FTPS)"}
		}
		return &Refusal{Err: err, login: true, Fix: "the server refuses the TLS login: check fs.ftp.tls"}
	case errors.As(err, &login):
		return &Refusal{Err: err, login: true,
			Fix: fmt.Sprintf("the server refused the login of user %q: check fs.ftp.user and fs.ftp.password (and fs.ftp.tls if the server wants TLS)", d.cfg.User)}
	}
	switch code := ftpconn.ReplyCode(err); {
	case code == 534 || code >= 500 && tlsHint.MatchString(err.Error()):
		if d.cfg.TLS == nil {
			return &Refusal{Err: err, login: true, Fix: "the server requires TLS: enable fs.ftp.tls (explicit FTPS)"}
		}
		return &Refusal{Err: err, login: true, Fix: "the server refuses explicit FTPS (AUTH TLS): check fs.ftp.tls, or disable it if the server has no TLS"}
	case code == 421 && tlsHint.MatchString(err.Error()) && d.cfg.TLS == nil:
		return &Refusal{Err: err, login: true, Fix: "the server requires TLS: enable fs.ftp.tls (explicit FTPS)"}
	case code >= 500 && d.cfg.TLS != nil:
		// AUTH TLS refused (500, 502, 504): no explicit FTPS there.
		return &Refusal{Err: err, login: true, Fix: "the server refuses explicit FTPS (AUTH TLS): check fs.ftp.tls, or disable it if the server has no TLS"}
	}
	return err
}

// storeRefusal returns err, the failure of a STOR or of the rename of an
// upload, as a *Refusal when the server refuses it for good: 550 or 553
// (permission denied, folder missing and not creatable, renames denied),
// 532 (account needed), 530.
func (d *Destination) storeRefusal(err error) error {
	switch ftpconn.ReplyCode(err) {
	case 530, 532, 550, 553:
		return &Refusal{Err: err,
			Fix: fmt.Sprintf("the server refuses to store or rename files below %s (permission denied on the path?): give FTP user %q write permission there (STOR, RNFR/RNTO), or change path", path.Join("/", d.cfg.Root), d.cfg.User)}
	}
	return err
}

// refuse records a refusal: Ready fails with it until it ends. It is
// reported once, and again only when its text changes.
func (d *Destination) refuse(r *Refusal) {
	d.mu.Lock()
	same := d.refused != nil && d.refused.Fix == r.Fix
	d.refused = r
	d.mu.Unlock()
	if !same {
		d.obs.Error(fmt.Errorf("the FTP server %s refuses kafka-backup; nothing more is acknowledged until this is fixed: %w", d.cfg.Addr, r))
	}
}

// accepted ends a refusal after a successful login (login), or upload into
// folder: an upload refused in one folder is not ended by one into another.
func (d *Destination) accepted(login bool, folder string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refused != nil && (d.refused.login || !login && d.refused.folder == folder) {
		d.refused = nil
		d.cond.Broadcast()
	}
}

// probeEvery is how often a refused login is tried again.
const probeEvery = 5 * time.Second

// prober tries the login again while a refused login holds, so that a fixed
// password or server is noticed without a restart.
func (d *Destination) prober(ctx context.Context) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		r, closing := d.refused, d.closing
		d.mu.Unlock()
		if closing {
			return
		}
		if r == nil || !r.login {
			continue
		}
		c, err := dial(ctx, &d.cfg)
		if err == nil {
			_ = c.Quit()
			d.accepted(true, "")
			continue
		}
		var again *Refusal
		if errors.As(d.dialRefusal(err), &again) {
			d.refuse(again)
		}
	}
}
