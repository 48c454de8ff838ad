package tree

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"sync"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"github.com/kafka-backup/kafka-backup/internal/ftpconn"
	"github.com/kafka-backup/kafka-backup/layout"
)

// maxAttempts bounds the attempts of one FTP operation on connections that
// break (EOF, reset, timeout, 421, 426); a read that makes progress starts
// the count again.
const maxAttempts = 3

// ftpSource is a tree on an FTP server. It keeps at most MaxConnections
// control connections, each carrying one listing or transfer at a time, and
// reuses idle ones.
type ftpSource struct {
	cfg     ftpconn.Config
	root    string
	display string

	life  context.Context // bounds every dial; cancelled by Close
	stop  context.CancelFunc
	slots chan struct{} // one per connection in use

	mu     sync.Mutex
	idle   []*jftp.ServerConn
	closed bool
}

func openFTP(ctx context.Context, u *url.URL, opts Options) (Source, error) {
	display := u.Redacted()
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("backup location %s: no host", display)
	}
	port := u.Port()
	if port == "" {
		port = "21"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("backup location %s: %q is not a TCP port", display, port)
	}
	cfg := ftpconn.Config{
		Addr:           net.JoinHostPort(host, port),
		User:           "anonymous",
		ConnectTimeout: opts.ConnectTimeout,
		IOTimeout:      opts.IOTimeout,
		DisableEPSV:    opts.DisableEPSV,
		ListHidden:     true,
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 30 * time.Second
	}
	if u.User != nil && u.User.Username() != "" {
		cfg.User = u.User.Username()
	}
	cfg.Password = opts.Password
	if cfg.Password == "" {
		cfg.Password = os.Getenv(PasswordEnv)
	}
	if cfg.Password == "" && u.User != nil {
		cfg.Password, _ = u.User.Password()
	}
	if u.Scheme == "ftps" {
		tc, err := tlsConfig(host, opts)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	root := path.Clean("/" + u.Path)
	n := opts.MaxConnections
	if n <= 0 {
		n = 4
	}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &ftpSource{cfg: cfg, root: root, display: display, life: life, stop: stop, slots: make(chan struct{}, n)}
	// Check the server, the login and the root now, with a clear error.
	if _, err := s.list(ctx, root); err != nil {
		s.Close()
		return nil, fmt.Errorf("backup location %s: %w", display, err)
	}
	return s, nil
}

