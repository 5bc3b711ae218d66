# lib.sh -- shared by the kernel harness scripts (sourced, not run).
#
# Owns: where the Debian kernel source is, where the kernel cache lives, and
# how a cache key is computed.  A cache entry is a directory
#   ${LOFALLOC_KCACHE:-/var/cache/lofalloc-kernel}/<key>/
# holding bzImage, the statically linked selftests built against that tree,
# the final .config, the build log and (patched) checkpatch's report; it is
# complete only when the file "ok" exists in it.  <key> is the sha256 of the
# base tarball's identity, the Kconfig fragments, LOF_KRECIPE, (patched and
# rfc) the series and (rfc only) the RFC patches on top, rfc/0*.patch.

LOF_PKG=linux-source-6.12
LOF_TARBALL=${LOFALLOC_KTARBALL:-/usr/src/linux-source-6.12.tar.xz}
LOF_KCACHE=${LOFALLOC_KCACHE:-/var/cache/lofalloc-kernel}
LOF_HARNESS=$(cd "$(dirname "$0")" && pwd)
# The build recipe's version: bump it whenever build-kernel.sh changes what
# it puts in a cache entry, so that old entries are not used.
LOF_KRECIPE=2
LOF_KPATCHES=$(cd "$LOF_HARNESS/.." && pwd)
# LOFALLOC_KDEBUG=yes: kernel-debug.config too (SMP, BUG, DEBUG_VM, THP,
# MEMCG, SWAP, virtio-blk: the guest then tests swap-out and kernel warnings)
LOF_KDEBUG=${LOFALLOC_KDEBUG:-no}

die() {
	echo "kernel-harness: FATAL: $*" >&2
	exit 1
}

log() {
	echo "kernel-harness: $*" >&2
}

# The base: the Debian package version plus the tarball's own hash, so a
# rebuilt package with the same version still gets a new key.
lof_base_id() {
	[ -r "$LOF_TARBALL" ] || die "$LOF_TARBALL missing (apt-get install $LOF_PKG)"
	v=$(dpkg-query -W -f='${Version}' "$LOF_PKG" 2>/dev/null || echo unknown)
	h=$(sha256sum "$LOF_TARBALL" | cut -d' ' -f1)
	echo "$LOF_PKG $v $h"
}

# The patches of the series, in order, without the cover letter.
lof_series() {
	for p in "$LOF_KPATCHES"/0*.patch; do
		case "$p" in
		*/0000-cover-letter.patch) ;;
		*) [ -f "$p" ] && echo "$p" ;;
		esac
	done
}

# The Kconfig fragments merged over tinyconfig, in order.
lof_kconfigs() {
	echo "$LOF_HARNESS/kernel.config"
	[ "$LOF_KDEBUG" = yes ] && echo "$LOF_HARNESS/kernel-debug.config"
	true
}

# The RFC patches, applied on top of the series for the rfc kernel.
lof_rfc_series() {
	for p in "$LOF_KPATCHES"/rfc/0*.patch; do
		case "$p" in
		*/0000-cover-letter.patch) ;;
		*) [ -f "$p" ] && echo "$p" ;;
		esac
	done
}

# lof_key unpatched|patched|rfc
lof_key() {
	{
		echo "kind $1"
		lof_base_id
		echo "recipe $LOF_KRECIPE"
		cat $(lof_kconfigs)
		if [ "$1" != unpatched ]; then
			for p in $(lof_series); do
				cat "$p"
			done
		fi
		if [ "$1" = rfc ]; then
			for p in $(lof_rfc_series); do
				cat "$p"
			done
		fi
	} | sha256sum | cut -c1-16
}
