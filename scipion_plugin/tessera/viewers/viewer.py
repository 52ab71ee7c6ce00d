"""A run's results in Tessera's Qt viewers (viewers/README.md), with Scipion's own views as fallback.

One entry per kind of output the run has: FSC curves (tessera_view_fsc on the run folder, which
also plots the per-iteration statistics of run.log.jsonl), maps with the run's mask overlaid
(tessera_view_volume; a local-resolution run's map coloured by its local resolution, a local
refinement's modules each in its colour), particles
(tessera_view_particles on the Scipion set), view directions and conical FSCs
(tessera_view_orientations), resolution against particles (tessera_view_overfitting) and the figures
of a consensus run (tessera_view_consensus: histograms of the pose and CTF differences, heat maps of
the classes' similarity). Where the Qt viewers are not installed, Scipion's FSC plot and data views
are used instead.
"""
import os
import shlex

import pyworkflow.protocol.params as params
from pwem.objects import FSC, SetOfParticles, Volume, VolumeMask
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, CommandView, ProtocolViewer

from .. import Plugin
from ..convert import strip_format
from ..protocols import GENERATED

FSC_VIEWER, VOLUME_VIEWER, PARTICLES_VIEWER = 'tessera_view_fsc', 'tessera_view_volume', 'tessera_view_particles'
ORIENTATIONS_VIEWER, OVERFITTING_VIEWER = 'tessera_view_orientations', 'tessera_view_overfitting'
CONSENSUS_VIEWER = 'tessera_view_consensus'
# Files in a run folder that say which figure it has (the programs' outputs).
VIEW_COUNTS, OVERFITTING, LOCAL_RESOLUTION = 'view_counts.json', 'validate_overfitting.json', 'local_resolution.mrc'
MODULES = 'modules.json'  # tessera_refine_local's modules, drawn with --modules
# The consensus programs' summaries, whose "figures" block tessera_view_consensus draws (by program, so
# that a protocol class not generated in this installation changes nothing here).
CONSENSUS_SUMMARIES = {'tessera_consensus_classes': 'consensus_classes.json',
                       'tessera_consensus_poses': 'pose_consensus.json',
                       'tessera_consensus_ctf': 'ctf_consensus.json',
                       'tessera_ctf_refine': 'defocus_change.json'}


def command_view(program, args, cwd=None):
    """A CommandView running the Tessera program with args (quoted) in Tessera's environment."""
    return CommandView(' '.join(shlex.quote(a) for a in [Plugin.getProgram(program)] + list(args)),
                       env=Plugin.getEnviron(), cwd=cwd)


def consensus_summary(protocol):
    """The summary a run of TesseraProtConsensusClasses, -Poses or -Ctf wrote (consensus_classes.json,
    pose_consensus.json or ctf_consensus.json in its extra folder), or None: another protocol, or no
    summary yet."""
    program = (getattr(protocol, '_tesseraSchema', None) or {}).get('program')
    name = CONSENSUS_SUMMARIES.get(program)
    path = protocol._getExtraPath(name) if name else None
    return path if path and os.path.isfile(path) else None


def consensus_view(protocol, cwd=None):
    """The CommandView of tessera_view_consensus on a consensus run's summary (its window; append
    ' --export FIGURE.png' to view._cmd to render it without a display), or None when the run has no
    summary (consensus_summary)."""
    summary = consensus_summary(protocol)
    return command_view(CONSENSUS_VIEWER, [os.path.abspath(summary)], cwd) if summary else None


