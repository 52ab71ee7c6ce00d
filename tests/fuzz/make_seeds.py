#!/usr/bin/env python3
"""Writes the fuzz seed corpora (tests/fuzz/seeds/<harness>/): small files in the
layouts real programs write, one per case the readers distinguish. The real files
in ../shared/data may not be copied into the repository; scripts/fuzz.sh adds the
small ones to its working corpus when that folder is present.

    python3 tests/fuzz/make_seeds.py      # rewrites every seed (deterministic)
"""
import json
import math
import sqlite3
import struct
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"


def mrc(nx, ny, nz, mode, data, big=False, stamp=True, ispg=0, mz=1, nsymbt=0, exttyp=b"\0\0\0\0",
        labels=(), map_word=b"MAP ", voxel=1.5):
    e = ">" if big else "<"
    h = bytearray(1024)
    struct.pack_into(e + "4i", h, 0, nx, ny, nz, mode)
    struct.pack_into(e + "3i", h, 28, nx, ny, mz)
    struct.pack_into(e + "6f", h, 40, nx * voxel, ny * voxel, mz * voxel, 90, 90, 90)
    struct.pack_into(e + "3i", h, 64, 1, 2, 3)
    struct.pack_into(e + "2i", h, 88, ispg, nsymbt)
    h[104:108] = exttyp
    struct.pack_into(e + "i", h, 108, 20140)
    struct.pack_into(e + "3f", h, 196, 0.5, -1.0, 2.0)
    h[208:212] = map_word
    if stamp:
        h[212:214] = b"\x11\x11" if big else b"\x44\x44"
    struct.pack_into(e + "i", h, 220, len(labels))
    for i, text in enumerate(labels):
        h[224 + 80 * i:224 + 80 * i + len(text)] = text.encode()
    fmt = {0: "b", 1: "h", 2: "f", 6: "H", 12: "e"}[mode]
    return bytes(h) + bytes(nsymbt) + struct.pack(e + fmt * len(data), *data)


def write_mrc_seeds(d):
    ramp = lambda n, f: [f(i) for i in range(n)]
    files = {
        "volume_mode2.mrc": mrc(4, 4, 4, 2, ramp(64, lambda i: i * 0.25 - 3), ispg=1, mz=4,
                                labels=["Tessera MRC2014 writer"]),
        "stack_mode2.mrcs": mrc(4, 3, 3, 2, ramp(36, lambda i: math.sin(i))),
        "image_mode0.mrc": mrc(4, 4, 1, 0, ramp(16, lambda i: (i * 37) % 256 - 128)),
        "volume_mode1_big_endian.mrc": mrc(3, 3, 2, 1, ramp(18, lambda i: i * 1000 - 9000), big=True, ispg=1, mz=2),
        "stack_mode6_big_endian_no_stamp.mrcs": mrc(2, 2, 3, 6, ramp(12, lambda i: i * 5000), big=True, stamp=False),
        "volume_mode12.mrc": mrc(4, 2, 2, 12, [0.0, -0.0, 1.0, -2.5, 65504.0, 6e-8, float("inf"), float("nan")] * 2,
                                 ispg=1, mz=2),
        "image_extended_header.mrc": mrc(2, 2, 1, 2, [1, 2, 3, 4], nsymbt=64, exttyp=b"FEI1",
                                         labels=["first label", "second label"]),
        "volume_pre2014_map_field.map": mrc(2, 2, 2, 2, ramp(8, float), ispg=1, mz=2, map_word=b"\0\0\0\0",
                                            stamp=False),
        # 10^12 voxels declared in a 1 KB file: refused before anything is allocated.
        "huge_header_no_data.mrc": mrc(10000, 10000, 10000, 2, [], ispg=1, mz=10000),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)


STAR_31 = """
# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnAmplitudeContrast #3
_rlnSphericalAberration #4
_rlnVoltage #5
_rlnImagePixelSize #6
_rlnImageSize #7
_rlnImageDimensionality #8
_rlnBeamTiltX #9
           1 opticsGroup1     0.100000     2.700000   300.000000     3.000000           64            2  0.1
           2 opticsGroup2     0.070000     0.010000   200.000000     1.400000          128            2 -0.2


# version 30001

data_particles

loop_
_rlnMicrographName #1
_rlnAngleRot #2
_rlnAngleTilt #3
_rlnAnglePsi #4
_rlnOriginXAngst #5
_rlnOriginYAngst #6
_rlnDefocusU #7
_rlnDefocusV #8
_rlnDefocusAngle #9
_rlnPhaseShift #10
_rlnCtfBfactor #11
_rlnOpticsGroup #12
_rlnImageName #13
_rlnRandomSubset #14
_rlnCtfScalefactor #15
_rlnCoordinateX #16
mic001.mrc    -74.75501   151.743895    -49.54711     2.114738     4.146488 22252.300000 21699.150000   177.180000     0.000000     0.000000            1 000001@Particles/particles.mrcs            2  1.0 3277.0
mic001.mrc   159.484624    94.295508   161.462447     -2.53076     0.469238 22252.300000 21699.150000   177.180000     0.000000     0.000000            1 000002@Particles/particles.mrcs            1  0.9 983.0
mic002.mrc    -50.49862   135.297941    -18.39068     -7.85351     0.469238 14120.280000 13812.510000    40.200000    10.000000    50.000000            2 000003@Particles/particles.mrcs            2  1.1 12.5
"""

