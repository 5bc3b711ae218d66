#!/bin/busybox sh
# init.sh -- /init of the kernel harness's initramfs (busybox-static).
#
# Reads from the kernel command line:
#   lof.kernel=patched|unpatched   which kernel this is (what to expect)
#   lof.probe=1                    only say "LOFPROBE ok" and reboot (KVM probe)
#   lof.iters=N                    lof-bench iterations (default 10000)
#   lof.alloc=0                    no allocator programs in this initramfs
#   lof.tsc_khz=K                  the host's TSC rate, for lof-bench's clock
#   lof.kernel=rfc                 the patched kernel plus the RFC
#                                  (fault-time RLIMIT_MEMLOCK charge)
# Sets up swap on the virtio disk (/dev/vda, boot.sh) and a memory cgroup,
# runs the MAP_LOCKONFAULT selftest (and, on the RFC kernel, its selftest), the kernel's mlock2-tests, the
# allocator's test programs, the backend check and the benchmark, and prints
# for each one line on the console the host parses:
#   LOFTEST PASS <name> | LOFTEST FAIL <name> <why> | LOFTEST SKIP <name>
# (the kselftests' own TAP lines come before their result; the host reads
# their "# Totals" and sub-test skips, harness/read-results.sh)
# then scans dmesg for WARN/BUG/bad page (a test, "dmesg-clean"),
# then "LOFTEST DONE" and reboots (QEMU runs with -no-reboot, so it exits).
/bin/busybox mkdir -p /proc /sys /dev /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp

arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in
		"$1"=*) echo "${w#*=}"; return ;;
		esac
	done
}

if [ "$(arg lof.probe)" = 1 ]; then
	echo "LOFPROBE ok"
	reboot -f
fi

kind=$(arg lof.kernel)
iters=$(arg lof.iters)
: "${iters:=10000}"
alloc=$(arg lof.alloc)
cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
echo "LOFGUEST kernel=$kind uname=$(uname -r) clocksource=$(cat $cs 2>/dev/null)"

# run NAME EXPECTED_RC must-pass|may-skip TIMEOUT CMD... (run-test.sh).
# Every test here must pass: none may skip.
. /lof/run-test.sh

# Swap on the virtio disk: what mlock protects against needs somewhere to
# swap to.  Huge pages for the selftest's hugetlb case.
# (A kernel without swap has neither: the host then expects no result.)
[ -w /proc/sys/vm/nr_hugepages ] && echo 8 >/proc/sys/vm/nr_hugepages
if [ -e /proc/swaps ]; then
	run swap-on 0 must-pass 60 sh -c 'mkswap /dev/vda >/dev/null && swapon /dev/vda && grep -q /dev/vda /proc/swaps'
fi

# The new selftest passes on the patched kernels and skips (KSFT_SKIP = 4)
# on the unpatched one, which ignores the flag.
if [ "$kind" = patched ] || [ "$kind" = rfc ]; then
	run map_lockonfault 0 must-pass 120 /lof/selftests/map_lockonfault
else
	run map_lockonfault-skips 4 must-pass 120 /lof/selftests/map_lockonfault
fi
run mlock2-tests 0 must-pass 300 /lof/selftests/mlock2-tests
if [ "$kind" = rfc ]; then
	run mlock_onfault_charge 0 must-pass 600 /lof/selftests/mlock_onfault_charge
fi

# The allocator's own tests, as built on the host, with its libraries.
export LD_LIBRARY_PATH=/lof/lib
if [ -x /lof/bin/lof-backend ]; then
	if [ "$kind" = patched ] || [ "$kind" = rfc ]; then
		run backend-is-MAP_LOCKONFAULT 0 must-pass 60 /lof/bin/lof-backend MAP_LOCKONFAULT
	else
		run backend-is-mlock2 0 must-pass 60 /lof/bin/lof-backend mlock2
	fi
elif [ "$alloc" != 0 ]; then
	echo "LOFTEST FAIL backend no-lof-backend-in-initramfs"
