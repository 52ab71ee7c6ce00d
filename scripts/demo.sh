#!/usr/bin/env bash
# Tessera demo: the main path on data it simulates. A small protein bound to a large complex,
# with a contrast spread and the small protein wobbling on the complex (the case of a ligand or
# binder that a consensus refinement aligns by the big part):
#   1 simulate  2 refine (homogeneous, from the truth low-passed to 30 A)  3 validate the consensus
#   4 subtract the complex (each particle's contrast fitted)  5 local refinement of the small protein
#   6 validate it  7 figures (FSC curves, map slices, a particle page) with the viewers
# and prints what improved at each step against the ground truth the simulation knows.
#   scripts/demo.sh BUILD_DIR          (scripts/setup.sh demo calls it)
# Output: ${TESSERA_DEMO_DIR:-demo_output}/<step>/ and .../figures/*.png; about 5 minutes on 2 cores.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$1
programs=(simulate refine_homo validate_fsc subtract refine_local)
viewers=(fsc volume particles)
for p in "${programs[@]}"; do
  [ -x "$build/protocols/tessera_$p" ] || { echo "ERROR: $build/protocols/tessera_$p not found: build Tessera first (scripts/setup.sh demo)" >&2; exit 2; }
done
for v in "${viewers[@]}"; do
  [ -x "$build/viewers/tessera_view_$v" ] || { echo "ERROR: $build/viewers/tessera_view_$v not found: the viewers need Qt 6 (scripts/setup.sh demo installs it)" >&2; exit 2; }
done
demo=${TESSERA_DEMO_DIR:-demo_output}
# The demo's folder is its own: a folder that holds anything else is never written into.
marker="$demo/.tessera_demo"
if [ -d "$demo" ] && [ -n "$(ls -A "$demo")" ] && [ ! -e "$marker" ]; then
  echo "ERROR: $demo exists and is not a Tessera demo folder; set TESSERA_DEMO_DIR to a new folder" >&2
  exit 2
fi
mkdir -p "$demo/figures"
touch "$marker"
threads=$(nproc)
run() { "$build/protocols/tessera_$1" "${@:2}" --overwrite; }
view() { QT_QPA_PLATFORM=offscreen "$build/viewers/tessera_view_$1" "${@:2}"; }

# Progress: each step's share of the whole (measured on 2 cores), so the time left can be told
# from the time the steps done so far took.
steps=(simulate refine validate subtract local validate figures)
weights=(2 40 2 4 48 2 2)
start=$(date +%s)
done_weight=0
step_no=0
step() {
  local now elapsed left=""
  now=$(date +%s)
  elapsed=$((now - start))
  if [ "$done_weight" -gt 0 ]; then
    left=$(( elapsed * (100 - done_weight) / done_weight ))
    left=", about $(( (left + 30) / 60 )) min left"
  fi
  echo
  echo "== step $((step_no + 1))/${#steps[@]}: $1   [${elapsed} s so far${left}]"
  done_weight=$((done_weight + weights[step_no]))
  step_no=$((step_no + 1))
}

step "simulating 1,500 particles: a complex with a small protein bound (box 64, 3 A/px, SNR 0.1, contrast spread 0.2, the small protein wobbling 4 deg / 1.5 px)"
run simulate --out "$demo/simulate" --phantom complex --phantom-box-px 64 --pixel-A 3 --count 1500 \
  --snr 0.1 --scale-sigma 0.2 --module-rotation-sigma-deg 4 --module-shift-sigma-px 1.5 \
  --defocus-min-A 10000 --defocus-max-A 25000 --threads "$threads" --quiet
sim="$demo/simulate"   # truth.mrc, module_1 (the complex), module_2 (the small protein), their masks

step "homogeneous refinement (gold-standard halves), from the truth low-passed to 30 A"
run refine_homo --out "$demo/refine" --particles "$sim/particles.star" --reference "$sim/truth.mrc" \
  --initial-lowpass-A 30 --threads "$threads"

step "validating the consensus map against the truth (complex and small protein, each inside its mask)"
for part in 1 2; do
  run validate_fsc --out "$demo/validate_consensus_module_$part" --half-map-A "$demo/refine/map_half_A.mrc" \
    --half-map-B "$demo/refine/map_half_B.mrc" --mask "$sim/module_${part}_mask.mrc" \
    --reference "$sim/module_$part.mrc" --quiet
done

