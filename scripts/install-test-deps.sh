#!/usr/bin/env bash
# Installs what the test suite needs, where it is missing: Debian's kcat (an
# independent Kafka client) and, through scripts/ftpd/install.sh, the FTP
# servers. Needs root and apt-get; elsewhere it says what is missing and the
# tests that need it skip, saying so.
set -u
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; } ||
      echo "could not install ${need[*]}: the tests that need them will skip"
  else
    echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or the tests that need them skip"
  fi
fi
if [ -x "$(dirname "$0")/ftpd/install.sh" ]; then
  bash "$(dirname "$0")/ftpd/install.sh"
fi
exit 0