STAR_LEGACY = """
data_

loop_
_rlnVoltage #1
_rlnDefocusU #2
_rlnDefocusV #3
_rlnDefocusAngle #4
_rlnSphericalAberration #5
_rlnDetectorPixelSize #6
_rlnMagnification #7
_rlnAmplitudeContrast #8
_rlnImageName #9
_rlnMicrographName #10
_rlnOriginX #11
_rlnOriginY #12
_rlnAngleRot #13
_rlnAngleTilt #14
_rlnAnglePsi #15
_rlnClassNumber #16
  300.000000 33863.558594 34295.921875    36.070000     2.000000    14.000000 39548.000000     0.100000 000009@Particles/Micrographs/a_autopick.mrcs Micrographs/a.mrc     0.967665    -0.032335     0.000000     0.000000  -155.161676 70
  300.000000 33863.558594 34295.921875    36.070000     2.000000    14.000000 39548.000000     0.100000 000042@Particles/Micrographs/a_autopick.mrcs Micrographs/a.mrc     0.967665     1.967665     0.000000     0.000000   124.838324 70
  200.000000 20000.000000 20500.000000    10.000000     2.700000    14.000000 50000.000000     0.070000 000001@Particles/Micrographs/b_autopick.mrcs Micrographs/b.mrc     -1.5     2.0     10.0     20.0   30.0 3
"""

STAR_IMAGES_NO_POSE = """# a RELION 3.0 particle table without poses; origins become extra columns
data_images
loop_
_rlnImageName
_rlnImagePixelSize
_rlnVoltage
_rlnOriginX
_rlnOriginY
_rlnOpticsGroup
1@stack.mrcs 1.5 300 1.0 -2.0 1
stack.mrcs 1.5 300 0 0 1
"""

STAR_PAIRS_QUOTES = ("# key-value blocks, quoted values, comments and CRLF line ends\r\n"
                     "data_general\r\n"
                     "_rlnReferenceDimensionality 3\r\n"
                     "_rlnTitle \"a quoted value\" # comment\r\n"
                     "_rlnOther 'it''s' \r\n"
                     "\r\n"
                     "data_optics\r\n"
                     "loop_\r\n"
                     "_rlnOpticsGroup\r\n"
                     "_rlnImagePixelSize\r\n"
                     "1 2.0\r\n"
                     "data_particles\r\n"
                     "loop_\r\n"
                     "_rlnImageName\r\n"
                     "_rlnMicrographName\r\n"
                     "000001@\"s.mrcs\" \"mic with spaces.mrc\"\r\n"
                     "2@s.mrcs \"\"\r\n"
                     "data_empty\r\n"
                     "loop_\r\n"
                     "_rlnNothing\r\n")


def write_star_seeds(d):
    for name, text in {"relion31.star": STAR_31, "relion30_data_.star": STAR_LEGACY,
                       "relion30_images_no_pose.star": STAR_IMAGES_NO_POSE,
                       "pairs_quotes_crlf.star": STAR_PAIRS_QUOTES}.items():
        (d / name).write_bytes(text.encode())


OPTICS_INFO = """data_optics

loop_
_rlnOpticsGroup 
_rlnOpticsGroupName 
_rlnAmplitudeContrast 
_rlnSphericalAberration 
_rlnVoltage 
_rlnImagePixelSize 
_rlnImageSize 
_rlnImageDimensionality 
 1   opticsGroup1   0.100000   2.700000   300.000000   3.000000   64   2 

"""

