package ftpd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// passwordSHA512Crypt is crypt(3) SHA-512 of Password:
// `openssl passwd -6 -salt kafkabackupftpd kbftp-pass`.
const passwordSHA512Crypt = "$6$kafkabackupftpd$S.Tj785cPEsXKNi0YgPWVap/AUSNSoyGOgM80tMsn72Rx8.OX8Hf0vSvrc0Eqh6sHel2qPH0m4y3ptLaY.8hZ."

// StartPureFtpd starts pure-ftpd (standalone, foreground) on a free port of
// 127.0.0.1 and waits until it greets. The FTP user is a pure-ftpd virtual
// user (puredb, made with pure-pw) mapped to the local user kbftp and
// chrooted to Server.Root, with write, mkdir, rename and delete allowed.
// Anonymous logins are refused. With opts.TLS it requires explicit FTPS for
// logins and data connections (-Y 3). pure-ftpd hides dot files from
// listings unless opts.ExtraArgs has "-D". It skips the test when pure-ftpd
// or the FTP user is missing.
func StartPureFtpd(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := filepath.Join(Prefix(), "pure-ftpd")
	bin := filepath.Join(dir, "usr", "sbin", "pure-ftpd")
	s := newServer(t, "pure-ftpd", bin, opts)

	// Virtual user database. The passwd file is written directly instead of
	// with `pure-pw useradd`, which hashes with argon2id at a cost of ~3 s of
	// CPU for pure-pw and again for every login; a SHA-512-crypt hash
	// (checked by libcrypt) takes milliseconds. The "/./" at the end of the
	// home directory chroots the user there.
	passwd := filepath.Join(s.dir, "pureftpd.passwd")
	pdb := filepath.Join(s.dir, "pureftpd.pdb")
	line := fmt.Sprintf("%s:%s:%d:%d::%s/./::::::::::::\n", s.User, passwordSHA512Crypt, s.uid, s.gid, s.Root)
	if err := os.WriteFile(passwd, []byte(line), 0o600); err != nil {
		t.Fatalf("ftpd: %v", err)
	}
	cmd := exec.Command(filepath.Join(dir, "usr", "bin", "pure-pw"), "mkdb", pdb, "-f", passwd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ftpd: pure-pw mkdb: %v\n%s", err, out)
	}

	var tlsArgs []string
	if opts.TLS {
		// pure-ftpd wants the key and the certificate in one PEM file.
		cert := filepath.Join(s.dir, "pure-ftpd.pem")
		c, err := os.ReadFile(s.CAFile)
		if err != nil {
			t.Fatalf("ftpd: %v", err)
		}
		k, err := os.ReadFile(filepath.Join(s.dir, "key.pem"))
		if err != nil {
			t.Fatalf("ftpd: %v", err)
		}
		if err := os.WriteFile(cert, append(k, c...), 0o600); err != nil {
			t.Fatalf("ftpd: %v", err)
		}
		// -Y 3: TLS required on the control and the data connections.
		tlsArgs = []string{"-Y", "3", "-2", cert, "-J", "HIGH"}
	}

	s.firstStart(func() {
		s.args = []string{
			// listen on 127.0.0.1 only, IPv4 only
			"-S", fmt.Sprintf("127.0.0.1,%d", s.Port), "-4",
			// passive port range and the address announced for it
			"-p", fmt.Sprintf("%d:%d", s.PassiveMin, s.PassiveMax), "-P", "127.0.0.1",
			// virtual users only, no anonymous logins, any non-root uid
			"-l", "puredb:" + pdb, "-E", "-u", "1",
			// chroot everyone, create home directories
			"-A", "-j",
			// no DNS look-ups, no syslog, transfer log, umask files:dirs
			"-H", "-f", "none", "-O", "clf:" + s.logFile, "-U", "022:022",
			// max clients, max clients per IP, idle timeout in minutes
			"-c", "50", "-C", "50", "-I", "10",
		}
		s.args = append(s.args, tlsArgs...)
		s.args = append(s.args, opts.ExtraArgs...)
	})
	return s
}
