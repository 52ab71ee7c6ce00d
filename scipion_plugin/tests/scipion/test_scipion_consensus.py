"""Tessera's consensus protocols in a real, headless Scipion project, on RELION-imported particles.

Classes: two RELION 3D classifications of the 7DDO particles, written by this test as RELION writes
a classification run (run_it025_data.star with rlnClassNumber + run_it025_model.star) and imported
with Scipion's RELION importer, which makes them SetOfClasses3D. Their classes follow a known rule
(top or bottom views) with known errors, numbered differently; the intersections the protocol
reports are checked against the test's own count.
Poses: RELION's refinement of the particles (Refine3D/run_data.star) against the true poses
(Particles/particles.star), both imported; the protocol's angular errors are checked against an
independent numpy computation from the STAR files (RELION's ZYZ Euler angles).
CTFs: the particles against a copy whose defoci the test changed by known amounts.
"""
import json
import os
import random
import subprocess
import unittest

import numpy as np

import scipion_session as session  # first: sets up Scipion's configuration

from pwem.protocols import ProtImportParticles  # noqa: E402

from tessera.protocols import (TesseraProtConsensusClasses, TesseraProtConsensusCtf,  # noqa: E402
                               TesseraProtConsensusPoses)

D = session.RELION_7DDO


def read_star_loop(path, block):
    """{label: [values]} of a loop block of a STAR file (plain text, independent of any reader)."""
    labels, rows, inside = [], [], False
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s.startswith('data_'):
                inside = s == 'data_' + block
                labels, rows = ([], []) if inside else (labels, rows)
                continue
            if not inside or not s or s.startswith('#') or s == 'loop_':
                continue
            if s.startswith('_'):
                labels.append(s.split()[0][1:])
            else:
                rows.append(s.split())
            if rows and not inside:
                break
    return {label: [r[i] for r in rows] for i, label in enumerate(labels)}


def write_classification(folder, classes):
    """A RELION 3D classification run as Scipion's importer reads it: run_it025_data.star (the 7DDO
    particles with rlnClassNumber) and run_it025_model.star (one reference map per class)."""
    os.makedirs(folder, exist_ok=True)
    link = os.path.join(folder, 'Particles')
    if not os.path.exists(link):
        os.symlink(os.path.join(D, 'Particles'), link)
    with open(os.path.join(D, 'Particles', 'particles.star')) as f:
        text = f.read()
    head, particles = text.split('data_particles', 1)
    lines = particles.splitlines()
    labels = [i for i, s in enumerate(lines) if s.startswith('_rln')]
    out = lines[:labels[-1] + 1] + ['_rlnClassNumber #%d' % (len(labels) + 1)]
    rows = [s for s in lines[labels[-1] + 1:] if s.strip()]
    assert len(rows) == len(classes)
    out += ['%s %d' % (row, c) for row, c in zip(rows, classes)]
    with open(os.path.join(folder, 'run_it025_data.star'), 'w') as f:
        f.write(head + 'data_particles' + '\n'.join(out) + '\n')
    n = max(classes)
    with open(os.path.join(folder, 'run_it025_model.star'), 'w') as f:
        f.write('data_model_general\n\n_rlnReferenceDimensionality 3\n_rlnNrClasses %d\n'
                '_rlnTau2FudgeFactor 4.0\n_rlnPixelSize 3.0\n\n' % n)
        f.write('data_model_classes\n\nloop_\n_rlnReferenceImage #1\n_rlnClassDistribution #2\n'
                '_rlnAccuracyRotations #3\n_rlnAccuracyTranslationsAngst #4\n')
        for k in range(1, n + 1):
            f.write('run_it025_class%03d.mrc %.4f 2.0 1.0\n' % (k, classes.count(k) / len(classes)))
    for k in range(1, n + 1):
        target = os.path.join(folder, 'run_it025_class%03d.mrc' % k)
        if not os.path.exists(target):
            os.symlink(os.path.join(D, 'ground_truth', 'gt_full_x2.mrc'), target)
    return os.path.join(folder, 'run_it025_data.star')


