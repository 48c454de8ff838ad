// Package tree reads a kafka-backup tree, <root>/<topic>/<partition>/<file>
// (docs/FORMAT.md), from a local folder or an FTP/FTPS server: it lists
// topics, partitions and each partition's files, and opens a file for a
// streaming read. It never writes; LocalRoot, FTPRoot and WithFTPConn let
// package prune, the only writer, reach the tree.
//
// A location is a local path (or a file:// URL) or a URL
// ftp://user@host:21/path or ftps://user@host:21/path (explicit TLS: AUTH
// TLS on the control connection, and every data connection encrypted). The
// URL's path is the tree's root on the server, as the kafka_backup output's
// `path` (an absolute path: ftp://host/backups is /backups).
package tree

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
)

// PasswordEnv is the environment variable Open takes the FTP password from
// when Options.Password is empty.
const PasswordEnv = "KAFKA_BACKUP_FTP_PASSWORD"

// Options configures Open. Only the FTP settings exist; a local tree needs
// none.
type Options struct {
	// Password logs in to an FTP server. When empty, the environment
	// variable KAFKA_BACKUP_FTP_PASSWORD, else the password in the URL, else
	// none. It never appears in an error or in String.
	Password string
	// CAFile is a PEM file of certificates trusted for ftps://, on top of
	// the system's.
	CAFile string
	// InsecureSkipVerify accepts any server certificate (tests only).
	InsecureSkipVerify bool
	// ServerName is the name the server's certificate must hold; the URL's
	// host when empty.
	ServerName string
	// TLS, when set, is used for ftps:// instead of CAFile,
	// InsecureSkipVerify and ServerName. Give it a ClientSessionCache: data
	// connections resume the control connection's session.
	TLS *tls.Config

	ConnectTimeout time.Duration // dialing, TLS and login of a connection; 10s when 0
	IOTimeout      time.Duration // every read and write on a connection; 30s when 0
	// MaxConnections bounds the connections to an FTP server, each carrying
	// one transfer or listing at a time; 4 when 0. Open files hold one
	// each: Open waits while all are in use.
	MaxConnections int
	DisableEPSV    bool // passive mode with PASV only
}

// File is a final file of a partition: its name states the offset of its
// first record.
type File struct {
	Name        string
	FirstOffset int64
	Size        int64 // bytes
}

// Leftover is a hidden file of a partition folder: a file being written
// (".<name>.<instance>.inprogress"), the remains of a crashed writer, or an
// FTP upload in progress or abandoned (".<name>.<instance>.upload"). None
// holds records a final file is sure to hold; a restore skips them.
type Leftover struct {
	Name string
	Size int64
}

// Partition is what a partition folder holds.
type Partition struct {
	Topic     string
	Partition int32
	// Files are the final files sorted by first offset, then by name (the
	// same offset may name two files, "101" and "00000000000000000101.log").
	Files []File
	// Leftovers are the hidden files other than layout.MarkerName, by name.
	Leftovers []Leftover
	// Stray are the other names in the folder (neither a final file nor a
	// hidden file; folders too), by name, and every name that is not a
	// regular file or folder: a FIFO, socket or device, a symbolic link out
	// of the tree or to nothing. None is ever opened.
	Stray []string
	// NotRegular says, for the names of Stray that are not a regular file or
	// folder, what they are ("a FIFO", "a symbolic link out of the tree").
	NotRegular map[string]string
	// Pruned says the folder holds a layout.PrunedNote (ReadPruned reads
	// it): files below an offset were deleted on purpose.
	Pruned bool
}

// Bytes returns the size of the partition's final files.
func (p Partition) Bytes() int64 {
	var n int64
	for _, f := range p.Files {
		n += f.Size
	}
	return n
}

