#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/) with clang, ASan and UBSan, and runs each one for a
# bounded time on a copy of its seed corpus and kept crash inputs (the repository is not modified).
#   scripts/fuzz.sh                     every harness
#   scripts/fuzz.sh fuzz_star fuzz_mrc  only these
# Environment: TESSERA_FUZZ_SECONDS (per harness, default 60), TESSERA_FUZZ_BUILD_DIR (default
# build-fuzz), TESSERA_FUZZ_JOBS (harnesses run at once and build jobs, default: the cores).
# Exits non-zero when a harness finds a bug, printing where its crash input is. A fixed bug's input
# goes to tests/fuzz/regressions/<harness>/, where the <harness>_replay ctest test runs it in every build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${TESSERA_FUZZ_SECONDS:-60}
build=${TESSERA_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${TESSERA_FUZZ_JOBS:-$(nproc)}
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_mrc fuzz_star fuzz_scipion_set fuzz_params fuzz_cs)
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (Debian: clang, libclang-rt-dev)" >&2; exit 1; }

# The harnesses write every input to a file: in memory (/dev/shm) they run ~10 times faster.
tmp=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
work=$(mktemp -d "$tmp/tessera-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== fuzz: configuring and building ${harnesses[*]} in $build/ (clang, libFuzzer, ASan, UBSan)"
# Only what the harnesses link is built: the engine and protocols/common, instrumented.
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DTESSERA_FUZZ=ON \
  -DTESSERA_SANITIZE=fuzzer-no-link,address,undefined \
  -DTESSERA_WITH_QT=OFF -DTESSERA_WITH_MPI=OFF -DTESSERA_WITH_CUDA=OFF >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target "${harnesses[@]}"
root=$PWD
bin=$(cd "$build" && pwd)

shared=../shared/data  # real files beside the checkout, when present (never copied into the repository)

# The working corpus of harness $1 in folder $2: seeds, kept crash inputs, small real files.
make_corpus() {
  local h=$1 corpus=$2/corpus f
  mkdir -p "$corpus"
  cp tests/fuzz/seeds/"$h"/* "$corpus"/
  find tests/fuzz/regressions/"$h" -type f ! -name '.*' -exec cp {} "$corpus"/ \;
  [ -d "$shared" ] || return 0
  case $h in
    fuzz_mrc) find "$shared"/maps -size -64k -type f -exec cp {} "$corpus"/ \; ;;
    fuzz_star) find "$shared"/star -size -64k -type f -exec cp {} "$corpus"/ \; ;;
    fuzz_scipion_set)  # the real 100-particle subset, cut to 3 particles
      f=$shared/scipion/Runs/000098_ProtSubSet/particles.sqlite
      [ -f "$f" ] && command -v python3 >/dev/null || return 0
      cp "$f" "$corpus"/real_subset_3.sqlite && chmod u+w "$corpus"/real_subset_3.sqlite
      python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM Objects WHERE id > 3")
db.commit(); db.execute("PRAGMA page_size = 512"); db.execute("VACUUM")' "$corpus"/real_subset_3.sqlite ;;
  esac
}

# Runs harness $1 for $seconds; its crash inputs go to $build/fuzz-artifacts/$1/.
run_one() {
  local h=$1 dir=$work/$1 artifacts=$bin/fuzz-artifacts/$1
  mkdir -p "$dir" "$artifacts"
  make_corpus "$h" "$dir"
  # The harness writes its input file under TMPDIR: keep that inside the work folder.
  (cd "$dir" && TMPDIR=$dir UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
     "$bin/tests/fuzz/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
     -malloc_limit_mb=512 -dict="$root/tests/fuzz/$h.dict" -artifact_prefix="$artifacts/" \
     -print_final_stats=1 corpus) >"$dir/log" 2>&1
}

echo "== fuzz: running each harness for $seconds s, $jobs at a time"
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  (status=0; run_one "$h" || status=$?; echo "$status" >"$work/$h.status") &
done
wait

failed=0
for h in "${harnesses[@]}"; do
  log=$work/$h/log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$work/$h/corpus" -type f | wc -l)
  if [ "$(cat "$work/$h.status")" = 0 ]; then
    echo "$h: ok, ${runs:-?} inputs in $seconds s (${rate:-?} exec/s), corpus of $corpus"
  else
    failed=1
    echo "$h: FAILED; the end of its log:"
    tail -n 60 "$log"
    sed -n "s|.*Test unit written to |$h: the input: |p" "$log"
    echo "$h: fix the reader, then keep that input in tests/fuzz/regressions/$h/"
  fi
done
exit $failed
