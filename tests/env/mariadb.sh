#!/usr/bin/env bash
# Runs MariaDB's server programs of the version the local services and tests
# use, chosen by BT_MARIADB:
#
#   10.11  (the default) Debian 12's packages, installed on this machine.
#   11.8   Debian 13's packages, in a Debian trixie chroot made with
#          debootstrap and cached under ~/.cache/binlog-tailer (never inside
#          the repository). A chroot shares the host's network, so the server
#          listens on the host's loopback like any other.
#
# Usage: tests/env/mariadb.sh install|version|root|exec DIR... -- PROGRAM [ARGS...]
#   install  make sure the chosen version can run (apt, or build the chroot)
#   version  print the chosen version's exact server version
#   root     print the chroot's path (empty for 10.11)
#   exec     run PROGRAM (mariadbd, mariadb-install-db, mariadb-binlog, ...)
#            of the chosen version. For 11.8 each DIR (a data directory, a
#            state directory) is bind-mounted at the same path inside the
#            chroot, in a mount namespace of the process's own: nothing is
#            left mounted on the host, and the process keeps its PID (the
#            wrapper execs it), so it is stopped by PID like any other.
#
# The host's mariadb client is used for SQL against either version; only the
# server programs (and mariadb-binlog, which must match the server) come from
# the chroot. 11.8 needs root (debootstrap, chroot and mount do).
set -euo pipefail

version=${BT_MARIADB:-10.11}
cache=${BT_MARIADB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/binlog-tailer}
root=$cache/mariadb-$version/root

log() { printf '[mariadb %s] %s\n' "$version" "$*" >&2; }
die() { printf '[mariadb %s] error: %s\n' "$version" "$*" >&2; exit 1; }

case "$version" in
  10.11 | 11.8) ;;
  *) die "BT_MARIADB=$version is not a version binlog-tailer is tested on; use 10.11 or 11.8" ;;
esac

need_root() {
  [ "$(id -u)" = 0 ] || die "MariaDB $version runs from a Debian chroot, which needs root ($1); run as root or use BT_MARIADB=10.11"
}

# The Debian mirror this machine's own apt sources use (deb822 or one-line
# format), so that the chroot comes from the same place; deb.debian.org if
# none is found. Read, never written into the repository.
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ { u = $2 } /^Suites:/ { if (u !~ /security/) { print u; exit } }')
  if [ -z "$uri" ]; then
    uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      awk '$2 !~ /security/ { print $2; exit }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Makes the trixie chroot with mariadb-server and mariadb-client, atomically:
# built beside the cache entry and renamed into place when complete, so an
# interrupted build is never taken for a finished one.
build_chroot() {
  need_root "debootstrap"
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } ||
      die "apt-get install debootstrap failed"
  }
  local mirror tmp started=$SECONDS
  mirror=$(debian_mirror)
  tmp=$cache/mariadb-$version/build.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building a Debian trixie chroot from $mirror in $tmp (about a minute, ~800 MB)"
  debootstrap --variant=minbase trixie "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
    { tail -n 20 "$tmp.log" >&2; rm -rf "$tmp"; die "debootstrap failed; see $tmp.log"; }
  # Keep package scripts from starting services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  cp /etc/hosts "$tmp/etc/hosts"
  chroot "$tmp" /bin/sh -c 'apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client' \
    >>"$tmp.log" 2>&1 ||
    { tail -n 20 "$tmp.log" >&2; rm -rf "$tmp"; die "installing mariadb-server in the chroot failed; see $tmp.log"; }
  chroot "$tmp" apt-get clean
  rm -rf "$root"
  mv "$tmp" "$root"
  mv "$tmp.log" "$root.log"
  log "chroot ready in $((SECONDS - started))s: $(chroot "$root" mariadbd --version)"
}

cmd_install() {
  case "$version" in
    10.11)
      # Debian 12's packages on the host: tests/env/services.sh installs them.
      command -v mariadbd >/dev/null || die "mariadbd is not installed; run: tests/env/services.sh install"
      ;;
    11.8)
      mkdir -p "$cache/mariadb-$version"
      # One build at a time (tests may ask concurrently).
      exec 9>"$cache/mariadb-$version/lock"
      flock 9
      if [ -x "$root/usr/sbin/mariadbd" ]; then
        # /etc/hosts may have changed since the chroot was made.
        cp /etc/hosts "$root/etc/hosts"
      else
        build_chroot
      fi
      ;;
  esac
}

cmd_exec() {
  local dirs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    dirs+=("$(cd "$1" && pwd -P)")
    shift
  done
  [ "${1:-}" = -- ] && [ $# -ge 2 ] || die "usage: mariadb.sh exec DIR... -- PROGRAM [ARGS...]"
  shift
  if [ "$version" = 10.11 ]; then
    exec "$@"
  fi
  need_root "unshare, mount, chroot"
  [ -x "$root/usr/sbin/mariadbd" ] || die "the MariaDB $version chroot is missing in $root; run: BT_MARIADB=$version tests/env/services.sh install"
  # In a private mount namespace: /proc and /dev, then each directory at its
  # own path; then chroot execs the program, which keeps this PID.
  exec unshare --mount --propagation private -- /bin/sh -c '
    set -e
    root=$1; shift
    mount --bind /proc "$root/proc"
    mount --rbind /dev "$root/dev"
    while [ "$1" != -- ]; do
      mkdir -p "$root$1"
      mount --bind "$1" "$root$1"
      shift
    done
    shift
    exec chroot "$root" "$@"' sh "$root" "${dirs[@]}" -- "$@"
}

cmd_version() {
  local out
  case "$version" in
    10.11) out=$(mariadbd --version) ;;
    11.8) out=$(chroot "$root" mariadbd --version) ;;
  esac
  # "mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for debian-linux-gnu ..."
  awk '{ for (i = 1; i < NF; i++) if ($i == "Ver") { sub(/-MariaDB.*/, "", $(i + 1)); print $(i + 1); exit } }' <<<"$out"
}

case "${1:-}" in
  install) cmd_install ;;
  exec)
    shift
    cmd_exec "$@"
    ;;
  version) cmd_version ;;
  root) [ "$version" = 10.11 ] || echo "$root" ;;
  *)
    sed -n '2,24s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
