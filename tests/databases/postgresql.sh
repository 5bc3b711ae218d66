#!/bin/sh
# tests/databases/postgresql.sh -- PostgreSQL under lofrun --lock-shared as
# the postgres user, with CAP_IPC_LOCK (privileged) and without it (the
# default RLIMIT_MEMLOCK), beside a plain run: pgbench -i -s 10, then a
# bounded pgbench run with 0 failed transactions; the bank's balances agree
# (accounts = tellers = branches = history) and match the plain run's
# answers; the postmaster's and a backend's heap are locked; shared_buffers
# (an anonymous MAP_SHARED mapping) is `lo lf` with its resident pages
# Locked:, in a forked backend too; the postmaster writes its stats file.
. "${top_srcdir:-../..}/tests/databases/common.sh"
need_lib
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/postgres" ] || skip "PostgreSQL is not installed (tools/deps.sh installs it)"
need_prog pgbench
need_prog psql
id postgres >/dev/null 2>&1 || skip "no postgres user"
[ "$(id -u)" -eq 0 ] || skip "needs root to run the server as postgres"
PG_PRIV="setpriv --reuid=postgres --regid=postgres --clear-groups --inh-caps=+ipc_lock --ambient-caps=+ipc_lock"
PG_UNPRIV="setpriv --reuid=postgres --regid=postgres --clear-groups --inh-caps=-all --bounding-set=-all"
chown postgres "$WORK" "$STATS_DIR"
DB_EXTRA_CLEANUP='for d in "$WORK"/pg-*; do [ -f "$d/postmaster.pid" ] && kill -9 $(head -1 "$d/postmaster.pid") 2>/dev/null; done'

$PG_UNPRIV "$PGBIN/initdb" -D "$WORK/template" -U postgres -A trust --no-sync >"$WORK/initdb.log" 2>&1 ||
  { fail "initdb"; tail -5 "$WORK/initdb.log"; finish; }

