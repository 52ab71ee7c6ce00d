#!/usr/bin/env bash
# Tessera demo: simulate a noisy dataset from the built-in phantom, reconstruct
# it from its true poses, and compare the map with the ground truth.
#   scripts/demo.sh BUILD_DIR          (scripts/setup.sh demo calls it)
# Output goes to ${TESSERA_DEMO_DIR:-demo_output}/simulate and .../reconstruct.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$1
simulate="$build/protocols/tessera_simulate"
reconstruct="$build/protocols/tessera_reconstruct"
for p in "$simulate" "$reconstruct"; do
  [ -x "$p" ] || { echo "ERROR: $p not found: build Tessera first (scripts/setup.sh demo)" >&2; exit 1; }
done
demo=${TESSERA_DEMO_DIR:-demo_output}
threads=$(nproc)

echo "== simulating 2,000 particles of the built-in phantom (box 64, 3 A/px, SNR 0.1, defocus 1-2.5 um)"
"$simulate" --out "$demo/simulate" --phantom-box-px 64 --pixel-A 3 --count 2000 \
  --snr 0.1 --ctf true --defocus-min-A 10000 --defocus-max-A 25000 --threads "$threads"

echo
echo "== reconstructing from the true poses, FSC against the ground truth (truth.mrc)"
"$reconstruct" --out "$demo/reconstruct" --particles "$demo/simulate/particles.star" \
  --reference "$demo/simulate/truth.mrc" --threads "$threads"

echo
echo "== summary"
python3 - "$demo" <<'EOF'
import json, sys
demo = sys.argv[1]
fsc = json.load(open(f"{demo}/reconstruct/fsc.json"))
nyquist = 2 * fsc["voxel_A"]

def show(key):
    r = fsc["resolution_A"].get(key)
    return f"{r:.2f} A" if r is not None else f"beyond Nyquist ({nyquist:.2f} A)"

print(f"  particles:                         {demo}/simulate/particles.star (and .sqlite, .mrcs)")
print(f"  ground truth:                      {demo}/simulate/truth.mrc")
print(f"  map, half maps, FSC:               {demo}/reconstruct/")
print(f"  FSC against the ground truth, 0.5: {show('vs_reference@0.5')}")
print(f"  gold-standard FSC, 0.143:          {show('gold_standard@0.143')}")
print(f"  (Nyquist {nyquist:.2f} A. The two are expected to agree: half maps at FSC 0.143 correspond"
      " to FSC 0.5 against the truth, Rosenthal & Henderson 2003.)")
EOF
