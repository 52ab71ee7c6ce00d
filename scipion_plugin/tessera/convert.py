"""Scipion objects <-> the files Tessera's programs read and write.

Inputs. A SetOfParticles is passed as its own sqlite file: the programs read Scipion sets directly
(engine/io/include/tessera/scipion_set.hpp, checked against sets written by pwem), so nothing is
converted or copied: the item ids, the CTF, the Projection matrices and the RELION extras arrive
as Scipion stored them, and the ids come back in the program's output set, which is how its
results are matched to the input items. (Writing a STAR instead would need the RELION plugin's
converter, which refuses 3D alignments, and a copy of every row per run.) Volumes and masks are
passed as their MRC files; a file in another format is converted to MRC, and an MRC whose header
disagrees with the Scipion sampling rate is copied with the header fixed, since the programs take
the voxel size from the header.

Outputs: tessera_bridge.outputs reads the run folder; here its rows become Scipion objects.
"""
import os

import numpy as np
from pwem.objects import FSC, SetOfParticles, Transform, Volume, VolumeMask
from pyworkflow.object import Boolean, Float, Integer, String

from tessera_bridge import outputs as toutputs

MRC_EXTENSIONS = ('.mrc', '.mrcs', '.map', '.st')
SAMPLING_TOLERANCE = 1e-3  # relative, as the programs' check_same_grid
SCALARS = {'Integer': Integer, 'Float': Float, 'String': String, 'Boolean': Boolean}


def strip_format(filename):
    """Scipion's 'map.mrc:mrc' notation -> 'map.mrc'."""
    for suffix in (':mrcs', ':mrc'):
        if filename.endswith(suffix):
            return filename[:-len(suffix)]
    return filename


def is_mrc(filename):
    return os.path.splitext(strip_format(filename))[1].lower() in MRC_EXTENSIONS


def volume_file(volume, tmp_dir, name):
    """An MRC file with the volume and the Scipion sampling rate in its header."""
    src = strip_format(volume.getFileName())
    if not is_mrc(src):
        from pwem.emlib.image import ImageHandler
        converted = os.path.join(tmp_dir, name + '.mrc')
        ImageHandler().convert(volume, converted)
        src = converted
    sampling = volume.getSamplingRate()
    if sampling and abs(toutputs.mrc_voxel_size(src) - sampling) > SAMPLING_TOLERANCE * sampling:
        fixed = os.path.join(tmp_dir, name + '_header.mrc')
        toutputs.write_mrc_with_voxel_size(src, fixed, sampling)
        src = fixed
    return src


def half_map_files(volume, tmp_dir, name):
    """The two half maps of a Volume, as MRC files (see volume_file)."""
    halves = volume.getHalfMaps().split(',') if volume.hasHalfMaps() else []
    if len(halves) != 2:
        raise ValueError('%s has %d half maps, two are needed' % (volume.getFileName(), len(halves)))
    files = []
    for i, half in enumerate(halves):
        vol = Volume(location=strip_format(half.strip()))
        vol.setSamplingRate(volume.getSamplingRate())
        files.append(volume_file(vol, tmp_dir, '%s_half%d' % (name, i + 1)))
    return tuple(files)


def classes_file(classes, tmp_dir, name):
    """A SetOfClasses2D/3D as a particle set sqlite whose items carry their class's id (_classId),
    which the programs read as rlnClassNumber; the items keep their ids, CTFs and transforms."""
    path = os.path.join(tmp_dir, name + '.sqlite')
    if os.path.exists(path):
        os.remove(path)
    out = SetOfParticles(filename=path)
    out.copyInfo(classes.getImages())
    for cls in classes.iterItems():
        for particle in cls.iterItems():
            particle.setClassId(cls.getObjId())
            out.append(particle)
    out.write()
    out.close()
    return path


