#!/bin/sh
# check-kernel.sh -- `make check-kernel`: build the unpatched and the patched
# 6.12 kernel and (unless LOFALLOC_KRFC=no) the rfc kernel (patched plus
# rfc/0*.patch), boot each under QEMU with the tests in an initramfs, and
# fail loudly on any failed test, kernel warning, panic or timeout.
#
# Environment (set by kernel-patches/local.am; defaults for a run by hand
# from the source tree):
#   LOF_SRCDIR     the lofalloc source tree   (abs_top_srcdir)
#   LOF_BUILDDIR   the lofalloc build tree    (abs_top_builddir)
#   CC             C compiler for the guest programs
#   LOFALLOC_KCACHE       kernel cache   (default /var/cache/lofalloc-kernel)
#   LOFALLOC_KACCEL       kvm, tcg or auto (default: auto = probe KVM briefly)
#   LOFALLOC_KTIMEOUT     seconds per boot (default 900)
#   LOFALLOC_KBENCH_ITERS lof-bench iterations in the guest (default 10000)
#   LOFALLOC_KCHECK_ALLOCATOR=no   run without the allocator's programs
#                                  (only while liblofalloc does not exist)
#   LOFALLOC_KDEBUG=yes   kernels with kernel-debug.config too (default no:
#                         a different config is a full build of each kernel)
#   LOFALLOC_KRFC=no      without the rfc kernel (default yes: built
#                         incrementally from the patched tree, a near-full
#                         rebuild as it changes include/linux/mm.h, ~13 CPU
#                         minutes cold; then from the last rfc tree, only
#                         what the RFC patches change)
# Results: $LOF_BUILDDIR/kernel-check/ (serial logs, results.txt, bench.txt).
# Results judged by harness/read-results.sh (a skip where a pass is
# expected fails; kselftest sub-test skips count as skips).
# Last line on stdout: "kernel: N passed, N failed, N skipped".
set -eu
. "$(dirname "$0")/lib.sh"

SRCDIR=${LOF_SRCDIR:-$(cd "$LOF_KPATCHES/.." && pwd)}
BUILDDIR=${LOF_BUILDDIR:-$SRCDIR}
CC=${CC:-cc}
ACCEL=${LOFALLOC_KACCEL:-auto}
TMO=${LOFALLOC_KTIMEOUT:-900}
ITERS=${LOFALLOC_KBENCH_ITERS:-10000}
WITH_ALLOC=${LOFALLOC_KCHECK_ALLOCATOR:-yes}
WITH_RFC=${LOFALLOC_KRFC:-yes}
KINDS="unpatched patched"
[ "$WITH_RFC" = yes ] && KINDS="$KINDS rfc"
HOST_ONLY_TESTS="malloc/test_malloc_budget malloc/test_malloc_realtime malloc/test_malloc_huge malloc/test_malloc_mallopt databases/test_shared databases/test_jemalloc_api malloc/test_malloc_sigfork faults/test_faults fuzz/test_fuzz_replay"
OUT=$BUILDDIR/kernel-check
start=$(date +%s)

rm -rf "$OUT"
mkdir -p "$OUT"
echo '*' >"$OUT/.gitignore"	# keep the results out of git status

# ---- 1. the flag's value: the series and the allocator's header agree ----
hdr=$SRCDIR/allocator/include/lofalloc-mman.h
want=$(sed -n 's/^#define LOF_MAP_LOCKONFAULT[[:space:]]\{1,\}\(0x[0-9a-fA-F]*\).*/\1/p' "$hdr")
[ -n "$want" ] || die "no LOF_MAP_LOCKONFAULT in $hdr"
vals=$(cat $(lof_series) | sed -n 's/^+#define MAP_LOCKONFAULT[[:space:]]\{1,\}\(0x[0-9a-fA-F]*\).*/\1/p' | sort -u)
[ -n "$vals" ] || die "the series defines no MAP_LOCKONFAULT"
[ "$vals" = "$want" ] ||
	die "MAP_LOCKONFAULT differs: series has '$(echo $vals)', $hdr has $want"
log "MAP_LOCKONFAULT is $want in the series and in lofalloc-mman.h"

