#!/usr/bin/env python3
"""An independent computation of tessera_consensus_poses' figures, with numpy and scipy.

Reads two RELION STAR files with its own small parser, matches the particles by image
index and stack file name (".mrcs" read as ".mrc"), and computes per particle, without
symmetry (C1):
  - the angle of the rotation between the two poses, with scipy's Rotation:
    RELION's matrix A for (rot, tilt, psi) maps map coordinates to image coordinates and
    is the transpose of the active intrinsic ZYZ rotation Rz(rot) Ry(tilt) Rz(psi)
    (RELION src/euler.cpp, Euler_angles2matrix: rot about Z, then tilt about the new Y,
    then psi about the new Z). The script checks this against the product of the three
    elementary coordinate rotations written out here;
  - the angle between the view directions A^T (0, 0, 1);
  - the distance between the origins (rlnOriginX/YAngst).
Medians and percentiles are numpy.percentile's (linear interpolation).

  consensus_poses_check.py A.star B.star              print the figures as JSON
  consensus_poses_check.py A.star B.star --check OUT  compare with a run's OUT folder
      (pose_consensus.star and pose_consensus.json), exit 1 on a difference
  --program BIN --check OUT runs BIN (tessera_consensus_poses) into OUT first.
Exit 77 (skipped) when numpy or scipy is missing and --python gives no interpreter that has them.

tests/programs/test_consensus_poses.cpp holds the numbers this script printed for
relion_7DDO (Refine3D/run_data.star against Particles/particles.star).
"""
import json
import math
import os
import subprocess
import sys


def reexec_or_skip(argv):
    """Runs this script again under --python's interpreter when this one lacks numpy/scipy."""
    if "--python" in argv:
        python = argv[argv.index("--python") + 1]
        if os.path.exists(python) and os.path.abspath(python) != os.path.abspath(sys.executable):
            os.execv(python, [python] + argv)
    print("numpy and scipy are needed; skipped", file=sys.stderr)
    sys.exit(77)


try:
    import numpy as np
    from scipy.spatial.transform import Rotation
except ImportError:
    reexec_or_skip(sys.argv)


def read_particles(path):
    """The data_particles loop of a RELION 3.1 STAR file: list of dicts label -> text."""
    with open(path) as f:
        lines = [l.strip() for l in f]
    i = lines.index("data_particles")
    while not lines[i].startswith("loop_"):
        i += 1
    i += 1
    labels = []
    while lines[i].startswith("_"):
        labels.append(lines[i].split()[0][1:])
        i += 1
    rows = []
    for line in lines[i:]:
        if not line or line.startswith("#"):
            continue
        if line.startswith("data_"):
            break
        rows.append(dict(zip(labels, line.split())))
    return rows


def key(image_name):
    index, stack = image_name.split("@", 1)
    name = os.path.basename(stack)
    if name.endswith(".mrcs"):
        name = name[:-1]
    return int(index), name


def elementary_matrix(rot, tilt, psi):
    """RELION's A from three coordinate rotations: about z by rot, the new y by tilt, the new z by psi."""
    def rz(t):
        c, s = math.cos(math.radians(t)), math.sin(math.radians(t))
        return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])

    def ry(t):
        c, s = math.cos(math.radians(t)), math.sin(math.radians(t))
        return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])

    return rz(psi) @ ry(tilt) @ rz(rot)


