#!/usr/bin/env bash
# Interoperability of Tessera's cryoSPARC .cs reader and writer with the real cryosparc-tools
# (registered with ctest in tests/CMakeLists.txt as cryosparc_tools).
#   tests/interop/cryosparc/run_tests.sh BUILD_DIR
# Installs the pinned cryosparc-tools from PyPI into BUILD_DIR/cryosparc-venv (made once, reused while
# the pins below do not change), then runs test_cryosparc_tools.py against BUILD_DIR's programs:
# Tessera's .cs read by cryosparc-tools, cryosparc-tools' .cs read by Tessera, and the conventions
# checked physically (projections at the .cs poses against simulated images).
# Exits 77 (ctest: "skipped"), saying why, only when pip cannot install the pinned packages.
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1 TESSERA_BUILD_DIR=$build
# The versions tested with (cryosparc-tools 5.0.3 installs from wheels on Python 3.11, Debian bookworm).
packages="cryosparc-tools==5.0.3 numpy==2.2.6"

skip() {
  printf '\n%s\n!!! CRYOSPARC-TOOLS INTEROPERABILITY TESTS SKIPPED: %s\n%s\n\n' "$(printf '!%.0s' {1..100})" "$*" \
    "$(printf '!%.0s' {1..100})"
  exit 77
}

for program in tests/tessera_test_cs_convert protocols/tessera_simulate; do
  [ -x "$build/$program" ] || { echo "ERROR: $build/$program is not built"; exit 1; }
done

venv=$build/cryosparc-venv log=$build/cryosparc-venv.log
if [ "$(cat "$venv/.tessera-packages" 2>/dev/null)" != "$packages" ]; then
  echo "== installing cryosparc-tools into $venv ($packages), log in $log"
  rm -rf "$venv"
  "$python" -m venv "$venv" >"$log" 2>&1 ||
    { echo "ERROR: cannot create a Python virtual environment with $python (Debian: apt install python3-venv):" \
        "$(tail -1 "$log")"; exit 1; }
  "$venv/bin/pip" install $packages >>"$log" 2>&1 ||
    skip "pip could not install $packages: $(grep -m1 -i error "$log" || tail -1 "$log") (full log: $log)"
  echo "$packages" >"$venv/.tessera-packages"
fi
"$venv/bin/python" -c 'import cryosparc, numpy; print("== cryosparc-tools", cryosparc.__version__, "- numpy", numpy.__version__)'
cd "$here"
"$venv/bin/python" -W ignore -m unittest -v test_cryosparc_tools
