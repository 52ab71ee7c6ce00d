#!/usr/bin/env python3
"""Runs a tutorial's shell commands exactly as its page shows them, and checks its figures.

    run_tutorial.py BUILD_DIR tutorials/NN_name [--work DIR [--fresh]] [--update-figures]

The ```sh blocks of tutorials/NN_name/README.md are taken verbatim, in page order, into one bash
script (set -euo pipefail; a line naming each block is printed before it) and run in a new, empty
folder with BUILD_DIR/protocols and BUILD_DIR/viewers first on PATH, as the page's set-up block
puts them. Other fenced blocks (```bash set-up, ```text output) are not run.

Then every figure the page shows (![...](figures/NAME.png)):
  - must be in the tutorial's own figures/ folder (the page's copy, committed with it);
  - unless its name starts with scipion_ (screenshots of Scipion's forms, taken by
    scipion_plugin/tests/scipion/test_scipion_tutorials.py), must have been written again by the
    commands into figures/ of the run folder, and be a PNG that is not blank: at least 2% of its
    pixels differ from its most common colour, and it has at least 8 distinct colours.
--update-figures copies the regenerated figures into the tutorial's figures/ folder. --fresh empties
--work first when it holds an earlier run of this script (its tutorial_commands.sh), never otherwise.

Exit code 0 when all of this holds; 1 otherwise, naming what failed; 77 (skipped) when the build has
no viewers (Tessera built without Qt 6). Prints when each block starts, the
whole run's wall time and its CPU time over 2 (the page promises at most 10 minutes on 2 cores;
on a shared machine the wall time is longer).
"""
import argparse
import collections
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

BLOCK = re.compile(r'^```sh[ \t]*\n(.*?)^```[ \t]*$', re.S | re.M)
FIGURE = re.compile(r'!\[[^\]]*\]\((figures/[^)\s]+\.png)\)')


def sh_blocks(markdown):
    return [m.group(1) for m in BLOCK.finditer(markdown)]


def figures(markdown):
    return list(dict.fromkeys(FIGURE.findall(markdown)))


def read_png(path):
    """(width, height, rows of pixel tuples) of an 8-bit, non-interlaced PNG (what Qt and Tk write)."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat, header = 8, b'', None
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            header = struct.unpack('>IIBBBBB', chunk)
        elif kind == b'IDAT':
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError('unsupported PNG (depth %d, colour type %d, interlace %d)' % (depth, colour, interlace))
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 255
        rows.append(bytes(line))
        previous = line
    pixels = [row[x:x + channels] for row in rows for x in range(0, stride, channels)]
    return width, height, pixels


def blank_reason(path):
    """Why the PNG at path counts as blank, or None when it is not."""
    try:
        width, height, pixels = read_png(path)
    except (OSError, ValueError, zlib.error) as e:
        return 'unreadable: %s' % e
    counts = collections.Counter(pixels)
    common = counts.most_common(1)[0][1]
    other = 1 - common / len(pixels)
    if other < 0.02 or len(counts) < 8:
        return '%dx%d, %.2f%% of pixels differ from the most common colour, %d colours' % (
            width, height, 100 * other, len(counts))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build')
    ap.add_argument('tutorial')
    ap.add_argument('--work', help='run folder (must be new or empty; default: a new temporary folder)')
    ap.add_argument('--fresh', action='store_true', help='empty --work first if it holds an earlier run')
    ap.add_argument('--update-figures', action='store_true')
    args = ap.parse_args()

    build, tutorial = os.path.abspath(args.build), os.path.abspath(args.tutorial)
    if not os.path.exists(os.path.join(build, 'viewers', 'tessera_view_fsc')):
        print('SKIPPED: %s/viewers has no viewers (Tessera built without Qt 6): the figures cannot be made' % build)
        return 77
    if args.work and args.fresh and os.path.exists(os.path.join(args.work, 'tutorial_commands.sh')):
        shutil.rmtree(args.work)
    with open(os.path.join(tutorial, 'README.md')) as f:
        page = f.read()
    blocks, shown = sh_blocks(page), figures(page)
    if not blocks:
        print('FAIL: %s/README.md has no ```sh block' % tutorial)
        return 1
    work = args.work or tempfile.mkdtemp(prefix='tessera_%s_' % os.path.basename(tutorial))
    os.makedirs(work, exist_ok=True)
    if os.listdir(work):
        print('FAIL: %s is not empty' % work)
        return 1

    script = ['set -euo pipefail']
    for i, block in enumerate(blocks, 1):
        script.append('echo "== block %d/%d, after $SECONDS s"' % (i, len(blocks)))
        script.append(block.rstrip('\n'))
    script.append('echo "== all blocks done after $SECONDS s"')
    with open(os.path.join(work, 'tutorial_commands.sh'), 'w') as f:
        f.write('\n'.join(script) + '\n')
    env = dict(os.environ)
    env['PATH'] = os.pathsep.join([os.path.join(build, 'protocols'), os.path.join(build, 'viewers'),
                                   env.get('PATH', '')])
    print('running %d sh blocks of %s in %s' % (len(blocks), tutorial, work), flush=True)
    start = time.time()
    rc = subprocess.call(['bash', 'tutorial_commands.sh'], cwd=work, env=env)
    elapsed = time.time() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    # On a shared machine the wall time says little; the CPU time over 2 says what an idle 2-core one takes.
    print('commands: exit code %d after %.0f s wall (%.1f min); %.0f CPU-s, %.1f min on 2 idle cores' % (
        rc, elapsed, elapsed / 60, cpu, cpu / 120), flush=True)

    failures = [] if rc == 0 else ['the commands exited with %d' % rc]
    for fig in shown:
        committed = os.path.join(tutorial, fig)
        made = os.path.join(work, fig)
        if os.path.basename(fig).startswith('scipion_'):
            if not os.path.exists(committed):
                failures.append('%s: shown on the page but not in the tutorial folder' % fig)
            continue
        if not os.path.exists(made):
            failures.append('%s: shown on the page but the commands did not write it' % fig)
            continue
        reason = blank_reason(made)
        if reason:
            failures.append('%s is blank: %s' % (fig, reason))
            continue
        print('figure %s: not blank' % fig)
        if args.update_figures:
            os.makedirs(os.path.dirname(committed), exist_ok=True)
            shutil.copyfile(made, committed)
        elif not os.path.exists(committed):
            failures.append('%s: shown on the page but not in the tutorial folder (--update-figures)' % fig)
    for failure in failures:
        print('FAIL:', failure)
    if not failures:
        print('PASS: %d blocks, %d figures, %.1f min' % (len(blocks), len(shown), elapsed / 60))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
