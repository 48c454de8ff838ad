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
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
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
