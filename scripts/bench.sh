#!/usr/bin/env bash
# scripts/bench.sh — benchmarks of dedup-lab against reference tools, in one run each.
#
#   scripts/bench.sh [section…]    run the named sections (default: all), in order
#   scripts/bench.sh --list        list the sections
#
# Not a timed test: the figures depend on the machine. Each section measures
# dedup-lab and a reference tool on the same bytes in the same run and reports
# the ratio, so the result can be compared across machines.
#
# Output: a Markdown table per section on stdout and in BENCH.md at the repo
# root. BENCH.md keeps one block per section between `<!-- bench:NAME -->` and
# `<!-- /bench:NAME -->`; running a section replaces only its own block.
#
# dedup-lab is built once with `cargo build --release` (honouring
# CARGO_TARGET_DIR and CARGO_BUILD_JOBS).
#
# Tunables (environment):
#   DEDUP_LAB_BENCH_DIR      scratch directory (default: a new directory under /tmp,
#                            removed at exit). Needs room for the largest dataset
#                            (4 GiB for `gen`); must be on a local disk.
#   DEDUP_LAB_BENCH_GIB      GiB generated and hashed by `gen`          (default 1)
#   DEDUP_LAB_BENCH_RSS_GIB  GiB generated while measuring peak RSS     (default 4)
#   DEDUP_LAB_BENCH_THREADS  generator threads (default: dedup-lab's, all cores)
#   DEDUP_LAB_BENCH_REPEAT   timed runs per measurement; the fastest counts (default 3),
#                            so that a burst of other load on the machine does not decide
#                            a ratio
#   DEDUP_LAB_BENCH_RW_GIB   GiB of the file and of the .tar.gz that `realworld` builds
#                            (default 2; needs about 3× that in free space)
#   DEDUP_LAB_BENCH_MARIADB_MIB  MiB loaded by `mariadb` (default 256)
#   DEDUP_LAB_BENCH_SIM_GIB  GiB per dataset that `storage-sim` reads for throughput (default 1)
#   DEDUP_LAB_BENCH_SIM_RSS_GIB  GiB of distinct data `storage-sim` reads while its peak RSS
#                            is measured (default 10; needs that much free space)
#   DEDUP_LAB_BENCH_RUN_RSS_GIB  GiB of the dataset `rss` runs on each system (default 2)
#   DEDUP_LAB_BENCH_BASELINE_BIN  `footprint`: an earlier dedup-lab binary to run the same
#                            matrices with, for the before/after figures (default: none)
#
# Adding a section: write a function bench_<name> that calls `row` for every
# figure, and `register_section <name> "<description>"`.

set -euo pipefail
shopt -s inherit_errexit

PROG="${0##*/}"
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET_DIR/release/dedup-lab"
BENCH_MD="$REPO/BENCH.md"