// Source is a backup tree. Its methods are safe for concurrent use.
type Source interface {
	// String returns the location, without any password.
	String() string
	// Topics returns the topic folders below the root, sorted: folders
	// whose name is a valid Kafka topic name.
	Topics(ctx context.Context) ([]string, error)
	// Partitions returns the partition folders of a topic, sorted: folders
	// named by a partition number in plain decimal.
	Partitions(ctx context.Context, topic string) ([]int32, error)
	// Stray returns, by name, the names below the root (topic "") or in a
	// topic folder that Topics or Partitions leave out: files, folders not
	// named as a topic or a partition, and anything that is not a regular
	// file or folder.
	Stray(ctx context.Context, topic string) ([]Stray, error)
	// List lists a partition folder.
	List(ctx context.Context, topic string, partition int32) (Partition, error)
	// Open opens a file of a partition folder for reading from its start.
	// The reader must be closed; on an FTP server it holds a connection
	// until then. A missing file is an error wrapping fs.ErrNotExist.
	Open(ctx context.Context, topic string, partition int32, name string) (io.ReadCloser, error)
	// Close releases the source's connections.
	Close() error
}

// Open opens the backup tree at location: a local folder, file:///folder,
// ftp://[user[:password]@]host[:port]/path or ftps://… (port 21 by default,
// user anonymous). It checks that the root can be listed.
func Open(ctx context.Context, location string, opts Options) (Source, error) {
	local, u, err := parseLocation(location, "backup location", "folder")
	switch {
	case err != nil:
		return nil, err
	case u == nil:
		return openLocal(local)
	}
	return openFTP(ctx, u, opts)
}

// OpenFile opens one file of a backup tree: a local path (or file:///path),
// or ftp://[user@]host[:port]/<root>/<topic>/<partition>/<name> (or
// ftps://), with opts for the connection. A local path may be any file.
func OpenFile(ctx context.Context, location string, opts Options) (io.ReadCloser, error) {
	local, u, err := parseLocation(location, "backup file", "file")
	switch {
	case err != nil:
		return nil, err
	case u == nil:
		return openLocalFile(local)
	}
	p := path.Clean("/" + u.Path)
	name := path.Base(p)
	pdir := path.Dir(p)
	tdir := path.Dir(pdir)
	partition, ok := partitionName(path.Base(pdir))
	if !ok || layout.ValidTopic(path.Base(tdir)) != nil || name == "/" {
		return nil, fmt.Errorf("backup file %s: an FTP file must be given as …/<topic>/<partition>/<file> of a backup tree", u.Redacted())
	}
	root := *u
	root.Path = path.Dir(tdir)
	root.RawPath = ""
	src, err := openFTP(ctx, &root, opts)
	if err != nil {
		return nil, err
	}
	rc, err := src.Open(ctx, path.Base(tdir), partition, name)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("backup file %s: %w", u.Redacted(), err)
	}
	return &sourceFile{ReadCloser: rc, src: src}, nil
}

// sourceFile is a file that closes its source with it.
type sourceFile struct {
	io.ReadCloser
	src Source
}

func (f *sourceFile) Close() error {
	err := f.ReadCloser.Close()
	f.src.Close()
	return err
}

// openLocalFile opens a local file, refusing a folder and anything else
// that is not a regular file.
func openLocalFile(p string) (io.ReadCloser, error) {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a folder: give a file (kafka-backup ls lists them)", p)
	}
	return openRegular(p)
}

// parseLocation splits a location into a local path (u nil) or an ftp:// or
// ftps:// URL. what names the location in errors ("backup location"), kind
// what a local one is ("folder").
func parseLocation(location, what, kind string) (local string, u *url.URL, err error) {
	if !strings.Contains(location, "://") {
		return location, nil, nil
	}
	if u, err = url.Parse(location); err != nil {
		// url.Parse errors quote the URL, password included.
		return "", nil, fmt.Errorf("%s %s: not a valid URL", what, Redact(location))
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return "", nil, fmt.Errorf("%s %s: a file URL names no host (file:///path)", what, u.Redacted())
		}
		return u.Path, nil, nil
	case "ftp", "ftps":
		return "", u, nil
	}
	return "", nil, fmt.Errorf("%s %s: unknown scheme %q: give a local %s, ftp://… or ftps://…", what, u.Redacted(), u.Scheme, kind)
}