# ---- 2. the kernels (cached) -------------------------------------------
unpatched=$("$LOF_HARNESS/build-kernel.sh" unpatched) || die "unpatched kernel build failed"
patched=$("$LOF_HARNESS/build-kernel.sh" patched) || die "patched kernel build failed"
rfc=""
if [ "$WITH_RFC" = yes ]; then
	rfc=$("$LOF_HARNESS/build-kernel.sh" rfc) || die "rfc kernel build failed"
fi

# ---- 2b. checkpatch --strict, run by build-kernel.sh in the patched tree --
pass=0
fail=0
skip=0
: >"$OUT/results.txt"
# A patch is clean only with 0 errors, 0 warnings and 0 checks (CHECKs are
# --strict's own findings and are enforced too).
checkpatch_judge() {	# NAME CHECKPATCH_TXT NPATCHES
	nclean=$(grep -c '^total: 0 errors, 0 warnings, 0 checks,' "$2" || true)
	if [ "$nclean" -eq "$3" ]; then
		echo "host: PASS checkpatch --strict $1: $3 patches, 0 errors, 0 warnings, 0 checks" >>"$OUT/results.txt"
		pass=$((pass + 1))
	else
		echo "host: FAIL checkpatch --strict $1: $nclean of $3 patches clean" >>"$OUT/results.txt"
		cat "$2" >&2
		fail=$((fail + 1))
	fi
}
cp "$patched/checkpatch.txt" "$OUT/checkpatch.txt" 2>/dev/null || : >"$OUT/checkpatch.txt"
checkpatch_judge series "$OUT/checkpatch.txt" "$(lof_series | wc -l)"
if [ -n "$rfc" ]; then
	cp "$rfc/checkpatch.txt" "$OUT/checkpatch-rfc.txt" 2>/dev/null || : >"$OUT/checkpatch-rfc.txt"
	checkpatch_judge rfc "$OUT/checkpatch-rfc.txt" "$(lof_rfc_series | wc -l)"
fi

# ---- 3. the guest programs ---------------------------------------------
g=$OUT/guest
mkdir -p "$g"
$CC -static -O2 -std=gnu11 -Wall -I"$SRCDIR/allocator/include" \
	-o "$g/lof-bench" "$LOF_KPATCHES/guest/lof-bench.c" || die "cannot build lof-bench"
files="bin/lof-bench=$g/lof-bench"
# the memory-pressure victim and hog (glibc's heap, or liblofalloc preloaded)
$CC -O2 -std=gnu11 -Wall -o "$g/lof-pressure" "$LOF_KPATCHES/guest/lof-pressure.c" ||
	die "cannot build lof-pressure"