GIB="${DEDUP_LAB_BENCH_GIB:-1}"
RSS_GIB="${DEDUP_LAB_BENCH_RSS_GIB:-4}"
THREADS="${DEDUP_LAB_BENCH_THREADS:-}"
REPEAT="${DEDUP_LAB_BENCH_REPEAT:-3}"
[[ "$GIB" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_GIB must be a whole number of GiB"
[[ "$RSS_GIB" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_RSS_GIB must be a whole number of GiB"
[[ -z "$THREADS" || "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_THREADS must be a positive number"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_REPEAT must be a positive number"
RW_GIB="${DEDUP_LAB_BENCH_RW_GIB:-2}"
[[ "$RW_GIB" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_RW_GIB must be a whole number of GiB"

# --- sections ---------------------------------------------------------------

SECTIONS=()
declare -A SECTION_DESC=()
register_section() {
  SECTIONS+=("$1")
  SECTION_DESC[$1]="$2"
}

# --- helpers ----------------------------------------------------------------

# Rows of the current section's table: measurement | value | notes.
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 |"); }

# Seconds since the epoch with nanoseconds.
now() { date +%s.%N; }

# awk arithmetic, printed with the given format: calc FORMAT EXPR
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# Runs a command REPEAT times (output discarded) and prints the shortest wall time in
# seconds.
best_time() {
  local best="" t0 t1 s i
  for ((i = 0; i < REPEAT; i++)); do
    t0="$(now)"
    "$@" >/dev/null 2>&1 || die "failed: $*"
    t1="$(now)"
    s="$(calc '%.3f' "$t1 - $t0")"
    if [[ -z "$best" ]] || awk -v s="$s" -v b="$best" 'BEGIN { exit !(s < b) }'; then best="$s"; fi
  done
  printf '%s' "$best"
}

# MB/s (10^6 bytes per second) for BYTES in SECONDS.
mbps() { calc '%.0f' "$1 / $2 / 1000000"; }

ensure_tool() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "$cmd is missing and apt-get is not available; install $pkg"
  log "installing $pkg (for $cmd)"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >&2
}

build() {
  log "building dedup-lab (release)"
  (cd "$REPO" && cargo build --release --quiet --bin dedup-lab) || die "cargo build --release failed"
  [[ -x "$BIN" ]] || die "no binary at $BIN after the build"
}

# Scratch directory, made once by main (not in a $(…) subshell, so the EXIT trap
# sees it and removes it).
SCRATCH=""
make_scratch() {
  if [[ -n "${DEDUP_LAB_BENCH_DIR:-}" ]]; then
    mkdir -p -- "$DEDUP_LAB_BENCH_DIR"
    SCRATCH="$(mktemp -d -- "$DEDUP_LAB_BENCH_DIR/bench.XXXXXX")"
  else
    SCRATCH="$(mktemp -d /tmp/dedup-lab-bench.XXXXXX)"
  fi
}
scratch() { printf '%s' "$SCRATCH"; }
cleanup() { if [[ -n "$SCRATCH" && -d "$SCRATCH" ]]; then rm -rf -- "$SCRATCH"; fi; }
trap cleanup EXIT

# Sets GEN_ARGS to `dedup-lab generate` random_binary U0 in 512 KiB records:
#   generate_args GIB [OUTDIR]      (no OUTDIR: --no-write)
generate_args() {
  GEN_ARGS=(generate --payload-types random_binary --grades U0
    --records "$(($1 * 2048))" --record-size 512KiB)
  if [[ -n "${2:-}" ]]; then GEN_ARGS+=(--output "$2"); else GEN_ARGS+=(--no-write); fi
  if [[ -n "$THREADS" ]]; then GEN_ARGS+=(--threads "$THREADS"); fi
}

# --- section: gen -------------------------------------------------------------

register_section gen "generate + SHA-256 of random_binary vs openssl dgst -sha256 on the same bytes; peak RSS"
bench_gen() {
  ensure_tool openssl openssl
  ensure_tool /usr/bin/time time
  local dir bytes records t0 t1 fp
  dir="$(scratch)/gen"
  bytes=$((GIB * 1024 * 1024 * 1024))
  records=$((GIB * 2048))

  # 1. dedup-lab generating and hashing (SHA-256 per record, as for a manifest), writing
  #    nothing: all threads, then one.
  local gen_s gen1_s out
  generate_args "$GIB"
  out="$("$BIN" "${GEN_ARGS[@]}" 2>/dev/null)" # untimed warm-up, and the fingerprint
  fp="${out##*dataset_sha256=}"
  gen_s="$(best_time "$BIN" "${GEN_ARGS[@]}")"
  THREADS=1 generate_args "$GIB"
  gen1_s="$(best_time "$BIN" "${GEN_ARGS[@]}")"

  # 2. The same dataset written to disk (records + manifest): the real `generate`, whose
  #    speed is mostly the filesystem's (creating one file per record).
  local write_s
  generate_args "$GIB" "$dir"
  sync
  t0="$(now)"
  "$BIN" "${GEN_ARGS[@]}" 2>/dev/null
  t1="$(now)"
  write_s="$(calc '%.3f' "$t1 - $t0")"
  local ds="$dir/random_binary/U0"
  grep -q "\"dataset_sha256\":\"$fp\"" "$ds/manifest.jsonl" ||
    die "generate --no-write and generate --output disagree on the dataset fingerprint"

  # 3. openssl, single core, over the same bytes: the records concatenated into one file
  #    (in the page cache), hashed in one stream.
  local all="$dir/all.bin" ssl_s
  (cd "$ds/records" && cat -- *.bin) >"$all"
  [[ "$(stat -c %s "$all")" == "$bytes" ]] || die "concatenated records are not $bytes bytes"
  openssl dgst -sha256 "$all" >/dev/null # untimed warm-up
  ssl_s="$(best_time openssl dgst -sha256 "$all")"
  rm -f -- "$all"
  # openssl's in-memory SHA-256 rate on 512 KiB blocks (no file reading): the upper bound.
  local speed_kbs
  speed_kbs="$(openssl speed -evp sha256 -bytes 524288 -seconds 3 2>/dev/null | awk '/^sha256/ { sub(/k$/, "", $2); print $2 }')"
  [[ -n "$speed_kbs" ]] || die "could not read the output of openssl speed"

  # Same bytes: openssl's digest of every record file equals the manifest's SHA-256.
  local mismatches
  mismatches="$(
    (cd "$ds/records" && openssl dgst -sha256 -r -- *.bin) | awk -F'"' -v want="$records" '
      NR == FNR { split($0, a, " "); f = a[2]; sub(/^\*/, "", f); d["records/" f] = a[1]; next }
      /"type":"record"/ {
        for (i = 1; i < NF; i++) { if ($i == "file") file = $(i + 2); if ($i == "sha256") sha = $(i + 2) }
        if (d[file] != sha) bad++
        n++
      }
      END { if (n != want) bad++; print bad + 0 }' - "$ds/manifest.jsonl"
  )"
  [[ "$mismatches" == 0 ]] || die "openssl's digests differ from the manifest in $mismatches record(s)"
  rm -rf -- "$dir"

  local threads="${THREADS:-$(nproc)}"
  row "dedup-lab generate --no-write: ${GIB} GiB random_binary, 512 KiB records, SHA-256 each, $threads thread(s)" \
    "$(mbps "$bytes" "$gen_s") MB/s" "${gen_s} s, fastest of $REPEAT"
  row "same, 1 thread" "$(mbps "$bytes" "$gen1_s") MB/s" "${gen1_s} s, fastest of $REPEAT"
  row "openssl dgst -sha256, the same ${GIB} GiB as one file in the page cache" \
    "$(mbps "$bytes" "$ssl_s") MB/s" "${ssl_s} s, fastest of $REPEAT, single core; per-record digests equal the manifest's"
  row "openssl speed -evp sha256 -bytes 524288 (in memory, no file reads)" \
    "$(calc '%.0f' "$speed_kbs / 1000") MB/s" "single core, for reference"
  row "**ratio generate ($threads threads) / openssl dgst** (target ≥ 1)" "**$(calc '%.2f' "$ssl_s / $gen_s")**" ""
  row "ratio generate ($threads threads) / openssl speed" "$(calc '%.2f' "$bytes / $gen_s / ($speed_kbs * 1000)")" ""
  row "ratio generate (1 thread) / openssl dgst" "$(calc '%.2f' "$ssl_s / $gen1_s")" \
    "one core both generates and hashes"
  row "dedup-lab generate --output (records + manifest written to disk)" \
    "$(mbps "$bytes" "$write_s") MB/s" "${write_s} s; one file per record, bound by the filesystem"

  # 4. Peak RSS while generating RSS_GIB to disk.
  generate_args "$RSS_GIB" "$dir"
  local timelog rss_kib
  timelog="$(mktemp "$(scratch)/time.XXXXXX")"
  t0="$(now)"
  /usr/bin/time -v -o "$timelog" "$BIN" "${GEN_ARGS[@]}" 2>/dev/null
  t1="$(now)"
  rss_kib="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$timelog")"
  [[ -n "$rss_kib" ]] || die "no peak RSS in the output of /usr/bin/time -v"
  rm -rf -- "$dir" "$timelog"
  row "peak RSS, dedup-lab generate --output of ${RSS_GIB} GiB (target ≤ 64 MiB)" \
    "$(calc '%.1f' "$rss_kib / 1024") MiB" \
    "$(mbps "$((RSS_GIB * 1024 * 1024 * 1024))" "$(calc '%.3f' "$t1 - $t0")") MB/s, $threads thread(s)"
}

# --- section: postgresql -------------------------------------------------------

register_section postgresql "PostgreSQL bulk_insert vs psql \\copy (binary) of the same rows into the same server; per-record latency"
bench_postgresql() {
  ensure_tool python3 python3
  local mib="${DEDUP_LAB_BENCH_PG_MIB:-256}"
  [[ "$mib" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_PG_MIB must be a whole number of MiB"
  local records=$((mib * 2)) bytes=$((mib * 1024 * 1024))
  bash "$REPO/scripts/services.sh" up postgresql >&2
  eval "$(bash "$REPO/scripts/services.sh" env postgresql)"
  local dir cfg
  dir="$(scratch)/pg"
  mkdir -p -- "$dir"
  cfg="$dir/bench.toml"
  # A lab of its own on the shared test server; EXTERNAL storage so that neither side
  # spends the time compressing.
  printf 'lab = "dedup_lab_bench"\n[systems.postgresql]\nvariants = ["external"]\n' >"$cfg"

  # The reference: the same records as a binary COPY file, loaded by psql's \copy into a
  # table shaped like the lab's.
  "$BIN" generate --output "$dir/data" --payload-types random_binary --grades U0 \
    --records "$records" --record-size 512KiB 2>/dev/null
  python3 - "$dir/data/random_binary/U0" "$dir/copy.bin" <<'PY'
import json, struct, sys
ds, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as f:
    f.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
    for line in open(ds + "/manifest.jsonl"):
        r = json.loads(line)
        if r["type"] != "record":
            continue
        data = open(ds + "/" + r["file"], "rb").read()
        key = r["key"].encode()
        f.write(struct.pack("!hi", 2, len(key)) + key + struct.pack("!i", len(data)) + data)
    f.write(struct.pack("!h", -1))
PY
  rm -rf -- "$dir/data"
  local psql=(psql -X -q -v ON_ERROR_STOP=1 -h "$DEDUP_PG_HOST" -p "$DEDUP_PG_PORT" -U "$DEDUP_PG_USER" -d "$DEDUP_PG_DATABASE")
  local setup="DROP TABLE IF EXISTS dedup_lab_bench.c0; DROP SCHEMA IF EXISTS dedup_lab_bench; CREATE SCHEMA dedup_lab_bench;
    CREATE TABLE dedup_lab_bench.c0 (k text PRIMARY KEY, v bytea NOT NULL);
    ALTER TABLE dedup_lab_bench.c0 ALTER COLUMN v SET STORAGE EXTERNAL;"
  local best="" i t0 t1 s
  for ((i = 0; i < REPEAT; i++)); do
    PGPASSWORD="$DEDUP_PG_PASSWORD" "${psql[@]}" -c "$setup"
    t0="$(now)"
    PGPASSWORD="$DEDUP_PG_PASSWORD" "${psql[@]}" -c "\\copy dedup_lab_bench.c0 FROM '$dir/copy.bin' WITH (FORMAT binary)"
    t1="$(now)"
    s="$(calc '%.3f' "$t1 - $t0")"
    if [[ -z "$best" ]] || awk -v s="$s" -v b="$best" 'BEGIN { exit !(s < b) }'; then best="$s"; fi
  done
  PGPASSWORD="$DEDUP_PG_PASSWORD" "${psql[@]}" -c "DROP TABLE dedup_lab_bench.c0; DROP SCHEMA dedup_lab_bench;"
  local psql_s="$best"
  rm -f -- "$dir/copy.bin"

  # dedup-lab: the same rows (same seed, spec and keys), REPEAT runs; the fastest bulk
  # stage counts. Its duration includes streaming the records from the generator threads.
  "$BIN" --config "$cfg" run --results "$dir/results" --systems postgresql --payload-types random_binary \
    --grades U0 --records "$records" --record-size 512KiB --runs "$REPEAT" \
    --stages bulk_insert,perfile_insert,perfile_delete >/dev/null 2>&1 || die "dedup-lab run against PostgreSQL failed"
  local figures
  figures="$(python3 - "$dir/results" <<'PY'
import json, glob, sys
bulk, ins, dele = [], [], []
for path in glob.glob(sys.argv[1] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        if m["stage"] == "bulk_insert":
            assert m["rows_reported"] == m["rows_sent"], m
            bulk.append(m["duration_ns"] / 1e9)
        elif m["stage"] == "perfile_insert":
            ins.append(m["latency"])
        elif m["stage"] == "perfile_delete":
            dele.append(m["latency"])
p = lambda ls, k: min(l[k] for l in ls) / 1e6
print(min(bulk), p(ins, "p50_ns"), p(ins, "p99_ns"), p(dele, "p50_ns"), p(dele, "p99_ns"))
PY
)"
  local lab_s ins50 ins99 del50 del99
  read -r lab_s ins50 ins99 del50 del99 <<<"$figures"
  rm -rf -- "$dir"
  row "psql \\copy FORMAT binary, ${mib} MiB of random_binary (${records} × 512 KiB), EXTERNAL storage" \
    "$(mbps "$bytes" "$psql_s") MB/s" "${psql_s} s, fastest of $REPEAT"
  row "dedup-lab bulk_insert (binary COPY), the same rows" "$(mbps "$bytes" "$lab_s") MB/s" \
    "$(calc %.3f "$lab_s") s, fastest of $REPEAT; includes generating the records on the fly"
  row "**ratio dedup-lab / psql \\copy** (target ≥ 1.0)" "**$(calc '%.2f' "$psql_s / $lab_s")**" ""
  row "perfile_insert latency p50 / p99 (512 KiB records)" "$(calc '%.2f' "$ins50") / $(calc '%.2f' "$ins99") ms" \
    "best run of $REPEAT"
  row "perfile_delete latency p50 / p99" "$(calc '%.2f' "$del50") / $(calc '%.2f' "$del99") ms" "best run of $REPEAT"
}

# --- section: mariadb ----------------------------------------------------------

register_section mariadb "MariaDB bulk_insert vs the mariadb client's LOAD DATA LOCAL INFILE of the same rows into the same server; per-record latency"
bench_mariadb() {
  ensure_tool python3 python3
  local mib="${DEDUP_LAB_BENCH_MARIADB_MIB:-256}"
  [[ "$mib" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_MARIADB_MIB must be a whole number of MiB"
  local records=$((mib * 2)) bytes=$((mib * 1024 * 1024))
  # The running test server when there is one (`up` only when it is not).
  if ! bash "$REPO/scripts/services.sh" env mariadb >/dev/null 2>&1; then
    bash "$REPO/scripts/services.sh" up mariadb >&2
  fi
  eval "$(bash "$REPO/scripts/services.sh" env mariadb)"
  local dir cfg
  dir="$(scratch)/mariadb"
  mkdir -p -- "$dir"
  cfg="$dir/bench.toml"
  # A lab of its own on the shared test server, in InnoDB's default row format.
  printf 'lab = "dedup_lab_bench"\n[systems.mariadb]\nvariants = ["dynamic"]\n' >"$cfg"

  # The reference: the same records as the tab-separated file LOAD DATA reads (the same
  # escaping dedup-lab streams), loaded by the mariadb client into a table shaped like the lab's.
  "$BIN" generate --output "$dir/data" --payload-types random_binary --grades U0 \
    --records "$records" --record-size 512KiB 2>/dev/null
  python3 - "$dir/data/random_binary/U0" "$dir/rows.tsv" <<'PY'
import json, sys
ds, out = sys.argv[1], sys.argv[2]
esc = lambda b: b.replace(b"\\", b"\\\\").replace(b"\t", b"\\\t").replace(b"\n", b"\\\n")
with open(out, "wb") as f:
    for line in open(ds + "/manifest.jsonl"):
        r = json.loads(line)
        if r["type"] != "record":
            continue
        f.write(r["key"].encode() + b"\t" + esc(open(ds + "/" + r["file"], "rb").read()) + b"\n")
PY
  rm -rf -- "$dir/data"
  local client=(mariadb --no-defaults --local-infile=1 -h "$DEDUP_MARIADB_HOST" -P "$DEDUP_MARIADB_PORT" -u "$DEDUP_MARIADB_USER")
  local setup="DROP DATABASE IF EXISTS dedup_lab_bench; CREATE DATABASE dedup_lab_bench;
    CREATE TABLE dedup_lab_bench.c0 (k VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
      v LONGBLOB NOT NULL) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;"
  local load="LOAD DATA LOCAL INFILE '$dir/rows.tsv' INTO TABLE dedup_lab_bench.c0 CHARACTER SET binary
    FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (k, v)"
  local best="" i t0 t1 s n
  for ((i = 0; i < REPEAT; i++)); do
    MYSQL_PWD="$DEDUP_MARIADB_PASSWORD" "${client[@]}" -e "$setup"
    t0="$(now)"
    MYSQL_PWD="$DEDUP_MARIADB_PASSWORD" "${client[@]}" -e "$load"
    t1="$(now)"
    n="$(MYSQL_PWD="$DEDUP_MARIADB_PASSWORD" "${client[@]}" -N -B -e 'SELECT COUNT(*) FROM dedup_lab_bench.c0')"
    [[ "$n" == "$records" ]] || die "the mariadb client loaded $n rows, not $records"
    s="$(calc '%.3f' "$t1 - $t0")"
    if [[ -z "$best" ]] || awk -v s="$s" -v b="$best" 'BEGIN { exit !(s < b) }'; then best="$s"; fi
  done
  MYSQL_PWD="$DEDUP_MARIADB_PASSWORD" "${client[@]}" -e "DROP DATABASE dedup_lab_bench"
  local client_s="$best"
  rm -f -- "$dir/rows.tsv"

  # dedup-lab: the same rows (same seed, spec and keys), REPEAT runs; the fastest bulk
  # stage counts. Its duration includes streaming the records from the generator threads.
  "$BIN" --config "$cfg" run --results "$dir/results" --systems mariadb --payload-types random_binary \
    --grades U0 --records "$records" --record-size 512KiB --runs "$REPEAT" \
    --stages bulk_insert,perfile_insert,perfile_delete >/dev/null 2>&1 || die "dedup-lab run against MariaDB failed"
  local figures
  figures="$(python3 - "$dir/results" <<'PY'
import json, glob, sys
bulk, ins, dele = [], [], []
for path in glob.glob(sys.argv[1] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        if m["stage"] == "bulk_insert":
            assert m["rows_reported"] == m["rows_sent"], m
            assert any("LOAD DATA LOCAL INFILE streamed" in n for n in m["notes"]), m["notes"]
            bulk.append(m["duration_ns"] / 1e9)
        elif m["stage"] == "perfile_insert":
            ins.append(m["latency"])
        elif m["stage"] == "perfile_delete":
            dele.append(m["latency"])
p = lambda ls, k: min(l[k] for l in ls) / 1e6
print(min(bulk), p(ins, "p50_ns"), p(ins, "p99_ns"), p(dele, "p50_ns"), p(dele, "p99_ns"))
PY
)"
  local lab_s ins50 ins99 del50 del99
  read -r lab_s ins50 ins99 del50 del99 <<<"$figures"
  rm -rf -- "$dir"
  row "mariadb client LOAD DATA LOCAL INFILE, ${mib} MiB of random_binary (${records} × 512 KiB), ROW_FORMAT=DYNAMIC" \
    "$(mbps "$bytes" "$client_s") MB/s" "${client_s} s, fastest of $REPEAT; reads a prepared file"
  row "dedup-lab bulk_insert (streamed LOAD DATA LOCAL INFILE), the same rows" "$(mbps "$bytes" "$lab_s") MB/s" \
    "$(calc %.3f "$lab_s") s, fastest of $REPEAT; includes generating the records on the fly"
  row "**ratio dedup-lab / mariadb client** (target ≥ 1.0)" "**$(calc '%.2f' "$client_s / $lab_s")**" ""
  row "perfile_insert latency p50 / p99 (512 KiB records)" "$(calc '%.2f' "$ins50") / $(calc '%.2f' "$ins99") ms" \
    "best run of $REPEAT"
  row "perfile_delete latency p50 / p99" "$(calc '%.2f' "$del50") / $(calc '%.2f' "$del99") ms" "best run of $REPEAT"
}

# --- section: redis -------------------------------------------------------------

register_section redis "Redis bulk_insert (pipelines) vs redis-cli --pipe of the same keys and values into the same standalone server; per-record latency"
bench_redis() {
  ensure_tool python3 python3
  local mib="${DEDUP_LAB_BENCH_REDIS_MIB:-128}"
  [[ "$mib" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_REDIS_MIB must be a whole number of MiB"
  # 16 KiB records: small enough that the per-command round trips, which pipelining
  # removes, matter.
  local records=$((mib * 64)) bytes=$((mib * 1024 * 1024)) lab="dedup_lab_bench"
  bash "$REPO/scripts/services.sh" up redis >&2
  eval "$(bash "$REPO/scripts/services.sh" env redis)"
  local dir cfg
  dir="$(scratch)/redis"
  mkdir -p -- "$dir"
  cfg="$dir/bench.toml"
  printf 'lab = "%s"\n[systems.redis]\nwarmup_bytes = 0\n' "$lab" >"$cfg"

  # The reference: the same records as RESP SET commands under the keys dedup-lab uses
  # (dedup:<lab>:c0:<key>), fed to redis-cli --pipe by the same ACL user.
  "$BIN" generate --output "$dir/data" --payload-types random_binary --grades U0 \
    --records "$records" --record-size 16KiB 2>/dev/null
  python3 - "$dir/data/random_binary/U0" "$dir/pipe.resp" "$lab" <<'PY'
import json, sys
ds, out, lab = sys.argv[1], sys.argv[2], sys.argv[3]
with open(out, "wb") as f:
    for line in open(ds + "/manifest.jsonl"):
        r = json.loads(line)
        if r["type"] != "record":
            continue
        data = open(ds + "/" + r["file"], "rb").read()
        key = f"dedup:{lab}:c0:{r['key']}".encode()
        f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(data), data))
PY
  rm -rf -- "$dir/data"
  local cli=(redis-cli --no-auth-warning -h "$DEDUP_REDIS_HOST" -p "$DEDUP_REDIS_PORT" --user "$DEDUP_REDIS_USER")
  local best="" i t0 t1 s
  for ((i = 0; i < REPEAT; i++)); do
    "$BIN" --config "$cfg" cleanup --results "$dir/results-cleanup" --systems redis >/dev/null
    t0="$(now)"
    REDISCLI_AUTH="$DEDUP_REDIS_PASSWORD" "${cli[@]}" --pipe <"$dir/pipe.resp" | grep -q "errors: 0, replies: $records" ||
      die "redis-cli --pipe did not load $records records"
    t1="$(now)"
    s="$(calc '%.3f' "$t1 - $t0")"
    if [[ -z "$best" ]] || awk -v s="$s" -v b="$best" 'BEGIN { exit !(s < b) }'; then best="$s"; fi
  done
  "$BIN" --config "$cfg" cleanup --results "$dir/results-cleanup" --systems redis >/dev/null
  local pipe_s="$best"
  rm -f -- "$dir/pipe.resp"

  # dedup-lab: the same keys and values (same seed, spec and keys), REPEAT runs; the
  # fastest bulk stage counts. Its duration includes streaming the records from the
  # generator threads.
  "$BIN" --config "$cfg" run --results "$dir/results" --systems redis --payload-types random_binary \
    --grades U0 --records "$records" --record-size 16KiB --runs "$REPEAT" \
    --stages bulk_insert,perfile_insert,perfile_delete >/dev/null 2>&1 || die "dedup-lab run against Redis failed"
  local figures
  figures="$(python3 - "$dir/results" <<'PY'
import json, glob, sys
bulk, ins, dele = [], [], []
for path in glob.glob(sys.argv[1] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        if m["stage"] == "bulk_insert":
            assert m["rows_reported"] == m["rows_sent"], m
            bulk.append(m["duration_ns"] / 1e9)
        elif m["stage"] == "perfile_insert":
            ins.append(m["latency"])
        elif m["stage"] == "perfile_delete":
            dele.append(m["latency"])
p = lambda ls, k: min(l[k] for l in ls) / 1e6
print(min(bulk), p(ins, "p50_ns"), p(ins, "p99_ns"), p(dele, "p50_ns"), p(dele, "p99_ns"))
PY
)"
  local lab_s ins50 ins99 del50 del99
  read -r lab_s ins50 ins99 del50 del99 <<<"$figures"
  rm -rf -- "$dir"
  row "redis-cli --pipe, ${mib} MiB of random_binary (${records} × 16 KiB SET)" \
    "$(mbps "$bytes" "$pipe_s") MB/s" "${pipe_s} s, fastest of $REPEAT"
  row "dedup-lab bulk_insert (pipelines of 1000 / 8 MiB), the same keys and values" "$(mbps "$bytes" "$lab_s") MB/s" \
    "$(calc %.3f "$lab_s") s, fastest of $REPEAT; includes generating the records on the fly"
  row "**ratio dedup-lab / redis-cli --pipe** (target ≥ 1.0)" "**$(calc '%.2f' "$pipe_s / $lab_s")**" ""
  row "perfile_insert (SET) latency p50 / p99 (16 KiB records)" "$(calc '%.3f' "$ins50") / $(calc '%.3f' "$ins99") ms" \
    "best run of $REPEAT"
  row "perfile_delete (UNLINK) latency p50 / p99" "$(calc '%.3f' "$del50") / $(calc '%.3f' "$del99") ms" "best run of $REPEAT"
}

# --- section: clickhouse -------------------------------------------------------

register_section clickhouse "ClickHouse bulk_insert (RowBinary over HTTP) vs curl posting the same rows as one RowBinary body; per-record latency"
bench_clickhouse() {
  ensure_tool python3 python3
  ensure_tool curl curl
  local mib="${DEDUP_LAB_BENCH_CH_MIB:-256}"
  [[ "$mib" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_CH_MIB must be a whole number of MiB"
  local records=$((mib * 2)) bytes=$((mib * 1024 * 1024))
  bash "$REPO/scripts/services.sh" up clickhouse >&2
  eval "$(bash "$REPO/scripts/services.sh" env clickhouse)"
  local dir cfg lab=dedup_t_ch_9
  dir="$(scratch)/ch"
  mkdir -p -- "$dir"
  cfg="$dir/bench.toml"
  # One of the test user's labs on the shared test server; plain MergeTree.
  printf 'lab = "%s"\n[systems.clickhouse]\nvariants = ["mergetree"]\n' "$lab" >"$cfg"

  # The reference: the same records as one RowBinary body (key, payload), posted by curl.
  "$BIN" generate --output "$dir/data" --payload-types random_binary --grades U0 \
    --records "$records" --record-size 512KiB 2>/dev/null
  python3 - "$dir/data/random_binary/U0" "$dir/rows.bin" <<'PY2'
import json, sys
ds, out = sys.argv[1], sys.argv[2]
def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n:
            return bytes(b)
with open(out, "wb") as f:
    for line in open(ds + "/manifest.jsonl"):
        r = json.loads(line)
        if r["type"] != "record":
            continue
        data = open(ds + "/" + r["file"], "rb").read()
        key = r["key"].encode()
        f.write(varint(len(key)) + key + varint(len(data)) + data)
PY2
  rm -rf -- "$dir/data"
  # The password goes in a header read from a file (curl -H @file), never on the command line.
  (umask 077 && printf 'X-ClickHouse-User: %s\nX-ClickHouse-Key: %s\n' "$DEDUP_CLICKHOUSE_USER" \
    "$DEDUP_CLICKHOUSE_PASSWORD" >"$dir/headers")
  local url="http://$DEDUP_CLICKHOUSE_HOST:$DEDUP_CLICKHOUSE_PORT/"
  chq() { curl -sS --fail-with-body -H @"$dir/headers" --data-binary "$1" "$url" >/dev/null; }
  local best="" i t0 t1 s
  for ((i = 0; i < REPEAT; i++)); do
    chq "DROP DATABASE IF EXISTS $lab"
    chq "CREATE DATABASE $lab"
    chq "CREATE TABLE $lab.c0 (k String, v String) ENGINE = MergeTree ORDER BY k"
    t0="$(now)"
    curl -sS --fail-with-body -H @"$dir/headers" --data-binary @"$dir/rows.bin" \
      "${url}?query=INSERT%20INTO%20$lab.c0%20FORMAT%20RowBinary" >/dev/null
    t1="$(now)"
    s="$(calc '%.3f' "$t1 - $t0")"
    if [[ -z "$best" ]] || awk -v s="$s" -v b="$best" 'BEGIN { exit !(s < b) }'; then best="$s"; fi
  done
  chq "DROP DATABASE IF EXISTS $lab"
  local curl_s="$best"
  rm -f -- "$dir/rows.bin" "$dir/headers"

  "$BIN" --config "$cfg" run --results "$dir/results" --systems clickhouse --payload-types random_binary \
    --grades U0 --records "$records" --record-size 512KiB --runs "$REPEAT" \
    --stages bulk_insert,perfile_insert,perfile_delete >/dev/null 2>&1 || die "dedup-lab run against ClickHouse failed"
  local figures
  figures="$(python3 - "$dir/results" <<'PY2'
import json, glob, sys
bulk, ins, dele = [], [], []
for path in glob.glob(sys.argv[1] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        if m["stage"] == "bulk_insert":
            assert m["rows_reported"] == m["rows_sent"], m
            bulk.append(m["duration_ns"] / 1e9)
        elif m["stage"] == "perfile_insert":
            ins.append(m["latency"])
        elif m["stage"] == "perfile_delete":
            dele.append(m["latency"])
p = lambda ls, k: min(l[k] for l in ls) / 1e6
print(min(bulk), p(ins, "p50_ns"), p(ins, "p99_ns"), p(dele, "p50_ns"), p(dele, "p99_ns"))
PY2
)"
  local lab_s ins50 ins99 del50 del99
  read -r lab_s ins50 ins99 del50 del99 <<<"$figures"
  rm -rf -- "$dir"
  row "curl: one RowBinary INSERT body, ${mib} MiB of random_binary (${records} × 512 KiB), MergeTree" \
    "$(mbps "$bytes" "$curl_s") MB/s" "${curl_s} s, fastest of $REPEAT"
  row "dedup-lab bulk_insert (RowBinary batches of 16 MiB, each verified by count()), the same rows" \
    "$(mbps "$bytes" "$lab_s") MB/s" \
    "$(calc %.3f "$lab_s") s, fastest of $REPEAT; includes generating the records on the fly"
  row "**ratio dedup-lab / curl** (target ≥ 1.0)" "**$(calc '%.2f' "$curl_s / $lab_s")**" ""
  row "perfile_insert latency p50 / p99 (512 KiB records; key look-up + single-row INSERT)" \
    "$(calc '%.2f' "$ins50") / $(calc '%.2f' "$ins99") ms" "best run of $REPEAT"
  row "perfile_delete latency p50 / p99 (ALTER TABLE … DELETE mutation, waited for)" \
    "$(calc '%.2f' "$del50") / $(calc '%.2f' "$del99") ms" "best run of $REPEAT"
}

# --- section: s3 -----------------------------------------------------------------

register_section s3 "S3 bulk_insert (concurrent PUTs) vs boto3 uploading the same objects at the same concurrency into the local SeaweedFS; per-object latency"
bench_s3() {
  local mib="${DEDUP_LAB_BENCH_S3_MIB:-256}" conc="${DEDUP_LAB_BENCH_S3_CONCURRENCY:-8}"
  [[ "$mib" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_S3_MIB must be a whole number of MiB"
  [[ "$conc" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_S3_CONCURRENCY must be a whole number"
  local records=$((mib * 2)) bytes=$((mib * 1024 * 1024))
  bash "$REPO/scripts/services.sh" up s3 >&2
  eval "$(bash "$REPO/scripts/services.sh" env s3)"
  local dir cfg
  dir="$(scratch)/s3"
  mkdir -p -- "$dir"
  cfg="$dir/bench.toml"
  printf 'lab = "dedup_lab_bench"\n[systems.s3]\nvariants = ["default"]\nconcurrency = %s\n' "$conc" >"$cfg"

  # The reference: boto3 (in the services venv) PUTs the same records, read from the
  # generated files, with the same content type, through a pool of the same size, into a
  # bucket of the bench lab; the fastest of REPEAT runs counts (bucket emptied between).
  "$BIN" generate --output "$dir/data" --payload-types random_binary --grades U0 \
    --records "$records" --record-size 512KiB 2>/dev/null
  local ref
  ref="$("$DEDUP_S3_PYTHON" - "$dir/data/random_binary/U0" "$conc" "$REPEAT" <<'PY'
import concurrent.futures as cf, json, os, sys, time
import boto3
from botocore.config import Config
ds, conc, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=os.environ["DEDUP_S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["DEDUP_S3_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["DEDUP_S3_SECRET_KEY"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=conc,
                                retries={"max_attempts": 1}))
recs = [json.loads(l) for l in open(ds + "/manifest.jsonl")]
recs = [(r["key"], ds + "/" + r["file"]) for r in recs if r["type"] == "record"]
bucket = "dedup-lab-bench-c0"
def put(r):
    with open(r[1], "rb") as f:
        data = f.read()
    t = time.perf_counter()
    s3.put_object(Bucket=bucket, Key=r[0], Body=data, ContentType="application/octet-stream")
    return time.perf_counter() - t
best, lat = None, None
for _ in range(repeat):
    s3.create_bucket(Bucket=bucket)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(conc) as ex:
        ls = list(ex.map(put, recs))
    t = time.perf_counter() - t0
    if best is None or t < best:
        best, lat = t, sorted(ls)
    for k, _ in recs:
        s3.delete_object(Bucket=bucket, Key=k)
    s3.delete_bucket(Bucket=bucket)
print(best, lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3)
PY
)" || die "the boto3 reference run failed"
  local ref_s ref50 ref99
  read -r ref_s ref50 ref99 <<<"$ref"
  rm -rf -- "$dir/data"

  # dedup-lab: the same records (same seed, spec and keys), REPEAT runs; the fastest bulk
  # stage counts. Its duration includes generating the records on the fly and the
  # ListObjectsV2 verification of the count.
  "$BIN" --config "$cfg" run --results "$dir/results" --systems s3 --payload-types random_binary \
    --grades U0 --records "$records" --record-size 512KiB --runs "$REPEAT" \
    --stages bulk_insert,perfile_insert,perfile_delete >/dev/null 2>&1 || die "dedup-lab run against S3 failed"
  local figures
  figures="$(python3 - "$dir/results" <<'PY'
import json, glob, sys
bulk, ins, dele = [], [], []
for path in glob.glob(sys.argv[1] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        if m["stage"] == "bulk_insert":
            assert m["rows_reported"] == m["rows_sent"], m
            bulk.append(m["duration_ns"] / 1e9)
        elif m["stage"] == "perfile_insert":
            ins.append(m["latency"])
        elif m["stage"] == "perfile_delete":
            dele.append(m["latency"])
p = lambda ls, k: min(l[k] for l in ls) / 1e6
print(min(bulk), p(ins, "p50_ns"), p(ins, "p99_ns"), p(dele, "p50_ns"), p(dele, "p99_ns"))
PY
)"
  local lab_s ins50 ins99 del50 del99
  read -r lab_s ins50 ins99 del50 del99 <<<"$figures"
  rm -rf -- "$dir"
  row "boto3 put_object, ${conc} threads, ${mib} MiB of random_binary (${records} × 512 KiB), SeaweedFS $("$DEDUP_S3_WEED" version 2>/dev/null | awk '{ print $3 }')" \
    "$(mbps "$bytes" "$ref_s") MB/s" "$(calc %.3f "$ref_s") s, fastest of $REPEAT; records read from files; per-object p50 / p99 $(calc %.2f "$ref50") / $(calc %.2f "$ref99") ms"
  row "dedup-lab bulk_insert, concurrency ${conc}, the same objects" "$(mbps "$bytes" "$lab_s") MB/s" \
    "$(calc %.3f "$lab_s") s, fastest of $REPEAT; includes generating the records and the ListObjectsV2 check"
  row "**ratio dedup-lab / boto3** (target ≥ 1.0)" "**$(calc '%.2f' "$ref_s / $lab_s")**" ""
  row "perfile_insert latency p50 / p99 (one PUT of 512 KiB)" "$(calc '%.2f' "$ins50") / $(calc '%.2f' "$ins99") ms" \
    "best run of $REPEAT"
  row "perfile_delete latency p50 / p99 (HEAD + DELETE)" "$(calc '%.2f' "$del50") / $(calc '%.2f' "$del99") ms" \
    "best run of $REPEAT"
}

# --- section: kafka --------------------------------------------------------------

register_section kafka "Kafka bulk_insert (acks=all produce, requests in flight) vs confluent-kafka (librdkafka) producing the same records to the local crabka-broker; per-record acknowledged produce latency"
bench_kafka() {
  local mib="${DEDUP_LAB_BENCH_KAFKA_MIB:-256}"
  [[ "$mib" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_KAFKA_MIB must be a whole number of MiB"
  local records=$((mib * 2)) bytes=$((mib * 1024 * 1024))
  bash "$REPO/scripts/services.sh" up kafka >&2
  eval "$(bash "$REPO/scripts/services.sh" env kafka)"
  # The reference client: confluent-kafka (PyPI; its wheel bundles librdkafka), pinned, in a
  # venv in the cache.
  local venv="${DEDUP_LAB_CACHE_DIR:-${HOME:-/root}/.cache/dedup-lab}/kafka-bench-venv"
  if ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q --disable-pip-version-check confluent-kafka==2.16.1 >&2 ||
      die "pip install confluent-kafka==2.16.1 failed"
  fi
  local dir cfg
  dir="$(scratch)/kafka"
  mkdir -p -- "$dir"
  cfg="$dir/bench.toml"
  printf 'lab = "dedup_lab_bench"\n[systems.kafka]\nvariants = ["compression=none"]\nprobe = "internal"\n' >"$cfg"

  # The reference: librdkafka with acks=all, no compression, 1 MiB batches, a 5 ms linger,
  # the same records read from the generated files into a topic of the bench lab; the
  # fastest of REPEAT runs (first produce to the last acknowledgement) counts.
  "$BIN" generate --output "$dir/data" --payload-types random_binary --grades U0 \
    --records "$records" --record-size 512KiB 2>/dev/null
  local ref
  ref="$("$venv/bin/python" - "$dir/data/random_binary/U0" "$REPEAT" <<'PY'
import json, os, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
ds, repeat = sys.argv[1], int(sys.argv[2])
boot = "%s:%s" % (os.environ["DEDUP_KAFKA_HOST"], os.environ["DEDUP_KAFKA_PORT"])
recs = [json.loads(l) for l in open(ds + "/manifest.jsonl")]
recs = [(r["key"], open(ds + "/" + r["file"], "rb").read()) for r in recs if r["type"] == "record"]
admin = AdminClient({"bootstrap.servers": boot})
topic = "dedup-lab-bench-ref-c0"
best = None
for _ in range(repeat):
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "67108864"})])[topic].result()
    p = Producer({"bootstrap.servers": boot, "acks": "all", "compression.type": "none", "linger.ms": 5,
                  "batch.size": 1 << 20, "message.max.bytes": 64 << 20, "enable.idempotence": False})
    acked = [0]
    def done(err, msg):
        if err is None:
            acked[0] += 1
    t0 = time.perf_counter()
    for k, v in recs:
        while True:
            try:
                p.produce(topic, value=v, key=k, on_delivery=done)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush()
    t = time.perf_counter() - t0
    assert acked[0] == len(recs), acked
    best = t if best is None or t < best else best
    admin.delete_topics([topic])[topic].result()
    time.sleep(1)
print(best)
PY
)" || die "the confluent-kafka reference run failed"
  rm -rf -- "$dir/data"

  # dedup-lab: the same records (same seed, spec and keys), REPEAT runs; the fastest bulk
  # stage counts. Its duration includes generating the records on the fly.
  "$BIN" --config "$cfg" run --results "$dir/results" --systems kafka --payload-types random_binary \
    --grades U0 --records "$records" --record-size 512KiB --runs "$REPEAT" \
    --stages bulk_insert,perfile_insert >/dev/null 2>&1 || die "dedup-lab run against Kafka failed"
  local figures
  figures="$(python3 - "$dir/results" <<'PY'
import json, glob, sys
bulk, ins = [], []
for path in glob.glob(sys.argv[1] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        if m["stage"] == "bulk_insert":
            assert m["rows_reported"] == m["rows_sent"], m
            bulk.append(m["duration_ns"] / 1e9)
        elif m["stage"] == "perfile_insert":
            ins.append(m["latency"])
p = lambda ls, k: min(l[k] for l in ls) / 1e6
print(min(bulk), p(ins, "p50_ns"), p(ins, "p99_ns"))
PY
)"
  local lab_s ins50 ins99
  read -r lab_s ins50 ins99 <<<"$figures"
  rm -rf -- "$dir"
  row "confluent-kafka 2.16.1 (librdkafka) acks=all, ${mib} MiB of random_binary (${records} × 512 KiB), crabka-broker 0.3.0" \
    "$(mbps "$bytes" "$ref") MB/s" "$(calc %.3f "$ref") s, fastest of $REPEAT; records read from files into memory first"
  row "dedup-lab bulk_insert (acks=all, 1 MiB batches, 4 requests in flight), the same records" \
    "$(mbps "$bytes" "$lab_s") MB/s" "$(calc %.3f "$lab_s") s, fastest of $REPEAT; includes generating the records"
  row "**ratio dedup-lab / confluent-kafka** (target ≥ 1.0)" "**$(calc '%.2f' "$ref / $lab_s")**" ""
  row "perfile_insert latency p50 / p99 (one produce of 512 KiB, to the broker's acknowledgement)" \
    "$(calc '%.2f' "$ins50") / $(calc '%.2f' "$ins99") ms" "best run of $REPEAT"
}

# --- section: realworld ---------------------------------------------------------

register_section realworld "real-world ingestion of a ${RW_GIB} GiB file and a ${RW_GIB} GiB .tar.gz: peak RSS, and MB/s vs openssl dgst -sha256 / tar -xzO | openssl dgst"

# Runs dedup-lab under /usr/bin/time -v; sets RSS_MIB and WALL_S.
timed_rss() {
  local timelog
  timelog="$(mktemp "$(scratch)/time.XXXXXX")"
  local t0 t1
  t0="$(now)"
  /usr/bin/time -v -o "$timelog" "$BIN" "$@" >/dev/null 2>&1 || die "failed: dedup-lab $*"
  t1="$(now)"
  RSS_MIB="$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$timelog")"
  [[ -n "$RSS_MIB" ]] || die "no peak RSS in the output of /usr/bin/time -v"
  WALL_S="$(calc '%.3f' "$t1 - $t0")"
  rm -f -- "$timelog"
}

bench_realworld() {
  ensure_tool /usr/bin/time time
  ensure_tool openssl openssl
  local dir bytes
  dir="$(scratch)/realworld"
  bytes=$((RW_GIB * 1024 * 1024 * 1024))
  mkdir -p "$dir/src" "$dir/tmp"
  local avail_kib
  avail_kib="$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')"
  ((avail_kib > 3 * bytes / 1024)) ||
    die "need about $((3 * RW_GIB)) GiB free under $dir for the ${RW_GIB} GiB sources and the spool; set DEDUP_LAB_BENCH_RW_GIB lower"

  # The sources: a file of random bytes (a video stands for it: incompressible), and a
  # .tar.gz of the same size (gzip -1 of random bytes is as large as its input).
  log "building a ${RW_GIB} GiB file and a ${RW_GIB} GiB .tar.gz in $dir/src"
  head -c "$bytes" /dev/urandom >"$dir/src/video.bin"
  (cd "$dir/src" && tar -cf - video.bin | gzip -1 >"$dir/src/corpus.tar.gz")
  local tgz_bytes
  tgz_bytes="$(stat -c %s "$dir/src/corpus.tar.gz")"
  chmod a-w "$dir/src/video.bin" "$dir/src/corpus.tar.gz"

  # References, each over the same bytes: hashing the file; unpacking and hashing the archive.
  local ref_file_s ref_tgz_s t0 t1
  openssl dgst -sha256 "$dir/src/video.bin" >/dev/null # warm the page cache
  t0="$(now)"
  openssl dgst -sha256 "$dir/src/video.bin" >/dev/null
  t1="$(now)"
  ref_file_s="$(calc '%.3f' "$t1 - $t0")"
  t0="$(now)"
  tar -xzOf "$dir/src/corpus.tar.gz" | openssl dgst -sha256 >/dev/null
  t1="$(now)"
  ref_tgz_s="$(calc '%.3f' "$t1 - $t0")"

  local common=(--record-size 512KiB --scratch "$dir/tmp") threads=()
  if [[ -n "$THREADS" ]]; then threads=(--threads "$THREADS"); fi
  local name src grade what
  for name in file tgz; do
    if [[ "$name" == file ]]; then src="$dir/src/video.bin"; else src="$dir/src/corpus.tar.gz"; fi
    for grade in U0 U50; do
      timed_rss generate --no-write --real-world "big=$src" --grades "$grade" "${common[@]}" "${threads[@]}"
      if [[ "$name" == file ]]; then
        what="copies re-read in place"
        [[ "$grade" == U0 ]] && what="every record read once"
        row "generate --no-write, ${RW_GIB} GiB file, $grade ($what): peak RSS (target < 128 MiB)" \
          "$RSS_MIB MiB" "$(mbps "$bytes" "$WALL_S") MB/s over the source's size, ${WALL_S} s incl. the scan"
        [[ "$grade" == U0 ]] && row "**ratio generate U0 / openssl dgst -sha256** on the file (target ≥ 1)" \
          "**$(calc '%.2f' "$ref_file_s / $WALL_S")**" "openssl: ${ref_file_s} s ($(mbps "$bytes" "$ref_file_s") MB/s, one core), page cache warm"
      else
        what="copies spooled to scratch"
        [[ "$grade" == U0 ]] && what="every record read once; the scan decompresses it once more"
        row "generate --no-write, ${RW_GIB} GiB .tar.gz ($((tgz_bytes / 1048576)) MiB), $grade ($what): peak RSS (target < 128 MiB)" \
          "$RSS_MIB MiB" "$(mbps "$bytes" "$WALL_S") MB/s over the content's size, ${WALL_S} s incl. the scan"
        [[ "$grade" == U0 ]] && row "**ratio generate U0 / (tar -xzOf \| openssl dgst -sha256)** on the archive" \
          "**$(calc '%.2f' "$ref_tgz_s / $WALL_S")**" "reference: ${ref_tgz_s} s; dedup-lab decompresses twice (scan + read); gzip -1 stores random bytes uncompressed, so inflating is cheap here"
      fi
      [[ -z "$(ls -A "$dir/tmp")" ]] || die "scratch files left behind in $dir/tmp"
    done
    timed_rss analyze --real-world "big=$src" --grades U50 "${common[@]}"
    row "analyze (dedup ratios, FastCDC, zstd) of the ${RW_GIB} GiB $name, U50: peak RSS (target < 128 MiB)" \
      "$RSS_MIB MiB" "${WALL_S} s"
  done
  chmod u+w "$dir/src/video.bin" "$dir/src/corpus.tar.gz"
  rm -rf -- "$dir"
}

# --- section: storage-sim --------------------------------------------------------

SIM_GIB="${DEDUP_LAB_BENCH_SIM_GIB:-1}"
SIM_RSS_GIB="${DEDUP_LAB_BENCH_SIM_RSS_GIB:-10}"
[[ "$SIM_GIB" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_SIM_GIB must be a whole number of GiB"
[[ "$SIM_RSS_GIB" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_SIM_RSS_GIB must be a whole number of GiB"

register_section storage-sim "storage-sim (4 block sizes, BLAKE3 per block, lz4 + zstd per sampled distinct block, all cores) vs openssl dgst -sha256 over the same files; peak RSS at ${SIM_RSS_GIB} GiB"
bench_storage-sim() {
  ensure_tool openssl openssl
  ensure_tool /usr/bin/time time
  local dir bytes
  dir="$(scratch)/storage-sim"
  bytes=$((SIM_GIB * 1024 * 1024 * 1024))
  local threads="${THREADS:-$(nproc)}"
  # Three datasets of SIM_GIB each, 512 KiB records, one file per record: random bytes
  # without duplicates (every block distinct: compression of every block, the worst case),
  # random U90 (one block in ten is new) and text U50 (compressible: the compressors work).
  local spec payload grade ds files ref_s sim_s json edr zerr
  for spec in random_binary:U0 random_binary:U90 text_document:U50; do
    payload="${spec%%:*}" grade="${spec##*:}"
    "$BIN" generate --output "$dir" --payload-types "$payload" --grades "$grade" \
      --records "$((SIM_GIB * 2048))" --record-size 512KiB >/dev/null 2>&1 || die "generate $spec failed"
    ds="$dir/$payload/$grade/records"
    files="$(find "$ds" -type f | wc -l)"
    # The page cache holds the files for both tools (warm-up reads, untimed).
    find "$ds" -type f -print0 | xargs -0 cat >/dev/null
    ref_s="$(best_time sh -c "find '$ds' -type f -print0 | xargs -0 openssl dgst -sha256")"
    sim_s="$(best_time "$BIN" storage-sim --threads "$threads" "$ds")"
    json="$("$BIN" storage-sim --json --threads "$threads" "$ds")"
    edr="$(printf '%s' "$json" | awk -F': ' '/"storage_edr":/ { gsub(/[ ,]/, "", $2); print $2; exit }')"
    row "storage-sim, $payload $grade, ${SIM_GIB} GiB in $files files, $threads thread(s)" \
      "$(mbps "$bytes" "$sim_s") MB/s" "${sim_s} s, fastest of $REPEAT; storage EDR at 4 KiB = $(calc '%.3f' "$edr")"
    row "openssl dgst -sha256 over the same files" "$(mbps "$bytes" "$ref_s") MB/s" \
      "${ref_s} s, fastest of $REPEAT, one process (single core)"
    row "**ratio storage-sim / openssl dgst, $payload $grade** (target ≥ 1.0)" "**$(calc '%.2f' "$ref_s / $sim_s")**" ""
    rm -rf -- "${dir:?}/$payload"
  done
  # The sampled compression (auto: 1 in ⌈input ÷ 16 MiB⌉ distinct blocks) against every block
  # compressed (--sample 1), on text without duplicates: the estimates' real error beside the
  # standard error they report, and what exactness costs.
  "$BIN" generate --output "$dir" --payload-types text_document --grades U0 \
    --records "$((SIM_GIB * 2048))" --record-size 512KiB >/dev/null 2>&1 || die "generate text U0 failed"
  ds="$dir/text_document/U0/records"
  find "$ds" -type f -print0 | xargs -0 cat >/dev/null
  ref_s="$(best_time sh -c "find '$ds' -type f -print0 | xargs -0 openssl dgst -sha256")"
  local exact_s auto_s
  auto_s="$(best_time "$BIN" storage-sim --threads "$threads" "$ds")"
  exact_s="$(REPEAT=1 best_time "$BIN" storage-sim --sample 1 --threads "$threads" "$ds")"
  # The first (4 KiB) block size's figures from the JSON: field value by name.
  field() { printf '%s' "$1" | awk -v k="\"$2\":" 'index($0, k) { sub(/.*: /, ""); gsub(/[ ,]/, ""); print; exit }'; }
  local ej aj
  ej="$("$BIN" storage-sim --json --sample 1 --threads "$threads" "$ds")"
  aj="$("$BIN" storage-sim --json --threads "$threads" "$ds")"
  local k el al lerr ez az zerr
  k="$(field "$aj" sample_rate)"
  el="$(field "$ej" lz4_bytes)" al="$(field "$aj" lz4_bytes)" lerr="$(field "$aj" lz4_rel_error)"
  ez="$(field "$ej" zstd_bytes)" az="$(field "$aj" zstd_bytes)" zerr="$(field "$aj" zstd_rel_error)"
  row "storage-sim, text_document U0, ${SIM_GIB} GiB (every block distinct, compressible), auto sample (1 in $k)" \
    "$(mbps "$bytes" "$auto_s") MB/s" "ratio to openssl dgst ($(mbps "$bytes" "$ref_s") MB/s) **$(calc '%.2f' "$ref_s / $auto_s")**"
  row "same, --sample 1 (every distinct block compressed, exact)" "$(mbps "$bytes" "$exact_s") MB/s" \
    "ratio to openssl dgst $(calc '%.2f' "$ref_s / $exact_s"); one run"
  row "sampled estimate vs exact at 4 KiB: lz4 bytes" "$(calc '%+.3f' "($al - $el) / $el * 100") %" \
    "reported standard error ±$(calc '%.3f' "$lerr * 100") %"
  row "sampled estimate vs exact at 4 KiB: zstd bytes" "$(calc '%+.3f' "($az - $ez) / $ez * 100") %" \
    "reported standard error ±$(calc '%.3f' "$zerr * 100") %"
  rm -rf -- "${dir:?}/text_document"

  # Peak RSS: SIM_RSS_GIB of random bytes without duplicates, so every block is a distinct
  # table entry (the most memory a dataset of that size can take).
  local avail_kib
  avail_kib="$(df -Pk "$(scratch)" | awk 'NR == 2 { print $4 }')"
  ((avail_kib > SIM_RSS_GIB * 1024 * 1024 + 1024 * 1024)) ||
    die "need ${SIM_RSS_GIB} GiB free under $(scratch) for the peak-RSS dataset; set DEDUP_LAB_BENCH_SIM_RSS_GIB lower"
  "$BIN" generate --output "$dir" --payload-types random_binary --grades U0 \
    --records "$((SIM_RSS_GIB * 2048))" --record-size 512KiB >/dev/null 2>&1 || die "generate for the RSS run failed"
  timed_rss storage-sim --threads "$threads" "$dir/random_binary/U0/records"
  local distinct
  distinct="$("$BIN" storage-sim --json --block-sizes 4KiB "$dir/random_binary/U0/records" | awk -F': ' '/"distinct_blocks":/ { gsub(/[ ,]/, "", $2); print $2; exit }')"
  row "peak RSS, storage-sim over ${SIM_RSS_GIB} GiB of distinct random blocks, 4 block sizes (target ≤ 256 MiB)" \
    "$RSS_MIB MiB" "$distinct distinct 4 KiB blocks; $(mbps "$((SIM_RSS_GIB * 1024 * 1024 * 1024))" "$WALL_S") MB/s, ${WALL_S} s; files just written by generate, in the page cache as far as memory allows"
  rm -rf -- "$dir"
}

# --- section: trace ---------------------------------------------------------------

TRACE_RECORDS="${DEDUP_LAB_BENCH_TRACE_RECORDS:-40000}"
[[ "$TRACE_RECORDS" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_TRACE_RECORDS must be a whole number"

register_section trace "the measured throughput of a stage with the metrics trace on (100 ms, and 10 ms) vs off, same run otherwise: files per-record insert and delete, sqlite bulk insert"
bench_trace() {
  local dir
  dir="$(scratch)/trace"
  mkdir -p "$dir"
  # The figure a stage journals (ops/s of its timed operations, MB/s of the bulk call):
  # the stage's measured throughput, which tracing must not change beyond noise.
  # Runs alternate off / 100 ms / 10 ms, REPEAT rounds; the best of each is kept.
  stage_figure() { # RESULTS STAGE FIELD
    awk -v st="\"stage\":\"$2\"" -v k="\"$3\":" '
      index($0, "\"type\":\"stage\"") && index($0, st) {
        i = index($0, k); v = substr($0, i + length(k)); sub(/[,}].*/, "", v); print v; exit }' \
      "$(find "$1" -name measurements.jsonl | head -1)"
  }
  local system stage field size records label
  for spec in "files perfile_insert ops_per_s 4KiB $TRACE_RECORDS" "files perfile_delete ops_per_s 4KiB $TRACE_RECORDS" \
    "sqlite bulk_insert mb_per_s 64KiB $((TRACE_RECORDS / 4))"; do
    read -r system stage field size records <<<"$spec"
    local -A best=()
    local round interval v
    for ((round = 0; round < REPEAT; round++)); do
      for interval in off 100ms 10ms; do
        rm -rf -- "${dir:?}"/*
        printf '[trace]\ninterval = "%s"\n' "$interval" >"$dir/c.toml"
        "$BIN" run --config "$dir/c.toml" --results "$dir/r" --systems "$system" --payload-types random_binary \
          --grades U50 --records "$records" --record-size "$size" --export none \
          --stages "bulk_insert,perfile_insert,perfile_delete" >/dev/null 2>&1 || die "trace run ($system, $interval) failed"
        v="$(stage_figure "$dir/r" "$stage" "$field")"
        if [[ -z "${best[$interval]:-}" ]] || awk -v a="$v" -v b="${best[$interval]}" 'BEGIN { exit !(a > b) }'; then
          best[$interval]="$v"
        fi
      done
    done
    label="$system $stage, $records × $size random_binary U50"
    row "$label, trace off" "$(calc '%.0f' "${best[off]}") ${field/_per_s/\/s}" "best of $REPEAT"
    row "$label, trace every 100 ms" "$(calc '%.0f' "${best[100ms]}") ${field/_per_s/\/s}" "best of $REPEAT"
    row "**ratio 100 ms trace / off, $system $stage** (target ≥ 0.97, noise)" "**$(calc '%.3f' "${best[100ms]} / ${best[off]}")**" ""
    row "ratio 10 ms trace / off, $system $stage" "$(calc '%.3f' "${best[10ms]} / ${best[off]}")" "ten times the default rate"
    unset best
  done
  rm -rf -- "$dir"
}

# --- section: rss -----------------------------------------------------------------

RUN_RSS_GIB="${DEDUP_LAB_BENCH_RUN_RSS_GIB:-2}"
register_section rss "peak RSS of the whole dedup-lab process (the kernel's count: Rust, SQLite, zstd and every other C allocation) for a bulk + per-record run of a ${RUN_RSS_GIB} GiB dataset on PostgreSQL and on each embedded backend"
bench_rss() {
  ensure_tool /usr/bin/time time
  ensure_tool python3 python3
  [[ "$RUN_RSS_GIB" =~ ^[1-9][0-9]*$ ]] || die "DEDUP_LAB_BENCH_RUN_RSS_GIB must be a whole number of GiB"
  bash "$REPO/scripts/services.sh" up postgresql >&2
  eval "$(bash "$REPO/scripts/services.sh" env postgresql)"
  # 512 KiB records, half of them duplicates (the dedup bookkeeping is part of the cost);
  # every default variant of the embedded stores (their compression runs in our process),
  # one PostgreSQL variant (its compression runs in the server).
  local records=$((RUN_RSS_GIB * 2048)) dir="$(scratch)/rss" system
  for system in postgresql sqlite lsm files; do
    mkdir -p -- "$dir"
    printf 'lab = "dedup_lab_bench_rss"\n' >"$dir/bench.toml"
    [[ "$system" == postgresql ]] && printf '[systems.postgresql]\nvariants = ["extended"]\n' >>"$dir/bench.toml"
    local timelog="$dir/time.log" t0 t1
    t0="$(now)"
    /usr/bin/time -v -o "$timelog" "$BIN" --config "$dir/bench.toml" run --results "$dir/results" \
      --systems "$system" --payload-types random_binary --grades U50 --records "$records" --record-size 512KiB \
      --stages bulk_insert,perfile_insert >"$dir/out.log" 2>&1 ||
      { tail -n 20 "$dir/out.log" >&2; die "rss: the run on $system failed (log above)"; }
    t1="$(now)"
    local figures
    figures="$(python3 - "$timelog" "$dir/results" <<'PY'
import glob, json, sys
t = dict(l.strip().split(": ", 1) for l in open(sys.argv[1]) if ": " in l)
stages, cells, bad = 0, 0, 0
for path in glob.glob(sys.argv[2] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] == "stage":
            stages += 1
            bad += not m["valid"]
        elif m["type"] == "cell":
            cells += 1
print(int(t["Maximum resident set size (kbytes)"]), float(t["User time (seconds)"]) + float(t["System time (seconds)"]), cells, stages, bad)
PY
)"
    local rss_kib cpu cells stages bad
    read -r rss_kib cpu cells stages bad <<<"$figures"
    [[ "$bad" == 0 && "$stages" -gt 0 ]] || die "rss: $system: $bad of $stages stages invalid"
    row "peak RSS, $system: bulk_insert + perfile_insert of ${RUN_RSS_GIB} GiB (${records} × 512 KiB, U50) (target ≤ 128 MiB)" \
      "$(calc '%.1f' "$rss_kib / 1024") MiB" \
      "$cells cell(s), $stages valid stages; $(calc '%.0f' "$t1 - $t0") s wall, $(calc '%.0f' "$cpu") s CPU of dedup-lab"
    rm -rf -- "$dir"
  done
}

# --- section: footprint -----------------------------------------------------------

register_section footprint "the instrument's own footprint: dedup-lab's CPU time (the kernel's count) as a share of the run's core-seconds, wall time and peak RSS, for the seed-scale PostgreSQL matrix and the embedded default run (and the same with a baseline binary, when given)"
bench_footprint() {
  ensure_tool /usr/bin/time time
  ensure_tool python3 python3
  bash "$REPO/scripts/services.sh" up postgresql >&2
  eval "$(bash "$REPO/scripts/services.sh" env postgresql)"
  local dir="$(scratch)/footprint" cores bins=("$BIN") bin label what
  cores="$(nproc)"
  [[ -n "${DEDUP_LAB_BENCH_BASELINE_BIN:-}" ]] && bins+=("$DEDUP_LAB_BENCH_BASELINE_BIN")
  for what in "postgresql seed" "embedded default"; do
    for bin in "${bins[@]}"; do
      [[ -x "$bin" ]] || die "footprint: no binary at $bin"
      label="this build"
      [[ "$bin" != "$BIN" ]] && label="baseline $(basename -- "$bin")"
      rm -rf -- "$dir"
      mkdir -p -- "$dir/cache"
      printf 'lab = "dedup_lab_bench_fp"\n' >"$dir/bench.toml"
      local args=(--config "$dir/bench.toml" run --results "$dir/results" --runs 1)
      if [[ "$what" == "postgresql seed" ]]; then args+=(--systems postgresql --profile seed); fi
      # A cold analysis cache: the run analyses every dataset once, as a first run does.
      local t0 t1
      t0="$(now)"
      DEDUP_LAB_CACHE_DIR="$dir/cache" /usr/bin/time -v -o "$dir/time.log" "$bin" "${args[@]}" >"$dir/out.log" 2>&1 ||
        { tail -n 20 "$dir/out.log" >&2; die "footprint: $what with $bin failed"; }
      t1="$(now)"
      local figures
      figures="$(python3 - "$dir/time.log" "$dir/results" <<'PY'
import glob, json, sys
t = dict(l.strip().split(": ", 1) for l in open(sys.argv[1]) if ": " in l)
stages, server, bad = 0, 0, 0
for path in glob.glob(sys.argv[2] + "/*/measurements.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m["type"] != "stage":
            continue
        stages += 1
        bad += not m["valid"] and not m.get("unsupported")
        server += (m.get("footprint") or {}).get("server_cpu_ns") or 0
cpu = float(t["User time (seconds)"]) + float(t["System time (seconds)"])
print(cpu, int(t["Maximum resident set size (kbytes)"]), stages, bad, server / 1e9)
PY
)"
      local cpu rss stages bad server wall
      read -r cpu rss stages bad server <<<"$figures"
      wall="$(calc '%.1f' "$t1 - $t0")"
      [[ "$bad" == 0 ]] || die "footprint: $what with $bin: $bad invalid stages"
      row "$what run, $label: dedup-lab CPU share of the run's core-seconds (target ≤ 5 %)" \
        "**$(calc '%.1f' "100 * $cpu / ($wall * $cores)") %**" \
        "$(calc '%.1f' "$cpu") s CPU of $(calc '%.0f' "$wall * $cores") core-s ($wall s wall × $cores cores); $stages stages"
      row "$what run, $label: wall time / peak RSS (target ≤ 128 MiB)" "$wall s / $(calc '%.1f' "$rss / 1024") MiB" \
        "server CPU in the stages: $(calc '%.1f' "$server") s (0 where its processes are not named)"
    done
  done
  rm -rf -- "$dir"
}

# --- main ---------------------------------------------------------------------

# Replaces (or appends) the block of section NAME in BENCH.md with FILE's content.
update_bench_md() {
  local name="$1" block="$2" tmp
  tmp="$(mktemp "$BENCH_MD.XXXXXX")"
  if [[ ! -f "$BENCH_MD" ]]; then
    printf '# dedup-lab benchmarks\n\nWritten by %s; each section is replaced when it is run again.\n' "\`scripts/bench.sh\`" >"$BENCH_MD"
  fi
  awk -v name="$name" -v blockfile="$block" '
    function emit(   line) { while ((getline line < blockfile) > 0) print line; close(blockfile); done = 1 }
    $0 == "<!-- bench:" name " -->" { skip = 1; emit(); next }
    skip && $0 == "<!-- /bench:" name " -->" { skip = 0; next }
    !skip { print }
    END { if (!done) { print ""; emit() } }' "$BENCH_MD" >"$tmp"
  mv -- "$tmp" "$BENCH_MD"
}

run_section() {
  local name="$1" block
  ROWS=()
  log "section $name: ${SECTION_DESC[$name]}"
  LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  "bench_$name"
  block="$(mktemp "$(scratch)/block.XXXXXX")"
  {
    printf '<!-- bench:%s -->\n' "$name"
    printf '## %s\n\n' "$name"
    printf '%s  \n' "${SECTION_DESC[$name]}"
    printf '%s, %s, %s CPU(s) (%s), load average before: %s, dedup-lab %s\n\n' \
      "$(date -u +%Y-%m-%dT%H:%MZ)" "$(uname -sm)" "$(nproc)" \
      "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)" \
      "$LOADAVG" "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
    printf '| measurement | value | notes |\n|---|---:|---|\n'
    printf '%s\n' "${ROWS[@]}"
    printf '<!-- /bench:%s -->\n' "$name"
  } >"$block"
  cat -- "$block"
  echo
  update_bench_md "$name" "$block"
}

main() {
  if [[ "${1:-}" == "--list" ]]; then
    for s in "${SECTIONS[@]}"; do printf '%-10s %s\n' "$s" "${SECTION_DESC[$s]}"; done
    return 0
  fi
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
    return 0
  fi
  local selected=("$@")
  ((${#selected[@]} > 0)) || selected=("${SECTIONS[@]}")
  for s in "${selected[@]}"; do
    [[ -n "${SECTION_DESC[$s]+x}" ]] || die "unknown section '$s' (sections: ${SECTIONS[*]})"
  done
  build
  make_scratch
  for s in "${selected[@]}"; do run_section "$s"; done
  log "wrote $BENCH_MD"
}

main "$@"
