"""The plugin's workflow template (tessera/templates/*.json.template) in a real, headless Scipion.

Loaded as Scipion loads templates: the plugin's templates (Plugin.getTemplates), fields filled
through their aliases, written out (Template.createTemplateFile) and loaded into a new project
(Project.loadProtocols). Then its import and Tessera steps run: homogeneous refinement (2
iterations) and subtraction; RELION's post-processing of Tessera's half maps runs too when the
Debian RELION is installed. RELION's 3D classification is only loaded (it needs RELION 4/5), and
Xmipp's MonoRes is loaded when scipion-em-xmipp is installed (it is not installable from PyPI alone:
it needs scipion-app), otherwise pyworkflow reports its class missing and skips it.
"""
import os
import shutil
import unittest

import scipion_session as session  # first: sets up Scipion's configuration

from pyworkflow.plugin import Domain  # noqa: E402

TEMPLATE = 'tessera_refine_subtract'
D = session.RELION_7DDO


class TestTesseraTemplate(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        plugin = Domain.getPlugins()['tessera']._pluginInstance
        cls.template = next(t for t in plugin.getTemplates() if t.name == TEMPLATE)
        cls.template.replaceEnvVariables()
        cls.template.parseContent()
        for alias, value in (('particlesStar', os.path.join(D, 'Particles', 'particles.star')),
                             ('reference', os.path.join(D, 'ground_truth', 'ref_lp40.mrc')),
                             ('keepMask', os.path.join(D, 'ground_truth', 'mask_RBD.mrc')),
                             ('maxIterations', '2'), ('threads', '2')):
            cls.template.setParamValue(alias, value)
        workflow = cls.template.createTemplateFile()
        cls.project = session.new_project('tessera_template')
        cls.protocols = cls.project.loadProtocols(workflow)  # template object id -> protocol
        os.remove(workflow)

    def test_template_loads_every_known_protocol(self):
        classes = {k: p.getClassName() for k, p in self.protocols.items()}
        print('template protocols:', classes)
        expected = {'2': 'ProtImportParticles', '3': 'ProtImportVolumes', '4': 'ProtImportMask',
                    '5': 'TesseraProtRefineHomo', '6': 'ProtRelionPostprocess', '8': 'TesseraProtSubtract',
                    '9': 'ProtRelionClassify3D'}
        self.assertEqual({k: v for k, v in classes.items() if k != '7'}, expected)
        xmipp = 'XmippProtMonoRes' in Domain.getProtocols()
        self.assertEqual('7' in classes, xmipp)
        if not xmipp:
            print('scipion-em-xmipp is not installed: the template\'s Xmipp MonoRes step was skipped '
                  'by pyworkflow\'s loader (as for any template whose plugin is missing)')
        refine, subtract = self.protocols['5'], self.protocols['8']
        self.assertEqual(refine.max_iterations.get(), 2)
        self.assertEqual(refine.particles.getExtended(), 'outputParticles')
        self.assertIs(refine.particles.getObjValue(), self.protocols['2'])
        self.assertIs(subtract.half_maps.getObjValue(), refine)
        self.assertIs(self.protocols['9'].inputParticles.getObjValue(), subtract)

    def test_template_tessera_steps_run(self):
        for key in ('2', '3', '4', '5', '8'):
            session.launch(self.project, self.protocols[key])
        refine, subtract = self.protocols['5'], self.protocols['8']
        self.assertEqual(len(refine.outputVolume.getHalfMaps().split(',')), 2)
        self.assertEqual(subtract.outputParticles.getSize(), 1000)
        self.assertTrue(subtract.outputParticles.hasAlignmentProj())
        if not shutil.which('relion_postprocess'):
            print('relion_postprocess not installed: the template\'s RELION post-processing was not run')
            return
        post = session.launch(self.project, self.protocols['6'])
        self.assertTrue(os.path.exists(post.outputVolume.getFileName()))


if __name__ == '__main__':
    unittest.main(verbosity=2)