// Redact hides what looks like a password in a location that may not be a
// valid URL: "ftp://user:xxxxx@host/path".
func Redact(s string) string {
	i := strings.Index(s, "://")
	at := strings.LastIndex(s, "@")
	if i < 0 || at < i {
		return s
	}
	if c := strings.Index(s[i+3:at], ":"); c >= 0 {
		return s[:i+3+c+1] + "xxxxx" + s[at:]
	}
	return s
}

// partitionName returns the partition a folder name states: plain decimal,
// no sign, no leading zero.
func partitionName(name string) (int32, bool) {
	p, err := strconv.ParseInt(name, 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != name {
		return 0, false
	}
	return int32(p), true
}

// topicFolders returns the folders among es named as a Kafka topic, sorted.
func topicFolders(es []entry) []string {
	var out []string
	for _, e := range es {
		if e.dir && layout.ValidTopic(e.name) == nil {
			out = append(out, e.name)
		}
	}
	sort.Strings(out)
	return out
}

// Stray is a name outside the partition folders that is not part of the
// backup.
type Stray struct {
	Name string
	// NotRegular says what the name is when it is not a regular file or
	// folder ("a FIFO", "a symbolic link out of the tree, to …"); empty
	// otherwise.
	NotRegular string
}

// strayNames returns the names among es that folder does not take (a topic
// folder at the root, a partition folder in a topic folder), by name.
func strayNames(es []entry, folder func(e entry) bool) []Stray {
	var out []Stray
	for _, e := range es {
		if e.special != "" || !folder(e) {
			out = append(out, Stray{Name: e.name, NotRegular: e.special})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func isTopicFolder(e entry) bool { return e.dir && layout.ValidTopic(e.name) == nil }

func isPartitionFolder(e entry) bool {
	_, ok := partitionName(e.name)
	return ok && e.dir
}

// partitionFolders returns the partitions of the folders among es named by
// a partition number, sorted.
func partitionFolders(es []entry) []int32 {
	var out []int32
	for _, e := range es {
		if p, ok := partitionName(e.name); ok && e.dir {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// entry is one name in a folder.
type entry struct {
	name string
	dir  bool
	size int64
	// special, when set, says what the name is instead of a regular file
	// or folder ("a FIFO"); such a name is a stray and never opened.
	special string
}

// classify sorts a partition folder's entries into a Partition.
func classify(topic string, partition int32, entries []entry) Partition {
	p := Partition{Topic: topic, Partition: partition}
	for _, e := range entries {
		switch kind := layout.Classify(e.name); {
		case e.special != "":
			p.Stray = append(p.Stray, e.name)
			if p.NotRegular == nil {
				p.NotRegular = map[string]string{}
			}
			p.NotRegular[e.name] = e.special
		case e.dir:
			p.Stray = append(p.Stray, e.name)
		case kind == layout.KindMarker:
		case kind == layout.KindPruned:
			p.Pruned = true
		case kind == layout.KindFinal:
			off, _ := layout.ParseFileName(e.name)
			p.Files = append(p.Files, File{Name: e.name, FirstOffset: off, Size: e.size})
		case kind != layout.KindStray:
			p.Leftovers = append(p.Leftovers, Leftover{Name: e.name, Size: e.size})
		default:
			p.Stray = append(p.Stray, e.name)
		}
	}
	sort.Slice(p.Files, func(i, j int) bool {
		a, b := p.Files[i], p.Files[j]
		if a.FirstOffset != b.FirstOffset {
			return a.FirstOffset < b.FirstOffset
		}
		return a.Name < b.Name
	})
	sort.Slice(p.Leftovers, func(i, j int) bool { return p.Leftovers[i].Name < p.Leftovers[j].Name })
	sort.Strings(p.Stray)
	return p
}

// checkName refuses a file name that is not one name in a partition folder.
func checkName(topic string, name string) error {
	if err := layout.ValidTopic(topic); err != nil {
		return err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("file name %q: not a name in a partition folder", name)
	}
	return nil
}

// errNotDir says a location is not a folder.
var errNotDir = errors.New("not a folder")

// ---------------------------------------------------------------------------
// Local

type localSource struct {
	root string
	real string // root with every symbolic link resolved, absolute
}

func openLocal(root string) (Source, error) {
	if root == "" {
		return nil, errors.New("backup location is empty")
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("backup location: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("backup location %s: %w", root, errNotDir)
	}
	real, err := filepath.EvalSymlinks(root)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return nil, fmt.Errorf("backup location %s: %w", root, err)
	}
	return &localSource{root: root, real: real}, nil
}

// special says what a file mode is when it is neither a regular file nor a
// folder; "" when it is one of them.
func special(m fs.FileMode) string {
	switch {
	case m.IsRegular(), m.IsDir():
		return ""
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// resolve returns the path a name below the root stands for with symbolic
// links followed, and an error when a link leads out of the tree or to
// nothing.
func (s *localSource) resolve(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("a symbolic link to nothing")
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(s.real, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("a symbolic link out of the tree, to %s", real)
	}
	return real, nil
}

func (s *localSource) String() string { return s.root }

func (s *localSource) Close() error { return nil }

func (s *localSource) readDir(dir string) ([]entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, d := range des {
		e := entry{name: d.Name(), dir: d.IsDir()}
		if d.Type()&fs.ModeSymlink != 0 {
			// A symbolic link counts as what it points to, inside the
			// tree only.
			real, err := s.resolve(filepath.Join(dir, d.Name()))
			if err != nil {
				e.special = err.Error()
				out = append(out, e)
				continue
			}
			info, err := os.Stat(real)
			if err != nil {
				continue // removed since the listing
			}
			e.dir, e.size = info.IsDir(), info.Size()
			if sp := special(info.Mode()); sp != "" {
				e.special = "a symbolic link to " + sp
			}
		} else if sp := special(d.Type()); sp != "" {
			e.special = sp
		} else if !e.dir {
			info, err := d.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // renamed away since the listing
			}
			if err != nil {
				return nil, err
			}
			e.size = info.Size()
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *localSource) Topics(ctx context.Context) ([]string, error) {
	es, err := s.readDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", s.root, err)
	}
	return topicFolders(es), nil
}

func (s *localSource) Stray(ctx context.Context, topic string) ([]Stray, error) {
	dir, folder := s.root, isRootFolder
	if topic != "" {
		if err := layout.ValidTopic(topic); err != nil {
			return nil, err
		}
		dir, folder = filepath.Join(s.root, topic), isPartitionFolder
	}
	es, err := s.readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return strayNames(es, folder), nil
}

func (s *localSource) Partitions(ctx context.Context, topic string) ([]int32, error) {
	if err := layout.ValidTopic(topic); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.root, topic)
	es, err := s.readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return partitionFolders(es), nil
}

func (s *localSource) List(ctx context.Context, topic string, partition int32) (Partition, error) {
	if err := layout.ValidTopic(topic); err != nil {
		return Partition{}, err
	}
	dir := layout.PartitionDir(s.root, topic, partition)
	es, err := s.readDir(dir)
	if err != nil {
		return Partition{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	return classify(topic, partition, es), nil
}

func (s *localSource) Open(ctx context.Context, topic string, partition int32, name string) (io.ReadCloser, error) {
	if err := checkName(topic, name); err != nil {
		return nil, err
	}
	p := filepath.Join(layout.PartitionDir(s.root, topic, partition), name)
	if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if _, err := s.resolve(p); err != nil {
			return nil, fmt.Errorf("%s: %v: not opened", p, err)
		}
	}
	return openRegular(p)
}

// openRegular opens a file for reading, refusing anything but a regular
// file without blocking on it: opening a FIFO waits for a writer, reading
// a device may never end.
func openRegular(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if sp := special(st.Mode()); sp != "" {
		f.Close()
		return nil, fmt.Errorf("%s is %s, not a regular file: not read", p, sp)
	}
	return f, nil
}
