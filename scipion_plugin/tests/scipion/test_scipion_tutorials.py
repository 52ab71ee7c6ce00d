"""The tutorials' workflow templates (tutorials/01_refinement_basics, 02_small_protein, 03_membrane_protein) in a
real, headless Scipion, and the screenshots of their forms that the tutorial pages show.

Each template is loaded as the pages say Scipion loads it: the plugin's templates
(Plugin.getTemplates), its fields filled through their aliases, written out
(Template.createTemplateFile) and loaded into a new project (Project.loadProtocols). Its inputs are
made by tessera_simulate first, as on the page, but small (box 32 at 3 Å/px, 300 particles, 2
refinement iterations). Then every step runs, import → Tessera, and the outputs are checked: volumes
with half maps, FSC curves with the curves against the reference, local-resolution maps, the
orientation diagnostics' files.

pyworkflow 3.11.7 drops the runs' labels and comments when it loads a workflow (Step.__init__ does
not pass objLabel on), so every run would be called by its class's default name (two runs "pwem -
import volumes"); the test sets them again from the template, as a person would in the form.

Screenshots: where Xvfb is installed, the test starts it and opens Scipion's own protocol form
(pyworkflow.gui.form.FormWindow, the Tk window the project GUI opens) for the runs the pages show,
grabs each window from the X display and checks it is not blank. They are written to
TESSERA_TUTORIAL_FIGURES_ROOT/<tutorial>/figures/scipion_<name>.png when that variable is set (the
repository's tutorials/ folder, to refresh the pages' figures), else under the test's scratch folder.
Without Xvfb that part is reported as skipped. No window manager runs, so the windows have no title
bar: what is grabbed is the form itself.
"""
import json
import os
import shutil
import subprocess
import time
import unittest

import scipion_session as session  # first: sets up Scipion's configuration

from pyworkflow.plugin import Domain  # noqa: E402

FIGURES_ROOT = os.environ.get('TESSERA_TUTORIAL_FIGURES_ROOT')
SMALL = ['--phantom-box-px', '32', '--pixel-A', '3', '--count', '300', '--snr', '0.1', '--threads', '2', '--quiet']
COMPLEX = ['--phantom', 'complex', '--scale-sigma', '0.2', '--module-rotation-sigma-deg', '4',
           '--module-shift-sigma-px', '1.5']
MICELLE = ['--disorder', '--disorder-belt-shape', 'torus', '--disorder-belt-outer-radius-A', '42',
           '--disorder-belt-height-A', '24']


def simulate(folder, extra):
    out = os.path.join(folder, 'simulate')
    if not os.path.exists(os.path.join(out, 'outputs.json')):
        program = Domain.getPlugins()['tessera']._pluginInstance.getProgram('tessera_simulate')  # build or install
        subprocess.run([program, '--out', out] + SMALL + extra, check=True)
    return folder


# One display for the module, closed by tearDownModule after every Tk made on it is destroyed: a Tk
# left on a closed display makes Xlib end the process, and destroying a Tk between forms invalidates
# the images pyworkflow caches for the next form.
DISPLAY = None
TK_ROOTS = []


def display():
    global DISPLAY
    if DISPLAY is None:
        DISPLAY = XDisplay()
    return DISPLAY


def tearDownModule():
    import tkinter
    try:
        for tk_root in {id(r): r for r in TK_ROOTS}.values():
            try:
                tk_root.destroy()
            except tkinter.TclError:  # already destroyed with another
                pass
    finally:
        if DISPLAY is not None:
            DISPLAY.close()