pg_run() { # TAG PRIV|UNPRIV MODE
  tag=$1 who=$2 mode=$3
  dir="$WORK/pg-$tag"
  cp -a "$WORK/template" "$dir"
  port=$(free_port)
  eval "prefix=\$PG_$who"
  set -- "$PGBIN/postgres" -D "$dir" -k "$dir" -p "$port" -c listen_addresses=127.0.0.1 \
    -c shared_buffers=128MB -c huge_pages=off -c fsync=off -c synchronous_commit=off \
    -c max_connections=20 -c logging_collector=off
  [ "$mode" = lof ] && set -- $LOFRUN_CMD --lock-shared --stats="$STATS_DIR/stats.%p" -- "$@"
  $prefix "$@" >"$WORK/pg-$tag.log" 2>&1 &
  pid=$!
  DB_PIDS="$DB_PIDS $pid"
  user=root; [ "$who" = UNPRIV ] && user=unpriv
  psql_() { $PG_UNPRIV psql -X -q -At -h 127.0.0.1 -p "$port" -U postgres "$@" postgres; }
  if ! wait_for 20 $PG_UNPRIV psql -X -h 127.0.0.1 -p "$port" -U postgres -c 'select 1' postgres; then
    fail "postgresql [$tag]: did not start"; tail -5 "$WORK/pg-$tag.log" | sed 's/^/  | /'; return
  fi
  $PG_UNPRIV pgbench -h 127.0.0.1 -p "$port" -U postgres -i -s 10 -q postgres >"$WORK/pgi-$tag.log" 2>&1 ||
    { fail "postgresql [$tag]: pgbench -i"; tail -3 "$WORK/pgi-$tag.log"; }
  out=$($PG_UNPRIV pgbench -h 127.0.0.1 -p "$port" -U postgres -c 4 -j 2 -t 200 postgres 2>&1); rc=$?
  failed=$(printf '%s\n' "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  done_=$(printf '%s\n' "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
  if [ $rc -eq 0 ] && [ "${failed:-0}" = 0 ] && [ "$done_" = 800 ]; then
    pass "postgresql [$tag]: pgbench 800 transactions, 0 failed"
  else
    fail "postgresql [$tag]: pgbench rc $rc, processed '$done_', failed '$failed'"; printf '%s\n' "$out" | tail -3
  fi
  ans=$(psql_ -c "select (select count(*) from pgbench_accounts),
      (select count(*) from pgbench_history),
      (select sum(abalance) from pgbench_accounts) = (select sum(delta) from pgbench_history),
      (select sum(tbalance) from pgbench_tellers) = (select sum(delta) from pgbench_history),
      (select sum(bbalance) from pgbench_branches) = (select sum(delta) from pgbench_history)")
  eval "answers_$tag=\$ans"
  [ "$ans" = "1000000|800|t|t|t" ] && pass "postgresql [$tag]: balances agree ($ans)" ||
    fail "postgresql [$tag]: answers '$ans'"
  if [ "$mode" = lof ]; then
    # a backend holding a sorted cursor (~45 MB of heap) while we look
    psql_ -c begin -c "set local work_mem='128MB'" \
      -c "declare c cursor for select aid, filler from pgbench_accounts where aid <= 300000 order by filler desc, aid" \
      -c "fetch 1 from c" -c "select 'lofwait', pg_sleep(30)" -c commit >"$WORK/cursor-$tag.out" 2>&1 &
    bg=$!
    backend=""
    find_backend() {
      backend=$(psql_ -c "select pid from pg_stat_activity where query like '%lofwait%' and state = 'active' and pid <> pg_backend_pid()")
      [ -n "$backend" ]
    }
    wait_for 10 find_backend
    echo "  backend $backend (ps: $(ps -o pid=,stat=,args= -p "${backend:-0}" 2>/dev/null))"
    check_heap_locked "postgresql [$tag] postmaster" "$pid" "$user" child
    pm_rss=$shared_rss_kb pm_lolf=$shared_lolf_kb pm_lock=$shared_locked_kb pm_pss=$shared_pss_kb
    if [ -n "$backend" ]; then
      check_heap_locked "postgresql [$tag] backend" "$backend" "$user" child
      be_rss=$shared_rss_kb be_lolf=$shared_lolf_kb
    else
      fail "postgresql [$tag]: no busy backend seen"; be_rss=0 be_lolf=0
      sed 's/^/  | /' "$WORK/cursor-$tag.out"
    fi
    if [ "$who" = PRIV ]; then
      if [ "$pm_rss" -gt 8192 ] && [ $((pm_lolf * 100)) -ge $((pm_rss * 95)) ] &&
         [ $((pm_lock * 100)) -ge $((pm_pss * 95)) ]; then
        pass "postgresql [$tag]: shared memory lo lf, postmaster Locked ${pm_lock} kB of Pss ${pm_pss} kB (Rss ${pm_rss} kB)"
      else
        fail "postgresql [$tag]: shared memory: Rss ${pm_rss} kB, in lo lf ${pm_lolf} kB, Locked ${pm_lock} kB, Pss ${pm_pss} kB"
      fi
      [ "$be_rss" -gt 0 ] && [ $((be_lolf * 100)) -ge $((be_rss * 95)) ] &&
        pass "postgresql [$tag]: backend's shared memory lo lf (${be_lolf} of ${be_rss} kB)" ||
        fail "postgresql [$tag]: backend's shared memory ${be_lolf} of ${be_rss} kB lo lf"
    fi
    [ -n "$backend" ] && psql_ -c "select pg_cancel_backend($backend)" >/dev/null
    wait "$bg" 2>/dev/null
  fi
  kill -INT "$pid"; wait "$pid" 2>/dev/null
  DB_PIDS=$(echo "$DB_PIDS" | sed "s/ $pid\\b//")
  if [ "$mode" = lof ]; then
    check_stats_file "postgresql [$tag] postmaster" "$pid"
  fi
  if [ "$mode" = lof ] && [ "$who" = UNPRIV ]; then
    # 128 MB of shared memory cannot fit under 8 MiB: served unlocked, said once
    if [ $((pm_lolf * 2)) -lt "$pm_rss" ] && grep -q "lofalloc: warning: cannot lock" "$WORK/pg-$tag.log"; then
      pass "postgresql [$tag]: shared memory past RLIMIT_MEMLOCK served unlocked (${pm_lolf} of ${pm_rss} kB lo lf), with the warning"
    else
      fail "postgresql [$tag]: unprivileged shared memory ${pm_lolf} of ${pm_rss} kB lo lf, warning: $(grep -c lofalloc "$WORK/pg-$tag.log")"
    fi
  fi
}

pg_run plain PRIV plain
pg_run lof PRIV lof
pg_run unpriv UNPRIV lof
for t in lof unpriv; do
  eval "a=\${answers_$t:-}"
  [ -n "$a" ] || continue
  [ "$a" = "${answers_plain:-x}" ] && pass "postgresql [$t]: answers equal the plain run's" ||
    fail "postgresql [$t]: answers '$a' vs plain '${answers_plain:-}'"
done
finish
