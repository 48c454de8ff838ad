#!/usr/bin/env bash
# Installs the real FTP servers used by the end-to-end tests in tests/ftpd
# (and by the FTP destination tests built on it):
#
#   * vsftpd and pure-ftpd, unpacked with `apt-get download` + `dpkg -x` into
#     $KB_FTPD_PREFIX/<name> (default /opt/kafka-backup-test/ftpd/<name>),
#     because the two Debian packages conflict (both provide ftp-server) and
#     because installing them properly would start system daemons;
#   * the shared libraries they link against (installed with apt-get);
#   * openssl (certificate tooling; the Go helpers make their certificates
#     with crypto/x509 and do not need it);
#   * a local user "kbftp" (password "kbftp-pass") that both servers log in as,
#     and a PAM service /etc/pam.d/kafka-backup-ftpd that vsftpd authenticates
#     it with.
#
# Idempotent: every step checks first and does nothing when already done.
# `apt-get update` is only run when a package cannot be found.
# When not root, or when apt-get is missing, it prints why and exits 0: the
# tests then skip themselves.
set -euo pipefail

PREFIX="${KB_FTPD_PREFIX:-/opt/kafka-backup-test/ftpd}"
FTP_USER="kbftp"
FTP_PASSWORD="kbftp-pass"
PAM_SERVICE="kafka-backup-ftpd"

log() { echo "ftpd/install: $*"; }

if [ "${EUID:-$(id -u)}" != "0" ]; then
	log "not running as root: skipping install (FTP server tests will be skipped)."
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
	log "apt-get/dpkg not found: skipping install (FTP server tests will be skipped)."
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0

apt_update_once() {
	if [ "$APT_UPDATED" = "0" ]; then
		log "running apt-get update"
		apt-get update -qq
		APT_UPDATED=1
	fi
}

# has_candidate PKG: true when apt knows an installable version of PKG.
has_candidate() {
	local c
	c="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')"
	[ -n "$c" ] && [ "$c" != "(none)" ]
}

is_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
	local missing=() p
	for p in "$@"; do
		is_installed "$p" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	for p in "${missing[@]}"; do
		has_candidate "$p" || apt_update_once
	done
	log "apt-get install ${missing[*]}"
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
		apt_update_once
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# lib_depends PKG: the lib* packages PKG depends on (first alternative).
lib_depends() {
	apt-cache depends "$1" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^lib/ {print $2}' | sort -u
}

# extract PKG BINARY...: unpacks PKG into $PREFIX/PKG unless that version is
# already there, then checks with ldd that BINARY (relative to the unpacked
# root) finds all its shared libraries.
extract() {
	local pkg="$1"; shift
	local dest="$PREFIX/$pkg"
	if [ -f "$dest/.kb-version" ] && binaries_ok "$dest" "$@"; then
		log "$pkg $(cat "$dest/.kb-version") already unpacked in $dest"
		return 0
	fi
	has_candidate "$pkg" || apt_update_once
	local version
	version="$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2; exit}')"
	if [ -z "$version" ] || [ "$version" = "(none)" ]; then
		log "package $pkg not found in the apt repositories"
		return 1
	fi
	local libs
	mapfile -t libs < <(lib_depends "$pkg")
	if [ "${#libs[@]}" -gt 0 ]; then
		apt_install "${libs[@]}"
	fi

	if [ -f "$dest/.kb-version" ] && [ "$(cat "$dest/.kb-version")" = "$version" ]; then
		log "$pkg $version already unpacked in $dest (checking its libraries)"
	else
		local tmp
		tmp="$(mktemp -d)"
		chmod 0755 "$tmp"
		# let apt's sandbox user write there (avoids an "unsandboxed" warning)
		if id _apt >/dev/null 2>&1; then
			chown _apt "$tmp"
		fi
		log "downloading $pkg $version"
		if ! (cd "$tmp" && apt-get download -qq "$pkg=$version" >/dev/null 2>&1); then
			apt_update_once
			(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
		fi
		rm -rf "$dest"
		mkdir -p "$dest"
		dpkg -x "$tmp"/"$pkg"_*.deb "$dest"
		rm -rf "$tmp"
		echo "$version" >"$dest/.kb-version"
		log "unpacked $pkg $version into $dest"
	fi

	binaries_ok "$dest" "$@" || { binaries_ok "$dest" "$@" verbose; return 1; }
}

# binaries_ok DIR BINARY... [verbose]: true when every BINARY under DIR is
# executable and ldd finds all of its shared libraries.
binaries_ok() {
	local dir="$1"; shift
	local verbose="" b missing ok=0
	[ "${!#}" = "verbose" ] && verbose=1
	for b in "$@"; do
		[ "$b" = "verbose" ] && continue
		if [ ! -x "$dir/$b" ]; then
			[ -n "$verbose" ] && log "$dir/$b is missing"
			ok=1
			continue
		fi
		missing="$(ldd "$dir/$b" 2>/dev/null | awk '/not found/ {print $1}')"
		if [ -n "$missing" ]; then
			[ -n "$verbose" ] && log "$dir/$b: missing shared libraries: $missing"
			ok=1
		fi
	done
	return $ok
}

# openssl for certificates, passwd (chpasswd/useradd) and libpam-modules
# (pam_unix) for the login user.
apt_install openssl passwd libpam-modules libpam-runtime

extract vsftpd usr/sbin/vsftpd
extract pure-ftpd usr/sbin/pure-ftpd usr/bin/pure-pw

# The login user. Its home directory is not where the test servers put it
# (each maps the user to its own temporary root), but vsftpd changes into it
# before local_root, so it must exist.
FTP_HOME="/home/$FTP_USER"
if ! id "$FTP_USER" >/dev/null 2>&1; then
	log "creating user $FTP_USER"
	useradd --no-create-home --home-dir "$FTP_HOME" --shell /usr/sbin/nologin \
		--user-group "$FTP_USER"
fi
FTP_HOME="$(getent passwd "$FTP_USER" | cut -d: -f6)"
if [ ! -d "$FTP_HOME" ]; then
	if [ "$FTP_HOME" = "/nonexistent" ] || [ -z "$FTP_HOME" ]; then
		FTP_HOME="/home/$FTP_USER"
		usermod --home "$FTP_HOME" "$FTP_USER"
	fi
	log "creating home directory $FTP_HOME"
	mkdir -p "$FTP_HOME"
	chown "$FTP_USER:" "$FTP_HOME"
	chmod 0755 "$FTP_HOME"
fi
echo "$FTP_USER:$FTP_PASSWORD" | chpasswd

# PAM service for vsftpd: plain pam_unix password check, no /etc/ftpusers or
# /etc/shells checks (the user's shell is nologin).
pam_file="/etc/pam.d/$PAM_SERVICE"
pam_content="# Written by kafka-backup scripts/ftpd/install.sh for the FTP server tests.
auth     required pam_unix.so
account  required pam_unix.so
session  required pam_permit.so"
if [ ! -f "$pam_file" ] || [ "$(cat "$pam_file")" != "$pam_content" ]; then
	log "writing $pam_file"
	printf '%s\n' "$pam_content" >"$pam_file"
fi

log "ok: vsftpd and pure-ftpd are in $PREFIX, user $FTP_USER, PAM service $PAM_SERVICE"