def figures(file_a, file_b, max_angle=5.0, max_shift=3.0):
    a_rows, b_rows = read_particles(file_a), read_particles(file_b)
    b_by_key = {key(r["rlnImageName"]): r for r in b_rows}
    pairs = [(ra, b_by_key[key(ra["rlnImageName"])]) for ra in a_rows if key(ra["rlnImageName"]) in b_by_key]

    def angles(r):
        return [float(r["rlnAngleRot"]), float(r["rlnAngleTilt"]), float(r["rlnAnglePsi"])]

    rot_a = Rotation.from_euler("ZYZ", [angles(a) for a, _ in pairs], degrees=True)
    rot_b = Rotation.from_euler("ZYZ", [angles(b) for _, b in pairs], degrees=True)
    mat_a = np.transpose(rot_a.as_matrix(), (0, 2, 1))  # RELION's A
    mat_b = np.transpose(rot_b.as_matrix(), (0, 2, 1))
    for k in range(0, len(pairs), 97):
        assert np.abs(mat_a[k] - elementary_matrix(*angles(pairs[k][0]))).max() < 1e-12

    angle = np.degrees((rot_a.inv() * rot_b).magnitude())
    view_a, view_b = mat_a[:, 2, :], mat_b[:, 2, :]
    view = np.degrees(np.arctan2(np.linalg.norm(np.cross(view_a, view_b), axis=1), np.sum(view_a * view_b, axis=1)))
    shift = np.array([math.hypot(float(a["rlnOriginXAngst"]) - float(b["rlnOriginXAngst"]),
                                 float(a["rlnOriginYAngst"]) - float(b["rlnOriginYAngst"])) for a, b in pairs])
    agree = (angle <= max_angle) & (shift <= max_shift)
    return {
        "compared": len(pairs),
        "agreeing": int(agree.sum()),
        "median_angle_deg": float(np.percentile(angle, 50)),
        "p90_angle_deg": float(np.percentile(angle, 90)),
        "median_view_deg": float(np.percentile(view, 50)),
        "p90_view_deg": float(np.percentile(view, 90)),
        "median_shift_A": float(np.percentile(shift, 50)),
        "p90_shift_A": float(np.percentile(shift, 90)),
        "particles": {a["rlnImageName"]: {"angle_deg": float(angle[k]), "view_deg": float(view[k]),
                                          "shift_A": float(shift[k]), "agree": bool(agree[k])}
                      for k, (a, _) in enumerate(pairs)},
    }


def check(expected, out_dir):
    """Compares with a run's pose_consensus.star and .json; returns the differences found."""
    problems = []
    table = read_table(os.path.join(out_dir, "pose_consensus.star"))
    if len(table) != expected["compared"]:
        problems.append(f"{len(table)} rows, expected {expected['compared']}")
    for row in table:
        want = expected["particles"][row["rlnImageName"]]
        for label, name in [("tesseraAngularDistanceDeg", "angle_deg"), ("tesseraViewDistanceDeg", "view_deg"),
                            ("tesseraShiftDistanceAngst", "shift_A")]:
            if abs(float(row[label]) - want[name]) > 1e-9:
                problems.append(f"{row['rlnImageName']} {label} {row[label]} != {want[name]}")
        if (row["tesseraPoseAgree"] == "1") != want["agree"]:
            problems.append(f"{row['rlnImageName']} agree {row['tesseraPoseAgree']} != {want['agree']}")
    with open(os.path.join(out_dir, "pose_consensus.json")) as f:
        summary = json.load(f)
    for name, value in expected.items():
        if name == "particles":
            continue
        if abs(summary[name] - value) > 1e-9:
            problems.append(f"{name} {summary[name]} != {value}")
    return problems


def read_table(path):
    """The data_pose_consensus loop the program writes."""
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    i = lines.index("data_pose_consensus") + 2  # the block name, loop_
    labels = []
    while lines[i].startswith("_"):
        labels.append(lines[i].split()[0][1:])
        i += 1
    return [dict(zip(labels, line.split())) for line in lines[i:]]


def main(argv):
    args = [a for a in argv[1:]]
    options = {}
    for name in ("--check", "--program", "--python"):
        if name in args:
            k = args.index(name)
            options[name] = args[k + 1]
            del args[k:k + 2]
    file_a, file_b = args
    for f in (file_a, file_b):
        if not os.path.exists(f):
            print(f"{f}: not found; skipped", file=sys.stderr)
            return 77
    expected = figures(file_a, file_b)
    if "--check" not in options:
        summary = {k: v for k, v in expected.items() if k != "particles"}
        named = sorted(expected["particles"])[:3] + sorted(expected["particles"])[-1:]
        summary["particles"] = {n: expected["particles"][n] for n in named}
        print(json.dumps(summary, indent=1))
        return 0
    out = options["--check"]
    if "--program" in options:
        run = subprocess.run([options["--program"], "--out", out, "--overwrite", "--particles", file_a,
                              "--particles-B", file_b, "--quiet"], capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            return 1
    problems = check(expected, out)
    for p in problems[:20]:
        print(p, file=sys.stderr)
    print(f"{expected['compared']} particles: {'differences found' if problems else 'the same figures'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
