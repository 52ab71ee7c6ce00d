#!/usr/bin/env bash
# Tests of the Scipion plugin scipion-em-tessera (registered with ctest in tests/CMakeLists.txt).
#   scipion_plugin/run_tests.sh BUILD_DIR pure     schema -> form mapping, run-folder reading and names, plain
#                                                 python3 (no Scipion), against BUILD_DIR's programs
#   scipion_plugin/run_tests.sh BUILD_DIR scipion  real Scipion, headless: pyworkflow, pwem and the RELION
#                                                 plugin from PyPI in BUILD_DIR/scipion-venv (made once,
#                                                 reused while the pinned versions below do not change)
# Exits 77 (ctest: "skipped"), saying why, only when Scipion cannot be installed or the RELION 7DDO
# data is missing.
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR pure|scipion}" && pwd)
mode=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
export TESSERA_HOME=$build TESSERA_REQUIRE_BUILD=1 PYTHONDONTWRITEBYTECODE=1
export TESSERA_SHARED_DATA_DIR=${TESSERA_SHARED_DATA_DIR:-$here/../../shared/data}
# The versions the plugin is tested with (scipion-em-relion: its RELION importer and STAR reader).
packages="scipion-pyworkflow==3.11.7 scipion-em==3.11.1 scipion-em-relion==5.0.2"

skip() {
  printf '\n%s\n!!! SCIPION PLUGIN TESTS SKIPPED: %s\n%s\n\n' "$(printf '!%.0s' {1..100})" "$*" \
    "$(printf '!%.0s' {1..100})"
  exit 77
}

run_pure() {
  cd "$here/tests"
  "$python" -m unittest -v test_schema_form test_outputs test_run_files
}

run_scipion() {
  local venv=$build/scipion-venv log=$build/scipion-venv.log
  [ -f "$TESSERA_SHARED_DATA_DIR/relion_7DDO/Particles/particles.star" ] ||
    skip "no RELION 7DDO data in $TESSERA_SHARED_DATA_DIR"
  if [ "$(cat "$venv/.tessera-packages" 2>/dev/null)" != "$packages" ]; then
    echo "== installing Scipion into $venv ($packages), log in $log"
    rm -rf "$venv"
    "$python" -m venv "$venv" >"$log" 2>&1 ||
      skip "cannot create a Python virtual environment with $python (Debian: apt install python3-venv); $(tail -1 "$log")"
    "$venv/bin/pip" install "setuptools>=64" wheel $packages >>"$log" 2>&1 ||
      skip "pip could not install $packages: $(grep -m1 -i error "$log" || tail -1 "$log") (full log: $log)"
    echo "$packages" >"$venv/.tessera-packages"
  fi
  # The plugin itself, editable: its pyworkflow.plugin entry point makes Scipion load it.
  "$venv/bin/pip" install --no-deps --no-build-isolation -e "$here" >>"$log" 2>&1 ||
    { echo "ERROR: the plugin does not install (pip install -e $here), see $log"; tail -20 "$log"; exit 1; }
  "$venv/bin/python" -c 'import pyworkflow, pwem, relion; print("== Scipion: pyworkflow", pyworkflow.__version__,
    "- pwem", pwem.__version__, "- scipion-em-relion", relion.__version__)'
  export TESSERA_SCIPION_TEST_DIR=$build/scipion-test
  rm -rf "$TESSERA_SCIPION_TEST_DIR" && mkdir -p "$TESSERA_SCIPION_TEST_DIR"
  cd "$here/tests/scipion"
  "$venv/bin/python" -W ignore -m unittest -v test_scipion_workflow test_scipion_consensus test_scipion_mpi test_scipion_template \
    test_scipion_tutorials
}

case "$mode" in
  pure) run_pure ;;
  scipion) run_scipion ;;
  *) echo "usage: $0 BUILD_DIR pure|scipion" >&2; exit 2 ;;
esac
