package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// fixture is a backup tree written below a folder: what each file holds.
type fixture map[string][]byte // slash path below the root -> content

// sample is a tree with every kind of name a partition folder may hold.
func sample(rng *rand.Rand) fixture {
	data := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	return fixture{
		"orders/0/0":                            data(1000),
		"orders/0/250":                          data(3 << 20), // several MiB: a streamed read
		"orders/0/00000000000000000100.log":     data(10),
		"orders/0/.300.host-1.inprogress":       data(7),
		"orders/0/.250.host-2.upload":           data(5),
		"orders/0/" + layout.MarkerName:         []byte("0 0-99\n"),
		"orders/0/notes.txt":                    []byte("stray"),
		"orders/0/0100":                         []byte("a leading zero is no final name"),
		"orders/1/7":                            data(1),
		"orders/01/5":                           data(1), // not a partition folder
		"orders/x/5":                            data(1), // not a partition folder
		"my.topic_v2-x/3/12":                    data(64),
		"bad topic/0/0":                         data(1), // not a topic name
		"README":                                []byte("not a topic folder"),
		"orders/0/sub/0":                        data(1), // a folder where files belong
		"empty-topic/.keep-me-hidden-in-folder": nil,
	}
}

func (f fixture) write(t *testing.T, root string) {
	t.Helper()
	for p, b := range f {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkTree checks what src lists and reads against the sample fixture.
func checkTree(t *testing.T, src Source, fx fixture) {
	t.Helper()
	ctx := context.Background()
	topics, err := src.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"empty-topic", "my.topic_v2-x", "orders"}
	if !reflect.DeepEqual(topics, want) {
		t.Errorf("topics %q, want %q", topics, want)
	}
	// Names the topic and partition listings leave out are strays.
	if ss, err := src.Stray(ctx, ""); err != nil || !reflect.DeepEqual(ss, []Stray{{Name: "README"}, {Name: "bad topic"}}) {
		t.Errorf("strays at the root: %+v, %v", ss, err)
	}
	if ss, err := src.Stray(ctx, "orders"); err != nil || !reflect.DeepEqual(ss, []Stray{{Name: "01"}, {Name: "x"}}) {
		t.Errorf("strays in orders: %+v, %v", ss, err)
	}
	parts, err := src.Partitions(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{0, 1}; !reflect.DeepEqual(parts, want) {
		t.Errorf("partitions %v, want %v", parts, want)
	}
	if parts, err := src.Partitions(ctx, "empty-topic"); err != nil || len(parts) != 0 {
		t.Errorf("empty-topic: partitions %v, %v; want none", parts, err)
	}
	p, err := src.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	size := func(name string) int64 { return int64(len(fx["orders/0/"+name])) }
	wantFiles := []File{
		{Name: "0", FirstOffset: 0, Size: size("0")},
		{Name: "00000000000000000100.log", FirstOffset: 100, Size: size("00000000000000000100.log")},
		{Name: "250", FirstOffset: 250, Size: size("250")},
	}
	if !reflect.DeepEqual(p.Files, wantFiles) {
		t.Errorf("files %+v, want %+v", p.Files, wantFiles)
	}
	wantLeft := []Leftover{
		{Name: ".250.host-2.upload", Size: 5},
		{Name: ".300.host-1.inprogress", Size: 7},
	}
	if !reflect.DeepEqual(p.Leftovers, wantLeft) {
		t.Errorf("leftovers %+v, want %+v", p.Leftovers, wantLeft)
	}
	if want := []string{"0100", "notes.txt", "sub"}; !reflect.DeepEqual(p.Stray, want) {
		t.Errorf("stray %q, want %q", p.Stray, want)
	}
	if p.Bytes() != size("0")+size("250")+size("00000000000000000100.log") {
		t.Errorf("Bytes() = %d", p.Bytes())
	}
	if _, err := src.List(ctx, "orders", 9); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("listing a missing partition: %v, want fs.ErrNotExist", err)
	}

	// Every final file reads back byte for byte, in small and large reads.
	for _, f := range wantFiles {
		r, err := src.Open(ctx, "orders", 0, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading %s: %v", f.Name, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, fx["orders/0/"+f.Name]) {
			t.Errorf("%s: read %d bytes that differ from the %d written", f.Name, len(got), f.Size)
		}
	}
	// A reader closed early, then the next file on the same source.
	r, err := src.Open(ctx, "orders", 0, "250")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, fx["orders/0/250"][:1000]) {
		t.Fatalf("first 1000 bytes of 250: %v", err)
	}
	r.Close()
	r, err = src.Open(ctx, "my.topic_v2-x", 3, "12")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, fx["my.topic_v2-x/3/12"]) {
		t.Errorf("my.topic_v2-x/3/12 after an early close: %v", err)
	}
	r.Close()

	if _, err := src.Open(ctx, "orders", 0, "999"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("opening a missing file: %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"../1/7", "", "..", "a/b"} {
		if r, err := src.Open(ctx, "orders", 0, bad); err == nil {
			r.Close()
			t.Errorf("Open accepted the name %q", bad)
		}
	}
	if _, err := src.Partitions(ctx, "../orders"); err == nil {
		t.Error("Partitions accepted the topic ../orders")
	}
}

