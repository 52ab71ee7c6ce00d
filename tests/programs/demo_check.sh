#!/usr/bin/env bash
# ctest "demo": runs scripts/demo.sh as the README's first command does, then checks what it
# claims: every step ran, the small protein's map came closer to the truth after subtraction and
# local refinement than in the consensus, and the figures are pictures (a blank PNG of these
# sizes compresses to a few hundred bytes; a drawn one is tens of KB).
#   tests/programs/demo_check.sh BUILD_DIR
set -euo pipefail
build=$1
demo="$build/demo_check"
rm -rf "$demo"
TESSERA_DEMO_DIR="$demo" bash "$(dirname "$0")/../../scripts/demo.sh" "$build"
python3 - "$demo" <<'PY'
import json, os, sys
demo = sys.argv[1]
s = json.load(open(f"{demo}/summary.json"))
before, after = s["small_protein_vs_truth_A"]["consensus"], s["small_protein_vs_truth_A"]["local"]
assert before and after, s
assert after < before, f"the small protein did not improve: {before} -> {after} A"
for name in ["fsc_small_protein", "fsc_consensus", "map_consensus", "map_small_protein_local", "particles",
             "particles_subtracted"]:
    size = os.path.getsize(f"{demo}/figures/{name}.png")
    assert size > 8000, f"{name}.png is {size} bytes: blank?"
print(f"demo checked: small protein {before:.2f} -> {after:.2f} A against the truth")
PY