step "subtracting the complex from every particle, at each particle's fitted contrast"
run subtract --out "$demo/subtract" --particles "$demo/refine/particles.star" \
  --half-map-A "$demo/refine/map_half_A.mrc" --half-map-B "$demo/refine/map_half_B.mrc" \
  --mask "$sim/module_1_mask.mrc" --mask-role remove --threads "$threads"

step "local refinement of the small protein on the subtracted particles"
run refine_local --out "$demo/local" --particles "$demo/subtract/particles_subtracted.star" \
  --half-map-A "$demo/refine/map_half_A.mrc" --half-map-B "$demo/refine/map_half_B.mrc" \
  --mask "$sim/module_2_mask.mrc" --subtract-other-modules false --rounds 1 --threads "$threads"

step "validating the small protein's local map against the truth"
run validate_fsc --out "$demo/validate_local_module_2" --half-map-A "$demo/local/module_1_half_A.mrc" \
  --half-map-B "$demo/local/module_1_half_B.mrc" --mask "$sim/module_2_mask.mrc" \
  --reference "$sim/module_2.mrc" --quiet

step "figures"
fig="$demo/figures"
view fsc "$demo/validate_consensus_module_2" "$demo/validate_local_module_2" \
  --labels "consensus,local" --stats none \
  --curves "consensus: corrected,consensus: vs_reference_masked,local: corrected,local: vs_reference_masked" \
  --title "Small protein: gold-standard FSC (corrected) and FSC against the truth" --export "$fig/fsc_small_protein.png"
view fsc "$demo/refine" --title "Consensus refinement: FSC and iterations" --export "$fig/fsc_consensus.png"
view volume "$demo/refine/map.mrc" --panels slices --export "$fig/map_consensus.png"
# the small protein sits at x = 54 of 64 (phantom_complex: box/4 + box/10 from the centre)
view volume "$demo/local/module_1_map.mrc" --panels slices --slice-x 54 --export "$fig/map_small_protein_local.png"
view particles "$demo/refine/particles.star" --grid 8x3 --export "$fig/particles.png"
view particles "$demo/subtract/particles_subtracted.star" --grid 8x3 --export "$fig/particles_subtracted.png"

elapsed=$(( $(date +%s) - start ))
echo
echo "== summary (${elapsed} s)"
python3 - "$demo" <<'EOF'
import json, sys
demo = sys.argv[1]

def res(run, key):
    with open(f"{demo}/{run}/fsc.json") as f:
        fsc = json.load(f)
    r = fsc["resolution_A"].get(key)
    return r, 2 * fsc["voxel_A"]

def show(run, key):
    r, nyquist = res(run, key)
    return f"{r:5.2f} A" if r is not None else f"Nyquist ({nyquist:.2f} A)"

with open(f"{demo}/subtract/subtraction.json") as f:
    sub = json.load(f)
print("                                    against the truth (FSC 0.5)   gold-standard (FSC 0.143, corrected)")
print(f"  complex, consensus refinement      {show('validate_consensus_module_1', 'vs_reference_masked@0.5'):>12}"
      f"                   {show('validate_consensus_module_1', 'corrected@0.143'):>12}")
print(f"  small protein, consensus           {show('validate_consensus_module_2', 'vs_reference_masked@0.5'):>12}"
      f"                   {show('validate_consensus_module_2', 'corrected@0.143'):>12}")
print(f"  small protein, local refinement    {show('validate_local_module_2', 'vs_reference_masked@0.5'):>12}"
      f"                   {show('validate_local_module_2', 'corrected@0.143'):>12}")
before, _ = res("validate_consensus_module_2", "vs_reference_masked@0.5")
after, _ = res("validate_local_module_2", "vs_reference_masked@0.5")
if before and after:
    print(f"  the small protein's map improved by {100 * (before - after) / before:.0f}% in resolution against the truth")
bands = sub.get("removed_signal_left_by_band") or sub.get("removed_signal_left_by_band_from_maps") or []
left = ", ".join(f"{100 * b['share']:.1f}% up to {b['up_to_A']:.0f} A" for b in bands[:3])
print(f"  subtraction: contrast fitted per particle ({sub['scale']['mean']:.2f} +- {sub['scale']['sd']:.2f});"
      f" estimated signal of the complex left: {left}")
print(f"  figures: {demo}/figures/ (FSC curves, map slices, particle pages); every step's files: {demo}/<step>/")
summary = {"small_protein_vs_truth_A": {"consensus": before, "local": after},
           "complex_vs_truth_A": res("validate_consensus_module_1", "vs_reference_masked@0.5")[0],
           "removed_signal_left_by_band": bands}
with open(f"{demo}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
EOF
