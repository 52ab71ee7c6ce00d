"""A finished Tessera run folder read into plain data for the Scipion plugin.

- ``read_manifest``: ``outputs.json`` (docs/schema.md), of the ``manifest_version`` this plugin
  reads. The names of the run folder's files and their keys come from their declaration
  (``run_files``, protocols/common/run_files.json).
- ``output_attributes`` / ``plan_outputs``: which Scipion object each declared output becomes,
  under which protocol attribute name (fixed by the schema, so ``_possibleOutputs`` is known
  before a run): volumes -> Volume (the program's ``volume`` carries the ``half_map`` outputs),
  masks -> VolumeMask, the Scipion particle set -> SetOfParticles, the FSC JSON -> FSC (the main
  curve) and SetOfFSCs (every curve); STAR copies and tables are for RELION users and viewers.
- ``read_particle_rows``: the program's ``particles.sqlite`` (item id, image, pose matrix, RELION
  extras) through the sqlite3 module, resolving image paths as the C++ writer stores them.
- ``read_fsc``: the FSC JSON as frequencies (1/Å) and curves.
- ``mrc_box`` / ``mrc_voxel_size`` / ``write_mrc_with_voxel_size``: the MRC header's box and voxel size.
"""
import json
import os
import sqlite3
import struct
from dataclasses import dataclass, field
from typing import Optional

from . import run_files
from .schema import UNIT_SYMBOLS, camel

MAIN_VOLUME = 'volume'
# The FSC that gives a run's resolution, in order.
MAIN_FSC_CURVES = (run_files.fsc.curve.corrected, run_files.fsc.curve.gold_standard)


class OutputError(RuntimeError):
    """A run folder without the outputs the plugin needs; the message names the file."""


@dataclass
class OutputFile:
    name: str
    kind: str
    path: str  # absolute
    extra: dict = field(default_factory=dict)


@dataclass
class Manifest:
    program: str
    version: str
    status: str
    parameters: dict
    outputs: list
    error: Optional[str] = None
    exit_code: Optional[int] = None
    wall_s: Optional[float] = None

    def output(self, name):
        return next((o for o in self.outputs if o.name == name), None)


def read_manifest(folder):
    path = os.path.join(folder, run_files.MANIFEST)
    key, out_key = run_files.manifest.key, run_files.manifest.output_key
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise OutputError('%s: cannot read the run manifest (%s)' % (path, e))
    if doc.get(key.manifest_version) != run_files.manifest.version:
        raise OutputError('%s: %s is %r, this plugin reads %d' % (
            path, key.manifest_version, doc.get(key.manifest_version), run_files.manifest.version))
    outputs = []
    for o in doc.get(key.outputs, []):
        extra = {k: v for k, v in o.items() if k not in out_key}
        outputs.append(OutputFile(o[out_key.name], o[out_key.type],
                                  os.path.join(os.path.abspath(folder), o[out_key.path]), extra))
    return Manifest(doc[key.program], doc[key.version], doc[key.status], doc.get(key.parameters, {}), outputs,
                    doc.get(key.error), doc.get(key.exit_code), doc.get(key.wall_s))


def describe_extra(extra):
    """An output's extra manifest values for people: {'resolution_A': 6.0} -> 'resolution 6 Å'."""
    parts = []
    for key, value in extra.items():
        words, unit = key.split('_'), ''
        if len(words) > 1 and words[-1] in UNIT_SYMBOLS:
            unit = ' ' + UNIT_SYMBOLS[words.pop()]
        text = ('%.4g' % value) if isinstance(value, float) else ('none' if value is None else str(value))
        parts.append('%s %s%s' % (' '.join(words), text, unit if value is not None else ''))
    return ', '.join(parts)


@dataclass
class PlannedOutput:
    """One Scipion output: `attribute` on the protocol, of Scipion class `scipion_class`."""
    attribute: str
    scipion_class: str
    name: str  # the schema output it comes from
    path: Optional[str] = None
    half_maps: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _main_volume(schema):
    volumes = [o['name'] for o in schema['outputs'] if o['kind'] == 'volume']
    return MAIN_VOLUME if MAIN_VOLUME in volumes else (volumes[0] if volumes else None)


