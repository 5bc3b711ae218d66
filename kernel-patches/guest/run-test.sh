# run-test.sh -- the guest's test runner: sourced by /init (init.sh) from
# /lof/run-test.sh; harness/check-fixtures.sh sources it on the host.
#
# run NAME EXPECTED_RC SKIPPING TIMEOUT CMD...
#   "LOFTEST PASS NAME" when CMD exits with EXPECTED_RC.  Exit status 77 is
#   "LOFTEST SKIP NAME" only when SKIPPING is may-skip; for a must-pass test
#   it is a FAIL like any other status (124: the timeout).  The host
#   (harness/read-results.sh) also fails a SKIP of a test it expects to pass.
run() {
	name=$1 want=$2 skipping=$3 t=$4
	shift 4
	echo "LOFTEST START $name"
	timeout "$t" "$@"
	rc=$?
	if [ "$rc" = "$want" ]; then
		echo "LOFTEST PASS $name"
	elif [ "$rc" = 77 ] && [ "$skipping" = may-skip ]; then
		echo "LOFTEST SKIP $name rc=77"
	else
		echo "LOFTEST FAIL $name rc=$rc want=$want"
	fi
}
