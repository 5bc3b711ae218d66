#!/bin/sh
# build-kernel.sh unpatched|patched|rfc -- make sure the cache holds a
# bzImage (and the selftests built against the same tree) for the Debian 6.12
# source: without the MAP_LOCKONFAULT series, with it, or with it and the RFC
# patches on top (rfc/); print the cache entry's path.
#
# Works from an empty cache: unpack the tarball, tinyconfig + kernel.config,
# build bzImage and headers, build the selftests statically.  The unpatched
# and patched entries keep their built tree (tree/); the patched kernel is
# built from a copy of the unpatched tree with the series applied, and the
# rfc kernel from a copy of the patched tree with the RFC patches applied, so
# only what the patches touch is recompiled (from the tarball, with every
# patch, when there is no such tree).
# The copy sits where the unpatched tree was built (<unpatched entry>/src,
# under that entry's lock): objtool records absolute paths, and a rebuilt
# objtool would make every object stale.
# Concurrent runs for one key serialise on a lock file; an entry without
# "ok" is rebuilt from scratch.
set -eu
. "$(dirname "$0")/lib.sh"

kind=${1:-}
case "$kind" in
unpatched|patched|rfc) ;;
*) die "usage: build-kernel.sh unpatched|patched|rfc" ;;
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

# base: the cached entry whose built tree this kind starts from (patched:
# unpatched; rfc: patched, else unpatched); patches: what goes on top of it.
# Every kind builds in <unpatched entry>/src, the path the unpatched tree
# was built at (objtool records absolute paths).
base="" root="" patches=""
if [ "$kind" != unpatched ]; then
	root="$LOF_KCACHE/unpatched-$(lof_key unpatched)"
	[ -f "$root/ok" ] && [ -d "$root/tree" ] && base=$root || root=""
	patches=$(lof_series)
	[ -n "$patches" ] || fail "no patches in $LOF_KPATCHES"
fi
# rfc: from the patched tree, or (quicker) from an earlier rfc entry's tree
# built on the same patched kernel: then only the files whose content the
# new RFC patches change are rewritten (see rfc_sync below), so an edit of a
# .c file rebuilds that file, not the kernel.
prev=""
if [ "$kind" = rfc ]; then
	p=$LOF_KCACHE/patched-$(lof_key patched)
	if [ -n "$root" ] && [ -f "$p/ok" ] && [ -d "$p/tree" ]; then
		base=$p patches=""
		pkey=$(lof_key patched)
		for d in "$LOF_KCACHE"/rfc-*; do	# the newest usable one
			if [ "$d" != "$entry" ] && [ -f "$d/ok" ] && [ -d "$d/tree" ] &&
				[ -d "$d/rfc-patches" ] &&
				[ "$(cat "$d/patched-key" 2>/dev/null)" = "$pkey" ] &&
				{ [ -z "$prev" ] || [ "$d/ok" -nt "$prev/ok" ]; }; then
				prev=$d
			fi
		done
	fi
	[ -n "$(lof_rfc_series)" ] || fail "no RFC patches in $LOF_KPATCHES/rfc"
	patches="$patches $(lof_rfc_series)"
fi

# The paths a patch touches (its "--- a/" and "+++ b/" lines).
patch_paths() {
	sed -n 's,^--- a/\([^[:space:]]*\).*,\1,p; s,^+++ b/\([^[:space:]]*\).*,\1,p' "$@" |
		LC_ALL=C sort -u
}

