#!/bin/sh
# tools/demo.sh BUILD_DIR -- the main demonstration: the same sparse-table
# program (examples/sparse_heap) on glibc with mlockall(MCL_CURRENT|MCL_FUTURE),
# the classic way to keep a heap out of swap, and on liblofalloc.
set -eu
build=${1:?usage: demo.sh BUILD_DIR}
lib="$build/allocator/.libs/liblofalloc.so"
demo="$build/examples/sparse_heap"
size=$((4 << 30))
echo "== A 4 GiB calloc'ed table, 1% of its pages touched, then freed."
echo
echo "== 1. glibc malloc + mlockall(MCL_CURRENT|MCL_FUTURE): everything locked and populated"
"$demo" --mlockall --size $size --touch 1
echo
echo "== 2. liblofalloc (LD_PRELOAD): pages locked only as they are touched, returned on free"
LD_PRELOAD="$lib" LOFALLOC_VERBOSE=1 "$demo" --size $size --touch 1