def output_attributes(schema):
    """Schema output name -> (attribute, Scipion class) for every output registered in Scipion;
    an FSC JSON gives two: (outputFSC, FSC) under its name and (outputFSCs, SetOfFSCs) under
    name + '@all'."""
    attrs = {}
    particle_outputs = [o for o in schema['outputs'] if o['kind'] == 'particles_sqlite']
    for o in schema['outputs']:
        name, kind = o['name'], o['kind']
        if kind == 'volume':
            attrs[name] = ('output' + camel(name), 'Volume')
        elif kind == 'mask':
            attrs[name] = ('output' + camel(name), 'VolumeMask')
        elif kind == 'particles_sqlite':
            stem = name[:-len('_sqlite')] if name.endswith('_sqlite') else name
            attrs[name] = ('outputParticles' if len(particle_outputs) == 1 else 'output' + camel(stem),
                           'SetOfParticles')
        elif kind == 'fsc_json':
            stem = name[:-len('_json')] if name.endswith('_json') else name
            base = 'output' + camel(stem).replace('Fsc', 'FSC')
            attrs[name] = (base, 'FSC')
            attrs[name + '@all'] = (base + 's', 'SetOfFSCs')
    return attrs


def plan_outputs(schema, manifest):
    """The Scipion outputs of a finished run, in schema order; half maps go with the main volume."""
    if manifest.status != run_files.manifest.status.done:
        raise OutputError('%s did not finish: status %s, %s' % (manifest.program, manifest.status,
                                                                 manifest.error or 'no error recorded'))
    attrs = output_attributes(schema)
    main = _main_volume(schema)
    halves = [manifest.output(o['name']).path for o in schema['outputs']
              if o['kind'] == 'half_map' and manifest.output(o['name'])]
    plan = []
    for o in schema['outputs']:
        done = manifest.output(o['name'])
        if o['name'] not in attrs or done is None:
            continue
        attribute, cls = attrs[o['name']]
        plan.append(PlannedOutput(attribute, cls, o['name'], done.path,
                                  halves if o['name'] == main else [], done.extra))
        if o['kind'] == 'fsc_json':
            attribute, cls = attrs[o['name'] + '@all']
            plan.append(PlannedOutput(attribute, cls, o['name'], done.path, [], done.extra))
    return plan


@dataclass
class ParticleRow:
    id: int
    index: int
    filename: str  # absolute
    matrix: Optional[list]  # 4x4 rows, Scipion's projection matrix, when the set has poses
    extras: dict  # RELION extras ('_rlnRandomSubset' -> 2) with their Scipion class names


@dataclass
class ParticleTable:
    path: str
    alignment: str
    sampling_rate: float
    rows: list
    extra_classes: dict  # '_rlnRandomSubset' -> 'Integer'


def _project_root(sqlite_path, props):
    """The folder image paths are relative to: the file's path minus its _mapperPath."""
    mapper = props.get('_mapperPath', '').split(', ')[0]
    full = os.path.abspath(sqlite_path)
    if mapper and full.endswith(os.sep + mapper.replace('/', os.sep)):
        return full[:-len(mapper) - 1]
    return os.path.dirname(full)


