"""Tessera's cryoSPARC .cs files against the real cryosparc-tools (run by run_tests.sh).

1. A .cs Tessera writes from a simulated STAR loads with cryosparc.dataset.Dataset.load; every
   field has cryoSPARC's dtype and the STAR's value.
2. A .cs cryosparc-tools saves (a Dataset with the fields of cryoSPARC's particle files) is read by
   Tessera with the same values, and written back unchanged.
3. The conventions, physically: Tessera simulates noise-free particles without CTF (RELION's image
   model, checked against relion_project), converts the STAR to .cs, and projections of the map
   computed here with numpy from the .cs alone (pose -> A = R(pose)^T, shift in pixels with
   RELION's origin sign, blob/idx 0-based) reproduce the images; the other readings do not.

Environment: TESSERA_BUILD_DIR (the build with tests/tessera_test_cs_convert and
protocols/tessera_simulate).
"""

import os
import shlex
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
from cryosparc.dataset import Dataset

BUILD = os.environ["TESSERA_BUILD_DIR"]
CONVERT = os.path.join(BUILD, "tests", "tessera_test_cs_convert")
SIMULATE = os.path.join(BUILD, "protocols", "tessera_simulate")


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")


def read_star(path):
    """{block name: list of {label: text}} for the loops of a STAR file."""
    blocks, name, labels, rows, in_loop = {}, None, [], None, False
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s.startswith("data_"):
                name, labels, in_loop = s[5:], [], False
                rows = blocks.setdefault(name, [])
            elif s == "loop_":
                in_loop = True
            elif s.startswith("_") and in_loop:
                labels.append(s.split()[0][1:])
            elif in_loop:
                rows.append(dict(zip(labels, shlex.split(s))))
    return blocks


def write_star(path, blocks):
    with open(path, "w") as f:
        for name, rows in blocks.items():
            labels = list(rows[0])
            f.write(f"\ndata_{name}\n\nloop_\n" + "".join(f"_{label}\n" for label in labels))
            for row in rows:
                f.write(" ".join(row[label] for label in labels) + "\n")


