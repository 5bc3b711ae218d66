#!/bin/sh
# options.sh -- each frontend parses the common options and its own only.
# Loads liblofalloc.so, and liblofalloc-jemalloc-process.so after jemalloc,
# into sh -c : and reads what they print:
#  - a bad value of the library's own option warns, a bad value of the
#    other frontend's option (LOFALLOC_JE_COMMIT under liblofalloc,
#    LOFALLOC_DECAY_MS under the jemalloc library) is neither parsed nor
#    warned about; a bad common option warns under both;
#  - a LOFALLOC_* name no frontend knows warns under both;
#  - every option lofalloc(7) lists, set to its documented default, is
#    silent under both (each frontend knows every documented name).
# Runs from the tests build directory (make check).
set -u
. "$(dirname "$0")/common.sh"
need_libs
top=${top_srcdir:-$(dirname "$0")/../..}
malloc_lib="$libdir/liblofalloc.so"
for f in "$malloc_lib" "$top/doc/lofalloc.7"; do
	[ -f "$f" ] || { echo "FAIL: $f not found"; exit 1; }
done
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run NAME PRELOAD VAR=VALUE...: stderr of sh -c : under PRELOAD and VARs
run() {
	preload=$1; shift
	env "$@" LD_PRELOAD="$preload" sh -c : 2>&1
}

# expect LIBRARY-NAME PRELOAD PATTERN|-PATTERN VAR=VALUE: PATTERN must (or,
# with a leading -, must not) be in what the library printed
expect() {
	name=$1 preload=$2 pattern=$3; shift 3
	out=$(run "$preload" "$@")
	case $pattern in
	-*) if echo "$out" | grep -q -- "${pattern#-}"; then bad "$name $*: printed '${pattern#-}': $out"; fi ;;
	*) echo "$out" | grep -q -- "$pattern" || bad "$name $*: no '$pattern' in: $out" ;;
	esac
}

for side in malloc jemalloc; do
	if [ $side = malloc ]; then
		preload=$malloc_lib own=LOFALLOC_DECAY_MS other=LOFALLOC_JE_COMMIT
	else
		preload="$je $lib" own=LOFALLOC_JE_COMMIT other=LOFALLOC_DECAY_MS
	fi
	expect $side "$preload" "ignoring $own=bogus" $own=bogus
	expect $side "$preload" "-$other" $other=bogus
	expect $side "$preload" "ignoring LOFALLOC_POLICY=bogus" LOFALLOC_POLICY=bogus
	expect $side "$preload" "unknown option LOFALLOC_NO_SUCH_OPTION" LOFALLOC_NO_SUCH_OPTION=1
	# every documented option at its documented default: not one line
	defaults=$(sed -n 's/^\.BR \(LOFALLOC_[A-Z_]*\) " (\([^,)]*\).*/\1=\2/p' "$top/doc/lofalloc.7")
	[ "$(echo $defaults | wc -w)" -ge 12 ] || bad "lofalloc(7) lists only: $defaults"
	# shellcheck disable=SC2086
	out=$(run "$preload" $defaults)
	[ -z "$out" ] || bad "$side with every documented default printed: $out"
done
[ $fails -eq 0 ] && echo "PASS: each frontend parses its own options and the common ones"
exit $((fails != 0))
