#!/usr/bin/env bash
# bench/gallery: 1,000,000 public images across 10,000 users (seeded with COPY), then requests/s and
# p50/p99 of the first page and of a deep page of `new`, `top?period=week` and a search, through HTTP
# (the release `easel serve`, wrk) and as the same SQL run directly (pgbench), in one run. Prints the
# figures, the ratios, and the EXPLAIN ANALYZE plans (kept in target/bench-gallery-explain.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-8}
images=${BENCH_IMAGES:-1000000}
users=${BENCH_USERS:-10000}
deep=${BENCH_DEEP_PAGES:-10000}
bench_name=gallery
. bench/lib.sh

start_server EASEL_JOB_WORKERS=0 EASEL_RATE_LIMIT_ANONYMOUS_PER_MINUTE=1000000
export BENCH_IMAGES=$images BENCH_USERS=$users

echo "bench/gallery: seeding $images images across $users users with COPY"
seed_started=$(date +%s)
python3 bench/gallery/seed.py users | psql -c "COPY users (id, username, display_name, created_at) FROM STDIN"
python3 bench/gallery/seed.py generations | psql -c "COPY generations (id, user_id, model, prompt, aspect_ratio, width, height, num_outputs, seed, visibility, status, progress, credits_charged, deadline_at, completed_at) FROM STDIN"
# The one-word search terms are built in one pass afterwards (as the migration does), not row by row.
psql -c "ALTER TABLE images DISABLE TRIGGER images_search_terms"
python3 bench/gallery/seed.py images | psql -c "COPY images (id, user_id, generation_id, output_index, model, prompt, width, height, seed, visibility, content_hash, thumb_hash, content_type, byte_size, nsfw, like_count, created_at) FROM STDIN"
psql -c "ALTER TABLE images ENABLE TRIGGER images_search_terms" -c "SELECT easel_rebuild_image_search_terms()" >/dev/null
psql -c "VACUUM ANALYZE"
# Write the seed (over a gigabyte) out before measuring, so its write-back is not measured.
psql -c "CHECKPOINT"
echo "seeded in $(( $(date +%s) - seed_started )) s"

word=$(python3 bench/gallery/seed.py word)
# The statement `gallery::store::feed` builds, with its parameters written in (anonymous viewer):
# the page is cut from `images` alone, then joined to its owners.
from="FROM images i WHERE i.visibility = 'public' AND NOT i.nsfw AND i.deleted_at IS NULL"
tsq="websearch_to_tsquery('english', '$word')"
since="now() - interval '7 days'"
# A one-word ranked search reads its page from image_search_terms, in rank order.
from_word="FROM image_search_terms t JOIN images i ON i.id = t.image_id WHERE t.lexeme = btrim($tsq::text, '''') AND i.visibility = 'public' AND NOT i.nsfw AND i.deleted_at IS NULL"
page_sql() { # rank, conditions, inner order, outer order[, FROM … WHERE …]
  echo "SELECT p.*, u.username, u.display_name, false AS liked FROM (SELECT i.id, i.user_id, i.generation_id, i.width, i.height, i.title, i.prompt, i.model, i.seed, i.visibility, i.nsfw, i.like_count, i.trending_score, i.created_at, i.kind, i.vertex_count, i.content_type, i.byte_size, $1 AS rank, NULL::timestamptz AS added_at ${5:-$from} $2 ORDER BY $3 LIMIT 21) p JOIN users u ON u.id = p.user_id ORDER BY $4"
}
new_order=("i.id DESC" "p.id DESC")
top_order=("i.like_count DESC, i.id DESC" "p.like_count DESC, p.id DESC")
search_order=("t.rank DESC, t.image_id DESC" "p.rank DESC, p.id DESC")

# The key of the item that ends page N-1 (so the cursor asks for page N), straight from the data.
matches=$(psql -At -c "SELECT count(*) FROM images i WHERE i.visibility = 'public' AND NOT i.nsfw AND i.deleted_at IS NULL AND i.search @@ $tsq")
search_deep=$(( matches / 20 - 1 ))
[ "$search_deep" -gt "$deep" ] && search_deep=$deep
offset() { echo $(( ($1 - 1) * 20 - 1 )); }
key_new=$(psql -At -c "SELECT i.id $from ORDER BY i.id DESC OFFSET $(offset "$deep") LIMIT 1")
key_top=$(psql -At -F' ' -c "SELECT i.like_count, i.id $from AND i.created_at >= $since ORDER BY i.like_count DESC, i.id DESC OFFSET $(offset "$deep") LIMIT 1")
key_search=$(psql -At -F' ' -c "SELECT ts_rank(i.search, $tsq), i.id $from AND i.search @@ $tsq ORDER BY 1 DESC, i.id DESC OFFSET $(offset "$search_deep") LIMIT 1")

