#!/bin/sh
# run.sh -- mutation check: each entry of tests/mutants/list breaks the library
# on purpose (a sed script applied to one source file of a scratch copy) and
# names the test that must catch it.  For every entry the scratch library is
# rebuilt with the mutation and the test run; the test must FAIL.  A test
# that passes against a mutant does not test what its name promises.
#
# usage: run.sh SRCDIR [NAME...]    (make check-mutants runs it)
# The scratch tree and build live in ./_mutants of the current directory
# ($MUTANTS_DIR if set; kept between runs: only what a mutation touches is
# rebuilt).  Set
# MUTANTS_CONFIGURE_FLAGS for extra configure switches of the scratch build.
# Exit 0 when every selected mutant was caught, 1 otherwise.
set -u
srcdir=$(cd "${1:?usage: run.sh SRCDIR [NAME...]}" && pwd) || exit 2
shift
list=$srcdir/tests/mutants/list
work=${MUTANTS_DIR:-$(pwd)/_mutants}
src=$work/src
build=$work/build
logs=$work/logs
mkdir -p "$src" "$build" "$logs" || exit 2

if [ -f "$srcdir/config.status" ]; then
  echo "run.sh: $srcdir is configured in-tree; use a VPATH build (mkdir _build && cd _build && ../configure)" >&2
  exit 2
fi

say() { printf '%s\n' "$*"; }

# A pristine copy of the source, then one configure and one full build.
rsync -a --delete --exclude '_build*' --exclude '_mutants' --exclude '.git' \
  --exclude 'autom4te.cache' "$srcdir/" "$src/" || exit 2
# A run cut short may have left a mutated object behind: rebuild every file
# the list mutates.
grep -v '^#' "$list" | awk -F' [|] ' 'NF >= 4 {print $2}' | sort -u |
  while IFS= read -r f; do [ -f "$src/$f" ] && touch "$src/$f"; done
if [ ! -f "$build/config.status" ]; then
  say "mutants: configuring the scratch build in $build"
  (cd "$build" && "$src/configure" ${MUTANTS_CONFIGURE_FLAGS:-} >"$logs/configure.log" 2>&1) ||
    { say "mutants: configure failed, see $logs/configure.log"; exit 2; }
fi

# Build the library and the test programs; run TEST (a TESTS entry of
# tests/, e.g. malloc/test_malloc_decay, optionally preceded by VAR=value
# words) through make check so scripts get their environment.  Returns the
# test's result: 0 passed, 1 failed, 2 the build failed.
run_test() {
  log=$1
  shift
  if ! make -C "$build" -j2 >"$log.build" 2>&1 ||
     ! make -C "$build/tests" -j2 check TESTS= >>"$log.build" 2>&1; then
    return 2
  fi
  envs=
  while [ $# -gt 1 ]; do envs="$envs $1"; shift; done
  # shellcheck disable=SC2086
  env $envs timeout 300 make -C "$build/tests" check TESTS="$1" >"$log" 2>&1 && return 0
  return 1
}

want() { # is entry $1 selected on the command line?
  [ -z "$selected" ] && return 0
  for n in $selected; do [ "$n" = "$1" ] && return 0; done
  return 1
}
selected=$*

caught=0 survived=0 broken=0 baselined=
start=$(date +%s)
while IFS= read -r line; do
  case $line in ''|'#'*) continue ;; esac
  # name | file | sed script | test
  name=$(printf '%s' "$line" | awk -F' [|] ' '{print $1}')
  file=$(printf '%s' "$line" | awk -F' [|] ' '{print $2}')
  script=$(printf '%s' "$line" | awk -F' [|] ' '{print $3}')
  test=$(printf '%s' "$line" | awk -F' [|] ' '{print $4}')
  want "$name" || continue
  if [ -z "$test" ] || [ ! -f "$src/$file" ]; then
    say "BROKEN   $name: bad entry or no file $file"; broken=$((broken + 1)); continue
  fi
  # The test must pass on the real library first, or its failure says nothing.
  case " $baselined " in
    *" $test "*) ;;
    *)
      # shellcheck disable=SC2086
      if ! run_test "$logs/baseline-$(printf '%s' "$test" | tr '/ =' '___').log" $test; then
        say "BROKEN   $name: '$test' does not pass on the unmutated library (logs in $logs)"
        broken=$((broken + 1)); continue
      fi
      baselined="$baselined $test" ;;
  esac
  cp "$srcdir/$file" "$src/$file.orig"
  sed -e "$script" "$src/$file.orig" >"$src/$file"
  if cmp -s "$src/$file.orig" "$src/$file"; then
    say "BROKEN   $name: the sed script changed nothing in $file (the code moved?)"
    broken=$((broken + 1))
  else
    t0=$(date +%s)
    # shellcheck disable=SC2086
    run_test "$logs/$name.log" $test
    rc=$?
    t1=$(date +%s)
    case $rc in
      1) say "CAUGHT   $name: $test failed ($((t1 - t0)) s)"; caught=$((caught + 1)) ;;
      0) say "SURVIVED $name: $test passed with the mutation (log $logs/$name.log)"; survived=$((survived + 1)) ;;
      *) say "BROKEN   $name: the mutant does not build (log $logs/$name.log.build)"; broken=$((broken + 1)) ;;
    esac
  fi
  mv "$src/$file.orig" "$src/$file" # new mtime: the next build recompiles it
  touch "$src/$file"
done <"$list"
# Leave the scratch build unmutated.
make -C "$build" -j2 >/dev/null 2>&1
say "mutants: $caught caught, $survived survived, $broken broken ($(( $(date +%s) - start )) s)"
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