func TestLocal(t *testing.T) {
	root := t.TempDir()
	fx := sample(rand.New(rand.NewSource(1)))
	fx.write(t, root)
	for _, loc := range []string{root, "file://" + root} {
		src, err := Open(context.Background(), loc, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if src.String() != root {
			t.Errorf("String() = %q, want %q", src.String(), root)
		}
		checkTree(t, src, fx)
		src.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct{ loc, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{file, "not a folder"},
		{"", "empty"},
		{"s3://bucket/x", `unknown scheme "s3"`},
		{"ftp:///x", "no host"},
		{"ftp://h:99999/x", "not a TCP port"},
		{"file://host/x", "names no host"},
	} {
		_, err := Open(context.Background(), tc.loc, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): %v, want an error with %q", tc.loc, err, tc.want)
		}
	}
}

// ftpURL returns the ftp:// or ftps:// URL of a folder on srv, with the user
// and no password.
func ftpURL(srv *ftptest.Server, scheme, dir string) string {
	return fmt.Sprintf("%s://%s@%s/%s", scheme, srv.User, srv.Addr, strings.TrimPrefix(dir, "/"))
}

func TestFTP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    bool
		caFile bool
	}{{"ftp", false, false}, {"ftps", true, true}, {"ftps-tls-config", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []ftptest.Option
			if tc.tls {
				opts = append(opts, ftptest.WithTLS())
			}
			srv := ftptest.Start(t, opts...)
			fx := sample(rand.New(rand.NewSource(2)))
			fx.write(t, filepath.Join(srv.Root, "backups", "prod"))
			scheme := "ftp"
			o := Options{Password: srv.Password, IOTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second}
			if tc.tls {
				scheme = "ftps"
				if tc.caFile {
					o.CAFile = filepath.Join(t.TempDir(), "ca.pem")
					if err := os.WriteFile(o.CAFile, srv.CertPEM, 0o644); err != nil {
						t.Fatal(err)
					}
				} else {
					o.TLS = srv.ClientTLSConfig()
				}
			}
			src, err := Open(context.Background(), ftpURL(srv, scheme, "/backups/prod"), o)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if strings.Contains(src.String(), srv.Password) {
				t.Errorf("String() shows the password: %s", src.String())
			}
			checkTree(t, src, fx)
		})
	}
}

func TestFTPTLSNeedsTrust(t *testing.T) {
	srv := ftptest.Start(t, ftptest.WithTLS())
	os.MkdirAll(filepath.Join(srv.Root, "b"), 0o755)
	loc := ftpURL(srv, "ftps", "b")
	_, err := Open(context.Background(), loc, Options{Password: srv.Password})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a self-signed server without the CA: %v, want a certificate error", err)
	}
	src, err := Open(context.Background(), loc, Options{Password: srv.Password, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("with InsecureSkipVerify: %v", err)
	}
	src.Close()
	// Plain FTP to a server that requires TLS is refused at login.
	if _, err := Open(context.Background(), ftpURL(srv, "ftp", "b"), Options{Password: srv.Password}); err == nil {
		t.Error("plain FTP to a TLS-only server: no error")
	}
}

