#!/bin/sh
# man-pages.sh -- the manual pages render without a warning, and say what
# the code has: every LOFALLOC_* option row (the common layer's and each
# frontend's options.c) is in
# lofalloc(7) and in the README's table, every lof_* function of lofalloc.h
# in lofalloc(3), every lofrun option of lofrun.in in lofrun(1).
set -u
top=${top_srcdir:-$(dirname "$0")/../..}
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

for page in "$top/doc/lofalloc.3" "$top/doc/lofalloc.7" "$top/allocator/lofrun.1"; do
	[ -f "$page" ] || { bad "$page is missing"; continue; }
	warnings=$(MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null)
	[ -z "$warnings" ] || bad "$(basename "$page"): $warnings"
	lines=$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
	[ "$lines" -gt 40 ] || bad "$(basename "$page") renders to $lines lines"
done

options=$(sed -n 's/.*LOF_OPTION_ROW("\(LOFALLOC_[A-Z_]*\)".*/\1/p' "$top/allocator/common/options.c" \
	"$top/allocator/malloc/options.c" "$top/allocator/jemalloc/options.c")
[ "$(echo $options | wc -w)" -ge 12 ] || bad "only $(echo $options | wc -w) LOFALLOC_ option rows found in the options.c files"
for opt in $options; do
	grep -q "^\.BR $opt " "$top/doc/lofalloc.7" || bad "$opt is not in lofalloc(7)"
	grep -q "^| \`$opt\`" "$top/README.md" || bad "$opt is not in the README's options table"
done

functions=$(sed -n 's/^LOF_EXPORT [^(]*[ *]\(lof_[a-z_0-9]*\)(.*/\1/p' "$top/allocator/include/lofalloc.h")
[ -n "$functions" ] || bad "no lof_ function found in lofalloc.h"
for fn in $functions; do
	grep -q "$fn" "$top/doc/lofalloc.3" || bad "$fn is not in lofalloc(3)"
done

lofrun_options=$(sed -n 's/^[[:space:]]*--\([a-z-]*\)[=|)].*/\1/p' "$top/allocator/lofrun.in" | sort -u)
for o in $lofrun_options; do
	grep -q -- "\\\\-\\\\-$(echo "$o" | sed 's/-/\\\\-/g')" "$top/allocator/lofrun.1" ||
		bad "lofrun --$o is not in lofrun(1)"
done

echo "man pages: $(echo "$options" | wc -w) options, $(echo "$functions" | wc -w) functions," \
	"$(echo "$lofrun_options" | wc -w) lofrun options checked, $fails problems"
[ "$fails" -eq 0 ]
