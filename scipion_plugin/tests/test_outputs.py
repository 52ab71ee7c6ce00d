"""Reading a finished run for Scipion (tessera_bridge.outputs), without Scipion.

Runs of the built tessera_simulate (40 particles of the phantom, box 32) and tessera_reconstruct
(from the simulated sqlite) give real run folders. Oracles: the programs' own STAR files (poses as
RELION angles, converted here with RELION's ZYZ Euler convention, docs in DESIGN.md), the FSC STAR
beside the JSON, the MRC data bytes, and the Scipion fixture written by pwem (ground_truth.json).
"""
import json
import math
import os
import shutil
import tempfile
import unittest

import tessera_build as build
from tessera_bridge import outputs as O
from tessera_bridge import schema as S

POSE_TOL = 1e-9  # the STAR holds the poses to full double precision; two conversions round differently
STAR_ROUNDING = 5.000001e-7  # half the last of 6 decimals


def read_star_loop(path, block):
    """{label: [values]} of one loop block of a STAR file (plain text parsing)."""
    with open(path) as f:
        lines = [ln.strip() for ln in f]
    start = lines.index('data_' + block)
    labels, rows, i = [], [], start + 1
    while i < len(lines) and not lines[i].startswith('_'):
        i += 1
    while i < len(lines) and lines[i].startswith('_'):
        labels.append(lines[i].split()[0][1:])
        i += 1
    while i < len(lines) and lines[i] and not lines[i].startswith('data_'):
        rows.append(lines[i].split())
        i += 1
    return {label: [r[k] for r in rows] for k, label in enumerate(labels)}