// TestFTPPassword checks where the password comes from: Options, else the
// environment, else the URL; and that no error shows it.
func TestFTPPassword(t *testing.T) {
	srv := ftptest.Start(t)
	os.MkdirAll(filepath.Join(srv.Root, "b"), 0o755)
	hostPath := fmt.Sprintf("%s/b", srv.Addr)
	open := func(loc string, o Options) error {
		src, err := Open(context.Background(), loc, o)
		if err == nil {
			src.Close()
		}
		return err
	}
	withURLPassword := fmt.Sprintf("ftp://%s:%s@%s", srv.User, srv.Password, hostPath)
	wrongURLPassword := fmt.Sprintf("ftp://%s:wrong-secret@%s", srv.User, hostPath)
	noPassword := fmt.Sprintf("ftp://%s@%s", srv.User, hostPath)

	t.Setenv(PasswordEnv, "")
	if err := open(withURLPassword, Options{}); err != nil {
		t.Errorf("password in the URL: %v", err)
	}
	if err := open(wrongURLPassword, Options{Password: srv.Password}); err != nil {
		t.Errorf("Options.Password must win over the URL's: %v", err)
	}
	err := open(wrongURLPassword, Options{})
	if err == nil {
		t.Error("a wrong password: no error")
	} else if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if err := open(noPassword, Options{}); err == nil {
		t.Error("no password at all: no error")
	}
	t.Setenv(PasswordEnv, srv.Password)
	if err := open(noPassword, Options{}); err != nil {
		t.Errorf("password from %s: %v", PasswordEnv, err)
	}
	if err := open(wrongURLPassword, Options{}); err != nil {
		t.Errorf("%s must win over the URL's password: %v", PasswordEnv, err)
	}
	if err := open(noPassword, Options{Password: "wrong-secret"}); err == nil {
		t.Error("Options.Password must win over the environment")
	}
	// An invalid URL with a password does not show it either.
	if err := open("ftp://u:wrong-secret@h:x:y/%zz", Options{}); err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("invalid URL: %v", err)
	}
	// A missing root folder.
	err = open(fmt.Sprintf("ftp://%s@%s/nope", srv.User, srv.Addr), Options{Password: srv.Password})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: %v, want fs.ErrNotExist", err)
	}
}

// TestFTPPool checks that open readers hold a connection each, that Open
// waits while all are in use, and that connections are reused.
func TestFTPPool(t *testing.T) {
	srv := ftptest.Start(t)
	fx := fixture{"t/0/0": bytes.Repeat([]byte("a"), 100), "t/0/100": bytes.Repeat([]byte("b"), 100)}
	fx.write(t, srv.Root)
	src, err := Open(context.Background(), ftpURL(srv, "ftp", "/"), Options{Password: srv.Password, MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	r1, err := src.Open(ctx, "t", 0, "0")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := src.Open(ctx, "t", 0, "100")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := src.Open(short, "t", 0, "0"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a third Open with 2 connections in use: %v, want it to wait", err)
	}
	if _, err := src.List(short, "t", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a List with 2 connections in use: %v, want it to wait", err)
	}
	// Closing one reader lets a waiting Open through.
	var wg sync.WaitGroup
	wg.Add(1)
	var r3 io.ReadCloser
	var err3 error
	go func() {
		defer wg.Done()
		r3, err3 = src.Open(ctx, "t", 0, "100")
	}()
	time.Sleep(100 * time.Millisecond)
	if b, err := io.ReadAll(r1); err != nil || len(b) != 100 {
		t.Errorf("r1: %d bytes, %v", len(b), err)
	}
	r1.Close()
	wg.Wait()
	if err3 != nil {
		t.Fatal(err3)
	}
	for _, r := range []io.ReadCloser{r2, r3} {
		if b, err := io.ReadAll(r); err != nil || len(b) != 100 || b[0] != 'b' {
			t.Errorf("read %d bytes, %v", len(b), err)
		}
		r.Close()
	}
	for range 5 {
		if _, err := src.List(ctx, "t", 0); err != nil {
			t.Fatal(err)
		}
	}
	if c := srv.Counts(); c.Logins > 3 {
		t.Errorf("%d logins: connections are not reused", c.Logins)
	}
}

// TestFTPResume checks that a transfer broken by a server restart goes on
// from where it stopped, on a new connection, and that a frozen server
// fails a read within the I/O timeout.
func TestFTPResume(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			t.Parallel()
			var opts []ftptest.Option
			o := Options{IOTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second}
			scheme := "ftp"
			if withTLS {
				opts = append(opts, ftptest.WithTLS())
				scheme = "ftps"
			}
			srv := ftptest.Start(t, opts...)
			o.Password = srv.Password
			o.TLS = srv.ClientTLSConfig()
			data := make([]byte, 32<<20)
			rand.New(rand.NewSource(3)).Read(data)
			fixture{"t/0/0": data}.write(t, srv.Root)
			src, err := Open(context.Background(), ftpURL(srv, scheme, "/"), o)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			r, err := src.Open(context.Background(), "t", 0, "0")
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 64<<10)
			if _, err := io.ReadFull(r, head); err != nil {
				t.Fatal(err)
			}
			srv.Restart()
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("reading on after a restart: %v", err)
			}
			if got := append(head, rest...); !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes after a restart, not the %d written", len(got), len(data))
			}
			r.Close()
			if n := srv.Counts().Downloads; n < 2 {
				t.Errorf("%d RETR: the transfer was not resumed", n)
			}

			// A frozen server: the read fails within a few I/O timeouts
			// (three attempts) rather than hanging.
			r, err = src.Open(context.Background(), "t", 0, "0")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := io.ReadFull(r, head); err != nil {
				t.Fatal(err)
			}
			srv.Freeze()
			defer srv.Unfreeze()
			start := time.Now()
			_, err = io.Copy(io.Discard, r)
			if err == nil {
				t.Fatal("reading from a frozen server: no error")
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("the read failed after %v", took)
			}
			if !strings.Contains(err.Error(), "at byte") {
				t.Errorf("error %q does not say where the read stopped", err)
			}
		})
	}
}