def read_particle_rows(sqlite_path):
    """The enabled items of a SetOfParticles sqlite (the layout of docs and engine scipion_set.hpp)."""
    if not os.path.isfile(sqlite_path):
        raise OutputError('%s: no such particle set' % sqlite_path)
    con = sqlite3.connect('file:%s?mode=ro' % os.path.abspath(sqlite_path), uri=True)
    try:
        props = dict(con.execute('SELECT key, value FROM Properties'))
        classes = {label: (col, cls) for label, col, cls in
                   con.execute('SELECT label_property, column_name, class_name FROM Classes')}
        for need in ('_index', '_filename'):
            if need not in classes:
                raise OutputError('%s: no %s column' % (sqlite_path, need))
        extras = {label: cls for label, (col, cls) in classes.items()
                  if label.startswith('_rln') and '.' not in label}
        cols = ['id', classes['_index'][0], classes['_filename'][0]]
        has_matrix = '_transform._matrix' in classes
        cols += [classes['_transform._matrix'][0]] if has_matrix else []
        cols += [classes[label][0] for label in extras]
        query = 'SELECT %s FROM Objects WHERE enabled = 1 ORDER BY id' % ', '.join(cols)
        root = _project_root(sqlite_path, props)
        rows = []
        for r in con.execute(query):
            matrix = json.loads(r[3]) if has_matrix and r[3] else None
            values = r[4:] if has_matrix else r[3:]
            rows.append(ParticleRow(r[0], r[1], os.path.normpath(os.path.join(root, r[2])), matrix,
                                    {k: v for k, v in zip(extras, values) if v is not None}))
    finally:
        con.close()
    return ParticleTable(os.path.abspath(sqlite_path), props.get('_alignment', 'None'), float(props.get('_samplingRate') or 0), rows, extras)


@dataclass
class FscData:
    frequencies: list  # 1/Å per shell, 0 for shell 0
    curves: dict  # name -> values per shell
    main: str
    resolution_A: dict  # '<curve>@<threshold>' ('corrected@0.143') -> Å or None


def read_fsc(path):
    """The FSC JSON written by save_fsc (protocols/common/io.hpp) or tessera_validate_fsc."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise OutputError('%s: cannot read the FSC (%s)' % (path, e))
    key, shell_A = run_files.fsc.key, run_files.fsc.shell_key.resolution_A
    freqs = [0.0 if s[shell_A] is None else 1.0 / s[shell_A] for s in doc[key.shells]]
    curves = {name: [float(v) for v in values] for name, values in doc[key.curves].items()
              if isinstance(values, list) and len(values) == len(freqs)}
    if not curves:
        raise OutputError('%s: no FSC curve over the %d shells' % (path, len(freqs)))
    main = next((c for c in MAIN_FSC_CURVES if c in curves), next(iter(curves)))
    return FscData(freqs, curves, main, doc.get(key.resolution_A, {}))


_CELLA = 40  # MRC2014 header: nx, ny, nz, mode, nxstart.., mx, my, mz (int32 x 10), then cella (3 x float32)


def _header(path):
    with open(path, 'rb') as f:
        head = f.read(1024)
    if len(head) < 1024:
        raise OutputError('%s: not an MRC file (header shorter than 1024 bytes)' % path)
    order = '>' if head[212] == 0x11 else '<'  # machine stamp: 0x11 big-endian, 0x44 little
    return head, order


def mrc_box(path):
    """The number of columns (x size) from the MRC header."""
    head, order = _header(path)
    return struct.unpack_from(order + 'i', head, 0)[0]


def mrc_voxel_size(path):
    """Voxel size (Å) from the MRC header: cella / mx along x (0 when the header gives none)."""
    head, order = _header(path)
    mx = struct.unpack_from(order + 'i', head, 28)[0]
    cella_x = struct.unpack_from(order + 'f', head, _CELLA)[0]
    return cella_x / mx if mx > 0 and cella_x > 0 else 0.0


def write_mrc_with_voxel_size(src, dst, voxel_A):
    """Copies the MRC `src` to `dst` with the header's cell set so the voxel size is voxel_A."""
    head, order = _header(src)
    mx, my, mz = struct.unpack_from(order + '3i', head, 28)
    patched = bytearray(head)
    struct.pack_into(order + '3f', patched, _CELLA, mx * voxel_A, my * voxel_A, mz * voxel_A)
    tmp = dst + '.tmp'
    with open(src, 'rb') as fin, open(tmp, 'wb') as fout:
        fin.seek(1024)
        fout.write(patched)
        while True:
            block = fin.read(1 << 22)
            if not block:
                break
            fout.write(block)
    os.replace(tmp, dst)
