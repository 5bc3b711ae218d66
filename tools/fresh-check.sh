#!/bin/sh
# tools/fresh-check.sh -- prove that tools/deps.sh installs everything, on
# evidence that does not depend on what this machine happens to have.  Root,
# Debian 12.  Two checks (see tools/README for when to run them):
#
#   tools/fresh-check.sh chroot [--build] [DIR]
#     debootstrap a clean Debian 12 root (minbase, the standard bookworm,
#     bookworm-updates and bookworm-security suites) into DIR (default
#     /var/tmp/lofalloc-fresh), copy this checkout into it, and inside it
#     run tools/preflight (it must name what is missing), then tools/deps.sh,
#     then tools/preflight build test kernel (it must pass).  --build also
#     builds there and runs the gcc build's make check.  Needs the network
#     (deb.debian.org) and ~3 GB; takes minutes.  DIR is removed after
#     (LOFALLOC_FRESH_KEEP=1 keeps it).
#
#   tools/fresh-check.sh trace [CMD...]
#     run CMD (default: make -C _build/gcc check) under strace -f, map every
#     program it executed with dpkg -S to its package, and check that each
#     package is in tools/deps.list, is pulled in by one that is (Depends,
#     recursively), or is in every Debian system (Essential or Priority
#     required).  Names each program that no package of deps.sh covers.
#
# Exit status 0 when the check holds.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
[ $# -gt 0 ] && shift
say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: FAIL $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"
# chroot copies $top into the new root: it must be this checkout, never /
[ "$top" != / ] && [ -f "$top/tools/deps.list" ] && [ -f "$top/configure.ac" ] ||
  die "run tools/fresh-check.sh from its place in a lofalloc checkout (found top=$top)"

chroot_check() {
  build=no
  [ "${1:-}" = --build ] && { build=yes; shift; }
  dir=${1:-/var/tmp/lofalloc-fresh}
  command -v debootstrap >/dev/null || die "debootstrap missing (tools/deps.sh --bench installs it)"
  if [ -e "$dir" ]; then
    [ -f "$dir/.lofalloc-fresh" ] || die "$dir exists and is not a fresh-check root: remove it or pick another DIR"
    umount "$dir/proc" "$dir/dev" 2>/dev/null || true
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  touch "$dir/.lofalloc-fresh"
  log=$dir.log
  cleanup() {
    umount "$dir/dev" 2>/dev/null || true
    umount "$dir/proc" 2>/dev/null || true
    [ "${LOFALLOC_FRESH_KEEP:-0}" = 1 ] || rm -rf "$dir"
  }
  trap cleanup EXIT
  t0=$(date +%s)
  say "debootstrap --variant=minbase bookworm $dir (log $log)"
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$log" 2>&1 ||
    { tail -20 "$log" >&2; die "debootstrap failed"; }
  touch "$dir/.lofalloc-fresh"
  say "clean root: $(chroot "$dir" dpkg-query -W -f='.\n' | wc -l) packages after $(($(date +%s) - t0)) s"
  cat >"$dir/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  mkdir -p "$dir/root/lofalloc"
  (cd "$top" && tar --exclude=./_build --exclude=./.git -cf - .) | tar -xf - -C "$dir/root/lofalloc"
  mount -t proc proc "$dir/proc"
  in_root() { chroot "$dir" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 /bin/sh -c "cd /root/lofalloc && $1"; }

  # before deps.sh the preflight must find the tools missing, naming packages
  if in_root "tools/preflight build test kernel" >"$dir.pre" 2>&1; then
    die "the preflight passed in a bare root: it checks nothing"
  fi
  say "bare root: $(grep -c '^preflight: missing' "$dir.pre") missing, e.g.: $(grep '^preflight: missing' "$dir.pre" | head -3 | sed 's/^preflight: //' | tr '\n' ';')"
  grep -q 'missing command rsync (Debian package rsync' "$dir.pre" || die "the bare root's preflight does not name rsync"
  say "tools/deps.sh in the clean root (log $log)"
  in_root "tools/deps.sh" >>"$log" 2>&1 || { tail -20 "$log" >&2; die "tools/deps.sh failed in the clean root"; }
  say "installed: $(chroot "$dir" dpkg-query -W -f='.\n' | wc -l) packages after $(($(date +%s) - t0)) s"
  in_root "tools/preflight build test kernel" || die "the preflight fails after tools/deps.sh in the clean root"
  if [ "$build" = yes ]; then
    mount --bind /dev "$dir/dev"
    say "building and make check in the clean root (log $log)"
    in_root "autoreconf -fi && mkdir -p _build/gcc && cd _build/gcc && ../../configure -q --enable-werror && make -j2 && make -j2 check" \
      >>"$log" 2>&1 || { tail -30 "$log" >&2; die "build or make check failed in the clean root"; }
    say "$(grep -E '^# (TOTAL|PASS|FAIL|ERROR|SKIP)' "$log" | tr '\n' ' ')"
  fi
  say "PASS tools/deps.sh installs every command and file the preflight checks, in a clean Debian 12 root ($(($(date +%s) - t0)) s)"
}

trace_check() {
  command -v strace >/dev/null || die "strace missing (tools/deps.sh installs it)"
  [ $# -gt 0 ] || set -- make -C "$top/_build/gcc" check
  out=$(mktemp -d "${TMPDIR:-/tmp}/lofrace.XXXXXX")
  trap 'rm -rf "$out"' EXIT
  say "tracing: $* (strace -f -e trace=execve)"
  rc=0
  bpf=""
  strace --seccomp-bpf -f -qq -e trace=execve -o /dev/null true 2>/dev/null && bpf=--seccomp-bpf
  strace $bpf -f -qq -e trace=execve -e signal=none -o "$out/trace" "$@" >"$out/run.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || say "note: the traced command exited $rc (its log: kept below)"
  # the programs that were really executed (execve returned 0)
  sed -n 's/^[0-9]* *execve("\([^"]*\)".* = 0$/\1/p' "$out/trace" | sort -u >"$out/progs"
  # what deps.sh installs, with everything that pulls in, and Debian's base
  "$top/tools/deps.sh" --list >"$out/listed"
  # shellcheck disable=SC2046
  apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances $(cat "$out/listed") 2>/dev/null |
    sed -n 's/^\([a-z0-9][^ :]*\)\(:[a-z0-9]*\)\{0,1\}$/\1/p' | sort -u >"$out/pulled"
  dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' |
    awk '$2 == "yes" || $3 == "required" { print $1 }' | sort -u >"$out/base"
  n=0 bad=0 own=0
  while read -r p; do
    # the project's own programs: in the trees, or relative to a test's cwd
    case "$p" in "$top"/*|/tmp/*|/var/tmp/*|/proc/*|[!/]*) own=$((own + 1)); continue ;; esac
    r=$(readlink -f "$p" 2>/dev/null || echo "$p")
    pkg=""
    for cand in "$p" "$r" "/usr$p" "${p#/usr}" "/usr$r" "${r#/usr}"; do
      [ -n "$cand" ] || continue
      pkg=$(dpkg -S "$cand" 2>/dev/null | grep -v '^diversion by' | sed -n '1s/^\([^:,]*\).*/\1/p')
      [ -n "$pkg" ] && break
    done
    n=$((n + 1))
    if [ -z "$pkg" ]; then
      case "$p" in
      /usr/*|/bin/*|/sbin/*|/lib*) echo "  $p: NOT COVERED, no package owns it"; bad=$((bad + 1)) ;;
      # e.g. a pyenv python3 earlier in PATH: a fresh machine runs Debian's
      *) echo "  $p: WARNING a local install, not Debian's (a fresh machine runs the PATH's next match)" ;;
      esac
      continue
    fi
    if grep -qx "$pkg" "$out/listed"; then how=listed
    elif grep -qx "$pkg" "$out/base"; then how=base
    elif grep -qx "$pkg" "$out/pulled"; then how="pulled in"
    else how="NOT COVERED by tools/deps.list"; bad=$((bad + 1)); fi
    printf '  %-40s %-24s %s\n' "$p" "$pkg" "$how"
  done <"$out/progs" >"$out/report"
  cat "$out/report"
  if [ "$rc" -ne 0 ]; then tail -20 "$out/run.log"; fi
  [ "$bad" -eq 0 ] || die "$bad of $n executed programs are not installed by tools/deps.sh"
  say "PASS all $n system programs the run executed come from packages tools/deps.sh installs or every Debian system has ($own of the project's own programs not counted)"
  [ "$rc" -eq 0 ] || die "the traced command itself failed (exit $rc)"
}

case "$mode" in
chroot) chroot_check "$@" ;;
trace) trace_check "$@" ;;
*) echo "usage: $0 chroot [--build] [DIR] | trace [CMD...]" >&2; exit 2 ;;
esac
