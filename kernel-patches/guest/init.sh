#!/bin/busybox sh
# init.sh -- /init of the kernel harness's initramfs (busybox-static).
#
# Reads from the kernel command line:
#   lof.kernel=patched|unpatched   which kernel this is (what to expect)
#   lof.probe=1                    only say "LOFPROBE ok" and reboot (KVM probe)
#   lof.iters=N                    lof-bench iterations (default 10000)
#   lof.alloc=0                    no allocator programs in this initramfs
#   lof.tsc_khz=K                  the host's TSC rate, for lof-bench's clock
# Runs the MAP_LOCKONFAULT selftest, the kernel's mlock2-tests, the
# allocator's test programs, the backend check and the benchmark, and prints
# for each one line on the console the host parses:
#   LOFTEST PASS <name> | LOFTEST FAIL <name> <why> | LOFTEST SKIP <name>
# (the kselftests' own TAP lines come before their result; the host reads
# their "# Totals" and sub-test skips, harness/read-results.sh)
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

# The new selftest passes on the patched kernel and skips (KSFT_SKIP = 4)
# on the unpatched one, which ignores the flag.
if [ "$kind" = patched ]; then
	run map_lockonfault 0 must-pass 120 /lof/selftests/map_lockonfault
else
	run map_lockonfault-skips 4 must-pass 120 /lof/selftests/map_lockonfault
fi
run mlock2-tests 0 must-pass 300 /lof/selftests/mlock2-tests

# The allocator's own tests, as built on the host, with its libraries.
export LD_LIBRARY_PATH=/lof/lib
if [ -x /lof/bin/lof-backend ]; then
	if [ "$kind" = patched ]; then
		run backend-is-MAP_LOCKONFAULT 0 must-pass 60 /lof/bin/lof-backend MAP_LOCKONFAULT
	else
		run backend-is-mlock2 0 must-pass 60 /lof/bin/lof-backend mlock2
	fi
elif [ "$alloc" != 0 ]; then
	echo "LOFTEST FAIL backend no-lof-backend-in-initramfs"
fi
for t in /lof/tests/*; do
	[ -x "$t" ] || continue
	(cd /tmp && run "alloc/$(basename "$t")" 0 must-pass 600 "$t")
done
unset LD_LIBRARY_PATH

tsc=$(arg lof.tsc_khz)
run lof-bench 0 must-pass 900 /lof/bin/lof-bench ${tsc:+--tsc-khz "$tsc"} "$iters"

echo "LOFTEST DONE"
sync
reboot -f
