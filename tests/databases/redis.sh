#!/bin/sh
# tests/databases/redis.sh -- redis-server under lofrun, as root and
# unprivileged, beside a plain run: a deterministic dataset (DEBUG POPULATE)
# gives the same DEBUG DIGEST, redis-benchmark reports no error, INFO's
# allocator_allocated is lofalloc's (the jemalloc API) and MEMORY PURGE
# answers, the server's heap is locked, a BGSAVE child's too, and each
# process wrote its own stats file.
. "${top_srcdir:-../..}/tests/databases/common.sh"
need_lib
need_prog redis-server
need_prog redis-benchmark
need_prog redis-cli
KEYS=40000

# redis_run TAG USER MODE: one server life; sets digest_<TAG>.
redis_run() {
  tag=$1 user=$2 mode=$3
  port=$(free_port)
  dir="$WORK/redis-$tag"; mkdir -p "$dir"; chmod 0777 "$dir"
  set -- redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$dir" --logfile "$dir/log" --enable-debug-command yes
  if [ "$mode" = lof ]; then set -- $LOFRUN_CMD --stats="$STATS_DIR/stats.%p" -- "$@"; fi
  # a simple command in the background: $! is the server (lofrun and setpriv exec)
  $(user_prefix "$user") "$@" &
  pid=$!
  DB_PIDS="$DB_PIDS $pid"
  cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
  if ! wait_for 10 sh -c "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG"; then
    fail "redis [$tag]: server did not start"; sed 's/^/  | /' "$dir/log" | tail -5; return
  fi
  cli debug populate $KEYS key 1024 >/dev/null
  digest=$(cli debug digest)
  eval "digest_$tag=\$digest"
  out=$(redis-benchmark -h 127.0.0.1 -p "$port" -n 20000 -c 8 -d 256 -r 5000 \
    -t set,get,lpush,lpop,incr,hset --csv 2>&1)
  lines=$(printf '%s\n' "$out" | grep -c '^"[A-Z]')
  if [ "$lines" -eq 6 ] && ! printf '%s\n' "$out" | grep -qi 'error'; then
    pass "redis [$tag]: redis-benchmark 6 tests, no error"
  else
    fail "redis [$tag]: redis-benchmark: $(printf '%s' "$out" | tail -3)"
  fi
  if [ "$mode" = lof ]; then
    check_heap_locked "redis [$tag] server" "$pid" "$user"
    used=$(cli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
    alloc=$(cli info memory | sed -n 's/^allocator_allocated:\([0-9]*\).*/\1/p')
    if [ -n "$alloc" ] && [ $((alloc * 10)) -ge $((used * 9)) ] && [ $((alloc * 10)) -le $((used * 12)) ]; then
      pass "redis [$tag]: INFO allocator_allocated $alloc near used_memory $used (lofalloc's numbers)"
    else
      fail "redis [$tag]: INFO allocator_allocated '$alloc' vs used_memory '$used'"
    fi
    purge=$(cli memory purge)
    [ "$purge" = OK ] && pass "redis [$tag]: MEMORY PURGE OK" ||
      fail "redis [$tag]: MEMORY PURGE answered '$purge'"
    # a BGSAVE child kept alive long enough to look at it
    cli config set rdb-key-save-delay 200 >/dev/null
    cli bgsave >/dev/null
    child=""
    wait_for 5 pgrep -P "$pid" && child=$(pgrep -P "$pid" | head -1)
    if [ -n "$child" ]; then
      sleep 0.5
      check_heap_locked "redis [$tag] BGSAVE child" "$child" "$user" child
      kill -9 "$child" 2>/dev/null
      wait_for 5 sh -c "! pgrep -P $pid"
    else
      fail "redis [$tag]: no BGSAVE child seen"
    fi
  fi
  cli shutdown nosave >/dev/null 2>&1
  wait "$pid" 2>/dev/null
  DB_PIDS=$(echo "$DB_PIDS" | sed "s/ $pid\b//")
  [ "$mode" = lof ] && check_stats_file "redis [$tag]" "$pid"
}

redis_run plain root plain
redis_run lof root lof
if can_unpriv; then redis_run unpriv unpriv lof; fi
for t in lof unpriv; do
  eval "d=\${digest_$t:-}"
  [ -n "$d" ] || continue
  if [ "$d" = "${digest_plain:-x}" ]; then pass "redis [$t]: dataset digest equals the plain run's"
  else fail "redis [$t]: digest '$d' differs from plain '${digest_plain:-}'"; fi
done
finish
