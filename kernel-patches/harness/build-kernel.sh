#!/bin/sh
# build-kernel.sh unpatched|patched -- make sure the cache holds a bzImage
# (and the selftests built against the same tree) for the Debian 6.12 source,
# with or without the MAP_LOCKONFAULT series; print the cache entry's path.
#
# Works from an empty cache: unpack the tarball, tinyconfig + kernel.config,
# build bzImage and headers, build the selftests statically.  The unpatched
# entry keeps its built tree (tree/); the patched kernel is built from a copy
# of that tree with the series applied, so only what the series touches is
# recompiled (a full build from the tarball when there is no such tree).
# The copy sits where the unpatched tree was built (<unpatched entry>/src,
# under that entry's lock): objtool records absolute paths, and a rebuilt
# objtool would make every object stale.
# Concurrent runs for one key serialise on a lock file; an entry without
# "ok" is rebuilt from scratch.
set -eu
. "$(dirname "$0")/lib.sh"

kind=${1:-}
case "$kind" in
unpatched|patched) ;;
*) die "usage: build-kernel.sh unpatched|patched" ;;
esac

key=$(lof_key "$kind")
entry="$LOF_KCACHE/$kind-$key"
mkdir -p "$LOF_KCACHE"

exec 9>"$entry.lock"
flock 9

if [ -f "$entry/ok" ]; then
	log "$kind kernel: cache hit $entry"
	echo "$entry"
	exit 0
fi

log "$kind kernel: cache miss, building into $entry (several minutes)"
rm -rf "$entry"
mkdir -p "$entry"
src="$entry/src"
blog="$entry/build.log"
mkdir "$src"
start=$(date +%s)

fail() {
	echo "kernel-harness: FATAL: $kind kernel: $*" >&2
	[ -f "$blog" ] && tail -n 40 "$blog" >&2
	exit 1
}

base=""
if [ "$kind" = patched ]; then
	base="$LOF_KCACHE/unpatched-$(lof_key unpatched)"
	[ -f "$base/ok" ] && [ -d "$base/tree" ] || base=""
fi
if [ -n "$base" ]; then
	exec 8>"$base.lock"
	flock 8
	log "copying the built unpatched tree $base/tree"
	rmdir "$src"
	src="$base/src"
	rm -rf "$src"
	cp -a "$base/tree" "$src" || fail "cannot copy $base/tree"
else
	log "unpacking $LOF_TARBALL"
	tar -xJf "$LOF_TARBALL" -C "$src" --strip-components=1 ||
		fail "cannot unpack $LOF_TARBALL"
fi

if [ "$kind" = patched ]; then
	n=0
	for p in $(lof_series); do
		log "applying $(basename "$p")"
		patch -d "$src" -p1 --batch --forward --quiet <"$p" >>"$blog" 2>&1 ||
			fail "$(basename "$p") does not apply"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "no patches in $LOF_KPATCHES"
	# checkpatch --strict, in the tree the series applies to (no .git, so
	# without the SPDX check; python3 from /usr/bin for the rest)
	for p in $(lof_series); do
		(cd "$src" && PATH=/usr/bin:$PATH perl scripts/checkpatch.pl --strict "$p") \
			>>"$entry/checkpatch.txt" 2>&1 || true
	done
fi

jobs=$(nproc)
mk() {
	make -C "$src" ARCH=x86_64 "$@" >>"$blog" 2>&1
}

if [ -z "$base" ]; then
	mk tinyconfig || fail "make tinyconfig"
	(cd "$src" && ARCH=x86_64 ./scripts/kconfig/merge_config.sh -m .config \
		"$LOF_HARNESS/kernel.config") >>"$blog" 2>&1 || fail "merge_config"
	mk olddefconfig || fail "make olddefconfig"
fi
grep '^CONFIG_' "$LOF_HARNESS/kernel.config" | while read -r opt; do
	grep -qx "$opt" "$src/.config" || {
		echo "kernel-harness: FATAL: $kind kernel: $opt not in final .config" >&2
		exit 1
	}
done || exit 1

log "$kind kernel: make -j$jobs bzImage"
mk -j"$jobs" bzImage || fail "make bzImage"
mk headers_install INSTALL_HDR_PATH="$entry/hdr" || fail "make headers_install"

# The selftests, statically linked so the guest needs no loader for them.
st="$src/tools/testing/selftests"
mkdir -p "$entry/selftests"
cc_st() {
	gcc -static -O2 -Wall -isystem "$entry/hdr/include" -I"$st" -I"$st/mm" \
		-o "$entry/selftests/$1" "$st/mm/$1.c" >>"$blog" 2>&1 ||
		fail "cannot build selftest $1"
}
cc_st mlock2-tests
[ "$kind" = patched ] && cc_st map_lockonfault

cp "$src/arch/x86/boot/bzImage" "$src/.config" "$entry/"
if [ "$kind" = unpatched ]; then
	mv "$src" "$entry/tree"
else
	rm -rf "$src"
fi
touch "$entry/ok"
log "$kind kernel: built in $(($(date +%s) - start)) s"
echo "$entry"
