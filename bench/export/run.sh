#!/usr/bin/env bash
# bench/export: downloading an account's archive (POST /v1/me/export, then GET of its link) with
# BENCH_EXPORT_IMAGES images made by the default catalog's `local` model, against a baseline in the
# same run: Python's zipfile writing the same original files, stored, to /dev/null (the archive's
# work without the database, the paging and HTTP). Reports MB/s of each, the ratio, and how much the
# server's resident memory grew during the download (the archive is streamed, so it should not grow
# with its size).
set -euo pipefail
cd "$(dirname "$0")/../.."

images=${BENCH_EXPORT_IMAGES:-400}
bench_name=export
. bench/lib.sh

start_server EASEL_SIGNUP_BONUS_CREDITS=1000000 EASEL_MAX_IN_FLIGHT=100000 EASEL_JOB_WORKERS=2 \
  EASEL_LOCAL_RENDER_MS=0
token=$(token_for exporter)
base="http://127.0.0.1:$app_port"

echo "bench/export: making $images images (4 per generation)"
made=$(date +%s)
for i in $(seq 1 $(( images / 4 ))); do
  curl -fsS -o /dev/null -X POST "$base/v1/generations" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' \
    -d "{\"prompt\":\"export bench $i\",\"model\":\"easel-sketch\",\"num_outputs\":4,\"aspect_ratio\":\"1:1\"}"
done
until [ "$(psql -At -c "SELECT count(*) FROM generations WHERE completed_at IS NULL")" = 0 ]; do sleep 0.5; done
echo "made in $(( $(date +%s) - made )) s: $(psql -At -c "SELECT count(*) FROM images WHERE deleted_at IS NULL") images"
# Warm the page cache for both runs alike.
psql -At -c "SELECT content_hash FROM images" >"target/bench-export-hashes.txt"
python3 - "$data_dir" <<'PY'
import sys, pathlib
root = pathlib.Path(sys.argv[1]) / "images" / "originals"
for line in open("target/bench-export-hashes.txt"):
    h = line.strip()
    (root / h[:2] / h[2:4] / h).read_bytes()
PY

rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
# Downloads the archive once; prints "bytes seconds rss_before rss_peak" (kB).
download() {
  local url before peak fetch r
  url=$(curl -fsS -X POST "$base/v1/me/export" -H "authorization: Bearer $token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
  before=$(rss)
  peak=$before
  curl -fsS -o target/bench-export.zip -w '%{size_download} %{time_total}\n' "$base$url" >target/bench-export-curl.txt &
  fetch=$!
  while kill -0 $fetch 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.05; done
  wait $fetch
  echo "$(cat target/bench-export-curl.txt) $before $peak"
}
# The second download shows the steady state: the first also grows the allocator's pools.
read -r _ _ first_before first_peak < <(download)
read -r bytes seconds before peak < <(download)
echo "server resident memory: $(( first_before / 1024 )) MB before the first download, +$(( (first_peak - first_before) / 1024 )) MB during it"

python3 - "$data_dir" "$bytes" "$seconds" "$before" "$peak" <<'PY'
import io, sys, time, zipfile, pathlib
data_dir, size, took, before, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
root = pathlib.Path(data_dir) / "images" / "originals"
hashes = [line.strip() for line in open("target/bench-export-hashes.txt") if line.strip()]
with zipfile.ZipFile("target/bench-export.zip") as archive:
    names = archive.namelist()
    assert archive.testzip() is None, "a damaged entry"
files = [n for n in names if n.startswith("images/")]
assert len(files) == len(hashes), (len(files), len(hashes))
start = time.perf_counter()
total = 0
with open("/dev/null", "wb") as sink, zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as baseline:
    for i, h in enumerate(hashes):
        data = (root / h[:2] / h[2:4] / h).read_bytes()
        total += len(data)
        baseline.writestr(f"images/{i}.png", data)
base = time.perf_counter() - start
mb = 1024 * 1024
print(f"archive: {size / mb:.1f} MB, {len(names)} entries ({len(files)} images, {total / mb:.1f} MB of files)")
print(f"export (HTTP, streamed):     {size / mb / took:8.1f} MB/s  ({took:.2f} s)")
print(f"baseline (zipfile, stored):  {total / mb / base:8.1f} MB/s  ({base:.2f} s)")
print(f"ratio export/baseline:       {(size / took) / (total / base):8.2f}")
print(f"server memory during the download: +{(peak - before) / 1024:.1f} MB resident (archive {size / mb:.1f} MB)")
PY
