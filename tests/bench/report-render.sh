#!/bin/sh
# report-render.sh -- bench/report.py turns raw results into the report's
# tables: on a fixture with known numbers, the medians, the best peer per
# workload, the ratios and their geometric mean come out as computed by
# hand, a failed run (inf) is left out, and with gnuplot the SVGs are made.
set -u
top=${top_srcdir:-$(dirname "$0")/../..}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/raw"
# churn: lofalloc median 1.0 (0.9 1.0 1.4), best free peer mimalloc 0.5,
# best locked peer glibc-locked 2.0; RSS lofalloc 2048 KiB, peers 1024/4096.
# server: lofalloc 3.0, best free peer glibc 1.5 (jemalloc failed: inf),
# best locked jemalloc-locked 6.0; RSS all 1024 KiB.
cat > "$d/raw/bench.txt" <<'RAW'
churn lofalloc 0 0.9 2048
churn lofalloc 1 1.4 2048
churn lofalloc 2 1.0 2048
churn glibc 0 0.8 1024
churn glibc-locked 0 2.0 4096
churn mimalloc 0 0.5 1024
churn mimalloc-locked 0 2.5 4096
server lofalloc 0 3.0 1024
server glibc 0 1.5 1024
server jemalloc 0 inf 0
server glibc-locked 0 9.0 1024
server jemalloc-locked 0 6.0 1024
RAW
printf 'glibc-mlockall 1 10.0 1024.0 1024.0 1024.0\nlofalloc 1 10.0 10.1 12.0 10.5\n' > "$d/raw/sparse.txt"
out=$(python3 "$top/bench/report.py" "$d" 2>&1) || { echo "FAIL: report.py: $out"; exit 1; }
r="$d/README.md"
fails=0
want() { grep -qF -- "$1" "$r" || { echo "FAIL: the report lacks: $1"; fails=$((fails + 1)); }; }
want "| churn | 1.000 | 0.900–1.400 | mimalloc 0.500 | 2.00× | glibc-locked 2.000 | 0.50× | 2.00× | 0.50× |"
want "| server | 3.000 | 3.000–3.000 | glibc 1.500 | 2.00× | jemalloc-locked 6.000 | 0.50× | 1.00× | 1.00× |"
want "| **geometric mean** | | | | **2.00×** | | **0.50×** | **1.41×** | **0.71×** |"
want "| lofalloc | 1 | 10.0 | 10.1 | 12.0 | 10.5 |"
if command -v gnuplot >/dev/null 2>&1; then
	for svg in ratios-time.svg ratios-rss.svg sparse.svg; do
		grep -q '<svg' "$d/$svg" 2>/dev/null || { echo "FAIL: $svg not written"; fails=$((fails + 1)); }
	done
fi
[ "$fails" -eq 0 ] || { sed 's/^/  | /' "$r"; exit 1; }
echo "PASS: report.py renders the fixture's ratios and geometric means"
