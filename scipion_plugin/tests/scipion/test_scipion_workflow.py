"""Tessera's protocols in a real, headless Scipion project (pyworkflow + pwem + scipion-em-relion).

The RELION 7DDO particles (1000 x 64 px, 3 Å/px) are imported with Scipion's RELION importer, refined
by Tessera's homogeneous refinement (3 iterations) and subtracted (keeping the RBD) through the
plugin. Checked: the outputs are Scipion objects (a Volume with two half maps, a SetOfParticles
with 'Projection' alignment, FSC, masks, relations), the output poses equal the program's own STAR
(read by the RELION plugin's STAR reader, an implementation independent of Tessera's), the viewer's
commands render, and the workflow template loads with pyworkflow's loader and its Tessera steps run.

Run by scipion_plugin/run_tests.sh with the plugin installed in a virtual environment and
TESSERA_HOME set to a Tessera build or install.
"""
import copy
import json
import os
import subprocess
import sys
import unittest

import numpy as np

import scipion_session as session  # first: sets up Scipion's configuration

from pwem.constants import ALIGN_PROJ  # noqa: E402
from pwem.objects import FSC, SetOfFSCs, SetOfParticles, Volume, VolumeMask  # noqa: E402
from pwem.protocols import ProtImportMask, ProtImportParticles, ProtImportVolumes  # noqa: E402
from pyworkflow.viewer import CommandView  # noqa: E402

import tessera  # noqa: E402
from tessera.protocols import (TesseraProtLocalResolution, TesseraProtOrientationDiagnostics,  # noqa: E402
                               TesseraProtRefineHomo, TesseraProtRefineLocal, TesseraProtValidateOverfitting, TesseraProtSimulate, TesseraProtSubtract,
                               TesseraProtValidateFsc, make_protocol_class)
from tessera.viewers import TesseraViewer  # noqa: E402
from tessera.viewers.viewer_localres import TesseraLocalResolutionViewer, chimerax_script  # noqa: E402

D = session.RELION_7DDO
POSE_TOLERANCE = 1e-9  # the STAR holds the poses to full double precision; two conversions round differently


def import_inputs(project):
    """RELION particles (with their CTF and poses), the 40 Å reference, the RBD mask."""
    parts = project.newProtocol(ProtImportParticles, objLabel='import particles (RELION)',
                                importFrom=ProtImportParticles.IMPORT_FROM_RELION,
                                starFile=os.path.join(D, 'Particles', 'particles.star'), samplingRate=3.0,
                                voltage=300, sphericalAberration=2.7, amplitudeContrast=0.1, magnification=50000)
    vol = project.newProtocol(ProtImportVolumes, objLabel='import reference',
                              filesPath=os.path.join(D, 'ground_truth', 'ref_lp40.mrc'), samplingRate=3.0)
    mask = project.newProtocol(ProtImportMask, objLabel='import RBD mask',
                               maskPath=os.path.join(D, 'ground_truth', 'mask_RBD.mrc'), samplingRate=3.0)
    for p in (parts, vol, mask):
        session.launch(project, p)
    return parts, vol, mask


def star_matrices(star_file, work_dir):
    """Projection matrices of a STAR file as the RELION plugin reads them, in file order."""
    from relion.convert import convert31, readSetOfParticles
    # emtable guesses the type of a label RELION's plugin does not declare from its first value:
    # tessera_subtract writes rlnOriginZAngst as 0 in one row and 1e-16 in another.
    convert31.LABELS_DICT.setdefault('rlnOriginZAngst', float)
    fn = os.path.join(work_dir, 'star_oracle_%d.sqlite' % len(os.listdir(work_dir)))
    oracle = SetOfParticles(filename=fn)
    readSetOfParticles(star_file, oracle, alignType=ALIGN_PROJ)
    matrices = [p.getTransform().getMatrix().copy() for p in oracle.iterItems(orderBy='id')]
    oracle.close()
    return matrices