# Cursors exactly as the server makes them (db::cursor::encode): base64url of the JSON envelope
# and its FNV-1a checksum.
cursor() {
  python3 - "$1" "$2" "$3" <<'PY'
import base64, json, struct, sys
kind, value, ident = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if kind.startswith("gallery::Relevance"):
    value = struct.unpack("f", struct.pack("f", value))[0]  # ts_rank is a float4
body = json.dumps({"k": kind, "v": [value, ident]}, separators=(",", ":")).encode()
h = 0x811C9DC5
for b in body:
    h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
print(base64.urlsafe_b64encode(body + h.to_bytes(4, "big")).decode().rstrip("="))
PY
}
read -r top_likes top_id <<<"$key_top"
read -r search_rank search_id <<<"$key_search"
c_new=$(cursor "gallery::New:All:::" 0 "$key_new")
c_top=$(cursor "gallery::Top:Week:::" "$top_likes" "$top_id")
c_search=$(cursor "gallery::Relevance:All::$word:" "$search_rank" "$search_id")

base="http://127.0.0.1:$app_port/v1/gallery"
declare -A url sql
url[new_first]="$base?sort=new"
sql[new_first]=$(page_sql "0::real" "" "${new_order[@]}")
url[new_deep]="$base?sort=new&cursor=$c_new"
sql[new_deep]=$(page_sql "0::real" "AND i.id < '$key_new'" "${new_order[@]}")
url[top_first]="$base?sort=top&period=week"
sql[top_first]=$(page_sql "0::real" "AND i.created_at >= $since" "${top_order[@]}")
url[top_deep]="$base?sort=top&period=week&cursor=$c_top"
sql[top_deep]=$(page_sql "0::real" "AND i.created_at >= $since AND (i.like_count, i.id) < ($top_likes, '$top_id')" "${top_order[@]}")
url[search_first]="$base?q=$word"
sql[search_first]=$(page_sql "t.rank" "" "${search_order[@]}" "$from_word")
url[search_deep]="$base?q=$word&cursor=$c_search"
sql[search_deep]=$(page_sql "t.rank" "AND (t.rank, t.image_id) < ($search_rank::real, '$search_id')" "${search_order[@]}" "$from_word")

# wrk prints latencies as 1.23ms / 456.78us / 1.02s: to milliseconds.
ms() { python3 -c "import re,sys; v,u=re.match(r'([\d.]+)(\w+)', sys.argv[1]).groups(); print(float(v)*{'us':0.001,'ms':1,'s':1000}[u])" "$1"; }

explain=target/bench-gallery-explain.txt
: >"$explain"
# pgbench times a transaction from its loop's cached clock, so it logs sub-millisecond ones as 0 µs:
# its median is meaningless for these queries. The SQL columns give the mean (clients / rate) instead.
printf '\n%-14s %26s   %26s   %s\n' "query" "HTTP req/s  p50   p99 ms" "SQL tx/s mean   p99 ms" "HTTP/SQL"
for name in new_first new_deep top_first top_deep search_first search_deep; do
  # The page must be a real, full page: a wrong cursor would make every figure meaningless.
  count=$(curl -fsS "${url[$name]}" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
  [ "$count" = 20 ] || { echo "$name: expected a full page, got $count items" >&2; exit 1; }
  # Warm up first, unmeasured: each HTTP worker opens its pool's connections lazily, and a fresh
  # backend's first queries load its catalog caches and prepare the statement (pgbench, too,
  # connects before it measures).
  wrk -t2 -c$connections -d2s "${url[$name]}" >/dev/null 2>&1
  wrk -t2 -c$connections -d"${duration}s" --latency "${url[$name]}" >target/bench-wrk.log 2>&1
  if grep -q "Non-2xx" target/bench-wrk.log; then cat target/bench-wrk.log >&2; exit 1; fi
  http_rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' target/bench-wrk.log)
  http_p50=$(ms "$(awk '$1 == "50%" { print $2 }' target/bench-wrk.log)")
  http_p99=$(ms "$(awk '$1 == "99%" { print $2 }' target/bench-wrk.log)")

  echo "${sql[$name]};" >target/bench-gallery.sql
  rm -f target/pgbench_log.*
  # Prepared, as the server keeps its feed statements prepared: the like-for-like baseline (the
  # simple protocol would parse and plan every run, about a third of this rate).
  (cd target && "$PGBIN/pgbench" -n -M prepared -c $connections -j 2 -T "$duration" -l -f bench-gallery.sql "$DATABASE_URL" >bench-pgbench.log 2>&1)
  read -r sql_tps sql_mean sql_p99 < <(python3 - <<'PY'
import glob
lat = sorted(int(line.split()[2]) for f in glob.glob("target/pgbench_log.*") for line in open(f))
tps = float(next(l.split()[2] for l in open("target/bench-pgbench.log") if l.startswith("tps =")))
mean = float(next(l.split()[3] for l in open("target/bench-pgbench.log") if l.startswith("latency average")))
print(f"{tps:.0f} {mean:.2f} {lat[int(len(lat)*0.99)]/1000:.2f}")
PY
)
  rm -f target/pgbench_log.*
  printf '%-14s %8s %7.2f %7.2f   %8s %7s %7s   %.2f\n' "$name" "$http_rps" "$http_p50" "$http_p99" "$sql_tps" "$sql_mean" "$sql_p99" \
    "$(python3 -c "print($http_rps / $sql_tps)")"
  { echo "== $name"; psql -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sql[$name]}"; } >>"$explain" 2>&1
done
echo
echo "deep pages: new and top are $deep pages in; the search matches $matches images, so its deep page is page $search_deep (its last full one)"
echo "targets: every first page p99 < 20 ms; deep pages within 1.5x their first page; HTTP/SQL >= 0.5"
echo "plans: $explain"
