#!/bin/sh
# tests/databases/memcached.sh -- memcached under lofrun, as root and
# unprivileged, beside a plain run: 40000 deterministic 1 KiB items stored
# and read back give the same digest, memcaslap runs a bounded mixed load
# with no miss or error, memcached's heap is locked, and the stats file of
# the process is written.
. "${top_srcdir:-../..}/tests/databases/common.sh"
need_lib
need_prog memcached
need_prog memcaslap
PY=/usr/bin/python3
[ -x "$PY" ] || skip "/usr/bin/python3 is not installed"

# mc_load PORT: store 40000 items and read them back; print a digest.
mc_load() {
  "$PY" - "$1" <<'PYEOF'
import hashlib, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
h = hashlib.sha256()
for i in range(40000):
    v = (b"%08d" % (i * 2654435761 % 100000000)) * 128
    s.sendall(b"set key:%d 0 0 %d noreply\r\n%s\r\n" % (i, len(v), v))
for i in range(0, 40000, 100):
    s.sendall(b"get " + b" ".join(b"key:%d" % j for j in range(i, i + 100)) + b"\r\n")
    while True:
        line = f.readline()
        if line == b"END\r\n":
            break
        if not line.startswith(b"VALUE "):
            sys.exit("bad reply: %r" % line)
        n = int(line.split()[3])
        h.update(line); h.update(f.read(n + 2))
print(h.hexdigest())
PYEOF
}

mc_run() { # TAG USER MODE
  tag=$1 user=$2 mode=$3
  port=$(free_port)
  run_as=nobody; [ "$user" = root ] && run_as=root
  set -- memcached -u "$run_as" -l 127.0.0.1 -p "$port" -U 0 -m 128 -t 2
  [ "$mode" = lof ] && set -- $LOFRUN_CMD --stats="$STATS_DIR/stats.%p" -- "$@"
  $(user_prefix "$user") "$@" 2>"$WORK/mc-$tag.err" &
  pid=$!
  DB_PIDS="$DB_PIDS $pid"
  if ! wait_for 10 "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port))"; then
    fail "memcached [$tag]: did not start"; sed 's/^/  | /' "$WORK/mc-$tag.err"; return
  fi
  d=$(mc_load "$port") || { fail "memcached [$tag]: load failed: $d"; }
  eval "digest_$tag=\$d"
  out=$(timeout 60 memcaslap -s "127.0.0.1:$port" -x 20000 -c 16 -T 2 2>&1); rc=$?
  misses=$(printf '%s\n' "$out" | sed -n 's/^get_misses: //p' | tail -1)
  if [ $rc -eq 0 ] && [ "$misses" = 0 ] && printf '%s\n' "$out" | grep -q '^cmd_get: 18000' &&
     ! printf '%s\n' "$out" | grep -qi 'error\|fail'; then
    pass "memcached [$tag]: memcaslap 20000 ops, 0 misses, no error"
  else
    fail "memcached [$tag]: memcaslap rc $rc misses '$misses'"; printf '%s\n' "$out" | tail -5
  fi
  [ "$mode" = lof ] && check_heap_locked "memcached [$tag]" "$pid" "$user"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
  DB_PIDS=$(echo "$DB_PIDS" | sed "s/ $pid\\b//")
  [ "$mode" = lof ] && check_stats_file "memcached [$tag]" "$pid"
}

mc_run plain root plain
mc_run lof root lof
can_unpriv && mc_run unpriv unpriv lof
for t in lof unpriv; do
  eval "d=\${digest_$t:-}"
  [ -n "$d" ] || continue
  [ "$d" = "${digest_plain:-x}" ] && pass "memcached [$t]: items read back equal the plain run's" ||
    fail "memcached [$t]: digest $d differs from plain ${digest_plain:-}"
done
finish
