#!/bin/sh
# read-results.sh KIND SERIAL "EXPECTED..." "KSELFTESTS..." -- judge one
# guest's serial log (CRs removed) for check-kernel.sh; the fixtures in
# check-fixtures.sh run it on mutated logs.  Owns what counts as a result:
#   - every name in EXPECTED must have its "LOFTEST PASS"; a name ending in
#     "?" may instead SKIP.  A SKIP of any other test is a FAIL (a skip where
#     a pass is expected), and so is a missing result or any LOFTEST FAIL;
#   - the tests in KSELFTESTS print kselftest TAP: their sub-tests are
#     counted one by one (ok = pass, "# SKIP" = skip, "# XFAIL" = pass as
#     expected, not ok / "# error" / "# XPASS" = fail), and the "# Totals"
#     line must be there and agree with those counts and with the plan;
#   - on the patched kernel lof-bench must have timed the flag method: a
#     "method=flag ... unsupported" line there is a FAIL;
#   - a kernel panic or a missing "LOFTEST DONE" is a FAIL.
# Prints "KIND: PASS|FAIL|SKIP name [why]" lines (and the LOFBACKEND lines),
# then "counts PASSED FAILED SKIPPED" last.
set -eu
kind=$1 serial=$2 expected=$3 ksft=$4
[ -r "$serial" ] || { echo "$kind: FAIL no serial log $serial"; echo "counts 0 1 0"; exit 0; }
awk -v kind="$kind" -v expected="$expected" -v ksft="$ksft" '
function res(what, name, why) {
	printf "%s: %s %s%s\n", kind, what, name, why == "" ? "" : " " why
	if (what == "PASS") np++; else if (what == "FAIL") nf++; else ns++
}
BEGIN {
	ne = split(expected, e, " ")
	for (i = 1; i <= ne; i++) {
		n = e[i]; may = 0
		if (n ~ /\?$/) { n = substr(n, 1, length(n) - 1); may = 1 }
		want[n] = 1; mayskip[n] = may; order[i] = n
	}
	nk = split(ksft, k, " ")
	for (i = 1; i <= nk; i++) isksft[k[i]] = 1
}
/^LOFTEST START / { cur = $3; delete sub_; plan = ""; totals = ""; next }
cur != "" && isksft[cur] {
	if ($0 ~ /^1\.\.[0-9]+/) { plan = $0; sub(/^1\.\./, "", plan); sub(/[^0-9].*/, "", plan) }
	else if ($0 ~ /^# Totals: /) totals = $0
	else if ($0 ~ /^not ok [0-9]+/) { if ($0 ~ /# [Ee]rror/) sub_["error"]++; else sub_["fail"]++; sub_["n"]++ }
	else if ($0 ~ /^ok [0-9]+ # SKIP/) { sub_["skip"]++; sub_["n"]++; skipwhy[cur, sub_["skip"]] = $0 }
	else if ($0 ~ /^ok [0-9]+ # XFAIL/) { sub_["xfail"]++; sub_["n"]++ }
	else if ($0 ~ /^ok [0-9]+ # XPASS/) { sub_["xpass"]++; sub_["n"]++ }
	else if ($0 ~ /^ok [0-9]+/) { sub_["pass"]++; sub_["n"]++ }
}
/^LOFTEST (PASS|FAIL|SKIP) / {
	what = $2; name = $3; why = $0; sub(/^LOFTEST [A-Z]+ [^ ]+ ?/, "", why)
	seen[name]++
	if (what == "FAIL") res("FAIL", name, why)
	else if (what == "SKIP" && !mayskip[name]) res("FAIL", name, "skipped (exit 77) where a pass is expected")
	else if (what == "SKIP") res("SKIP", name, why)
	else if (!(name in want)) res("FAIL", name, "passed but is not an expected test")
	else if (isksft[name]) ksft_judge(name)
	else res("PASS", name, "")
	cur = ""
	next
}
/^LOFBACKEND/ { print kind ": " $0 }
/^LOFBENCH .*method=flag .*unsupported/ { flag_unsupported++ }
/^LOFBENCH .*method=flag .*median_ns=/ { flag_timed++ }
/Kernel panic/ { panic++ }
/^LOFTEST DONE/ { done++ }
function ksft_judge(name,   t, want_line, j) {
	if (totals == "") { res("FAIL", name, "kselftest: no \"# Totals\" line"); return }
	want_line = sprintf("# Totals: pass:%d fail:%d xfail:%d xpass:%d skip:%d error:%d",
		sub_["pass"], sub_["fail"], sub_["xfail"], sub_["xpass"], sub_["skip"], sub_["error"])
	t = totals; sub(/[[:space:]]+$/, "", t)
	if (t != want_line) { res("FAIL", name, "kselftest: \"" t "\" but the results say \"" want_line "\""); return }
	if (plan != "" && plan + 0 != sub_["n"]) { res("FAIL", name, "kselftest: plan 1.." plan " but " sub_["n"] " results"); return }
	if (sub_["fail"] + sub_["error"] + sub_["xpass"] > 0) { res("FAIL", name, "kselftest: " t); return }
	if (sub_["pass"] + sub_["xfail"] == 0) { res("FAIL", name, "kselftest: no sub-test passed"); return }
	for (j = 1; j <= sub_["pass"] + sub_["xfail"]; j++) np++
	for (j = 1; j <= sub_["skip"]; j++) res("SKIP", name, "sub-test: " skipwhy[name, j])
	printf "%s: PASS %s (kselftest: %d passed, %d skipped of %d)\n", kind, name,
		sub_["pass"] + sub_["xfail"], sub_["skip"], sub_["n"]
}
END {
	for (i = 1; i <= ne; i++) {
		n = order[i]
		if (!seen[n]) res("FAIL", n, "no result (the guest did not run it or did not finish it)")
		else if (seen[n] > 1) res("FAIL", n, "reported " seen[n] " times")
	}
	if (kind == "patched" && flag_unsupported) res("FAIL", "lof-bench", "the flag method reports unsupported on the patched kernel")
	else if (kind == "patched" && !flag_timed && ("lof-bench" in want)) res("FAIL", "lof-bench", "no timed flag method on the patched kernel")
	if (panic) res("FAIL", "kernel", "panic")
	if (!done) res("FAIL", "guest", "did not finish (no LOFTEST DONE)")
	printf "counts %d %d %d\n", np, nf, ns
}' "$serial"