fi
# The heap an unprivileged process gets allocated, touched and locked (every
# touched page KPF_MLOCKED) under an 8 MiB RLIMIT_MEMLOCK, in 1 MiB blocks,
# every page touched (memlock-heap) or a quarter of them (memlock-sparse):
# lofalloc keeps what it commits under the limit on every kernel (a page it
# hands out may be touched), so the heap is the same 7 MiB (dense) or
# 1.75 MiB touched (sparse) everywhere; what the RFC changes is the charge,
# VmLck: the locked ranges without it, the touched pages with it, and how
# lofalloc locks: each reservation whole, in one call (its 1 GiB segment
# reservation alone is more than the limit: LC_MIN_KIB 1048576).
# Bounds from the measured numbers, kernel-patches/doc/guest-numbers.txt.
# lof-memlock MIN_KIB MAX_KIB STRIDE VMLCK_MIN_KIB VMLCK_MAX_KIB [LC_MIN_KIB]
if [ -x /lof/bin/lof-memlock ]; then
	if [ "$kind" = rfc ]; then
		run memlock-heap 0 must-pass 120 /lof/bin/lof-memlock 7168 8192 1 7168 7600 1048576
		run memlock-sparse 0 must-pass 120 /lof/bin/lof-memlock 1792 2048 4 1792 2300 1048576
	else
		run memlock-heap 0 must-pass 120 /lof/bin/lof-memlock 7168 8192 1 7600 8192
		run memlock-sparse 0 must-pass 120 /lof/bin/lof-memlock 1792 2048 4 7600 8192
	fi
fi
for t in /lof/tests/*; do
	[ -x "$t" ] || continue
	(cd /tmp && run "alloc/$(basename "$t")" 0 must-pass 600 "$t")
done

# Memory pressure in a memory cgroup (cgroup v2): a 32 MiB heap and a
# 96 MiB hog under memory.max = 64M.  The lock-on-fault heap (liblofalloc
# preloaded) keeps every page in RAM; the plain glibc heap is swapped.
if [ -x /lof/bin/lof-pressure ] && [ "$alloc" != 0 ] && grep -q /dev/vda /proc/swaps 2>/dev/null; then
	mkdir -p /sys/fs/cgroup
	mount -t cgroup2 none /sys/fs/cgroup
	echo +memory >/sys/fs/cgroup/cgroup.subtree_control
	mkdir -p /sys/fs/cgroup/pressure
	echo 64M >/sys/fs/cgroup/pressure/memory.max
	incg='echo $$ >/sys/fs/cgroup/pressure/cgroup.procs && exec "$@"'
	run pressure-glibc-swapped 0 must-pass 600 sh -c "$incg" sh \
		/lof/bin/lof-pressure swapped 32 96
	run pressure-lofalloc-locked 0 must-pass 600 sh -c "$incg" sh \
		env LD_PRELOAD=/lof/lib/liblofalloc.so /lof/bin/lof-pressure locked 32 96
	grep -E '^(oom|oom_kill|max) ' /sys/fs/cgroup/pressure/memory.events
fi
unset LD_LIBRARY_PATH

tsc=$(arg lof.tsc_khz)
run lof-bench 0 must-pass 900 /lof/bin/lof-bench ${tsc:+--tsc-khz "$tsc"} "$iters"

# A kernel warning anywhere in the run fails it (WARN_ON, BUG, VM_BUG_ON
# with CONFIG_DEBUG_VM, bad page state, a leaked lock charge).
dmesg >/tmp/dmesg.txt
if grep -E 'WARNING:|BUG:|[Bb]ad page|Oops|kernel BUG' /tmp/dmesg.txt >/tmp/dmesg-bad.txt; then
	sed 's/^/LOFDMESG /' /tmp/dmesg-bad.txt | head -n 40
	grep -A 30 -m 1 -E 'WARNING:|BUG:|[Bb]ad page|Oops|kernel BUG' /tmp/dmesg.txt | sed 's/^/LOFDMESG /'
	echo "LOFTEST FAIL dmesg-clean $(wc -l </tmp/dmesg-bad.txt)-lines"
else
	echo "LOFTEST PASS dmesg-clean"
fi
[ -e /proc/swaps ] && swapoff -a

echo "LOFTEST DONE"
sync
reboot -f
