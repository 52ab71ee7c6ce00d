#!/usr/bin/python3
"""Atomic model -> cryo-EM density map (MRC2014) with gemmi (Debian: python3-gemmi), for bench_refine_nu.

  pdb_to_map.py MODEL OUT.mrc --box N --pixel-A S [--blur-A2 B] [--report FILE.json] [--residues FIRST-LAST]

Electron scattering factors (gemmi.DensityCalculatorE, d_min = 2 x pixel). Every atom gets the same
B-factor, --blur-A2 (default 20 A^2, as relion_7DDO's truth), and the model's own B-factors are
ignored: deposited ADPs (3J5P: median 161 A^2) would blur the truth far below Nyquist, and the
benchmark wants a protein that is ordered everywhere, the disorder coming from the belt alone.
Hydrogens, waters and ligands are removed. The model is translated (not rotated) so that its centre
of mass lies on voxel N/2 of every axis (Tessera's box centre): its own axes stay the box's axes.

--report writes a JSON file: the centre of mass in the model's frame, the translation applied, the
model's extent about the box centre, and, with --residues, the mean position of those residues' CA
atoms about the box centre (A), e.g. a membrane protein's transmembrane helices.

Exit codes: 0 done, 2 bad arguments or gemmi missing (a clear message), 1 failure.
"""
import argparse
import json
import sys

try:
    import gemmi
except ImportError:
    sys.exit("ERROR: pdb_to_map.py needs gemmi for Python 3 (Debian: apt-get install python3-gemmi)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--box", type=int, required=True, help="box size, voxels")
    p.add_argument("--pixel-A", type=float, required=True, help="voxel size, A")
    p.add_argument("--blur-A2", type=float, default=20.0, help="B-factor of every atom, A^2 (default 20)")
    p.add_argument("--report", help="JSON file with the centring and the --residues position")
    p.add_argument("--residues", help="FIRST-LAST: report these residues' mean CA position")
    a = p.parse_args()
    if a.box < 16 or a.box % 2 or a.pixel_A <= 0 or a.blur_A2 < 0:
        p.error("--box must be even and >= 16, --pixel-A > 0, --blur-A2 >= 0")
    return a


def atoms(model):
    return (atom for chain in model for residue in chain for atom in residue)


def main():
    a = parse_args()
    st = gemmi.read_structure(a.model)
    st.setup_entities()
    st.remove_hydrogens()
    st.remove_ligands_and_waters()
    st.remove_empty_chains()
    model = st[0]
    com = model.calculate_center_of_mass()
    half = (a.box // 2) * a.pixel_A  # voxel N/2 lies at N/2 x pixel from the grid origin
    shift = gemmi.Position(half - com.x, half - com.y, half - com.z)
    for atom in atoms(model):
        atom.pos = atom.pos + shift
        atom.b_iso = 0.0

    length = a.box * a.pixel_A
    st.cell = gemmi.UnitCell(length, length, length, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 2 * a.pixel_A
    dc.blur = a.blur_A2
    dc.grid.set_unit_cell(st.cell)
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    dc.grid.set_size(a.box, a.box, a.box)
    dc.grid.fill(0.0)
    dc.add_model_density_to_grid(model)
    dc.grid.symmetrize_sum()
    m = gemmi.Ccp4Map()
    m.grid = dc.grid
    m.update_ccp4_header(2, True)  # mode 2 (float), with statistics
    m.write_ccp4_map(a.out)

    rel = [(at.pos.x - half, at.pos.y - half, at.pos.z - half) for at in atoms(model)]
    report = {
        "model": a.model,
        "atoms": len(rel),
        "box": a.box,
        "pixel_A": a.pixel_A,
        "blur_A2": a.blur_A2,
        "center_of_mass_model_A": [com.x, com.y, com.z],
        "translation_A": [shift.x, shift.y, shift.z],
        "extent_about_centre_A": {
            "min": [min(p[i] for p in rel) for i in range(3)],
            "max": [max(p[i] for p in rel) for i in range(3)],
            "max_radius_xy": max((p[0] ** 2 + p[1] ** 2) ** 0.5 for p in rel),
        },
    }
    if a.residues:
        first, last = (int(v) for v in a.residues.split("-"))
        ca = [at.pos for chain in model for res in chain if first <= res.seqid.num <= last
              for at in res if at.name == "CA"]
        if not ca:
            sys.exit(f"ERROR: --residues {a.residues}: no CA atom in that range")
        report["residues"] = {
            "range": [first, last],
            "ca_atoms": len(ca),
            "mean_about_centre_A": [sum(p.x for p in ca) / len(ca) - half, sum(p.y for p in ca) / len(ca) - half,
                                    sum(p.z for p in ca) / len(ca) - half],
        }
    if a.report:
        with open(a.report, "w") as f:
            json.dump(report, f, indent=2)
    print(f"{a.model}: {len(rel)} atoms, {a.box}^3 at {a.pixel_A} A/px, B {a.blur_A2} A^2 -> {a.out}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"ERROR: {e}")
