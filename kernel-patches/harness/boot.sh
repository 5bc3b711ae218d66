#!/bin/sh
# boot.sh BZIMAGE INITRD SERIAL_LOG TIMEOUT ACCEL [KERNEL_ARGS...]
#
# Boot BZIMAGE with INITRD under QEMU (2 vCPUs, 2 GiB), serial console to
# SERIAL_LOG (and to stderr as it arrives, prefixed by "guest| ").  ACCEL is
# "kvm" or "tcg".  The guest gets a scratch virtio disk (/dev/vda, 256 MiB,
# sparse, SERIAL_LOG.disk, removed afterwards) for its swap.  The
# guest's /init ends with reboot -f and QEMU runs with -no-reboot, so QEMU
# exits when the guest is done; after TIMEOUT seconds it is killed.
# Exit status: QEMU's, or 124 on timeout.
set -u
. "$(dirname "$0")/lib.sh"

kernel=$1 initrd=$2 serial=$3 t=$4 accel=$5
shift 5

case "$accel" in
kvm) acc="-enable-kvm -cpu host" ;;
*) acc="-accel tcg" ;;
esac

qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing"
disk=$serial.disk
rm -f "$disk"
truncate -s 256M "$disk" || die "cannot create $disk"
# The serial console is QEMU's stdout: keep it in SERIAL_LOG and show it.
{
	# shellcheck disable=SC2086
	timeout -k 10 "$t" "$qemu" $acc -m 2048 -smp 2 -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" \
		-drive "file=$disk,if=virtio,format=raw" \
		-append "console=ttyS0 panic=-1 quiet $*" \
		-serial stdio -monitor none </dev/null 2>"$serial.qemu"
	echo $? >"$serial.rc"
} | tee "$serial" | if [ -n "${LOF_QUIET:-}" ]; then cat >/dev/null; else sed 's/^/guest| /' >&2; fi
rm -f "$disk"
exit "$(cat "$serial.rc")"
