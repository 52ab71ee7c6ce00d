"""A local-resolution run in ChimeraX, as Scipion shows MonoRes' or ResMap's: the map's surface coloured
by tessera_local_resolution's local_resolution.mrc (Å per voxel), with a colour key, through pwem's
ChimeraX script writer (mapVolsWithColorkey: ``color sample`` of the surface by the second map).

The surface is the run's locally filtered map when it wrote one, else the first half map. The colour
range defaults to the 5th-95th percentile of the local resolution inside the mask (the run's histogram),
so a few voxels at Nyquist or in the solvent do not take the whole scale.
"""
import json
import os

import pyworkflow.gui.plotter as plotter
import pyworkflow.protocol.params as params
from pwem import splitRange
from pwem.constants import COLOR_CHOICES, COLOR_JET
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from tessera_bridge import outputs as toutputs

from ..convert import strip_format
from ..protocols import GENERATED

LOCAL_RESOLUTION_PROTOCOL = 'TesseraProtLocalResolution'
HISTOGRAM = 'local_resolution.json'
COLOR_STEPS = 13


def chimerax_script(run_folder, script_file, display_map=None, high_res_A=None, low_res_A=None, color_map='jet'):
    """Writes the ChimeraX script that colours display_map (default: the run's locally filtered map) by
    the run's local-resolution map; returns (steps in Å, colours). OutputError names a missing file."""
    from pwem.viewers.viewer_chimera import mapVolsWithColorkey
    res_map = os.path.join(run_folder, 'local_resolution.mrc')
    histogram = os.path.join(run_folder, HISTOGRAM)
    for path in (res_map, histogram):
        if not os.path.isfile(path):
            raise toutputs.OutputError('%s: not found; did tessera_local_resolution finish?' % path)
    if display_map is None:
        display_map = os.path.join(run_folder, 'locally_filtered.mrc')
    if not os.path.isfile(display_map):
        raise toutputs.OutputError('%s: no map to colour' % display_map)
    with open(histogram) as f:
        h = json.load(f)
    high = h['p05_A'] if high_res_A is None else high_res_A
    low = h['p95_A'] if low_res_A is None else low_res_A
    if low <= high:
        low = high + 0.1
    steps = splitRange(high, low, splitNum=COLOR_STEPS)
    colors = plotter.getHexColorList(len(steps), color_map)
    box, voxel_A = toutputs.mrc_box(res_map), toutputs.mrc_voxel_size(res_map)
    mapVolsWithColorkey(os.path.abspath(display_map), os.path.abspath(res_map), list(steps), list(colors),
                        (box, box, box), sampling=voxel_A, scriptFileName=script_file)
    return steps, colors


class TesseraLocalResolutionViewer(ProtocolViewer):
    """Colours the map by its local resolution in ChimeraX."""
    _label = 'viewer local resolution (ChimeraX)'
    _targets = [GENERATED[LOCAL_RESOLUTION_PROTOCOL]] if LOCAL_RESOLUTION_PROTOCOL in GENERATED else []
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label='Visualization')
        form.addParam('displayChimera', params.LabelParam, label='Surface coloured by local resolution (ChimeraX)')
        form.addParam('colorMap', params.EnumParam, choices=list(COLOR_CHOICES), default=COLOR_JET,
                      label='Colour map')
        form.addParam('highResA', params.FloatParam, allowsNull=True, label='Highest resolution (Å)',
                      help='Bottom of the colour scale; default: the 5th percentile inside the mask.')
        form.addParam('lowResA', params.FloatParam, allowsNull=True, label='Lowest resolution (Å)',
                      help='Top of the colour scale; default: the 95th percentile inside the mask.')

    def _getVisualizeDict(self):
        return {'displayChimera': self._showChimera}

    def _showChimera(self, param=None):
        from pwem.viewers.viewer_chimera import ChimeraView
        folder = self.protocol._getExtraPath()
        display = None
        if not os.path.isfile(os.path.join(folder, 'locally_filtered.mrc')):
            display = strip_format(self.protocol.half_maps.get().getHalfMaps().split(',')[0])
        script = self.protocol._getExtraPath('chimerax_local_resolution.py')
        chimerax_script(folder, script, display, self.highResA.get(), self.lowResA.get(),
                        COLOR_CHOICES[self.colorMap.get()])
        return [ChimeraView(script)]