# (label_property, class_name, SQL type) in the order pwem writes a SetOfParticles.
FULL_CLASSES = [
    ("_index", "Integer", "INTEGER"), ("_filename", "String", "TEXT"), ("_samplingRate", "Float", "REAL"),
    ("_ctfModel", "CTFModel", "TEXT"), ("_ctfModel._defocusU", "Float", "REAL"),
    ("_ctfModel._defocusV", "Float", "REAL"), ("_ctfModel._defocusAngle", "Float", "REAL"),
    ("_ctfModel._defocusRatio", "Float", "REAL"), ("_ctfModel._phaseShift", "Float", "REAL"),
    ("_ctfModel._psdFile", "String", "TEXT"), ("_ctfModel._resolution", "Float", "REAL"),
    ("_ctfModel._fitQuality", "Float", "REAL"), ("_acquisition", "Acquisition", "TEXT"),
    ("_acquisition._voltage", "Float", "REAL"), ("_acquisition._sphericalAberration", "Float", "REAL"),
    ("_acquisition._amplitudeContrast", "Float", "REAL"), ("_acquisition.opticsGroupInfo", "String", "TEXT"),
    ("_transform", "Transform", "TEXT"), ("_transform._matrix", "Matrix", "TEXT"), ("_micId", "Integer", "INTEGER"),
    ("_classId", "Integer", "INTEGER"), ("_rlnCtfBfactor", "Float", "REAL"), ("_rlnRandomSubset", "Integer", "INTEGER"),
    ("_xmipp_zScore", "Float", "REAL"),
]
MATRIX = ("[[-0.8844389937516934, 0.44974631697272066, 0.1244825959761637, -0.0018296807989620014], "
          "[0.35131117660057476, 0.8172857565087954, -0.45675425493734084, 1.377265558972196], "
          "[-0.3071613965442459, -0.3602391463699061, -0.8808402998816924, -0.7144310583194149], "
          "[0.0, 0.0, 0.0, 1.0]]")
STACK = "Runs/000002_ProtImportParticles/extra/Particles/particles.mrcs"


def full_row(i):
    return [i, STACK, 3.0, None, 22252.3 + i, 21699.15, 177.18, 1.0255, 0.0, None, 0.0, 0.0, None, 300.0, 2.7, 0.1,
            OPTICS_INFO, None, MATRIX, 1, 1, 0.0, 1 + i % 2, -0.5 * i]


def sqlite_set(path, classes, rows, props, disabled=()):
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 512")
    db.execute("CREATE TABLE Properties (key TEXT UNIQUE, value TEXT DEFAULT NULL)")
    db.execute("CREATE TABLE Classes (id INTEGER PRIMARY KEY AUTOINCREMENT, label_property TEXT UNIQUE, "
               "column_name TEXT UNIQUE, class_name TEXT DEFAULT NULL)")
    cols = "".join(f",c{k + 1:02d} {t} DEFAULT NULL" for k, (_, _, t) in enumerate(classes))
    db.execute("CREATE TABLE Objects (id INTEGER PRIMARY KEY, enabled INTEGER DEFAULT 1, label TEXT DEFAULT NULL, "
               f"comment TEXT DEFAULT NULL, creation DATE{cols})")
    db.execute("INSERT INTO Classes (label_property, column_name, class_name) VALUES ('self', 'c00', 'Particle')")
    for k, (label, cls, _) in enumerate(classes):
        db.execute("INSERT INTO Classes (label_property, column_name, class_name) VALUES (?, ?, ?)",
                   (label, f"c{k + 1:02d}", cls))
    db.executemany("INSERT INTO Properties VALUES (?, ?)", props.items())
    insert = ("INSERT INTO Objects (id, enabled, creation" + "".join(f", c{k + 1:02d}" for k in range(len(classes)))
              + ") VALUES (" + ",".join("?" * (len(classes) + 3)) + ")")
    for i, row in enumerate(rows, start=1):
        db.execute(insert, [i, 0 if i in disabled else 1, "2026-11-21 18:05:02"] + row)
    db.commit()
    db.execute("VACUUM")
    db.close()


def write_scipion_seeds(d):
    common = {"self": "SetOfParticles", "_mapperPath": "Runs/000098_ProtSubSet/particles.sqlite, ",
              "_samplingRate": "3.0", "_isPhaseFlipped": "False", "_isAmplitudeCorrected": "False",
              "_acquisition._voltage": "300.0", "_acquisition._sphericalAberration": "2.7",
              "_acquisition._amplitudeContrast": "0.1", "_firstDim": "64,64,1"}
    sqlite_set(d / "projection_ctf_optics.sqlite", FULL_CLASSES, [full_row(i) for i in (1, 2, 3)],
               dict(common, _hasCtf="True", _alignment="Projection",
                    **{"_acquisition.opticsGroupInfo": OPTICS_INFO}), disabled=(2,))
    minimal = [("_index", "Integer", "INTEGER"), ("_filename", "String", "TEXT"),
               ("_rlnOpticsGroup", "Integer", "INTEGER"), ("_coordinate._micName", "String", "TEXT"),
               ("_transform._matrix", "Matrix", "TEXT")]
    sqlite_set(d / "no_ctf_2d.sqlite", minimal,
               [[1, "/abs/stack.mrcs", 1, "mic1.mrc", MATRIX], [2, "/abs/stack.mrcs", None, None, None]],
               dict(common, _mapperPath="", _hasCtf="False", _alignment="2D", _firstDim=""))


