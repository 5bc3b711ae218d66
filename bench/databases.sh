#!/bin/sh
# bench/databases.sh -- the four database loads under each allocator,
# interleaved, as root on 127.0.0.1, and one table of ratios.
#   bench/databases.sh [-r ROUNDS] [-b BUILD_DIR]
# Loads: redis-server + redis-benchmark (SET/GET, 20000 each), memcached +
# memcaslap (20000 ops), PostgreSQL + pgbench (4 clients x 200 TPC-B
# transactions on a scale-2 copy made once), sqlite3 (a 100000-row scripted
# workload; the process is its own server).  Allocators: default (the
# program's own malloc: glibc, but jemalloc for Debian's redis-server, which
# links it), jemalloc (LD_PRELOAD libjemalloc.so.2), lofalloc (lofrun),
# lofalloc-jemalloc (lofrun --jemalloc), and memcached -k (mlockall) as the
# reference for memcached.  Per run, read from /proc just before the server
# stops: CPU (utime+stime, + children's for PostgreSQL) per operation, peak
# RSS (VmHWM), anonymous RSS (RssAnon), locked-resident (smaps_rollup
# Locked:) and VmLck.  PostgreSQL's memory columns are the postmaster's
# (backends come and go).  Every figure is the median over ROUNDS (3); the
# ratios are to the default allocator of the same load.  The raw lines stay
# in ./databases-bench.txt (or $LOF_BENCH_RESULTS); a run whose server died
# is counted as failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rounds=3
build=${LOF_BUILD:-$here/..}
while getopts r:b: o; do
  case $o in r) rounds=$OPTARG ;; b) build=$OPTARG ;; *) exit 2 ;; esac
done
. "$(cd "$(dirname "$0")" && pwd)/../tests/common/smaps.sh"
LOF_LIB=$build/allocator/.libs/liblofalloc.so
LOFJE_LIB=$build/allocator/.libs/liblofalloc-jemalloc-process.so
LOFRUN=$build/allocator/lofrun
JE=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for f in "$LOF_LIB" "$LOFRUN" "$JE"; do [ -e "$f" ] || { echo "databases.sh: $f missing"; exit 1; }; done
[ "$(id -u)" -eq 0 ] || { echo "databases.sh: run as root"; exit 1; }
WORK=$(mktemp -d /tmp/lofdbbench.XXXXXX)
chmod 0755 "$WORK"
RESULTS=${LOF_BENCH_RESULTS:-$PWD/databases-bench.txt} # kept: one line per run
PIDS=""
cleanup() {
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
PG_AS="setpriv --reuid=postgres --regid=postgres --clear-groups --inh-caps=+ipc_lock --ambient-caps=+ipc_lock"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() { n=$(($1 * 10)); shift; while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n - 1)); done; return 1; }

# prefix ALLOC: the words that start a program under ALLOC (unquoted use)
prefix() {
  case $1 in
    default|mlockall) ;;
    jemalloc) echo "env LD_PRELOAD=$JE" ;;
    lofalloc) echo "$LOFRUN --lib=$LOF_LIB --" ;;
    lofalloc-jemalloc) echo "$LOFRUN --jemalloc --lib=$LOFJE_LIB --" ;;
  esac
}

# sample LOAD ALLOC PID OPS [children]: one result line from /proc/PID
sample() {
  load=$1 alloc=$2 pid=$3 ops=$4 kids=${5:-}
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$load $alloc FAILED" >>"$RESULTS"; echo "  $load under $alloc: the server died" >&2; return
  fi
  set -- $(cut -d' ' -f14-17 "/proc/$pid/stat")
  ticks=$(($1 + $2)); [ -n "$kids" ] && ticks=$((ticks + $3 + $4))
  hwm=$(status_kb "$pid" VmHWM) anon=$(status_kb "$pid" RssAnon) lck=$(status_kb "$pid" VmLck)
  locked=$(smaps_rollup_kb "$pid" Locked)
  echo "$load $alloc $ticks $ops $hwm $anon $locked $lck" >>"$RESULTS"
}

run_redis() { # ALLOC
  port=$(free_port)
  $(prefix "$1") redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$WORK" --logfile /dev/null &
  pid=$!; PIDS="$PIDS $pid"
  wait_for 10 sh -c "redis-cli -p $port ping | grep -q PONG" || { echo "redis did not start ($1)"; return; }
  redis-benchmark -p "$port" -n 20000 -c 8 -d 256 -r 20000 -t set,get -q >/dev/null
  sample redis "$1" "$pid" 40000
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; wait "$pid" 2>/dev/null
}

run_memcached() { # ALLOC
  port=$(free_port) k=""
  [ "$1" = mlockall ] && k=-k
  $(prefix "$1") memcached -u root $k -l 127.0.0.1 -p "$port" -U 0 -m 256 -t 2 &
  pid=$!; PIDS="$PIDS $pid"
  wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" ||
    { echo "memcached did not start ($1)"; return; }
  memcaslap -s "127.0.0.1:$port" -x 20000 -c 16 -T 2 >/dev/null 2>&1
  sample memcached "$1" "$pid" 20000
  kill "$pid"; wait "$pid" 2>/dev/null
}