class TesseraViewer(ProtocolViewer):
    """Shows what a Tessera run produced."""
    _label = 'viewer tessera'
    _targets = list(GENERATED.values())
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _outputsOf(self, cls):
        return [(name, out) for name, out in self.protocol.iterOutputAttributes() if type(out) is cls]

    def _defineParams(self, form):
        form.addSection(label='Visualization')
        if self._outputsOf(FSC):
            form.addParam('displayFsc', params.LabelParam, label='FSC curves and iteration statistics')
        if self._outputsOf(Volume):
            form.addParam('displayVolume', params.EnumParam, choices=[n for n, _ in self._outputsOf(Volume)],
                          default=0, display=params.EnumParam.DISPLAY_COMBO, label='Map to show',
                          help='Slices, projections and renderings, with the run\'s mask overlaid.')
        if self._outputsOf(SetOfParticles):
            form.addParam('displayParticles', params.LabelParam, label='Particles')
        if self._hasRunFile(VIEW_COUNTS):
            form.addParam('displayOrientations', params.LabelParam,
                          label='View directions, SCF* and conical FSCs')
        if self._hasRunFile(OVERFITTING):
            form.addParam('displayOverfitting', params.LabelParam, label='Resolution against particles')
        if consensus_summary(self.protocol):
            form.addParam('displayConsensus', params.LabelParam,
                          label='Consensus figures (distance histograms, class similarity)')

    def _getVisualizeDict(self):
        return {'displayFsc': self._showFsc, 'displayVolume': self._showVolume,
                'displayParticles': self._showParticles, 'displayOrientations': self._showOrientations,
                'displayOverfitting': self._showOverfitting, 'displayConsensus': self._showConsensus}

    def _hasRunFile(self, name):
        return os.path.isfile(self.protocol._getExtraPath(name))

    def _cwd(self):
        return self.getProject().getPath() if self.getProject() else None

    def _command(self, program, *args):
        return command_view(program, args, self._cwd())

    def _showFsc(self, param=None):
        if Plugin.hasProgram(FSC_VIEWER):
            return [self._command(FSC_VIEWER, self.protocol._getExtraPath())]
        from pwem.viewers import FscViewer
        viewer = FscViewer(project=self.getProject(), protocol=self.protocol)
        viewer.visualize(self._outputsOf(FSC)[0][1])
        return []

    def _showVolume(self, param=None):
        volumes = self._outputsOf(Volume)
        volume = volumes[self.displayVolume.get() or 0][1] if volumes else None
        if volume is None:
            return []
        if not Plugin.hasProgram(VOLUME_VIEWER):
            from pwem.viewers import DataView
            return [DataView(volume.getFileName())]
        args = [strip_format(volume.getFileName())]
        local_resolution = self.protocol._getExtraPath(LOCAL_RESOLUTION)
        if os.path.isfile(local_resolution) and os.path.abspath(args[0]) != os.path.abspath(local_resolution):
            args += ['--color-by', local_resolution]  # a map of a local-resolution run: coloured by it
        modules = self.protocol._getExtraPath(MODULES)
        masks = self._outputsOf(VolumeMask)
        if os.path.isfile(modules):
            args += ['--modules', modules]  # a local refinement: each module's mask in its own colour
        elif masks:
            args += ['--overlay', strip_format(masks[-1][1].getFileName())]
        return [self._command(VOLUME_VIEWER, *args)]

    def _showRunFigure(self, program, what):
        if not Plugin.hasProgram(program):
            return [self.errorMessage('%s is not built (Tessera without Qt): no figure of %s.' % (program, what))]
        return [self._command(program, self.protocol._getExtraPath())]

    def _showOrientations(self, param=None):
        return self._showRunFigure(ORIENTATIONS_VIEWER, 'the view directions')

    def _showOverfitting(self, param=None):
        return self._showRunFigure(OVERFITTING_VIEWER, 'resolution against particles')

    def _showConsensus(self, param=None):
        if not Plugin.hasProgram(CONSENSUS_VIEWER):
            return [self.errorMessage('%s is not built (Tessera without Qt): no consensus figures.'
                                      % CONSENSUS_VIEWER)]
        view = consensus_view(self.protocol, self._cwd())
        return [view] if view else [self.errorMessage('The run has no consensus summary (yet).')]

    def _showParticles(self, param=None):
        particles = self._outputsOf(SetOfParticles)[0][1]
        if not Plugin.hasProgram(PARTICLES_VIEWER):
            from pwem.viewers import ObjectView
            return [ObjectView(self.getProject(), particles.strId(), particles.getFileName())]
        return [self._command(PARTICLES_VIEWER, os.path.abspath(particles.getFileName()))]