def relion_euler(rot, tilt, psi):
    """RELION's Euler_angles2matrix (ZYZ, degrees), rows."""
    a, b, g = (math.radians(x) for x in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(g), math.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return [[cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb]]


def scipion_matrix(rot, tilt, psi, x_A, y_A, pixel_A):
    """DESIGN.md: M = [[A^T, A^T s], [0 0 0 1]], s = origin / pixel size."""
    a = relion_euler(rot, tilt, psi)
    at = [[a[j][i] for j in range(3)] for i in range(3)]
    s = (x_A / pixel_A, y_A / pixel_A, 0.0)
    return [at[i] + [sum(at[i][k] * s[k] for k in range(3))] for i in range(3)] + [[0.0, 0.0, 0.0, 1.0]]


class TestRunFolders(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix='tessera_outputs_')
        cls.sim, cls.rec = os.path.join(cls.work, 'sim'), os.path.join(cls.work, 'rec')
        code, err = build.run('tessera_simulate', '--out', cls.sim, '--count', '40', '--phantom-box-px', '32',
                              '--pixel-A', '4', '--origin-sigma-A', '6', '--seed', '3')
        assert code == 0, err
        code, err = build.run('tessera_reconstruct', '--out', cls.rec, '--particles',
                              os.path.join(cls.sim, 'particles.sqlite'))
        assert code == 0, err
        cls.schemas = {s['program']: s for s in S.load_schemas(build.require_schemas())}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def test_manifest_and_plan(self):
        manifest = O.read_manifest(self.rec)
        self.assertEqual((manifest.program, manifest.status), ('tessera_reconstruct', 'done'))
        plan = O.plan_outputs(self.schemas['tessera_reconstruct'], manifest)
        got = [(p.attribute, p.scipion_class, os.path.basename(p.path)) for p in plan]
        self.assertEqual(got, [('outputVolume', 'Volume', 'map.mrc'), ('outputFSC', 'FSC', 'fsc.json'),
                               ('outputFSCs', 'SetOfFSCs', 'fsc.json')])
        self.assertEqual([os.path.basename(h) for h in plan[0].half_maps], ['map_half_A.mrc', 'map_half_B.mrc'])
        for path in [plan[0].path] + plan[0].half_maps:
            self.assertTrue(os.path.isfile(path))

    def test_simulate_plan_without_half_maps(self):
        plan = O.plan_outputs(self.schemas['tessera_simulate'], O.read_manifest(self.sim))
        self.assertEqual([(p.attribute, p.scipion_class) for p in plan], [
            ('outputParticles', 'SetOfParticles'), ('outputTruth', 'Volume'), ('outputTruthMask', 'VolumeMask')])
        self.assertEqual(plan[1].half_maps, [])

    def test_failed_run_is_reported(self):
        manifest = O.read_manifest(self.rec)
        manifest.status, manifest.error = 'failed', 'particles.sqlite: no pose'
        with self.assertRaisesRegex(O.OutputError, 'tessera_reconstruct did not finish: status failed, '
                                                   'particles.sqlite: no pose'):
            O.plan_outputs(self.schemas['tessera_reconstruct'], manifest)

    def test_fsc_matches_its_star(self):
        fsc = O.read_fsc(os.path.join(self.rec, 'fsc.json'))
        star = read_star_loop(os.path.join(self.rec, 'fsc.star'), 'fsc')
        self.assertEqual(fsc.main, 'gold_standard')
        self.assertEqual(len(fsc.frequencies), 17)  # shells 0..16 of a 32 box
        for k, (f, v) in enumerate(zip(fsc.frequencies, fsc.curves['gold_standard'])):
            self.assertAlmostEqual(f, float(star['rlnResolution'][k]), delta=STAR_ROUNDING)
            self.assertAlmostEqual(v, float(star['rlnFourierShellCorrelation'][k]), delta=STAR_ROUNDING)
        self.assertAlmostEqual(fsc.frequencies[-1], 1 / 8.0)  # Nyquist at 4 Å/px

    def test_particle_rows_match_the_star(self):
        table = O.read_particle_rows(os.path.join(self.sim, 'particles.sqlite'))
        star = read_star_loop(os.path.join(self.sim, 'particles.star'), 'particles')
        self.assertEqual((table.alignment, table.sampling_rate, len(table.rows)), ('Projection', 4.0, 40))
        worst = 0.0
        for k, row in enumerate(table.rows):
            index, stack = star['rlnImageName'][k].split('@')
            self.assertEqual((row.id, row.index), (k + 1, int(index)))
            self.assertEqual(row.filename, os.path.normpath(os.path.join(self.sim, stack)))
            expected = scipion_matrix(*(float(star[c][k]) for c in ('rlnAngleRot', 'rlnAngleTilt', 'rlnAnglePsi',
                                                                     'rlnOriginXAngst', 'rlnOriginYAngst')), 4.0)
            worst = max(worst, max(abs(row.matrix[i][j] - expected[i][j]) for i in range(4) for j in range(4)))
        self.assertLess(worst, POSE_TOL)
        self.assertTrue(any(abs(r.matrix[0][3]) > 0.1 for r in table.rows))  # the shifts are tested too

    def test_volume_header(self):
        path = os.path.join(self.rec, 'map.mrc')
        self.assertAlmostEqual(O.mrc_voxel_size(path), 4.0, places=5)
        fixed = os.path.join(self.work, 'fixed.mrc')
        O.write_mrc_with_voxel_size(path, fixed, 1.25)
        self.assertAlmostEqual(O.mrc_voxel_size(fixed), 1.25, places=5)
        with open(path, 'rb') as a, open(fixed, 'rb') as b:
            da, db = a.read(), b.read()
        self.assertEqual(len(da), len(db))
        self.assertEqual(da[1024:], db[1024:])  # the data and extended header untouched
        self.assertEqual([i for i in range(1024) if da[i] != db[i]], [i for i in range(40, 52) if da[i] != db[i]])

    def test_describe_extra(self):
        self.assertEqual(O.describe_extra({'resolution_A': 6.0, 'bfactor_A2': -114.25, 'count': 1000}),
                         'resolution 6 Å, bfactor -114.2 Å², count 1000')


class TestScipionFixture(unittest.TestCase):
    """A SetOfParticles written by pwem itself (../shared/data/scipion)."""

    def test_pwem_subset(self):
        root = os.path.join(build.SHARED_DATA, 'scipion')
        sqlite = os.path.join(root, 'Runs', '000098_ProtSubSet', 'particles.sqlite')
        if not os.path.exists(sqlite):
            self.skipTest('no Scipion fixture at %s' % root)
        table = O.read_particle_rows(sqlite)
        self.assertEqual((table.alignment, len(table.rows)), ('Projection', 100))
        self.assertEqual(table.rows[0].filename, os.path.normpath(os.path.join(
            root, 'Runs/000002_ProtImportParticles/extra/Particles/particles.mrcs')))
        self.assertEqual(table.extra_classes['_rlnRandomSubset'], 'Integer')
        with open(os.path.join(root, 'ground_truth.json')) as f:
            truth = {p['id']: p for p in json.load(f)['particles']}
        rows = {r.id: r for r in table.rows}
        for pid in (1, 2, 3, 100):
            self.assertEqual(rows[pid].matrix, json.loads(truth[pid]['sqlite_raw']['_transform._matrix']))
            self.assertEqual(rows[pid].extras['_rlnRandomSubset'], truth[pid]['sqlite_raw']['_rlnRandomSubset'])


if __name__ == '__main__':
    unittest.main(verbosity=2)
