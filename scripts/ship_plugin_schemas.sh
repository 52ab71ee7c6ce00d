#!/usr/bin/env bash
# Copies the programs' --schema JSON files from a build (BUILD_DIR/share/tessera/schemas, written by the
# tessera_schemas target) into the Scipion plugin (scipion_plugin/tessera/schemas), which ships them so
# that its protocol classes exist where the programs are not built or not found: a saved Scipion project
# always loads its runs. Run after changing a program's schema; the plugin's tests fail until the
# shipped copies equal the built ones (scipion_plugin/tests/test_schema_form.py).
#   scripts/ship_plugin_schemas.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
src=$build/share/tessera/schemas dst=scipion_plugin/tessera/schemas
ls "$src"/tessera_*.json >/dev/null 2>&1 || { echo "ERROR: no schemas in $src (build the tessera_schemas target)" >&2; exit 2; }
mkdir -p "$dst"
rm -f "$dst"/tessera_*.json
cp "$src"/tessera_*.json "$dst"/
echo "shipped $(ls "$dst"/tessera_*.json | wc -l) schemas into $dst"