files="$files bin/lof-pressure=$g/lof-pressure"
# QEMU gives the guest the host's TSC; tell the guest kernel (a stable
# clocksource) and lof-bench (its ns) the rate measured here.
tsc_khz=$("$g/lof-bench" --calibrate 2>/dev/null || true)
tscargs=""
case "$tsc_khz" in
[1-9][0-9][0-9][0-9][0-9]*) tscargs="tsc_early_khz=$tsc_khz tsc=reliable lof.tsc_khz=$tsc_khz" ;;
esac
ldpath=""
ntests=0
alloc_names=""	# the guest's names of the allocator's tests: alloc/<name>
if [ "$WITH_ALLOC" != no ]; then
	libdir=$BUILDDIR/allocator/.libs
	[ -f "$libdir/liblofalloc.so" ] ||
		die "no $libdir/liblofalloc.so: run make first (or LOFALLOC_KCHECK_ALLOCATOR=no)"
	$CC -O2 -std=gnu11 -Wall -I"$SRCDIR/allocator/include" \
		-o "$g/lof-backend" "$LOF_KPATCHES/guest/lof-backend.c" \
		-L"$libdir" -llofalloc -pthread || die "cannot build lof-backend"
	files="$files bin/lof-backend=$g/lof-backend"
	# the locked heap an unprivileged process gets under an 8 MiB
	# RLIMIT_MEMLOCK (guest/init.sh gives each kernel its bounds)
	$CC -O2 -std=gnu11 -Wall -I"$SRCDIR/allocator/include" \
		-o "$g/lof-memlock" "$LOF_KPATCHES/guest/lof-memlock.c" \
		-L"$libdir" -llofalloc -pthread || die "cannot build lof-memlock"
	files="$files bin/lof-memlock=$g/lof-memlock"
	# the build tree's shared libraries, and its test programs (the real
	# binary from .libs/ when libtool made a wrapper script)
	for d in $(find "$BUILDDIR/allocator" "$BUILDDIR/tests" -type d -name .libs | LC_ALL=C sort); do
		ldpath=$ldpath${ldpath:+:}$d
		for so in "$d"/*.so*; do
			[ -f "$so" ] && files="$files lib/$(basename "$so")=$so"
		done
	done
	# the programs in tests/'s TESTS (as configured: what make check runs);
	# scripts among them (they run host tools) are left to make check
	tests=$(printf 'lof-print-tests:\n\t@echo "LOFTESTS $(TESTS)"\n' |
		make -s --no-print-directory -C "$BUILDDIR/tests" -f Makefile -f - lof-print-tests |
		sed -n 's/^LOFTESTS //p')
	[ -n "$tests" ] || die "cannot read TESTS from $BUILDDIR/tests/Makefile"
	for rel in $tests; do
		t=$BUILDDIR/tests/$rel
		if ! [ -f "$t" ]; then
			[ -f "$SRCDIR/tests/$rel" ] && continue	# a script in the source tree
			die "$t missing: run make check first"
		fi
		d=$(dirname "$t")
		n=$(basename "$t")
		real=$t
		[ -f "$d/.libs/lt-$n" ] && real=$d/.libs/lt-$n
		[ -f "$d/.libs/$n" ] && real=$d/.libs/$n
		file -L "$real" | grep -q ELF || continue
		name=$(echo "$rel" | tr / -)
		# Host-only: they need what the guest's tinyconfig kernel lacks
		# (seccomp filters, memory cgroups, /dev/shm, setpriv) or time the
		# decay clock, or fork a thousand times (sigfork: minutes under TCG), or
		# exercise the allocator alone at length (the fault sweep, the fuzz
		# corpus replay);
		# make check runs them on the host kernel.
		case " $HOST_ONLY_TESTS " in *" $rel "*) log "allocator: $rel runs on the host only"; continue ;; esac
		files="$files tests/$name=$real"
		alloc_names="$alloc_names alloc/$name"
		ntests=$((ntests + 1))
	done
	[ "$ntests" -gt 0 ] ||
		die "no compiled test programs in TESTS of $BUILDDIR/tests"
	log "allocator: $ntests test programs from $BUILDDIR/tests"
else
	log "LOFALLOC_KCHECK_ALLOCATOR=no: allocator tests and backend check left out"
fi

# ---- 4. initramfs, one per kernel (each its own mlock2-tests) -----------
for kind in $KINDS; do
	eval "entry=\$$kind"
	# shellcheck disable=SC2086
	LOF_LDPATH=$ldpath "$LOF_HARNESS/build-initramfs.sh" "$OUT/initramfs-$kind.cpio.gz" \
		"$OUT/stage-$kind" "$patched/selftests" "$entry/selftests" $files ||
		die "initramfs for the $kind kernel"
done

# ---- 5. accelerator: KVM only if a short probe boot succeeds ------------
if [ "$ACCEL" = auto ]; then
	ACCEL=tcg
	if [ -w /dev/kvm ]; then
		if LOF_QUIET=1 "$LOF_HARNESS/boot.sh" "$patched/bzImage" \
			"$OUT/initramfs-patched.cpio.gz" "$OUT/kvm-probe.log" 30 kvm lof.probe=1 &&
			grep -q 'LOFPROBE ok' "$OUT/kvm-probe.log"; then
			ACCEL=kvm
		fi
	fi
	log "accelerator: $ACCEL"
fi

# ---- 6. boot both and read the results ---------------------------------
for kind in $KINDS; do
	eval "entry=\$$kind"
	serial=$OUT/serial-$kind.log
	log "booting the $kind kernel ($ACCEL, timeout ${TMO}s)"
	t0=$(date +%s)
	set +e
	"$LOF_HARNESS/boot.sh" "$entry/bzImage" "$OUT/initramfs-$kind.cpio.gz" "$serial" \
		"$TMO" "$ACCEL" "lof.kernel=$kind" "lof.iters=$ITERS" \
		"lof.alloc=$([ "$WITH_ALLOC" = no ] && echo 0 || echo 1)" $tscargs
	rc=$?
	set -e
	log "$kind kernel: QEMU exited $rc after $(($(date +%s) - t0)) s"
	tr -d '\r' <"$serial" >"$serial.txt"
	grep '^LOFBENCH' "$serial.txt" | sed "s/^/$kind: /" >>"$OUT/bench.txt" || true
	grep '^LOFPRESSURE' "$serial.txt" | sed "s/^/$kind: /" >>"$OUT/bench.txt" || true
	# what must pass in this guest (none may skip: see guest/init.sh)
	case "$kind" in
	patched)
		expected="map_lockonfault mlock2-tests lof-bench" ksft="map_lockonfault mlock2-tests"
		[ "$WITH_ALLOC" = no ] || expected="$expected backend-is-MAP_LOCKONFAULT$alloc_names memlock-heap memlock-sparse"
		;;
	rfc)
		expected="map_lockonfault mlock2-tests mlock_onfault_charge lof-bench"
		ksft="map_lockonfault mlock2-tests mlock_onfault_charge"
		[ "$WITH_ALLOC" = no ] || expected="$expected backend-is-MAP_LOCKONFAULT$alloc_names memlock-heap memlock-sparse"
		;;
	*)
		expected="map_lockonfault-skips mlock2-tests lof-bench" ksft="mlock2-tests"
		[ "$WITH_ALLOC" = no ] || expected="$expected backend-is-mlock2$alloc_names memlock-heap memlock-sparse"
		;;
	esac
	# on every kernel: no kernel warning; where the kernel has swap, memory
	# cgroups and virtio-blk (harness/kernel.config asks for them, and
	# build-kernel.sh checked they are in its .config): swap on the virtio
	# disk and the memory-pressure pair (lofalloc's heap kept in RAM,
	# glibc's swapped)
	expected="$expected dmesg-clean"
	if grep -qx CONFIG_SWAP=y "$entry/.config" && grep -qx CONFIG_MEMCG=y "$entry/.config" &&
		grep -qx CONFIG_VIRTIO_BLK=y "$entry/.config"; then
		expected="$expected swap-on"
		[ "$WITH_ALLOC" = no ] || expected="$expected pressure-glibc-swapped pressure-lofalloc-locked"
	fi
	"$LOF_HARNESS/read-results.sh" "$kind" "$serial.txt" "$expected" "$ksft" >"$OUT/judged-$kind.txt"
	grep -v '^counts ' "$OUT/judged-$kind.txt" >>"$OUT/results.txt" || true
	set -- $(sed -n 's/^counts //p' "$OUT/judged-$kind.txt")
	p=${1:-0} f=${2:-1} s=${3:-0}
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "$kind: FAIL timeout after ${TMO}s" >>"$OUT/results.txt"
		f=$((f + 1))
	fi
	skip=$((skip + s))
	pass=$((pass + p))
	fail=$((fail + f))
done

echo "---- kernel check results ($OUT) ----"
cat "$OUT/results.txt"
echo "---- guest benchmark ($ACCEL) ----"
cat "$OUT/bench.txt" 2>/dev/null || true
# per committed chunk on the patched kernel: the flag against each 2-call way
awk '$1 == "patched:" && $2 == "LOFBENCH" && / median_ns=/ {
	for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	k = f["kind"] " " f["size"]
	med[k, f["method"]] = f["median_ns"]; sc[k, f["method"]] = f["syscalls"]
	if (!(k in seen)) { seen[k] = 1; order[++n] = k }
}
END {
	for (j = 1; j <= n; j++) {
		k = order[j]
		for (m in names) delete names[m]
		for (km in med) { split(km, parts, SUBSEP); if (parts[1] == k && parts[2] != "flag") names[parts[2]] = 1 }
		for (m in names)
			if ((k, "flag") in med)
				printf "per chunk (%s B, %s): MAP_LOCKONFAULT %d syscall %d ns vs %s %d syscalls %d ns (%.0f%%)\n",
					substr(k, index(k, " ") + 1), substr(k, 1, index(k, " ") - 1),
					sc[k, "flag"], med[k, "flag"], m, sc[k, m], med[k, m],
					100 * med[k, "flag"] / med[k, m]
	}
}' "$OUT/bench.txt" 2>/dev/null | tee "$OUT/bench-summary.txt" || true
echo "---- $(($(date +%s) - start)) s ----"
echo "kernel: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