def write_defocus_shifted(path, shift_of_micrograph):
    """A copy of the 7DDO particles.star whose defoci U and V are moved by shift_of_micrograph(name) A."""
    with open(os.path.join(D, 'Particles', 'particles.star')) as f:
        lines = f.read().splitlines()
    start = lines.index('data_particles')
    labels = [s.split()[0][1:] for s in lines[start:] if s.startswith('_rln')]
    u, v, mic = labels.index('rlnDefocusU'), labels.index('rlnDefocusV'), labels.index('rlnMicrographName')
    out, shifts = [], []
    for i, line in enumerate(lines):
        fields = line.split()
        if i > start and len(fields) == len(labels) and not line.startswith('_'):
            dz = shift_of_micrograph(fields[mic])
            fields[u], fields[v] = repr(float(fields[u]) + dz), repr(float(fields[v]) + dz)
            shifts.append(dz)
            line = ' '.join(fields)
        out.append(line)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    link = os.path.join(os.path.dirname(path), 'Particles')
    if not os.path.exists(link):
        os.symlink(os.path.join(D, 'Particles'), link)
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    return shifts


def import_classification(project, star, label):
    imp = project.newProtocol(ProtImportParticles, objLabel=label, importFrom=ProtImportParticles.IMPORT_FROM_RELION,
                              starFile=star, samplingRate=3.0, voltage=300, sphericalAberration=2.7,
                              amplitudeContrast=0.1, magnification=50000)
    return session.launch(project, imp)