def ctfs_file(ctfs, tmp_dir, name):
    """A SetOfCTF as a RELION micrograph STAR (data_optics + data_micrographs: rlnMicrographName,
    rlnDefocusU/V/Angle, rlnPhaseShift, rlnCtfMaxResolution, rlnCtfFigureOfMerit), with the
    micrographs' pixel size and acquisition as its one optics group."""
    mics = ctfs.getMicrographs()
    acq = mics.getAcquisition()
    rows = []
    for ctf in ctfs.iterItems():
        mic = ctf.getMicrograph()
        phase = ctf.getPhaseShift() if ctf.hasPhaseShift() else 0.0
        resolution = ctf.getResolution() if ctf.getResolution() is not None else 999.0
        fit = ctf.getFitQuality() if ctf.getFitQuality() is not None else 0.0
        rows.append('%s 1 %r %r %r %r %r %r' % (_star_value(mic.getFileName()), ctf.getDefocusU(),
                                                 ctf.getDefocusV(), ctf.getDefocusAngle(), phase,
                                                 resolution, fit))
    path = os.path.join(tmp_dir, name + '.star')
    with open(path, 'w') as f:
        f.write('# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n'
                '_rlnMicrographPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n'
                '_rlnAmplitudeContrast #6\n1 opticsGroup1 %r %r %r %r\n\n' % (
                    mics.getSamplingRate(), acq.getVoltage(), acq.getSphericalAberration(),
                    acq.getAmplitudeContrast()))
        f.write('# version 30001\n\ndata_micrographs\n\nloop_\n_rlnMicrographName #1\n_rlnOpticsGroup #2\n'
                '_rlnDefocusU #3\n_rlnDefocusV #4\n_rlnDefocusAngle #5\n_rlnPhaseShift #6\n'
                '_rlnCtfMaxResolution #7\n_rlnCtfFigureOfMerit #8\n')
        f.write('\n'.join(rows) + '\n')
    return path


def star_column(path, block, label):
    """The values of one column of a loop block of a STAR file (plain text: the programs write
    simple loops, one row per line, values quoted with double quotes when they hold blanks)."""
    import shlex
    values, labels, inside = [], [], False
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s.startswith('data_'):
                inside, labels = s == 'data_' + block, []
                continue
            if not inside or not s or s.startswith('#') or s == 'loop_':
                continue
            if s.startswith('_'):
                labels.append(s.split()[0][1:])
            elif label in labels:
                values.append(shlex.split(s)[labels.index(label)])
    return values


def _star_value(text):
    return '"%s"' % text if (not text or any(c.isspace() for c in text)) else text


def input_file(obj, kind, tmp_dir, name):
    """The file a program reads for a pointer input of the given schema kind (particles, volume,
    mask, classes, ctfs)."""
    if kind == 'particles' or (kind == 'ctfs' and isinstance(obj, SetOfParticles)):
        return obj.getFileName()
    if kind == 'classes':
        return classes_file(obj, tmp_dir, name)
    if kind == 'ctfs':
        return ctfs_file(obj, tmp_dir, name)
    return volume_file(obj, tmp_dir, name)


def project_path(path):
    """A path as Scipion stores it: relative to the project folder (the current folder while a
    protocol runs) when inside it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def make_volume(planned, cls=Volume, sampling=None):
    vol = cls()
    vol.setFileName(project_path(planned.path))
    vol.setSamplingRate(sampling or toutputs.mrc_voxel_size(planned.path))
    if planned.half_maps:
        vol.setHalfMaps([project_path(h) for h in planned.half_maps])
    return vol


def make_mask(planned, sampling=None):
    return make_volume(planned, VolumeMask, sampling)


def make_fscs(planned):
    """The main FSC curve and every curve (label = curve name) of an FSC JSON."""
    data = toutputs.read_fsc(planned.path)
    fscs = {}
    for name, values in data.curves.items():
        fsc = FSC(objLabel=name)
        fsc.setData(data.frequencies, values)
        fscs[name] = fsc
    return fscs[data.main], list(fscs.values())


def same_images(table, input_set):
    """True when the program's particles are the input images (poses changed, not pixels)."""
    first = input_set.getFirstItem()
    row = table.rows[0] if table.rows else None
    return row is not None and os.path.abspath(strip_format(first.getFileName())) == row.filename


def _apply_row(particle, row, extra_classes):
    particle.setLocation(row.index, project_path(row.filename))
    if row.matrix is not None:
        particle.setTransform(Transform(np.array(row.matrix, dtype=float)))
    for label, value in row.extras.items():
        setattr(particle, label, SCALARS.get(extra_classes[label], String)(value))


def fill_particles(out_set, table, input_set=None):
    """Fills out_set with the program's particles. With an input set, each output row updates a
    copy of the input item with the same id (so every Scipion attribute of the input is kept);
    without one (or when the ids do not match), the program's own set is copied."""
    by_id = {row.id: row for row in table.rows}
    if input_set is not None and set(by_id) <= set(input_set.getIdSet()):
        out_set.copyInfo(input_set)
        for particle in input_set.iterItems(orderBy='id'):
            row = by_id.get(particle.getObjId())
            if row is not None:
                _apply_row(particle, row, table.extra_classes)
                out_set.append(particle)
    else:
        own = SetOfParticles(filename=table.path)
        out_set.copyInfo(own)
        for particle in own.iterItems(orderBy='id'):
            _apply_row(particle, by_id[particle.getObjId()], table.extra_classes)
            out_set.append(particle)
        own.close()
    if table.alignment == 'Projection':
        out_set.setAlignmentProj()
    out_set.setSamplingRate(table.sampling_rate or out_set.getSamplingRate())
    return out_set