// TestLocalNotRegular: symbolic links inside the tree count as what they
// point to; links out of the tree or to nothing, FIFOs and sockets are
// strays, said what they are, and never opened (a FIFO would block).
func TestLocalNotRegular(t *testing.T) {
	ctx := context.Background()
	root, other := t.TempDir(), t.TempDir()
	fixture{"t/0/5": []byte("12345"), "t/0/6": []byte("123456")}.write(t, root)
	fixture{"o/0/5": []byte("12345")}.write(t, other)
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	link(filepath.Join(root, "t"), "inside")           // a topic folder inside the tree
	link(filepath.Join(other, "o"), "outside")         // a topic folder out of the tree
	link("6", "t/0/7")                                 // a file inside the tree
	link(filepath.Join(other, "o", "0", "5"), "t/0/8") // a file out of the tree
	link(filepath.Join(root, "nothing"), "t/0/9")      // to nothing
	if err := syscall.Mkfifo(filepath.Join(root, "t", "0", "10"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := Open(ctx, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if topics, err := src.Topics(ctx); err != nil || !reflect.DeepEqual(topics, []string{"inside", "t"}) {
		t.Errorf("topics %q, %v; want inside and t", topics, err)
	}
	ss, err := src.Stray(ctx, "")
	if err != nil || len(ss) != 2 || ss[0].Name != "fifo" || ss[0].NotRegular != "a FIFO" ||
		ss[1].Name != "outside" || !strings.HasPrefix(ss[1].NotRegular, "a symbolic link out of the tree") {
		t.Errorf("strays at the root: %+v, %v", ss, err)
	}
	p, err := src.List(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []File{{"5", 5, 5}, {"6", 6, 6}, {"7", 7, 6}}; !reflect.DeepEqual(p.Files, want) {
		t.Errorf("files %+v, want %+v", p.Files, want)
	}
	if !reflect.DeepEqual(p.Stray, []string{"10", "8", "9"}) || p.NotRegular["10"] != "a FIFO" ||
		!strings.HasPrefix(p.NotRegular["8"], "a symbolic link out of the tree") || p.NotRegular["9"] != "a symbolic link to nothing" {
		t.Errorf("strays %q, %q", p.Stray, p.NotRegular)
	}
	for _, name := range []string{"8", "10"} {
		done := make(chan error, 1)
		go func() {
			r, err := src.Open(ctx, "t", 0, name)
			if err == nil {
				r.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("Open(%s) opened a stray", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Open(%s) blocks", name)
		}
	}
	if r, err := src.Open(ctx, "t", 0, "7"); err != nil {
		t.Errorf("Open of a link inside the tree: %v", err)
	} else {
		r.Close()
	}
	if r, err := OpenFile(ctx, filepath.Join(root, "fifo"), Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		if r != nil {
			r.Close()
		}
		t.Errorf("OpenFile of a FIFO: %v", err)
	}
}