class TestTesseraConsensusInScipion(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.project = session.new_project('tessera_consensus')
        truth = read_star_loop(os.path.join(D, 'Particles', 'particles.star'), 'particles')
        state = [1 if float(t) < 90 else 2 for t in truth['rlnAngleTilt']]
        rng = random.Random(3)
        cls.class_a = [3 - s if rng.random() < 0.1 else s for s in state]
        # B numbers the states the other way round, with more errors and a junk class 3.
        cls.class_b = [3 if rng.random() < 0.1 else (s if rng.random() < 0.15 else 3 - s) for s in state]
        work = session.WORK
        cls.cls_a = import_classification(cls.project, write_classification(os.path.join(work, 'class_a'), cls.class_a),
                                          'RELION 3D classification A')
        cls.cls_b = import_classification(cls.project, write_classification(os.path.join(work, 'class_b'), cls.class_b),
                                          'RELION 3D classification B')
        cls.classes = cls.project.newProtocol(TesseraProtConsensusClasses, objLabel='tessera consensus of classes',
                                              classes_A=cls.cls_a.outputClasses, classes_B=cls.cls_b.outputClasses,
                                              min_size=50)
        session.launch(cls.project, cls.classes)
        cls.parts = import_classification(cls.project, os.path.join(D, 'Particles', 'particles.star'),
                                          'RELION particles')
        # CTFs: every other micrograph's defocus moved by 8000 A (their CTFs' phases part by 90 deg
        # near 18 A at 300 kV: rejected at the default 15 A), the others by 200 A (agree to Nyquist).
        mics = sorted(set(read_star_loop(os.path.join(D, 'Particles', 'particles.star'), 'particles')
                          ['rlnMicrographName']))
        far = set(mics[::2])
        shifted = os.path.join(work, 'ctf_b', 'particles.star')
        cls.defocus_shifts = write_defocus_shifted(shifted, lambda m: 8000.0 if m in far else 200.0)
        cls.parts_b = import_classification(cls.project, shifted, 'RELION particles, defoci moved')
        # Poses: RELION's refinement against the true poses the particles were made with.
        cls.refined = import_classification(cls.project, os.path.join(D, 'Refine3D', 'run_data.star'),
                                            'RELION refinement')
        cls.poses = cls.project.newProtocol(TesseraProtConsensusPoses, objLabel='tessera pose consensus',
                                            particles=cls.refined.outputParticles,
                                            particles_B=cls.parts.outputParticles)
        session.launch(cls.project, cls.poses)
        cls.ctf = cls.project.newProtocol(TesseraProtConsensusCtf, objLabel='tessera CTF consensus',
                                          ctf_A=cls.parts.outputParticles, ctf_B=cls.parts_b.outputParticles)
        session.launch(cls.project, cls.ctf)

    def test_imported_classifications_are_classes(self):
        self.assertEqual(self.cls_a.outputClasses.getSize(), 2)
        self.assertEqual(self.cls_b.outputClasses.getSize(), 3)

    def test_consensus_of_classes(self):
        with open(self.classes._getExtraPath('consensus_classes.json')) as f:
            doc = json.load(f)
        self.assertEqual(doc['particles'], 1000)
        self.assertEqual(doc['matching']['files'][0]['unmatched'], 0)
        count = {}
        for a, b in zip(self.class_a, self.class_b):
            count[(str(a), str(b))] = count.get((str(a), str(b)), 0) + 1
        got = {tuple(x['classes']): x['size'] for x in doc['intersections']}
        self.assertEqual(got, count)
        kept = sum(x['size'] for x in doc['intersections'] if x['size'] >= 50)
        out = self.classes.outputParticles
        self.assertEqual(out.getSize(), kept)
        # The particles keep what the imported set had (CTF, poses), and the intersection as their class.
        first = out.getFirstItem()
        self.assertTrue(first.hasCTF())
        self.assertGreater(first.getCTF().getDefocusU(), 5000)
        sizes = {}
        for p in out.iterItems():
            sizes[p.getClassId()] = sizes.get(p.getClassId(), 0) + 1
        for x in doc['intersections']:
            if x['size'] >= 50:
                self.assertEqual(sizes[x['number']], x['size'])
        # ... and as classes, one per kept intersection, of the same sizes.
        classes = self.classes.outputClasses
        self.assertEqual(classes.getClassName(), 'SetOfClasses3D')
        self.assertEqual({c.getObjId(): c.getSize() for c in classes.iterItems()}, sizes)
        print('consensus of classes:', ', '.join('%s: %d' % ('&'.join(x['classes']), x['size'])
                                                 for x in doc['intersections']))

    def test_consensus_of_ctfs(self):
        with open(self.ctf._getExtraPath('ctf_consensus.json')) as f:
            doc = json.load(f)
        near = sum(1 for dz in self.defocus_shifts if dz < 1000)
        self.assertEqual(doc['counts']['compared'], 1000)
        self.assertEqual(doc['counts']['accepted'], near)
        self.assertEqual(self.ctf.outputAccepted.getSize(), near)
        self.assertEqual(self.ctf.outputRejected.getSize(), 1000 - near)
        # The accepted particles are A's, with A's CTFs.
        defocus_a = {p.getObjId(): p.getCTF().getDefocusU() for p in self.parts.outputParticles.iterItems()}
        for p in self.ctf.outputAccepted.iterItems():
            self.assertAlmostEqual(p.getCTF().getDefocusU(), defocus_a[p.getObjId()], places=6)
        # The defocus differences are the ones the test made (U and V moved alike).
        self.assertAlmostEqual(abs(doc['medians']['defocus_diff_A']), float(np.median(self.defocus_shifts)), places=3)

    def test_consensus_of_poses(self):
        """The angular and shift errors of RELION's refinement as the protocol gives them equal the
        ones computed here from the Scipion sets' own transform matrices (pwem's conversion of
        RELION's angles, M = [[A^T, A^T s], [0, 1]], s the origin in pixels); the RELION 7DDO README
        states 2.23 deg and 0.53 A."""
        with open(self.poses._getExtraPath('pose_consensus.json')) as f:
            doc = json.load(f)

        def poses(particles):
            out = {}
            for p in particles.iterItems():
                m = p.getTransform().getMatrix()
                a = m[:3, :3].T
                out[p.getObjId()] = (a, 3.0 * (a @ m[:3, 3]))
            return out
        refined, truth = poses(self.refined.outputParticles), poses(self.parts.outputParticles)
        angles, shifts = [], []
        for k, (a, origin) in refined.items():
            b, origin_b = truth[k]
            angles.append(np.degrees(np.arccos(np.clip((np.trace(a @ b.T) - 1) / 2, -1, 1))))
            shifts.append(np.linalg.norm(origin - origin_b))
        print('pose consensus: median %.4f deg (numpy %.4f), shift %.4f A (numpy %.4f)' % (
            doc['median_angle_deg'], np.median(angles), doc['median_shift_A'], np.median(shifts)))
        self.assertEqual(doc['compared'], 1000)
        self.assertAlmostEqual(doc['median_angle_deg'], float(np.median(angles)), delta=1e-4)
        self.assertAlmostEqual(doc['p90_angle_deg'], float(np.percentile(angles, 90)), delta=1e-4)
        self.assertAlmostEqual(doc['median_shift_A'], float(np.median(shifts)), delta=1e-4)
        self.assertAlmostEqual(doc['median_angle_deg'], 2.23, delta=0.005)
        agree = sum(1 for a, s in zip(angles, shifts) if a <= doc['max_angle_deg'] and s <= doc['max_shift_A'])
        self.assertEqual(self.poses.outputAgreeing.getSize(), agree)

    def test_figures_render(self):
        """Each consensus run's figures through the plugin's viewer command, rendered offscreen."""
        from tessera.viewers.viewer import consensus_view
        for prot in self.consensus_runs():
            view = consensus_view(prot, self.project.getPath())
            self.assertIsNotNone(view, prot.getObjLabel())
            png = os.path.join(session.WORK, '%s.png' % prot.getObjId())
            subprocess.run(view._cmd + ' --export ' + png, shell=True, check=True,
                           env=dict(view._env, QT_QPA_PLATFORM='offscreen'), cwd=view._cwd)
            self.assertGreater(os.path.getsize(png), 10000, prot.getObjLabel())

    def consensus_runs(self):
        return [self.classes, self.poses, self.ctf]

    def test_ctf_sets_as_micrograph_stars(self):
        """Two SetOfCTF (pwem objects) through the plugin's converter and the program: per
        micrograph, the consensus resolution of a pure defocus change dz is 1 / sqrt(1 / (2 lambda dz))."""
        from pwem.objects import CTFModel, Micrograph, SetOfCTF, SetOfMicrographs
        from tessera import Plugin, convert
        tmp = os.path.join(session.WORK, 'ctf_sets')
        os.makedirs(tmp, exist_ok=True)
        mics = SetOfMicrographs(filename=os.path.join(tmp, 'mics.sqlite'))
        mics.setSamplingRate(1.0)
        acq = mics.getAcquisition()
        acq.setVoltage(300.0), acq.setSphericalAberration(2.7), acq.setAmplitudeContrast(0.1)
        for i in range(4):
            mics.append(Micrograph(location=os.path.join(tmp, 'mic_%d.mrc' % i)))
        mics.write()
        shifts = [0.0, 500.0, 2000.0, 8000.0]
        files = []
        for name, moved in (('a', False), ('b', True)):
            ctfs = SetOfCTF(filename=os.path.join(tmp, 'ctf_%s.sqlite' % name))
            ctfs.setMicrographs(mics)
            for mic, dz in zip(mics, shifts):
                ctf = CTFModel()
                base = 15000.0 + 1000 * mic.getObjId()
                ctf.setStandardDefocus(base + (dz if moved else 0), base + 300 + (dz if moved else 0), 30.0)
                ctf.setMicrograph(mic)
                ctfs.append(ctf)
            ctfs.write()
            files.append(convert.ctfs_file(ctfs, tmp, 'ctf_%s' % name))
        out = os.path.join(tmp, 'run')
        subprocess.run([Plugin.getProgram('tessera_consensus_ctf'), '--ctf-A', files[0], '--ctf-B', files[1],
                        '--out', out, '--overwrite'], check=True, env=Plugin.getEnviron())
        with open(os.path.join(out, 'ctf_consensus.json')) as f:
            doc = json.load(f)
        self.assertEqual(doc['kind'], 'micrographs')
        self.assertEqual(doc['counts']['compared'], 4)
        wavelength = 12.2643247 / np.sqrt(300e3 * (1 + 0.978466e-6 * 300e3))  # A at 300 kV
        rows = read_star_loop(os.path.join(out, 'ctf_consensus.star'), 'ctf_consensus')
        by_name = dict(zip(rows['rlnMicrographName'], zip(rows['tesseraCtfConsensusResolutionAngst'],
                                                           rows['tesseraCtfConsensusBeyondNyquist'])))
        for mic, dz in zip(mics, shifts):
            resolution, beyond = by_name[mic.getFileName()]
            if dz == 0:
                self.assertEqual(beyond, '1')
            else:  # the same astigmatism in both: 90 deg in every direction at 1 / k = sqrt(2 lambda dz)
                self.assertEqual(beyond, '0')
                self.assertAlmostEqual(float(resolution), np.sqrt(2 * wavelength * dz), delta=1e-3)
        accepted = convert.star_column(os.path.join(out, 'micrographs_accepted.star'), 'micrographs',
                                       'rlnMicrographName')
        # 8000 A: 17.7 A, worse than the default 15 A: rejected.
        self.assertEqual(sorted(accepted), sorted(m.getFileName() for m, dz in zip(mics, shifts) if dz < 8000))

if __name__ == '__main__':
    unittest.main()