class TestTesseraInScipion(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.project = session.new_project('tessera_pipeline')
        cls.parts, cls.vol, cls.mask = import_inputs(cls.project)
        cls.refine = cls.project.newProtocol(
            TesseraProtRefineHomo, objLabel='tessera refine', particles=cls.parts.outputParticles,
            reference=cls.vol.outputVolume, max_iterations=3, numberOfThreads=2)
        session.launch(cls.project, cls.refine)
        cls.subtract = cls.project.newProtocol(
            TesseraProtSubtract, objLabel='tessera subtract (keep RBD)',
            particles=cls.refine.outputParticles, half_maps=cls.refine.outputVolume,
            mask=cls.mask.outputMask, numberOfThreads=2)
        session.launch(cls.project, cls.subtract)
        cls.validate = cls.project.newProtocol(TesseraProtValidateFsc, objLabel='tessera validate FSC',
                                               half_maps=cls.refine.outputVolume, mask=cls.refine.outputMaskFsc)
        session.launch(cls.project, cls.validate)
        cls.locres = cls.project.newProtocol(TesseraProtLocalResolution, objLabel='tessera local resolution',
                                             half_maps=cls.refine.outputVolume, mask=cls.refine.outputMaskFsc)
        session.launch(cls.project, cls.locres)
        cls.orientations = cls.project.newProtocol(
            TesseraProtOrientationDiagnostics, objLabel='tessera orientation diagnostics',
            particles=cls.refine.outputParticles, half_maps=cls.refine.outputVolume)
        session.launch(cls.project, cls.orientations)
        cls.local = cls.project.newProtocol(
            TesseraProtRefineLocal, objLabel='tessera local refinement (RBD)', particles=cls.refine.outputParticles,
            half_maps=cls.refine.outputVolume, mask=cls.mask.outputMask, rounds=1, iterations_per_module=1,
            prior_rotation_sigma_deg=3.0, numberOfThreads=2)
        session.launch(cls.project, cls.local)
        cls.overfitting = cls.project.newProtocol(
            TesseraProtValidateOverfitting, objLabel='tessera validate overfitting',
            particles=cls.refine.outputParticles, min_particles=100, max_particles=400, repeats=2,
            noise_max_particles=200, noise_final_step_deg=3.75, numberOfThreads=2)
        session.launch(cls.project, cls.overfitting)
        cls.simulate = cls.project.newProtocol(TesseraProtSimulate, objLabel='tessera simulate', count=50,
                                               phantom_box_px=32, pixel_A=4.0, origin_sigma_A=4.0)
        session.launch(cls.project, cls.simulate)
        cls.oracle_dir = os.path.join(session.WORK, 'oracle')
        os.makedirs(cls.oracle_dir, exist_ok=True)

    def assertPosesEqualStar(self, out_set, star_file):
        expected = star_matrices(star_file, self.oracle_dir)
        got = [p.getTransform().getMatrix() for p in out_set.iterItems(orderBy='id')]
        self.assertEqual(len(got), len(expected))
        worst = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
        print('%s: %d poses, largest difference to the STAR %.2e' % (star_file, len(got), worst))
        self.assertLess(worst, POSE_TOLERANCE)

    def test_import_has_projection_alignment(self):
        parts = self.parts.outputParticles
        self.assertEqual(parts.getSize(), 1000)
        self.assertTrue(parts.hasAlignmentProj())

    def test_refine_volume_has_half_maps(self):
        vol = self.refine.outputVolume
        self.assertIsInstance(vol, Volume)
        self.assertAlmostEqual(vol.getSamplingRate(), 3.0)
        self.assertEqual(vol.getDim(), (64, 64, 64))
        halves = vol.getHalfMaps().split(',')
        self.assertEqual([os.path.basename(h) for h in halves], ['map_half_A.mrc', 'map_half_B.mrc'])
        for h in halves:
            self.assertTrue(os.path.exists(h), h)
        for name in ('outputMaskRefine', 'outputMaskFsc'):
            self.assertIsInstance(getattr(self.refine, name), VolumeMask)

    def test_refine_particles_have_the_programs_poses(self):
        out = self.refine.outputParticles
        self.assertIsInstance(out, SetOfParticles)
        self.assertEqual(out.getAlignment(), ALIGN_PROJ)
        self.assertEqual(out.getSize(), 1000)
        self.assertTrue(out.hasCTF())
        first_in, first_out = self.parts.outputParticles.getFirstItem(), out.getFirstItem()
        self.assertEqual(first_out.getObjId(), first_in.getObjId())
        self.assertEqual(first_out.getFileName(), first_in.getFileName())  # same images, new poses
        self.assertIn(int(first_out._rlnRandomSubset), (1, 2))
        self.assertPosesEqualStar(out, self.refine._getExtraPath('particles.star'))

    def test_refine_fsc_and_relations(self):
        fsc = self.refine.outputFSC
        self.assertIsInstance(fsc, FSC)
        freqs, values = fsc.getData()
        self.assertEqual(len(freqs), 33)  # shells 0..32 of a 64 box
        self.assertAlmostEqual(float(freqs[32]), 1 / 6.0, places=6)  # Nyquist at 3 Å/px
        self.assertGreater(float(values[1]), 0.9)
        self.assertIsInstance(self.refine.outputFSCs, SetOfFSCs)
        self.assertEqual(sorted(f.getObjLabel() for f in self.refine.outputFSCs),
                         ['corrected', 'loose', 'tight', 'unmasked'])
        children = self.project.getSourceChilds(self.parts.outputParticles)
        labels = [c.getObjId() for c in children or []]
        self.assertIn(self.refine.outputVolume.getObjId(), labels)

    def test_subtract_particles(self):
        out = self.subtract.outputParticles
        self.assertEqual(out.getSize(), 1000)
        self.assertEqual(out.getAlignment(), ALIGN_PROJ)
        first = out.getFirstItem()
        self.assertTrue(first.getFileName().startswith(self.subtract._getExtraPath()), first.getFileName())
        self.assertTrue(os.path.exists(first.getFileName()))
        self.assertEqual(out.getDim(), (64, 64, 1))
        self.assertPosesEqualStar(out, self.subtract._getExtraPath('particles_subtracted.star'))
        self.assertIsInstance(self.subtract.outputKeptMap, Volume)
        params = self.subtract._getPath('params.json')
        with open(params) as f:
            text = f.read()
        self.assertIn('map_half_A.mrc', text)  # the half maps of the refinement's Volume
        self.assertIn('particles.sqlite', text)  # the set's own sqlite, not a STAR copy

    def test_validate_fsc(self):
        fsc = self.validate.outputFSC
        self.assertEqual(fsc.getObjLabel(), 'corrected')
        self.assertEqual(len(fsc.getData()[0]), 33)
        with open(self.validate._getExtraPath('fsc.json')) as f:
            curves = json.load(f)['curves']
        self.assertEqual(sorted(f.getObjLabel() for f in self.validate.outputFSCs),
                         sorted(name for name, values in curves.items() if isinstance(values, list)))
        self.assertEqual([float(v) for v in fsc.getData()[1]], curves['corrected'])
        self.assertIsInstance(self.validate.outputSharpened, Volume)
        self.assertFalse(hasattr(self.validate, 'outputMask'))  # optional: only without an input mask

    def test_local_resolution(self):
        res = self.locres.outputLocalResolution
        self.assertIsInstance(res, Volume)
        self.assertAlmostEqual(res.getSamplingRate(), 3.0, places=4)
        with open(self.locres._getExtraPath('local_resolution.json')) as f:
            h = json.load(f)
        self.assertGreaterEqual(h['median_A'], 6.0)  # Nyquist of the 64 px box at 3 Å/px
        summary = '\n'.join(self.locres.summary())
        self.assertIn('median %.4g Å' % h['median_A'], summary)
        # The ChimeraX script colours the filtered map's surface by the local-resolution map.
        self.assertIn(TesseraProtLocalResolution, TesseraLocalResolutionViewer._targets)
        script = os.path.join(session.WORK, 'locres_chimerax.py')
        steps, colors = chimerax_script(self.locres._getExtraPath(), script)
        self.assertAlmostEqual(steps[0], h['p05_A'])
        self.assertAlmostEqual(steps[-1], max(h['p95_A'], h['p05_A'] + 0.1))  # a scale at least 0.1 Å wide
        with open(script) as f:
            text = f.read()
        self.assertIn('locally_filtered.mrc', text)
        self.assertIn('local_resolution.mrc', text)
        self.assertIn('color sample #2 map #3 palette', text)

    def test_local_refinement(self):
        """One module (the RBD mask) refined against the rest: a composite Volume with the module's half
        maps, and the particles with the module's poses, as the program wrote them."""
        composite = self.local.outputVolume
        self.assertIsInstance(composite, Volume)
        self.assertTrue(composite.hasHalfMaps())
        self.assertTrue(all(os.path.basename(h).startswith('module_1_half') for h in composite.getHalfMaps().split(',')))
        parts = self.local.outputParticles
        self.assertEqual(parts.getSize(), 1000)
        self.assertEqual(parts.getAlignment(), ALIGN_PROJ)
        self.assertPosesEqualStar(parts, self.local._getExtraPath('module_1_particles.star'))
        with open(self.local._getExtraPath('modules.json')) as f:
            modules = json.load(f)
        self.assertEqual(len(modules), 1)

    def test_validate_overfitting(self):
        with open(self.overfitting._getExtraPath('validate_overfitting.json')) as f:
            doc = json.load(f)
        self.assertEqual(doc['sizes'], [100, 200, 400])
        particles, noise = doc['curves']['particles']['mean_A'], doc['curves']['noise']['mean_A']
        self.assertLess(particles[-1], particles[0])  # more particles, finer
        self.assertGreater(noise[0], particles[0])    # noise aligned to the map: worse at the same number
        self.assertIn('bfactor', '\n'.join(self.overfitting.summary()))

    def test_orientation_diagnostics(self):
        with open(self.orientations._getExtraPath('orientation_diagnostics.json')) as f:
            figures = json.load(f)
        self.assertEqual(figures['views']['particles'], 1000)
        self.assertGreater(figures['views']['scf_star'], 0.8)  # uniform views of 1000 particles: about 0.9
        summary = '\n'.join(self.orientations.summary())
        self.assertIn('scf star', summary)
        self.assertIn('cfar', summary)

    def test_simulate_particles_from_the_programs_own_set(self):
        parts = self.simulate.outputParticles
        self.assertEqual((parts.getSize(), parts.getAlignment(), parts.getSamplingRate()), (50, ALIGN_PROJ, 4.0))
        self.assertEqual(parts.getDim(), (32, 32, 1))
        first = parts.getFirstItem()
        self.assertTrue(first.getFileName().startswith(self.simulate._getExtraPath()))
        self.assertTrue(first.hasCTF())
        self.assertPosesEqualStar(parts, self.simulate._getExtraPath('particles.star'))
        self.assertEqual(self.simulate.outputTruth.getSamplingRate(), 4.0)

    def test_continue_a_refinement(self):
        more = self.project.newProtocol(
            TesseraProtRefineHomo, objLabel='tessera refine, continued', particles=self.parts.outputParticles,
            reference=self.vol.outputVolume, max_iterations=4, numberOfThreads=2, doContinue=True,
            continueRun=self.refine)
        session.launch(self.project, more)
        with open(more._getExtraPath('run.log.jsonl')) as f:
            events = [json.loads(line) for line in f]
        # The earlier run's folder was copied in and the program resumed from it (run.log.jsonl appends).
        self.assertIn('continuing after iteration 3', [e.get('message') for e in events])
        self.assertEqual(sum(e['event'] == 'start' for e in events), 2)
        with open(more._getPath('params.json')) as f:
            self.assertIs(json.load(f)['continue'], True)
        self.assertEqual(more.outputParticles.getSize(), 1000)
        self.assertEqual(len(more.outputVolume.getHalfMaps().split(',')), 2)

    def test_summary_methods_citations(self):
        summary = '\n'.join(self.refine.summary())
        self.assertIn('tessera_refine_homo', summary)
        self.assertIn('resolution', summary)
        self.assertIn('Tessera', ' '.join(self.refine.methods()))
        validate = self.project.newProtocol(TesseraProtValidateFsc)
        self.assertEqual(validate._citations(), ['Tessera', 'Chen2013', 'Rosenthal2003'])

    def test_validation_messages(self):
        bad = self.project.newProtocol(TesseraProtRefineHomo, particles=self.parts.outputParticles,
                                       reference=self.vol.outputVolume, max_iterations=0)
        errors = '\n'.join(bad.validate())
        self.assertIn('Maximum iterations', errors)
        self.assertIn('must be >= 1', errors)
        missing = self.project.newProtocol(TesseraProtSubtract, particles=self.refine.outputParticles)
        self.assertIn('Mask', '\n'.join(missing.validate()))

    def test_protocol_tree(self):
        from pwem import Domain
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig
        tree = ProtocolTreeConfig.load(Domain, os.path.join(session.WORK, 'no_base_protocols.conf'))

        def tessera_items(node):
            found = [c.value for c in node.childs if str(c.value).startswith('Tessera')]
            return found + [v for c in node.childs for v in tessera_items(c)]
        expected = sorted(c.__name__ for c in (TesseraProtRefineHomo, TesseraProtSubtract, TesseraProtValidateFsc,
                                                TesseraProtSimulate, TesseraProtLocalResolution,
                                                TesseraProtOrientationDiagnostics)) + [
            'TesseraProtReconstruct', 'TesseraProtRefineNu', TesseraProtValidateOverfitting.__name__,
            TesseraProtRefineLocal.__name__, 'TesseraProtConsensusClasses', 'TesseraProtConsensusPoses',
            'TesseraProtConsensusCtf', 'TesseraProtCtfRefine']
        self.assertEqual(sorted(tessera_items(tree['Protocols SPA'])), sorted(expected))
        self.assertEqual(sorted(tessera_items(tree['All'])), sorted(expected))

    def test_protocol_classes_exist_without_tessera_installed(self):
        """With TESSERA_HOME holding no programs, the classes come from the schemas the plugin ships,
        so a saved project still loads its runs; running them asks for Tessera."""
        empty = os.path.join(session.WORK, 'no_tessera')
        os.makedirs(empty, exist_ok=True)
        code = ('import tessera, tessera.protocols as p; '
                'print(tessera.Plugin.getSchemaDir()); print(" ".join(sorted(p.GENERATED)))')
        done = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, TESSERA_HOME=empty),
                              capture_output=True, text=True, check=True)
        schema_dir, names = done.stdout.splitlines()[-2:]
        self.assertEqual(schema_dir, os.path.join(os.path.dirname(tessera.__file__), 'schemas'))
        import tessera.protocols as generated
        self.assertEqual(names.split(), sorted(generated.GENERATED))

    def test_forms(self):
        form = TesseraProtRefineHomo().getDefinition()
        self.assertEqual([s.label.get() for s in form.iterSections()],
                         ['General', 'Input', 'Parameters', 'Dynamic mask', 'Convergence', 'Pose search',
                          'CTF refinement', 'Run', 'Parallelization'])
        self.assertEqual(form.getParam('particles').pointerClass.get(), 'SetOfParticles')
        self.assertEqual(form.getParam('max_iterations').label.get(), 'Maximum iterations')
        self.assertEqual(form.getParam('initial_lowpass_A').label.get(), 'Initial low-pass (Å)')
        subtract = TesseraProtSubtract().getDefinition()
        self.assertEqual(subtract.getParam('particles').pointerCondition.get(), 'hasAlignmentProj')
        self.assertEqual(subtract.getParam('half_maps').pointerCondition.get(), 'hasHalfMaps')
        self.assertEqual(subtract.getParam('fixed_scale').condition.get(), 'scale == 2')
        self.assertEqual(subtract.getParam('scale').choices, ['fit', 'refinement', 'fixed'])

    def test_a_parameter_added_to_a_program_appears_in_its_scipion_form(self):
        schema = copy.deepcopy(TesseraProtRefineHomo._tesseraSchema)
        schema['parameters'].append(dict(schema['parameters'][0], name='new_limit_A', option='--new-limit-A',
                                         type='float', label='New limit', unit='A', default=4.0, min=1.0,
                                         section='Convergence'))
        prot = make_protocol_class(schema)()
        param = prot.getDefinition().getParam('new_limit_A')
        self.assertEqual((param.label.get(), param.getDefault()), ('New limit (Å)', '4.0'))
        prot.new_limit_A.set(0.5)
        self.assertIn('must be >= 1 Å', ' '.join(param.validate(prot.new_limit_A.get())))

    def test_viewer_commands_render(self):
        """With the viewers built (TESSERA_WITH_QT=ON in the build's CMake cache), each of the three
        views must be a CommandView of a Qt viewer that renders a PNG; without them, Scipion's own
        views stand in. The test says which case it is in and why, so a build that silently lost
        Qt fails here with that reason, not with a count."""
        qt_built = build_option('TESSERA_WITH_QT')
        expected = {'_showFsc': 'tessera_view_fsc', '_showVolume': 'tessera_view_volume',
                    '_showParticles': 'tessera_view_particles'}
        viewer = TesseraViewer(project=self.project, protocol=self.refine)
        viewer.setProtocol(self.refine)
        for i, (method, program) in enumerate(expected.items()):
            built = tessera.Plugin.hasProgram(program)
            views = getattr(viewer, method)()
            if qt_built:
                self.assertTrue(built, 'the build has TESSERA_WITH_QT=ON, so %s must exist at %s'
                                % (program, tessera.Plugin.getProgram(program)))
            elif not built:
                print('%s: TESSERA_WITH_QT is OFF in this build, %s is not built: Scipion views used'
                      % (method, program))
                self.assertTrue(all(not isinstance(v, CommandView) for v in views))
                continue
            self.assertEqual(len(views), 1, '%s: expected one view of %s, got %r' % (method, program, views))
            view = views[0]
            self.assertIsInstance(view, CommandView, '%s: %s is built, so its view must run it' % (method, program))
            self.assertIn(program, view._cmd)
            png = os.path.join(session.WORK, 'view_%d.png' % i)
            env = dict(view._env, QT_QPA_PLATFORM='offscreen')
            subprocess.run(view._cmd + ' --export ' + png, shell=True, check=True, env=env, cwd=view._cwd)
            self.assertGreater(os.path.getsize(png), 1000, '%s wrote an empty picture' % program)
            if method == '_showVolume':
                self.assertIn('--overlay', view._cmd)

    def test_validation_figures_render(self):
        """The local-resolution run's map opens coloured by its local resolution, the orientation
        run's figure renders, and a local refinement's map shows its modules, when the Qt viewers
        are built."""
        if not build_option('TESSERA_WITH_QT'):
            self.skipTest('TESSERA_WITH_QT is OFF in this build')
        cases = [(self.locres, '_showVolume', 'tessera_view_volume', '--color-by'),
                 (self.orientations, '_showOrientations', 'tessera_view_orientations', ''),
                 (self.local, '_showVolume', 'tessera_view_volume', '--modules')]
        for i, (prot, method, program, option) in enumerate(cases):
            viewer = TesseraViewer(project=self.project, protocol=prot)
            viewer.setProtocol(prot)
            if prot is self.locres:
                names = [n for n, _ in viewer._outputsOf(Volume)]
                viewer.displayVolume.set(names.index('outputLocallyFiltered'))
            views = getattr(viewer, method)()
            self.assertEqual(len(views), 1)
            self.assertIn(program, views[0]._cmd)
            self.assertIn(option, views[0]._cmd)
            png = os.path.join(session.WORK, 'validation_view_%d.png' % i)
            env = dict(views[0]._env, QT_QPA_PLATFORM='offscreen')
            subprocess.run(views[0]._cmd + ' --export ' + png, shell=True, check=True, env=env, cwd=views[0]._cwd)
            self.assertGreater(os.path.getsize(png), 1000, '%s wrote an empty picture' % program)


def build_option(name):
    """A boolean option from the CMake cache of the build in TESSERA_HOME (None when it is not a
    build folder, e.g. an install prefix)."""
    cache = os.path.join(os.environ.get('TESSERA_HOME', ''), 'CMakeCache.txt')
    if not os.path.isfile(cache):
        return None
    with open(cache) as f:
        for line in f:
            if line.startswith(name + ':'):
                return line.strip().split('=', 1)[1].upper() in ('ON', 'TRUE', '1', 'YES')
    return None


if __name__ == '__main__':
    unittest.main(verbosity=2)