def npy(descr, rows, version=1):
    """A .npy file: the header dict for `descr` (numpy's descr text) and `rows` packed bytes."""
    header = "{'descr': %s, 'fortran_order': False, 'shape': (%d,), }" % (descr, len(rows))
    preamble = 10 if version == 1 else 12
    header += " " * ((64 - (preamble + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode() + b"".join(rows)


CS_DESCR = ("[('uid', '<u8'), ('blob/path', '|S20'), ('blob/idx', '<u4'), ('blob/shape', '<u4', (2,)), "
            "('blob/psize_A', '<f4'), ('blob/sign', '<f4'), ('ctf/type', '|S6'), ('ctf/exp_group_id', '<u4'), "
            "('ctf/accel_kv', '<f4'), ('ctf/cs_mm', '<f4'), ('ctf/amp_contrast', '<f4'), ('ctf/df1_A', '<f4'), "
            "('ctf/df2_A', '<f4'), ('ctf/df_angle_rad', '<f4'), ('ctf/phase_shift_rad', '<f4'), "
            "('ctf/scale', '<f4'), ('ctf/bfactor', '<f4'), ('ctf/tilt_A', '<f4', (2,)), "
            "('alignments3D/split', '<u4'), ('alignments3D/shift', '<f4', (2,)), "
            "('alignments3D/pose', '<f4', (3,)), ('alignments3D/psize_A', '<f4'), ('alignments3D/class', '<u4'), "
            "('location/micrograph_path', '|S8'), ('location/center_x_frac', '<f4')]")


def cs_row(i):
    return (struct.pack("<Q", 10**18 + i) + b">J2/stack.mrcs".ljust(20, b"\0") +
            struct.pack("<3I2f", i, 64, 64, 3.0, -1.0) + b"spline" +
            struct.pack("<I8f", i % 2, 300, 2.7, 0.1, 22252.3 + i, 21699.15, 3.09, 0.0, 1.0) +
            struct.pack("<3fI2f3ffI", -10.0, 0.5, -0.25, i % 2, 1.5, -2.0, 0.1 * i, -0.2, 2.9, 3.0, i % 3) +
            b"mic1.mrc" + struct.pack("<f", 0.25))


def write_cs_seeds(d):
    (d / "particles_refined.cs").write_bytes(npy(CS_DESCR, [cs_row(i) for i in range(3)]))
    (d / "blob_only.cs").write_bytes(npy("[('blob/path', '|S6'), ('blob/idx', '<u4'), ('blob/psize_A', '<f4')]",
                                         [b"s.mrcs" + struct.pack("<If", 0, 1.5)]))
    # Version 2.0 header, a unicode path, padding, a signed and a float64 field.
    (d / "v2_unicode_padding.cs").write_bytes(npy(
        "[('blob/path', '<U3'), ('', '|V2'), ('blob/idx', '<i8'), ('blob/psize_A', '<f8'), ('x/y', '|i1')]",
        ["a.m".encode("utf-32-le") + b"\0\0" + struct.pack("<qdb", 4, 0.85, -3)], version=2))
    (d / "empty.cs").write_bytes(npy("[('blob/path', '|S1'), ('blob/idx', '<u4'), ('blob/psize_A', '<f4')]", []))


PARAMS = {
    "all_options.json": {"particles": "/dev/null", "out": "run1", "max_res_A": 4.5, "box_px": 128,
                         "use_scale": True, "scale_limit": 0.2, "mask_mode": "threshold", "mask_threshold": 0.02,
                         "symmetry": "C2", "iterations": 5, "threads": 2, "gpu": "0, 1", "seed": 7,
                         "continue": False, "overwrite": False, "verbose": True, "quiet": False},
    "mask_file.json": {"particles": "/dev/null", "mask": "/dev/null", "mask_mode": "file", "out": "run2",
                       "iterations": 3.0, "box_px": None},
    "minimal.json": {"particles": "/dev/null", "out": "out"},
    "ignored_by_condition.json": {"particles": "/dev/null", "out": "o", "scale_limit": 1, "mask": "/dev/null"},
}


def write_params_seeds(d):
    for name, value in PARAMS.items():
        (d / name).write_text(json.dumps(value, indent=1) + "\n")


if __name__ == "__main__":
    for harness, write in {"fuzz_mrc": write_mrc_seeds, "fuzz_star": write_star_seeds,
                           "fuzz_scipion_set": write_scipion_seeds, "fuzz_params": write_params_seeds,
                           "fuzz_cs": write_cs_seeds}.items():
        folder = SEEDS / harness
        folder.mkdir(parents=True, exist_ok=True)
        write(folder)
