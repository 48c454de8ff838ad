package ftpd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// StartVsftpd starts vsftpd (standalone, foreground) on a free port of
// 127.0.0.1 and waits until it greets. The FTP user is chrooted to
// Server.Root with write, mkdir, rename and delete allowed. With opts.TLS it
// requires explicit FTPS (AUTH TLS) for logins and data connections, with
// vsftpd's default require_ssl_reuse=YES (clients must resume the control
// connection's TLS session on data connections: set a ClientSessionCache).
// It skips the test when vsftpd, the FTP user or the PAM service is missing.
func StartVsftpd(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := filepath.Join(Prefix(), "vsftpd", "usr", "sbin", "vsftpd")
	if os.Geteuid() == 0 {
		if _, err := os.Stat(filepath.Join("/etc/pam.d", PAMService)); err != nil {
			t.Skipf("ftpd: PAM service %s missing (%v); %s", PAMService, err, installHint)
		}
	}
	s := newServer(t, "vsftpd", bin, opts)
	// vsftpd changes into the user's home directory before local_root.
	if fi, err := os.Stat(s.home); err != nil || !fi.IsDir() {
		t.Skipf("ftpd: home directory %q of user %s missing; %s", s.home, User, installHint)
	}

	// secure_chroot_dir: an empty directory owned by root, not writable by
	// others, that vsftpd's unprivileged processes chroot into.
	empty := filepath.Join(s.dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatalf("ftpd: %v", err)
	}

	confFile := filepath.Join(s.dir, "vsftpd.conf")
	s.args = []string{confFile}
	s.firstStart(func() {
		conf := []string{
			"listen=YES",
			"listen_ipv6=NO",
			"background=NO",
			"listen_address=127.0.0.1",
			fmt.Sprintf("listen_port=%d", s.Port),
			"ftpd_banner=kafka-backup test vsftpd",

			"anonymous_enable=NO",
			"local_enable=YES",
			"write_enable=YES",
			"local_umask=022",
			"chroot_local_user=YES",
			"allow_writeable_chroot=YES",
			"local_root=" + s.Root,
			"pam_service_name=" + PAMService,
			"userlist_enable=NO",
			"tcp_wrappers=NO",
			"hide_ids=NO",
			"dirmessage_enable=NO",
			"max_clients=0",
			"max_per_ip=0",

			"pasv_enable=YES",
			"pasv_address=127.0.0.1",
			"pasv_addr_resolve=NO",
			fmt.Sprintf("pasv_min_port=%d", s.PassiveMin),
			fmt.Sprintf("pasv_max_port=%d", s.PassiveMax),
			"pasv_promiscuous=NO",
			"port_enable=YES",
			"connect_from_port_20=NO",

			// Containers: with vsftpd's seccomp sandbox, the first data
			// command dies with 500 "OOPS: priv_sock_get_cmd" on this
			// machine (a gVisor sandbox). The PID/network namespaces of
			// isolate=YES need CAP_SYS_ADMIN, which unprivileged containers
			// lack (they do work here).
			"seccomp_sandbox=NO",
			"isolate=NO",
			"isolate_network=NO",
			"secure_chroot_dir=" + empty,
			"nopriv_user=nobody",

			"syslog_enable=NO",
			"xferlog_enable=YES",
			"xferlog_std_format=NO",
			"log_ftp_protocol=YES",
			"vsftpd_log_file=" + s.logFile,
			"use_localtime=NO",
			"idle_session_timeout=600",
			"data_connection_timeout=120",
		}
		if opts.TLS {
			conf = append(conf,
				"ssl_enable=YES",
				"rsa_cert_file="+s.CAFile,
				"rsa_private_key_file="+filepath.Join(s.dir, "key.pem"),
				"allow_anon_ssl=NO",
				"force_local_logins_ssl=YES",
				"force_local_data_ssl=YES",
				"ssl_sslv2=NO",
				"ssl_sslv3=NO",
				"ssl_tlsv1=YES",
				// vsftpd 3.0.3 defaults to DES-CBC3-SHA, which Go no longer
				// offers.
				"ssl_ciphers=HIGH",
				// require_ssl_reuse stays at its default, YES.
			)
		}
		conf = append(conf, opts.ExtraConfig...)
		// vsftpd insists that its config file belongs to the user running it.
		if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("ftpd: %v", err)
		}
	})
	return s
}
