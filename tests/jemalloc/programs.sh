#!/bin/sh
# programs.sh -- the whole-process library under real programs:
#  - python3 with PYTHONMALLOC=malloc (every Python allocation through
#    jemalloc) computes a digest that must equal the one computed without
#    the library, and its heap must be lock-on-fault (vmas.py); the same run
#    on stock jemalloc (no library) must fail vmas.py (a control);
#  - redis-server (Debian's links jemalloc) on 127.0.0.1 and a free port,
#    loaded by redis-benchmark with a bounded request count, answers
#    correctly, and its heap is lock-on-fault; the server is always shut down.
# Prints PASS/FAIL per program; a missing program is a SKIP (exit 77 if all).
# tests run from the tests build directory (make check); also runnable
# from anywhere in an in-tree build.
. "$(dirname "$0")/common.sh"
need_libs
srcdir="$(cd "${top_srcdir:-/nonexistent}/tests/jemalloc" 2>/dev/null && pwd)"
[ -n "$srcdir" ] && [ -f "$srcdir/vmas.py" ] || srcdir="$here"
py=/usr/bin/python3
[ -x "$py" ] || py="$(command -v python3)"
status=0 ran=0
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null; sleep 1; kill -9 "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# ---- python3 ----
if [ -x "$py" ]; then
  ran=1
  cat >"$tmp/work.py" <<'PYEOF'
import hashlib, json, os, subprocess, sys
d = {f'key{i}': [i, str(i) * (i % 17), {'v': i * 3}] for i in range(200000)}
s = json.dumps(sorted(d.items())[::7])
blob = b''.join(bytes(range(i % 256)) for i in range(3000))
h = hashlib.sha256((s + str(len(blob))).encode()).hexdigest()
print(h)
if len(sys.argv) > 1:
    env = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
    r = subprocess.run([sys.executable, sys.argv[1], str(os.getpid())], env=env)
    sys.exit(r.returncode)
PYEOF
  want="$("$py" "$tmp/work.py")"
  got="$(PYTHONMALLOC=malloc LD_PRELOAD="$je $lib" "$py" "$tmp/work.py" "$srcdir/vmas.py" 2>"$tmp/py.err")"
  rc=$?
  printf '%s\n' "$got" | sed 1d
  if [ $rc -eq 0 ] && [ "$(printf '%s\n' "$got" | head -1)" = "$want" ] && ! grep -q . "$tmp/py.err"; then
    echo "PASS: python3 under the whole-process mode (digest $want)"
  else
    echo "FAIL: python3 (rc $rc, digest '$(printf '%s\n' "$got" | head -1)' want '$want')"; cat "$tmp/py.err"; status=1
  fi
  # control: the same program on stock jemalloc (no lofalloc library) must
  # fail the same VMA check, or the check above proves nothing
  PYTHONMALLOC=malloc LD_PRELOAD="$je" "$py" "$tmp/work.py" "$srcdir/vmas.py" >"$tmp/ctl.out" 2>&1
  ctl_rc=$?
  if [ $ctl_rc -ne 0 ] && grep -q FAIL "$tmp/ctl.out"; then
    echo "PASS: control: python3 on stock jemalloc fails the VMA check (rc $ctl_rc)"
    grep -E "FAIL|unlocked" "$tmp/ctl.out" | head -3 | sed 's/^/  /'
  else
    echo "FAIL: control: python3 on stock jemalloc passed the VMA check (rc $ctl_rc)"; cat "$tmp/ctl.out"; status=1
  fi
else
  echo "SKIP: python3 not found"
fi

# ---- redis-server + redis-benchmark ----
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null; then
  ran=1
  port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  LD_PRELOAD="$lib" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$tmp" --logfile "$tmp/redis.log" &
  server_pid=$!
  up=0
  for i in $(seq 1 50); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then up=1; break; fi
    sleep 0.1
  done
  if [ $up -eq 1 ]; then
    redis-benchmark -h 127.0.0.1 -p "$port" -n 50000 -c 20 -d 512 -r 10000 -q -t set,get,lpush,lpop,incr,hset \
      >"$tmp/bench.out" 2>&1
    brc=$?
    tr '\r' '\n' <"$tmp/bench.out" | grep -E "requests per second" | sed 's/^/  /'
    redis-cli -h 127.0.0.1 -p "$port" set lofkey lofvalue >/dev/null
    val="$(redis-cli -h 127.0.0.1 -p "$port" get lofkey)"
    alloc="$(redis-cli -h 127.0.0.1 -p "$port" info memory | tr -d '\r' | grep '^mem_allocator:')"
    "$py" "$srcdir/vmas.py" "$server_pid" >"$tmp/vmas.out"
    vrc=$?
    sed 's/^/  /' "$tmp/vmas.out"
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1
    wait "$server_pid" 2>/dev/null
    server_pid=""
    if [ $brc -eq 0 ] && [ "$val" = lofvalue ] && [ $vrc -eq 0 ] && echo "$alloc" | grep -q jemalloc; then
      echo "PASS: redis-server under the whole-process mode ($alloc)"
    else
      echo "FAIL: redis-server (benchmark rc $brc, get '$val', $alloc, vmas rc $vrc)"; cat "$tmp/redis.log"; status=1
    fi
  else
    echo "FAIL: redis-server did not start"; cat "$tmp/redis.log"; status=1
  fi
else
  echo "SKIP: redis-server/redis-benchmark not found"
fi
[ $ran -eq 0 ] && exit 77
exit $status
