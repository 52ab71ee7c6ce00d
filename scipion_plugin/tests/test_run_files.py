"""The names the plugin reads run folders by (tessera_bridge.run_files) against their one
declaration, protocols/common/run_files.json, from which the build also writes the programs' C++
header (tests/protocols/test_run_files.cpp checks that side).

Oracles: the declaration read here with the json module; the plugin's own sources (no module but
run_files spells a declared file name); copies of tessera_bridge whose declaration is missing, a
dangling link or broken, imported by a fresh Python; setuptools' build of the package, which must
hold the declaration itself, not the link.
"""
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import tessera_build as build
from tessera_bridge import outputs as O
from tessera_bridge import run_files as R

DECLARATION = os.path.join(build.REPO, 'protocols', 'common', 'run_files.json')
BRIDGE = os.path.join(build.PLUGIN_DIR, 'tessera_bridge')


def declared():
    with open(DECLARATION) as f:
        return json.load(f)['files']


def texts(group):
    """identifier -> the text in the file, as the declaration's 'about' says."""
    return {ident: entry['value'] if isinstance(entry, dict) else ident for ident, entry in group['names'].items()}


def import_bridge(folder):
    """Imports tessera_bridge.outputs from `folder` in a fresh Python; returns (exit code, stderr)."""
    done = subprocess.run([sys.executable, '-c', 'import tessera_bridge.outputs'], cwd=folder, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, PYTHONPATH=folder, PYTHONDONTWRITEBYTECODE='1'))
    return done.returncode, done.stderr


