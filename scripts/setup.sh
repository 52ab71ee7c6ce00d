#!/usr/bin/env bash
# Tessera set-up: install what is missing (Debian packages), build, then run
# the demo or the whole test suite. Used by the README and by .ci/run.
#   scripts/setup.sh demo   install, build, simulate a dataset, reconstruct it, print the FSC
#   scripts/setup.sh test   install, build, run every test (C++, programs, plugin)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in demo|test) ;; *) echo "usage: $0 demo|test" >&2; exit 2 ;; esac

# Real package names only: dpkg-query never reports a virtual one (libqt6charts6-dev, libqt6svg6-dev)
# as installed, which would make every run call apt-get again.
build_pkgs=(build-essential cmake pkg-config libfftw3-dev libboost-program-options-dev libfmt-dev
            nlohmann-json3-dev libsqlite3-dev libgtest-dev qt6-base-dev qt6-charts-dev qt6-svg-dev
            libqt6opengl6-dev libgl-dev openmpi-bin libopenmpi-dev python3 python3-venv python3-tk)
# The test suite also checks Tessera against RELION and opens windows under Xvfb; scripts/fuzz.sh
# builds the fuzz harnesses with clang and libFuzzer (libclang-rt-dev: the default clang's runtimes).
# python3-gemmi: tests/benchmarks/pdb_to_map.py (atomic model -> density map, bench_refine_nu).
# python3-numpy, python3-scipy: tests/programs/consensus_poses_check.py (pose distances computed apart from Tessera).
test_pkgs=(relion xvfb xauth clang libclang-rt-dev python3-gemmi python3-numpy python3-scipy)
pkgs=("${build_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc)
build=${TESSERA_BUILD_DIR:-build}
echo "== configuring and building in $build/"
# Qt (viewers) and MPI were installed above: if CMake does not find them, stop here rather
# than build without them and fail tests later.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "-DTESSERA_REQUIRE=QT;MPI" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
grep "Tessera:" "$build.configure.log" || true
cmake --build "$build" -j "$jobs"

if [ "$mode" = demo ]; then
  exec bash scripts/demo.sh "$build"
fi
echo "== running the tests"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900
# The file readers and the --params parser under libFuzzer, a bounded time each (build-fuzz/).
bash scripts/fuzz.sh
