#!/usr/bin/env bash
# The data product at scale (docs/BENCHMARKS.md): an SQLite case store of N ended cases of 2026-11 written by
# SQL (regions and sections spread evenly, 40 % with SMS and replies), then `sdu publish` and `sdu extract`
# timed with their peak RSS. Usage: scripts/data-product-bench.sh [N] (default 1000000); needs sqlite3 and
# a release build (target/release/sdu).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
sdu="${DP_SDU:-./target/release/sdu}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db="$dir/bench.db"
"$sdu" --database "sqlite://$db" migrate >/dev/null
sqlite3 "$db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
INSERT INTO cases (id, case_key, bin, rename_at, from_name, to_name, status, reason, detail, attempt,
                   first_sent_at, created_at, updated_at, ended_at, region, activity)
SELECT i, 'k' || i, printf('%012d', i), 0, 'old', 'new',
  CASE WHEN i % 100 < 33 THEN 'not_applicable' WHEN i % 100 < 37 THEN 'ineligible'
       WHEN i % 100 < 42 THEN 'no_phone' WHEN i % 100 < 50 THEN 'declined'
       WHEN i % 100 < 60 THEN 'expired' ELSE 'reissued' END,
  CASE WHEN i % 100 < 33 THEN 'no_permit' WHEN i % 100 < 37 THEN (CASE i % 7 WHEN 0 THEN 'imprisoned' ELSE 'deceased' END)
       WHEN i % 100 < 42 THEN 'not_registered' ELSE NULL END,
  'free text', CASE WHEN i % 100 >= 42 THEN 1 + (i / 100) % 2 ELSE 0 END,
  CASE WHEN i % 100 >= 42 THEN 1793473200000 + (i * 7919) % 2500000000 - 400000000 ELSE NULL END,
  0, 1793473200000 + (i * 7919) % 2500000000, 1793473200000 + (i * 7919) % 2500000000,
  substr('1011151923273133353943475559616263717579', 1 + 2 * ((i * 31) % 20), 2) || '0000000',
  substr('010510353641454955586468697784858690949799', 1 + 2 * ((i * 17) % 21), 2) || '000'
FROM n;
INSERT INTO replies (id, message_id, from_raw, phone, text, received_at, status, case_id, handled_at)
SELECT id, 'm' || id, '+77010000000', '+77010000000', CASE status WHEN 'declined' THEN '2' ELSE '1' END,
  first_sent_at + (id * 104729) % 500000000, 'matched', id, 0
FROM cases WHERE status IN ('declined', 'reissued');
SQL
echo "cases: $(sqlite3 "$db" 'SELECT COUNT(*) FROM cases'), replies: $(sqlite3 "$db" 'SELECT COUNT(*) FROM replies')"
measure() {
  /usr/bin/time -f "%e s wall, %M KiB peak RSS" "$@" 2>&1 >/dev/null | tail -1
}
echo "publish: $(measure "$sdu" --database "sqlite://$db" publish --period 2026-11 --out "$dir/release")"
echo "extract: $(measure "$sdu" --database "sqlite://$db" --now 2026-12-05T10:00:00+05:00 extract --period 2026-11 \
  --researcher R --approved-by A --delete-by 2027-06-30 --out "$dir/extract.csv")"
"$sdu" --database "sqlite://$db" publish --period 2026-11 --out "$dir/release"
wc -l "$dir/extract.csv"