def relion_matrix(rot, tilt, psi):
    """RELION's Euler_angles2matrix (degrees): the matrix A of geometry.hpp."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array([[cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
                     [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
                     [sc, ss, cb]])


def expmap(v):
    """The right-handed rotation by |v| radians about v / |v| (Rodrigues' formula)."""
    v = np.asarray(v, dtype=np.float64)
    t = np.linalg.norm(v)
    if t == 0:
        return np.eye(3)
    n = v / t
    k = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def read_mrc(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype="<i4")
        nx, ny, nz, mode, extended = header[0], header[1], header[2], header[3], header[23]
        assert mode == 2, f"{path}: MRC mode {mode}"
        f.seek(1024 + extended)
        return np.frombuffer(f.read(4 * nx * ny * nz), dtype="<f4").reshape(nz, ny, nx).astype(np.float64)


def project(vol, rotation, origin_px):
    """sum_z V(rotation @ (x + ox, y + oy, z)), trilinear, centre at N // 2: RELION's image at pose
    A = rotation^T and origin (ox, oy) pixels (the content sits at -origin)."""
    n = vol.shape[0]
    c = n // 2
    r = np.arange(n) - c
    zz, yy, xx = np.meshgrid(r, r, r, indexing="ij")
    pts = np.stack([xx + origin_px[0], yy + origin_px[1], zz]).reshape(3, -1)
    q = rotation @ pts + c
    i0 = np.floor(q).astype(int)
    f = q - i0
    out = np.zeros(q.shape[1])
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                ix, iy, iz = i0[0] + dx, i0[1] + dy, i0[2] + dz
                w = (f[0] if dx else 1 - f[0]) * (f[1] if dy else 1 - f[1]) * (f[2] if dz else 1 - f[2])
                ok = (ix >= 0) & (ix < n) & (iy >= 0) & (iy < n) & (iz >= 0) & (iz < n)
                out[ok] += w[ok] * vol[iz[ok], iy[ok], ix[ok]]
    return out.reshape(n, n, n).sum(axis=0)


def correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def f32(text):
    return np.float32(float(text))


# The fields and dtypes of Tessera's .cs for a set with poses, half sets, classes and micrographs:
# those of cryoSPARC's own particle files (cryosparc-tools' T20S fixture, a refinement's output).
WRITTEN = {
    "uid": ("<u8", ()), "blob/path": ("|S", ()), "blob/idx": ("<u4", ()), "blob/shape": ("<u4", (2,)),
    "blob/psize_A": ("<f4", ()), "blob/sign": ("<f4", ()), "blob/import_sig": ("<u8", ()), "ctf/type": ("|S", ()),
    "ctf/exp_group_id": ("<u4", ()), "ctf/accel_kv": ("<f4", ()), "ctf/cs_mm": ("<f4", ()),
    "ctf/amp_contrast": ("<f4", ()), "ctf/df1_A": ("<f4", ()), "ctf/df2_A": ("<f4", ()),
    "ctf/df_angle_rad": ("<f4", ()), "ctf/phase_shift_rad": ("<f4", ()), "ctf/scale": ("<f4", ()),
    "ctf/scale_const": ("<f4", ()), "ctf/shift_A": ("<f4", (2,)), "ctf/tilt_A": ("<f4", (2,)),
    "ctf/trefoil_A": ("<f4", (2,)), "ctf/tetra_A": ("<f4", (4,)), "ctf/anisomag": ("<f4", (4,)),
    "ctf/bfactor": ("<f4", ()), "alignments3D/split": ("<u4", ()), "alignments3D/shift": ("<f4", (2,)),
    "alignments3D/pose": ("<f4", (3,)), "alignments3D/psize_A": ("<f4", ()), "alignments3D/class": ("<u4", ()),
    "location/micrograph_path": ("|S", ()),
}


class CryosparcToolsInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tessera-cs-")
        cls.sim = os.path.join(cls.tmp, "sim")
        run(SIMULATE, "--out", cls.sim, "--count", 30, "--astigmatism-max-A", 600, "--particles-per-micrograph", 5,
            "--origin-sigma-A", 6, "--scale-sigma", 0.1, "--seed", 3, "--quiet")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_dtype(self, raw, name, expected):
        dt = raw.dtype.fields[name][0]
        self.assertTrue(dt.base.str.startswith(expected[0]), f"{name}: {dt.base.str}, expected {expected[0]}")
        self.assertEqual(dt.shape, expected[1], name)

    def test_tessera_cs_loads_in_cryosparc_tools(self):
        star = read_star(os.path.join(self.sim, "particles.star"))
        for i, row in enumerate(star["particles"]):
            row["rlnClassNumber"] = str(1 + i % 3)
        star_path, cs_path = os.path.join(self.sim, "classes.star"), os.path.join(self.tmp, "tessera.cs")
        write_star(star_path, star)
        run(CONVERT, star_path, cs_path, self.sim)
        raw = np.load(cs_path, allow_pickle=False)
        self.assertEqual(set(raw.dtype.names), set(WRITTEN))
        for name, expected in WRITTEN.items():
            self.assert_dtype(raw, name, expected)
        dset = Dataset.load(cs_path)
        self.assertEqual(len(dset), 30)
        optics = star["optics"][0]
        self.assertEqual(len(set(dset["uid"].tolist())), 30)
        for i, p in enumerate(star["particles"]):
            index, path = p["rlnImageName"].split("@")
            self.assertEqual(dset["blob/path"][i], path)
            self.assertEqual(dset["blob/idx"][i], int(index) - 1)
            self.assertEqual(dset["blob/shape"][i].tolist(), [int(optics["rlnImageSize"])] * 2)
            psize = float(optics["rlnImagePixelSize"])
            self.assertEqual(dset["blob/psize_A"][i], f32(psize))
            self.assertEqual(dset["alignments3D/psize_A"][i], f32(psize))
            self.assertEqual(dset["ctf/accel_kv"][i], f32(optics["rlnVoltage"]))
            self.assertEqual(dset["ctf/cs_mm"][i], f32(optics["rlnSphericalAberration"]))
            self.assertEqual(dset["ctf/amp_contrast"][i], f32(optics["rlnAmplitudeContrast"]))
            self.assertEqual(dset["ctf/exp_group_id"][i], int(p["rlnOpticsGroup"]) - 1)
            self.assertEqual(dset["ctf/df1_A"][i], f32(p["rlnDefocusU"]))
            self.assertEqual(dset["ctf/df2_A"][i], f32(p["rlnDefocusV"]))
            self.assertAlmostEqual(float(dset["ctf/df_angle_rad"][i]), np.deg2rad(float(p["rlnDefocusAngle"])), 6)
            self.assertAlmostEqual(float(dset["ctf/phase_shift_rad"][i]), np.deg2rad(float(p["rlnPhaseShift"])), 6)
            self.assertEqual(dset["ctf/scale"][i], f32(p["rlnCtfScalefactor"]))
            self.assertEqual(dset["ctf/bfactor"][i], f32(p["rlnCtfBfactor"]))
            self.assertEqual(dset["alignments3D/split"][i], int(p["rlnRandomSubset"]) - 1)
            self.assertEqual(dset["alignments3D/class"][i], int(p["rlnClassNumber"]) - 1)
            self.assertEqual(dset["location/micrograph_path"][i], p["rlnMicrographName"])
            for axis, label in enumerate(["rlnOriginXAngst", "rlnOriginYAngst"]):
                self.assertAlmostEqual(float(dset["alignments3D/shift"][i][axis]), float(p[label]) / psize, 5)
            a = relion_matrix(float(p["rlnAngleRot"]), float(p["rlnAngleTilt"]), float(p["rlnAnglePsi"]))
            np.testing.assert_allclose(expmap(dset["alignments3D/pose"][i]).T, a, atol=2e-6)
            self.assertEqual(dset["blob/sign"][i], 1.0)
            self.assertEqual(dset["ctf/type"][i], "imported")

    def test_cryosparc_tools_cs_read_by_tessera(self):
        n, rng = 25, np.random.default_rng(1)
        fields = [("uid", "<u8"), ("blob/path", "O"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)),
                  ("blob/psize_A", "<f4"), ("blob/sign", "<f4"), ("blob/import_sig", "<u8"), ("ctf/type", "O"),
                  ("ctf/exp_group_id", "<u4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"),
                  ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"),
                  ("ctf/df_angle_rad", "<f4"), ("ctf/phase_shift_rad", "<f4"), ("ctf/scale", "<f4"),
                  ("ctf/scale_const", "<f4"), ("ctf/shift_A", "<f4", (2,)), ("ctf/tilt_A", "<f4", (2,)),
                  ("ctf/trefoil_A", "<f4", (2,)), ("ctf/tetra_A", "<f4", (4,)), ("ctf/anisomag", "<f4", (4,)),
                  ("ctf/bfactor", "<f4"), ("alignments3D/split", "<u4"), ("alignments3D/shift", "<f4", (2,)),
                  ("alignments3D/pose", "<f4", (3,)), ("alignments3D/psize_A", "<f4"),
                  ("alignments3D/error", "<f4"), ("alignments3D/class", "<u4"), ("location/micrograph_uid", "<u8"),
                  ("location/micrograph_path", "O"), ("location/center_x_frac", "<f4"),
                  ("location/micrograph_shape", "<u4", (2,))]
        d = Dataset.allocate(n, fields)
        d["uid"] = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
        d["blob/path"] = [f"J7/extract/{i % 3:03d}_particles.mrc" for i in range(n)]
        d["blob/idx"] = np.arange(n) * 2
        d["blob/shape"] = np.full((n, 2), 128)
        d["blob/psize_A"] = 1.1
        d["blob/sign"] = -1
        d["blob/import_sig"] = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
        d["ctf/type"] = ["spline"] * n
        d["ctf/exp_group_id"] = np.arange(n) % 2
        d["ctf/accel_kv"], d["ctf/cs_mm"], d["ctf/amp_contrast"] = 300, 2.7, 0.1
        d["ctf/df1_A"] = rng.uniform(10000, 30000, n)
        d["ctf/df2_A"] = d["ctf/df1_A"] - rng.uniform(0, 500, n)
        d["ctf/df_angle_rad"] = rng.uniform(0, 2 * np.pi, n)
        d["ctf/phase_shift_rad"] = rng.uniform(0, 1, n)
        d["ctf/scale"] = rng.uniform(0.8, 1.2, n)
        d["ctf/tilt_A"] = rng.normal(0, 1, (n, 2))
        d["ctf/bfactor"] = rng.uniform(-50, 0, n)
        d["alignments3D/split"] = np.arange(n) % 2
        d["alignments3D/shift"] = rng.normal(0, 3, (n, 2))
        axes = rng.normal(0, 1, (n, 3))
        d["alignments3D/pose"] = axes / np.linalg.norm(axes, axis=1)[:, None] * rng.uniform(0, np.pi, n)[:, None]
        d["alignments3D/psize_A"] = 1.1
        d["alignments3D/error"] = rng.uniform(0, 1, n)
        d["alignments3D/class"] = np.arange(n) % 4
        d["location/micrograph_uid"] = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
        d["location/micrograph_path"] = [f"J3/motioncorrected/{i % 3:03d}.mrc" for i in range(n)]
        d["location/center_x_frac"] = rng.uniform(0, 1, n)
        d["location/micrograph_shape"] = np.full((n, 2), 4096)
        cs_path, star_path = os.path.join(self.tmp, "tools.cs"), os.path.join(self.tmp, "tools.star")
        d.save(cs_path)
        run(CONVERT, cs_path, star_path, self.tmp)
        star = read_star(star_path)
        self.assertEqual([g["rlnOpticsGroup"] for g in star["optics"]], ["1", "2"])
        for g in star["optics"]:
            self.assertEqual(f32(g["rlnImagePixelSize"]), np.float32(1.1))
            self.assertEqual(g["rlnImageSize"], "128")
            self.assertEqual(f32(g["rlnAmplitudeContrast"]), np.float32(0.1))
        for i, p in enumerate(star["particles"]):
            self.assertEqual(p["rlnImageName"], f"{d['blob/idx'][i] + 1:06d}@{d['blob/path'][i]}")
            self.assertEqual(p["rlnOpticsGroup"], str(d["ctf/exp_group_id"][i] + 1))
            self.assertEqual(p["csUid"], str(d["uid"][i]))
            for label, name in [("rlnDefocusU", "ctf/df1_A"), ("rlnDefocusV", "ctf/df2_A"),
                                ("rlnCtfScalefactor", "ctf/scale"), ("rlnCtfBfactor", "ctf/bfactor")]:
                self.assertEqual(f32(p[label]), d[name][i], label)
            self.assertAlmostEqual(np.deg2rad(float(p["rlnDefocusAngle"])), float(d["ctf/df_angle_rad"][i]), 6)
            self.assertAlmostEqual(np.deg2rad(float(p["rlnPhaseShift"])), float(d["ctf/phase_shift_rad"][i]), 6)
            self.assertEqual(p["rlnRandomSubset"], str(d["alignments3D/split"][i] + 1))
            self.assertEqual(p["rlnClassNumber"], str(d["alignments3D/class"][i] + 1))
            self.assertEqual(p["rlnMicrographName"], d["location/micrograph_path"][i])
            a = relion_matrix(float(p["rlnAngleRot"]), float(p["rlnAngleTilt"]), float(p["rlnAnglePsi"]))
            np.testing.assert_allclose(a, expmap(d["alignments3D/pose"][i]).T, atol=2e-6)
            for axis, label in enumerate(["rlnOriginXAngst", "rlnOriginYAngst"]):
                self.assertAlmostEqual(float(p[label]), float(d["alignments3D/shift"][i][axis]) * 1.1, 5)
            self.assertEqual(p["cs_blob__sign"], "-1.0")
            self.assertEqual(p["cs_location__micrograph_uid"], str(d["location/micrograph_uid"][i]))
            self.assertEqual(f32(p["cs_alignments3D__error"]), d["alignments3D/error"][i])
            self.assertEqual(p["cs_location__micrograph_shape"], "4096,4096")
            self.assertEqual([f32(t) for t in p["cs_ctf__tilt_A"].split(",")], list(d["ctf/tilt_A"][i]))
        # And back to .cs: every field of the original, with its dtype and values.
        back_path = os.path.join(self.tmp, "back.cs")
        run(CONVERT, star_path, back_path, self.tmp)
        original, back = np.load(cs_path), np.load(back_path)
        self.assertEqual(set(back.dtype.names), set(original.dtype.names))
        for name in original.dtype.names:
            self.assertEqual(back.dtype.fields[name][0].base.kind, original.dtype.fields[name][0].base.kind, name)
            if original.dtype.fields[name][0].base.kind != "S":
                self.assertEqual(back.dtype.fields[name][0], original.dtype.fields[name][0], name)
            np.testing.assert_array_equal(back[name], original[name], err_msg=name)
        reloaded = Dataset.load(back_path)  # the fields in Tessera's order: mapped ones first, then the rest
        self.assertEqual(set(reloaded.fields()), set(d.fields()))
        for name in d.fields():
            np.testing.assert_array_equal(reloaded[name], d[name], err_msg=name)

    def test_projections_at_cs_poses_reproduce_simulated_images(self):
        sim = os.path.join(self.tmp, "clean")
        run(SIMULATE, "--out", sim, "--count", 16, "--ctf", "false", "--noise", "false", "--origin-sigma-A", 9,
            "--seed", 5, "--quiet")
        cs_path = os.path.join(self.tmp, "clean.cs")
        run(CONVERT, os.path.join(sim, "particles.star"), cs_path, sim)
        d = Dataset.load(cs_path)
        vol = read_mrc(os.path.join(sim, "truth.mrc"))
        stacks = {}
        scores = {"cryoSPARC conventions": [], "R(pose) not its transpose": [], "shift sign flipped": [],
                  "blob/idx 1-based": []}
        for i in range(len(d)):
            path = os.path.join(sim, d["blob/path"][i])
            stack = stacks.setdefault(path, read_mrc(path))
            idx = int(d["blob/idx"][i])
            r = expmap(d["alignments3D/pose"][i])
            shift = np.asarray(d["alignments3D/shift"][i], dtype=np.float64)
            image = stack[idx]
            scores["cryoSPARC conventions"].append(correlation(project(vol, r, shift), image))
            scores["R(pose) not its transpose"].append(correlation(project(vol, r.T, shift), image))
            scores["shift sign flipped"].append(correlation(project(vol, r, -shift), image))
            other = stack[(idx + 1) % len(stack)]
            scores["blob/idx 1-based"].append(correlation(project(vol, r, shift), other))
        means = {k: float(np.mean(v)) for k, v in scores.items()}
        print("\n  mean correlation of numpy projections with Tessera's images:",
              ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
        self.assertGreater(min(scores["cryoSPARC conventions"]), 0.98, means)
        for wrong in list(scores)[1:]:
            self.assertLess(means[wrong], means["cryoSPARC conventions"] - 0.1, (wrong, means))


if __name__ == "__main__":
    unittest.main()