// tlsConfig builds the client TLS configuration of an ftps:// location.
func tlsConfig(host string, opts Options) (*tls.Config, error) {
	if opts.TLS != nil {
		tc := opts.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if tc.ClientSessionCache == nil {
			tc.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
		return tc, nil
	}
	tc := &tls.Config{
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: opts.InsecureSkipVerify,
		// Data connections resume the control connection's session
		// (vsftpd's require_ssl_reuse).
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if opts.ServerName != "" {
		tc.ServerName = opts.ServerName
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", opts.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func (s *ftpSource) String() string { return s.display }

// Close closes the idle connections; connections in use (open readers) are
// closed when their reader is.
func (s *ftpSource) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.closed = true
	s.mu.Unlock()
	for _, c := range idle {
		_ = c.Quit()
	}
	s.stop()
	return nil
}

// acquire returns a connection for one operation, waiting for a free slot:
// an idle one (reused true) or a new one.
func (s *ftpSource) acquire(ctx context.Context) (c *jftp.ServerConn, reused bool, err error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.slots
		return nil, false, errors.New("the backup source is closed")
	}
	if n := len(s.idle); n > 0 {
		c = s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		return c, true, nil
	}
	s.mu.Unlock()
	c, err = ftpconn.Dial(s.life, s.cfg)
	if err != nil {
		<-s.slots
		return nil, false, fmt.Errorf("connecting to %s: %w", s.cfg.Addr, err)
	}
	return c, false, nil
}

// release gives a connection back: kept for reuse unless broken.
func (s *ftpSource) release(c *jftp.ServerConn, broken bool) {
	s.mu.Lock()
	if !broken && !s.closed {
		s.idle = append(s.idle, c)
		c = nil
	}
	s.mu.Unlock()
	<-s.slots
	if c != nil {
		// QUIT on a broken connection may wait for the I/O timeout.
		go func() { _ = c.Quit() }()
	}
}

// withConn runs fn on a connection, again on a new connection when the one
// it used broke.
func (s *ftpSource) withConn(ctx context.Context, fn func(*jftp.ServerConn) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		var c *jftp.ServerConn
		var reused bool
		c, reused, err = s.acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		broken := ftpconn.Broken(err)
		s.release(c, broken)
		if !broken || attempt >= maxAttempts {
			return err
		}
		if !reused {
			// A fresh connection broke: give the server a moment.
			if werr := sleep(ctx, time.Duration(attempt)*500*time.Millisecond); werr != nil {
				return err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// list lists a folder; a missing folder is an error wrapping
// fs.ErrNotExist.
func (s *ftpSource) list(ctx context.Context, dir string) ([]entry, error) {
	var es []*jftp.Entry
	err := s.withConn(ctx, func(c *jftp.ServerConn) error {
		var err error
		es, err = c.List(dir)
		return err
	})
	if err != nil {
		if notExist(err) {
			err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
		}
		return nil, fmt.Errorf("listing %s on %s: %w", dir, s.cfg.Addr, err)
	}
	out := make([]entry, 0, len(es))
	for _, e := range es {
		name := path.Base(e.Name)
		if name == "." || name == ".." || name == "/" {
			continue
		}
		out = append(out, entry{name: name, dir: e.Type == jftp.EntryTypeFolder, size: int64(e.Size)})
	}
	return out, nil
}

// notExist reports whether a reply says a file or folder is missing: 550,
// or 450 as some servers (ftpserverlib) answer LIST. Servers such as vsftpd
// list a missing folder as an empty one.
func notExist(err error) bool {
	code := ftpconn.ReplyCode(err)
	return code == 550 || code == 450
}

func (s *ftpSource) Topics(ctx context.Context) ([]string, error) {
	es, err := s.list(ctx, s.root)
	if err != nil {
		return nil, err
	}
	return topicFolders(es), nil
}

func (s *ftpSource) Stray(ctx context.Context, topic string) ([]Stray, error) {
	dir, folder := s.root, isRootFolder
	if topic != "" {
		if err := layout.ValidTopic(topic); err != nil {
			return nil, err
		}
		dir, folder = path.Join(s.root, topic), isPartitionFolder
	}
	es, err := s.list(ctx, dir)
	if err != nil {
		return nil, err
	}
	return strayNames(es, folder), nil
}

func (s *ftpSource) Partitions(ctx context.Context, topic string) ([]int32, error) {
	if err := layout.ValidTopic(topic); err != nil {
		return nil, err
	}
	es, err := s.list(ctx, path.Join(s.root, topic))
	if err != nil {
		return nil, err
	}
	return partitionFolders(es), nil
}

func (s *ftpSource) partitionDir(topic string, partition int32) string {
	return path.Join(s.root, topic, strconv.FormatInt(int64(partition), 10))
}

func (s *ftpSource) List(ctx context.Context, topic string, partition int32) (Partition, error) {
	if err := layout.ValidTopic(topic); err != nil {
		return Partition{}, err
	}
	es, err := s.list(ctx, s.partitionDir(topic, partition))
	if err != nil {
		return Partition{}, err
	}
	return classify(topic, partition, es), nil
}

func (s *ftpSource) Open(ctx context.Context, topic string, partition int32, name string) (io.ReadCloser, error) {
	if err := checkName(topic, name); err != nil {
		return nil, err
	}
	r := &ftpReader{s: s, ctx: ctx, path: path.Join(s.partitionDir(topic, partition), name), size: -1}
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}