# rfc_sync: $src is $prev's tree (patched + the old RFC patches, built).
# Rebuild, in a scratch directory, every file the old or the new RFC
# patches touch from the patched tree ($base/tree) plus the new patches,
# and copy into $src only those that differ (removing the ones the new
# patches no longer create): untouched files keep their mtime, so make
# recompiles only what really changed.
rfc_sync() {
	scratch=$entry/rfc-sync
	rm -rf "$scratch"
	mkdir -p "$scratch"
	# shellcheck disable=SC2086
	files=$(patch_paths "$prev"/rfc-patches/*.patch $patches)
	for f in $files; do
		if [ -f "$base/tree/$f" ]; then
			mkdir -p "$scratch/$(dirname "$f")"
			cp -p "$base/tree/$f" "$scratch/$f"
		fi
	done
	for p in $patches; do
		log "applying $(basename "$p") (to the files it touches)"
		patch -d "$scratch" -p1 --batch --forward --quiet <"$p" >>"$blog" 2>&1 ||
			fail "$(basename "$p") does not apply"
	done
	nsync=0
	for f in $files; do
		if [ -f "$scratch/$f" ]; then
			cmp -s "$scratch/$f" "$src/$f" && continue
			mkdir -p "$src/$(dirname "$f")"
			cp "$scratch/$f" "$src/$f"
		else
			[ -e "$src/$f" ] || continue
			rm -f "$src/$f"
		fi
		nsync=$((nsync + 1))
		echo "rfc_sync: $f" >>"$blog"
	done
	rm -rf "$scratch"
	log "rfc kernel: $nsync files changed since $(basename "$prev")"
}

if [ -n "$base" ]; then
	exec 8>"$root.lock"
	flock 8
	from=$base
	[ -n "$prev" ] && from=$prev
	log "copying the built tree $from/tree"
	rmdir "$src"
	src="$root/src"
	rm -rf "$src"
	cp -a "$from/tree" "$src" || fail "cannot copy $from/tree"
else
	log "unpacking $LOF_TARBALL"
	tar -xJf "$LOF_TARBALL" -C "$src" --strip-components=1 ||
		fail "cannot unpack $LOF_TARBALL"
fi

if [ -n "$prev" ]; then
	rfc_sync
else
	for p in $patches; do
		log "applying $(basename "$p")"
		patch -d "$src" -p1 --batch --forward --quiet <"$p" >>"$blog" 2>&1 ||
			fail "$(basename "$p") does not apply"
	done
fi
# checkpatch --strict on this kind's own patches, in the tree they apply to
# (no .git, so without the SPDX check; python3 from /usr/bin for the rest).
# check-kernel.sh counts a patch clean only at 0 errors, warnings and checks.
case "$kind" in
patched) own=$(lof_series) ;;
rfc) own=$(lof_rfc_series) ;;
*) own="" ;;
esac
for p in $own; do
	(cd "$src" && PATH=/usr/bin:$PATH perl scripts/checkpatch.pl --strict "$p") \
		>>"$entry/checkpatch.txt" 2>&1 || true
done

jobs=$(nproc)
mk() {
	make -C "$src" ARCH=x86_64 "$@" >>"$blog" 2>&1
}

if [ -z "$base" ]; then
	mk tinyconfig || fail "make tinyconfig"
	# shellcheck disable=SC2046
	(cd "$src" && ARCH=x86_64 ./scripts/kconfig/merge_config.sh -m .config \
		$(lof_kconfigs)) >>"$blog" 2>&1 || fail "merge_config"
	mk olddefconfig || fail "make olddefconfig"
fi
# shellcheck disable=SC2046
cat $(lof_kconfigs) | grep '^CONFIG_' | while read -r opt; do
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
	n=$1
	shift
	gcc -static -O2 -Wall -isystem "$entry/hdr/include" -I"$st" -I"$st/mm" \
		-o "$entry/selftests/$n" "$st/mm/$n.c" "$@" >>"$blog" 2>&1 ||
		fail "cannot build selftest $n"
}
cc_st mlock2-tests
[ "$kind" = unpatched ] || cc_st map_lockonfault "$st/mm/vm_util.c"
[ "$kind" = rfc ] && cc_st mlock_onfault_charge "$st/mm/vm_util.c"

cp "$src/arch/x86/boot/bzImage" "$src/.config" "$entry/"
mv "$src" "$entry/tree"
if [ "$kind" = rfc ]; then
	# what the next rfc build starts from (rfc_sync): the patches in this
	# tree and the patched kernel under them; one rfc tree is kept (the
	# earlier one was copied, under the lock, and is not needed again)
	mkdir -p "$entry/rfc-patches"
	cp $(lof_rfc_series) "$entry/rfc-patches/"
	lof_key patched >"$entry/patched-key"
	[ -n "$prev" ] && rm -rf "$prev/tree"
fi
touch "$entry/ok"
log "$kind kernel: built in $(($(date +%s) - start)) s"
echo "$entry"
