"""Where the pure tests find Tessera: TESSERA_HOME (an install prefix or a build folder; default:
the repository's build/), as the plugin does. Also puts tessera_bridge on the path."""
import os
import subprocess
import sys
import unittest

PLUGIN_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
REPO = os.path.dirname(PLUGIN_DIR)
sys.path.insert(0, PLUGIN_DIR)

HOME = os.environ.get('TESSERA_HOME') or os.path.join(REPO, 'build')
SCHEMA_DIR = os.path.join(HOME, 'share', 'tessera', 'schemas')
SHARED_DATA = os.environ.get('TESSERA_SHARED_DATA_DIR', os.path.join(REPO, '..', 'shared', 'data'))


def _missing(message):
    """Skip, unless run_tests.sh asks for the build (TESSERA_REQUIRE_BUILD=1): then it is a failure."""
    if os.environ.get('TESSERA_REQUIRE_BUILD') == '1':
        raise AssertionError(message)
    raise unittest.SkipTest(message)


def program(name):
    for folder in ('bin', 'protocols'):
        path = os.path.join(HOME, folder, name)
        if os.access(path, os.X_OK):
            return path
    _missing('%s is not built in TESSERA_HOME=%s (build Tessera first)' % (name, HOME))


def require_schemas():
    if not os.path.isdir(SCHEMA_DIR) or not os.listdir(SCHEMA_DIR):
        _missing('no program schemas in %s (build the tessera_schemas target)' % SCHEMA_DIR)
    return SCHEMA_DIR


def run(name, *args, cwd=None):
    """Runs a Tessera program; returns (exit code, stderr)."""
    done = subprocess.run([program(name)] + list(args), cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return done.returncode, done.stderr