class TestRunFiles(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix='tessera_run_files_')

    def tearDown(self):
        shutil.rmtree(self.work)

    def bridge_copy(self, symlinks):
        """tessera_bridge copied out of the checkout: the link dangles (symlinks) or is left out."""
        dst = os.path.join(self.work, 'tessera_bridge')
        shutil.copytree(BRIDGE, dst, symlinks=symlinks, ignore=shutil.ignore_patterns(
            '__pycache__', *([] if symlinks else ['run_files.json'])))
        return dst

    def test_the_names_are_the_declaration(self):
        files = declared()
        self.assertEqual(list(R.FILES), list(files))
        for ident, decl in files.items():
            with self.subTest(file=ident):
                got = R.FILES[ident]
                self.assertEqual((got.id, got.name, got.version, got.description),
                                 (ident, decl['name'], decl['version'], decl['description']))
                self.assertEqual(list(got.groups), list(decl['groups']))
                for group, gdecl in decl['groups'].items():
                    names = getattr(got, group)
                    self.assertEqual(dict(names.items()), texts(gdecl), group)
                    self.assertEqual(list(names), list(texts(gdecl).values()), group)
                    self.assertEqual(names.description, gdecl['description'])
                    for name, text in texts(gdecl).items():
                        self.assertEqual(getattr(names, name), text)
        self.assertEqual([R.manifest, R.run_log, R.iterations, R.fsc, R.fsc_star],
                         [R.FILES[i] for i in ('manifest', 'run_log', 'iterations', 'fsc', 'fsc_star')])
        self.assertEqual((R.MANIFEST, R.RUN_LOG, R.ITERATIONS, R.FSC_JSON, R.FSC_STAR),
                         tuple(files[i]['name'] for i in ('manifest', 'run_log', 'iterations', 'fsc', 'fsc_star')))
        # Spot checks against the texts the programs write (docs/schema.md).
        self.assertEqual((R.MANIFEST, R.manifest.status.done, R.fsc.separator.threshold), ('outputs.json', 'done', '@'))
        self.assertEqual(R.fsc_star.curve_column.corrected, 'rlnFourierShellCorrelationCorrected')
        self.assertEqual(O.MAIN_FSC_CURVES, ('corrected', 'gold_standard'))

    def test_the_source_tree_links_the_declaration(self):
        link = os.path.join(BRIDGE, 'run_files.json')
        self.assertTrue(os.path.islink(link), '%s should be a link to %s' % (link, DECLARATION))
        self.assertEqual(os.readlink(link), '../../protocols/common/run_files.json')
        self.assertTrue(os.path.samefile(R.PATH, DECLARATION))

    def test_no_plugin_module_spells_a_file_name(self):
        names = [f['name'] for f in declared().values()]
        quoted = re.compile(r'''(['"])(%s)\1''' % '|'.join(re.escape(n) for n in names))
        sources = glob.glob(os.path.join(build.PLUGIN_DIR, 'tessera', '**', '*.py'), recursive=True)
        sources += glob.glob(os.path.join(BRIDGE, '*.py'))
        self.assertGreater(len(sources), 5)
        found = []
        for path in sources:
            if os.path.basename(path) == 'run_files.py':
                continue
            with open(path) as f:
                found += ['%s:%d: %s' % (os.path.relpath(path, build.PLUGIN_DIR), k + 1, m.group(0))
                          for k, line in enumerate(f) for m in quoted.finditer(line)]
        self.assertEqual(found, [], 'use tessera_bridge.run_files instead')

    def test_a_manifest_of_another_version_is_refused(self):
        with open(os.path.join(self.work, R.MANIFEST), 'w') as f:
            json.dump({R.manifest.key.manifest_version: R.manifest.version + 1}, f)
        with self.assertRaisesRegex(O.OutputError, r'outputs\.json: manifest_version is %d, this plugin reads %d'
                                    % (R.manifest.version + 1, R.manifest.version)):
            O.read_manifest(self.work)

    def test_an_undeclared_name_says_what_is_declared(self):
        with self.assertRaisesRegex(AttributeError, r"fsc\.curve declares no 'goldstandard' \(it declares "
                                                    r"gold_standard, vs_reference, .*protocols/common/run_files\.json"):
            R.fsc.curve.goldstandard
        with self.assertRaisesRegex(AttributeError, r"manifest \(outputs\.json\) declares no group 'keys'"):
            R.manifest.keys

    def test_a_missing_declaration_is_a_clear_error(self):
        missing = os.path.join(self.work, 'run_files.json')
        with self.assertRaisesRegex(R.RunFilesError, re.escape(missing) + r' is missing: .* copy of '
                                    r'protocols/common/run_files\.json .*reinstall the plugin'):
            R.load(missing)
        # At import, as Scipion would see it: a package without the file.
        folder = os.path.dirname(self.bridge_copy(symlinks=False))
        code, err = import_bridge(folder)
        self.assertNotEqual(code, 0)
        self.assertIn('tessera_bridge.run_files.RunFilesError: %s is missing: '
                      % os.path.join(folder, 'tessera_bridge', 'run_files.json'), err)

    def test_a_dangling_link_is_a_clear_error(self):
        folder = os.path.dirname(self.bridge_copy(symlinks=True))
        code, err = import_bridge(folder)
        self.assertNotEqual(code, 0)
        self.assertIn('RunFilesError: %s is a link to ../../protocols/common/run_files.json, which does not exist'
                      % os.path.join(folder, 'tessera_bridge', 'run_files.json'), err)
        self.assertIn('Install the plugin with pip', err)

    def test_a_broken_declaration_is_a_clear_error(self):
        path = os.path.join(self.work, 'run_files.json')
        doc = {'files': {'fsc': {'name': 'fsc.json', 'version': 1, 'description': '',
                                 'groups': {'curve': {'description': '', 'names': {'gold-standard': ''}}}}}}
        cases = [('{"files": ', r'cannot read the declaration of the run-folder files \(Expecting value'),
                 ('{"file": {}}', r"not a declaration of run-folder files \(KeyError: 'files'\)"),
                 (json.dumps(doc), r"fsc\.curve: 'gold-standard' is not usable as a Python attribute"),
                 (json.dumps(doc).replace('gold-standard', 'items'),
                  r"fsc\.curve: 'items' is not usable .*, nor one of description, items\)")]
        for text, message in cases:
            with self.subTest(text=text):
                with open(path, 'w') as f:
                    f.write(text)
                with self.assertRaisesRegex(R.RunFilesError, re.escape(path) + ': ' + message):
                    R.load(path)

    def test_the_built_package_holds_the_declaration(self):
        # setuptools' build_py, which pip install, wheels and sdists take the package from, must copy
        # the file the link points to.
        spec = importlib.util.find_spec('setuptools')
        if spec is None:
            self.skipTest('setuptools is not installed in %s' % sys.executable)
        # The checkout's layout, so that the link resolves: <work>/scipion_plugin, <work>/protocols/common.
        os.makedirs(os.path.join(self.work, 'protocols', 'common'))
        shutil.copy(DECLARATION, os.path.join(self.work, 'protocols', 'common'))
        plugin = os.path.join(self.work, 'scipion_plugin')
        shutil.copytree(build.PLUGIN_DIR, plugin, symlinks=True,
                        ignore=shutil.ignore_patterns('tests', 'build', '*.egg-info', '__pycache__'))
        lib = os.path.join(self.work, 'lib')
        done = subprocess.run([sys.executable, '-c', 'import setuptools; setuptools.setup()', 'build_py',
                               '--build-lib', lib], cwd=plugin, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        if done.returncode != 0 and 'pyproject' in done.stdout and 'setuptools' in done.stdout:
            self.skipTest('this setuptools cannot build from pyproject.toml: %s' % done.stdout[-300:])
        self.assertEqual(done.returncode, 0, done.stdout[-2000:])
        built = os.path.join(lib, 'tessera_bridge', 'run_files.json')
        self.assertTrue(os.path.isfile(built) and not os.path.islink(built), built)
        with open(built, 'rb') as a, open(DECLARATION, 'rb') as b:
            self.assertEqual(a.read(), b.read())


if __name__ == '__main__':
    unittest.main()