pg_template() {
  [ -n "$PGBIN" ] || return 1
  chown postgres "$WORK"
  $PG_AS "$PGBIN/initdb" -D "$WORK/pgt" -U postgres -A trust --no-sync >/dev/null 2>&1 || return 1
  port=$(free_port)
  $PG_AS "$PGBIN/postgres" -D "$WORK/pgt" -k "$WORK/pgt" -p "$port" -c listen_addresses=127.0.0.1 \
    -c fsync=off >/dev/null 2>&1 &
  pid=$!
  wait_for 20 $PG_AS psql -h 127.0.0.1 -p "$port" -U postgres -c 'select 1' postgres || return 1
  $PG_AS pgbench -h 127.0.0.1 -p "$port" -U postgres -i -s 2 -q postgres >/dev/null 2>&1
  kill -INT "$pid"; wait "$pid" 2>/dev/null
}

run_pg() { # ALLOC
  rm -rf "$WORK/pg"; cp -a "$WORK/pgt" "$WORK/pg"
  port=$(free_port)
  $PG_AS $(prefix "$1") "$PGBIN/postgres" -D "$WORK/pg" -k "$WORK/pg" -p "$port" \
    -c listen_addresses=127.0.0.1 -c shared_buffers=128MB -c fsync=off -c synchronous_commit=off \
    -c huge_pages=off >/dev/null 2>&1 &
  pid=$!; PIDS="$PIDS $pid"
  wait_for 20 $PG_AS psql -h 127.0.0.1 -p "$port" -U postgres -c 'select 1' postgres ||
    { echo "postgres did not start ($1)"; return; }
  $PG_AS pgbench -h 127.0.0.1 -p "$port" -U postgres -c 4 -j 2 -t 200 postgres >/dev/null 2>&1
  sleep 0.3 # backends reaped: their CPU is in the postmaster's children's
  sample postgresql "$1" "$pid" 800 children
  kill -INT "$pid"; wait "$pid" 2>/dev/null
}

run_sqlite() { # ALLOC
  rm -f "$WORK/s.db"
  $(prefix "$1") sqlite3 "$WORK/s.db" ".read $WORK/s.sql" >/dev/null &
  pid=$!; PIDS="$PIDS $pid"
  wait_for 60 test -e "$WORK/s.ready"
  sample sqlite "$1" "$pid" 100000
  rm -f "$WORK/s.ready"; touch "$WORK/s.go"
  wait "$pid" 2>/dev/null; rm -f "$WORK/s.go"
}
# the workload stops at its peak (a .shell line waits) so /proc can be read
cat >"$WORK/s.sql" <<SQL
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, s TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t SELECT x, (x * 7919) % 1000, printf('row-%d-%08x', x, (x * 2654435761) % 4294967296) FROM c;
CREATE INDEX tk ON t(k);
UPDATE t SET s = s || '-u' WHERE k % 7 = 0;
SELECT k, count(*), max(s) FROM t GROUP BY k ORDER BY 3 DESC LIMIT 3;
.shell touch $WORK/s.ready; while [ ! -e $WORK/s.go ]; do sleep 0.05; done
SQL

loads="redis memcached postgresql sqlite"
command -v redis-benchmark >/dev/null || loads=${loads#redis }
command -v memcaslap >/dev/null || loads=$(echo "$loads" | sed 's/memcached //')
pg_template || { echo "databases.sh: no PostgreSQL, skipped"; loads=$(echo "$loads" | sed 's/postgresql //'); }
allocs="default jemalloc lofalloc"
[ -e "$LOFJE_LIB" ] && allocs="$allocs lofalloc-jemalloc"
: >"$RESULTS"
r=1
while [ $r -le "$rounds" ]; do
  for load in $loads; do
    for a in $allocs mlockall; do
      [ "$a" = mlockall ] && [ "$load" != memcached ] && continue
      case $load in
        redis) run_redis "$a" ;; memcached) run_memcached "$a" ;;
        postgresql) run_pg "$a" ;; sqlite) run_sqlite "$a" ;;
      esac
    done
  done
  echo "round $r of $rounds done" >&2
  r=$((r + 1))
done

python3 - "$RESULTS" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
hz = float(sys.argv[2])
rows, failed = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 8:
        failed[(f[0], f[1])] = failed.get((f[0], f[1]), 0) + 1
        continue
    load, alloc, ticks, ops, hwm, anon, locked, lck = f
    rows.setdefault((load, alloc), []).append(
        (int(ticks) / hz * 1e6 / int(ops), int(hwm), int(anon), int(locked), int(lck)))
med = {k: [statistics.median(c) for c in zip(*v)] for k, v in rows.items()}
print("| load | allocator | n | CPU us/op | x default | peak RSS kB | x default | anon RSS kB "
      "| locked-resident kB | locked / anon | VmLck kB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
order = ["default", "jemalloc", "lofalloc", "lofalloc-jemalloc", "mlockall"]
for load in ["redis", "memcached", "postgresql", "sqlite"]:
    base = med.get((load, "default"))
    for alloc in order:
        m = med.get((load, alloc))
        if m is None or base is None:
            continue
        cpu, hwm, anon, locked, lck = m
        print("| %s | %s | %d | %.2f | %.2f | %d | %.2f | %d | %d | %.2f | %d |" % (
            load, alloc if alloc != "mlockall" else "memcached -k (mlockall)",
            len(rows[(load, alloc)]), cpu, cpu / base[0] if base[0] else 0, hwm,
            hwm / base[1] if base[1] else 0, anon, locked, locked / anon if anon else 0, lck))
for (load, alloc), n in sorted(failed.items()):
    print("%s under %s: %d run(s) failed (no figures)" % (load, alloc, n))
PY
