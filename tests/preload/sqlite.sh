#!/bin/sh
# tests/preload/sqlite.sh -- sqlite3 under LD_PRELOAD builds a database of
# 200000 rows with an index, then queries it; answers checked.
. "${top_srcdir:-../..}/tests/preload/common.sh"
need_lib
need_prog sqlite3
cat >"$WORK/build.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, s TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, (x * 7919) % 1000, printf('row-%d-%s', x, hex(randomblob(8))) FROM c;
CREATE INDEX tk ON t(k);
SELECT count(*), sum(k), count(DISTINCT k), max(length(s)) > 20 FROM t;
SELECT k, count(*) FROM t WHERE k BETWEEN 10 AND 12 GROUP BY k ORDER BY k;
SQL
if run_preloaded sqlite sqlite3 "$WORK/db.sqlite" ".read $WORK/build.sql"; then
  got=$(tr '\n' ' ' <"$WORK/sqlite.out")
  expected="200000|99900000|1000|1 10|200 11|200 12|200 "
  if [ "$got" = "$expected" ]; then pass "sqlite3: answers correct"; else fail "sqlite3: got '$got', expected '$expected'"; fi
  check_probes sqlite3 1
fi
finish