class XDisplay:
    """An Xvfb display for the Tk forms, or None (with the reason) when Xvfb is not installed."""

    def __init__(self):
        self.process, self.name, self.reason = None, None, None
        if not shutil.which('Xvfb'):
            self.reason = 'Xvfb is not installed'
            return
        for number in range(140, 200):
            if os.path.exists('/tmp/.X%d-lock' % number):
                continue
            self.name = ':%d' % number
            self.process = subprocess.Popen(['Xvfb', self.name, '-screen', '0', '1600x1200x24', '-nolisten', 'tcp'],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(50):
                if os.path.exists('/tmp/.X11-unix/X%d' % number):
                    return
                time.sleep(0.1)
            self.close()
        self.reason, self.name = 'Xvfb did not start', None

    def close(self):
        if self.process:
            self.process.terminate()
            self.process.wait()
            self.process = None


def select_tab(widget, text):
    """Selects the tab whose title starts with text in the form's notebooks."""
    from tkinter import ttk
    if isinstance(widget, ttk.Notebook):
        for tab in widget.tabs():
            if widget.tab(tab, 'text').startswith(text):
                widget.select(tab)
                return True
    return any(select_tab(child, text) for child in widget.winfo_children())


def blank_reason(image):
    colours = image.convert('RGB').getcolors(maxcolors=1 << 24)
    common = max(c for c, _ in colours)
    other = 1 - common / (image.width * image.height)
    if other < 0.02 or len(colours) < 8:
        return '%.2f%% of pixels differ from the most common colour, %d colours' % (100 * other, len(colours))
    return None


def screenshot_forms(display, shots):
    """Opens Scipion's protocol form for each (protocol, tab or None, file), grabs it from the
    display and saves it. Returns {file: why it is blank or None}."""
    os.environ['DISPLAY'] = display
    try:
        import pyworkflow.gui.project  # noqa: F401  (pyworkflow.gui.form needs it imported first)
        from pyworkflow.gui.form import FormWindow
        from PIL import ImageGrab
        result = {}
        for prot, tab, path in shots:
            window = FormWindow('Protocol Run: ' + prot.getClassName(), prot, lambda *a, **k: None, None,
                                updateProtocolCallback=lambda *a: None)
            window.adjustSize()
            root = window.root
            root.deiconify()
            root.geometry('+0+0')
            if tab:
                assert select_tab(root, tab), 'no tab %r in the form of %s' % (tab, prot.getClassName())
            for _ in range(30):
                root.update()
                time.sleep(0.03)
            x, y, width, height = root.winfo_rootx(), root.winfo_rooty(), root.winfo_width(), root.winfo_height()
            image = ImageGrab.grab(bbox=(x, y, x + width, y + height), xdisplay=display)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            image.save(path)
            result[path] = blank_reason(image)
            TK_ROOTS.append(root.master)  # the hidden tk.Tk() pyworkflow's Window made for this form
            root.destroy()
        return result
    finally:
        os.environ.pop('DISPLAY', None)  # the runs launched next must not see it


class TutorialTemplate:
    """A tutorial's template loaded into a new project; runs labelled again from the template."""

    def __init__(self, name, data_folder, values):
        plugin = Domain.getPlugins()['tessera']._pluginInstance
        template = next(t for t in plugin.getTemplates() if t.name == name)
        os.environ['PWD'] = data_folder  # the page starts Scipion in the tutorial's folder
        template.replaceEnvVariables()
        template.parseContent()
        for alias, value in values.items():
            assert template.setParamValue(alias, str(value)), alias
        workflow = template.createTemplateFile()
        with open(workflow) as f:
            self.json = {d['object.id']: d for d in json.load(f)}
        self.project = session.new_project(name)
        self.protocols = self.project.loadProtocols(workflow)
        os.remove(workflow)
        for key, prot in self.protocols.items():
            prot.setObjLabel(self.json[key]['object.label'])
            prot.setObjComment(self.json[key]['object.comment'])
            self.project.saveProtocol(prot)

    def run(self, keys):
        for key in keys:
            session.launch(self.project, self.protocols[key])


def figure(tutorial, name):
    root = FIGURES_ROOT or os.path.join(session.WORK, 'tutorial_figures')
    return os.path.join(root, tutorial, 'figures', 'scipion_%s.png' % name)


class TutorialTestBase(unittest.TestCase):
    TEMPLATE = TUTORIAL = None
    SHOTS = ()  # (object id, tab or None, figure name)
    FILES = {}  # template alias -> file of the simulation, where not the defaults above

    @classmethod
    def setUpClass(cls):
        folder = simulate(os.path.join(session.WORK, cls.TUTORIAL), cls.EXTRA)
        sim = os.path.join(folder, 'simulate')
        values = {'particlesStar': os.path.join(sim, 'particles.star'), 'pixelSize': 3.0,
                  'initialVolume': os.path.join(sim, 'truth.mrc'), 'referenceMap': os.path.join(sim, 'truth.mrc'),
                  'mask': os.path.join(sim, 'truth_mask.mrc'), 'maxIterations': 2, 'threads': 2}
        values.update({alias: os.path.join(sim, name) for alias, name in cls.FILES.items()})
        cls.template = TutorialTemplate(cls.TEMPLATE, folder, values)
        cls.protocols = cls.template.protocols

    def check_screenshots(self):
        x = display()
        if not x.name:
            self.skipTest('%s: the forms were not grabbed' % x.reason)
        shots = [(self.protocols[key], tab, figure(self.TUTORIAL, name)) for key, tab, name in self.SHOTS]
        result = screenshot_forms(x.name, shots)
        for path, reason in result.items():
            print('screenshot %s: %s' % (path, reason or 'not blank'))
            self.assertIsNone(reason, path)

    def check_fsc_against_reference(self, validate):
        names = {fsc.getObjLabel() for fsc in validate.outputFSCs}
        self.assertTrue({'vs_reference', 'vs_reference_masked'} <= names, names)


class TestTutorial01Template(TutorialTestBase):
    TEMPLATE, TUTORIAL, EXTRA = 'tutorial_01_refinement_basics', '01_refinement_basics', []
    SHOTS = (('2', None, 'import_particles'), ('6', None, 'refine_homo'), ('6', 'Parameters', 'refine_homo_parameters'),
             ('7', None, 'validate_fsc'))

    def test_1_forms_screenshots(self):
        self.check_screenshots()

    def test_2_template_runs(self):
        classes = {k: p.getClassName() for k, p in self.protocols.items()}
        self.assertEqual(classes, {'2': 'ProtImportParticles', '3': 'ProtImportVolumes', '4': 'ProtImportVolumes',
                                   '5': 'ProtImportMask', '6': 'TesseraProtRefineHomo',
                                   '7': 'TesseraProtValidateFsc'})
        self.template.run(['2', '3', '4', '5', '6', '7'])
        refine, validate = self.protocols['6'], self.protocols['7']
        self.assertEqual(refine.max_iterations.get(), 2)
        self.assertEqual(refine.outputParticles.getSize(), 300)
        self.assertEqual(len(refine.outputVolume.getHalfMaps().split(',')), 2)
        self.check_fsc_against_reference(validate)
        self.assertTrue(os.path.exists(validate.outputSharpened.getFileName()))


class TestTutorial02Template(TutorialTestBase):
    TEMPLATE, TUTORIAL, EXTRA = 'tutorial_02_small_protein', '02_small_protein', COMPLEX
    FILES = {'referenceMap': 'module_2.mrc', 'mask': 'module_2_mask.mrc', 'removeMask': 'module_1_mask.mrc'}
    SHOTS = (('9', None, 'subtract'), ('9', 'Fit', 'subtract_fit'), ('10', None, 'refine_local'),
             ('10', 'Refinement', 'refine_local_refinement'))

    def test_1_forms_screenshots(self):
        self.check_screenshots()

    def test_2_template_runs(self):
        classes = {k: p.getClassName() for k, p in self.protocols.items()}
        self.assertEqual(classes, {'2': 'ProtImportParticles', '3': 'ProtImportVolumes', '4': 'ProtImportVolumes',
                                   '5': 'ProtImportMask', '6': 'ProtImportMask', '7': 'TesseraProtRefineHomo',
                                   '8': 'TesseraProtValidateFsc', '9': 'TesseraProtSubtract',
                                   '10': 'TesseraProtRefineLocal', '11': 'TesseraProtValidateFsc'})
        subtract, local = self.protocols['9'], self.protocols['10']
        self.assertEqual(subtract.getEnumText('mask_role'), 'remove')
        self.assertEqual(subtract.getEnumText('scale'), 'fit')
        self.assertFalse(local.subtract_other_modules.get())
        self.template.run(sorted(self.protocols, key=int))
        self.assertEqual(subtract.outputParticles.getSize(), 300)
        with open(subtract._getExtraPath('subtraction.json')) as f:
            fitted = json.load(f)
        self.assertGreater(fitted['scale']['sd'], 0.0)  # a contrast per particle, not one for all
        self.assertEqual(local.outputParticles.getSize(), 300)
        self.assertTrue(local.outputVolume.hasHalfMaps())
        for key in ('8', '11'):
            self.check_fsc_against_reference(self.protocols[key])


class TestTutorial03Template(TutorialTestBase):
    TEMPLATE, TUTORIAL, EXTRA = 'tutorial_03_membrane_protein', '03_membrane_protein', MICELLE
    SHOTS = (('6', 'Non-uniform', 'refine_uniform'), ('7', 'Non-uniform', 'refine_nonuniform'),
             ('11', None, 'local_resolution'), ('12', None, 'orientation_diagnostics'))

    def test_1_forms_screenshots(self):
        self.check_screenshots()

    def test_2_template_runs(self):
        classes = {k: p.getClassName() for k, p in self.protocols.items()}
        self.assertEqual(classes, {'2': 'ProtImportParticles', '3': 'ProtImportVolumes', '4': 'ProtImportVolumes',
                                   '5': 'ProtImportMask', '6': 'TesseraProtRefineNu', '7': 'TesseraProtRefineNu',
                                   '8': 'TesseraProtValidateFsc', '9': 'TesseraProtValidateFsc',
                                   '10': 'TesseraProtLocalResolution', '11': 'TesseraProtLocalResolution',
                                   '12': 'TesseraProtOrientationDiagnostics'})
        uniform, nonuniform = self.protocols['6'], self.protocols['7']
        self.assertFalse(uniform.nu_regularizer.get())
        self.assertTrue(nonuniform.nu_regularizer.get())
        self.template.run(sorted(self.protocols, key=int))
        for refine in (uniform, nonuniform):
            self.assertEqual(len(refine.outputVolume.getHalfMaps().split(',')), 2)
        # Only the adaptive regularizer chooses cut-offs, so only the non-uniform run has their map.
        self.assertFalse(hasattr(uniform, 'outputLocalResolution'))
        self.assertTrue(os.path.exists(nonuniform.outputLocalResolution.getFileName()))
        for key in ('8', '9'):
            self.check_fsc_against_reference(self.protocols[key])
        for key in ('10', '11'):
            self.assertTrue(os.path.exists(self.protocols[key].outputLocalResolution.getFileName()))
        diagnostics = self.protocols['12']._getExtraPath('orientation_diagnostics.json')
        with open(diagnostics) as f:
            found = json.load(f)
        self.assertEqual(found['views']['particles'], 300)
        self.assertGreater(found['views']['scf_star'], 0.0)
        self.assertGreater(found['conical_fsc']['cfar'], 0.0)


if __name__ == '__main__':
    unittest.main(verbosity=2)
