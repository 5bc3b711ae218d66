#!/bin/sh
# build-initramfs.sh OUT.cpio.gz STAGE_DIR SELFTEST_DIR MLOCK2_DIR [FILES...]
#
# Build the guest's initramfs: busybox-static, /init (guest/init.sh) and its
# /lof/run-test.sh, the
# selftests (map_lockonfault from SELFTEST_DIR, mlock2-tests and, for the
# rfc kernel, mlock_onfault_charge from MLOCK2_DIR: each kernel runs the
# tests built from its own tree), and the
# programs listed in FILES as "dest=source" pairs:
#   bin/NAME=/path     -> /lof/bin/NAME      (lof-bench, lof-backend)
#   tests/NAME=/path   -> /lof/tests/NAME    (the allocator's test programs)
#   lib/NAME=/path     -> /lof/lib/NAME      (libraries from the build tree)
# Every dynamically linked program gets the shared libraries ldd finds for
# it (with LOF_LDPATH searched first), at the same paths as on the host, so
# the guest's loader finds them; /lof/lib is the guest's LD_LIBRARY_PATH.
set -eu
. "$(dirname "$0")/lib.sh"

out=$1 stage=$2 stdir=$3 mldir=$4
shift 4
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lof/bin" "$stage/lof/tests" "$stage/lof/lib" \
	"$stage/lof/selftests"

bb=$(command -v busybox) || die "busybox missing (apt-get install busybox-static)"
file -L "$bb" | grep -q 'statically linked' || bb=/bin/busybox
file -L "$bb" | grep -q 'statically linked' ||
	die "$bb is not statically linked (apt-get install busybox-static)"
cp "$bb" "$stage/bin/busybox"
cp "$LOF_KPATCHES/guest/init.sh" "$stage/init"
chmod 755 "$stage/init"
cp "$LOF_KPATCHES/guest/run-test.sh" "$stage/lof/run-test.sh"
cp "$stdir/map_lockonfault" "$stage/lof/selftests/" ||
	die "no map_lockonfault in $stdir"
cp "$mldir/mlock2-tests" "$stage/lof/selftests/" ||
	die "no mlock2-tests in $mldir"
# the rfc kernel's own selftest, built from its tree
if [ -f "$mldir/mlock_onfault_charge" ]; then
	cp "$mldir/mlock_onfault_charge" "$stage/lof/selftests/"
fi

# copy_libs PROGRAM: the loader and every library ldd resolves for it.
copy_libs() {
	LD_LIBRARY_PATH=${LOF_LDPATH:-} ldd "$1" 2>/dev/null |
		while read -r a b c rest; do
			case "$a $b $c" in
			*"not found"*) die "$1: $a not found by ldd" ;;
			*" => /"*) lib=$c ;;
			/*) lib=$a ;;
			*) continue ;;
			esac
			case "$lib" in
			*/.libs/*) dest=/lof/lib/$(basename "$lib") ;;
			*) dest=$lib ;;
			esac
			[ -e "$stage$dest" ] && continue
			mkdir -p "$stage$(dirname "$dest")"
			cp -L "$lib" "$stage$dest"
		done
}

for pair in "$@"; do
	dest=${pair%%=*}
	src=${pair#*=}
	[ -f "$src" ] || die "$src missing"
	cp -L "$src" "$stage/lof/$dest"
	if file -L "$src" | grep -q 'dynamically linked'; then
		copy_libs "$src"
	fi
done
for p in "$stage/lof/selftests/"*; do
	file -L "$p" | grep -q 'dynamically linked' && copy_libs "$p"
done

(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$out" ||
	die "cannot write $out"
log "initramfs $out: $(du -k "$out" | cut -f1) KiB"
