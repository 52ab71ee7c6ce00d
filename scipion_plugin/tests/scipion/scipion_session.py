"""A headless Scipion session for the plugin tests: configuration in a scratch folder, projects,
protocols launched and waited for. Import this module before pyworkflow (it sets the environment
pyworkflow reads when imported)."""
import os
import shutil
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
DATA = os.environ.get('TESSERA_SHARED_DATA_DIR', os.path.join(REPO, '..', 'shared', 'data'))
RELION_7DDO = os.path.join(DATA, 'relion_7DDO')
WORK = os.environ.get('TESSERA_SCIPION_TEST_DIR') or tempfile.mkdtemp(prefix='tessera_scipion_')

_home = os.path.join(WORK, 'scipion_home')
os.makedirs(os.path.join(_home, 'config'), exist_ok=True)
os.environ.update({
    'SCIPION_HOME': _home,
    'SCIPION_USER_DATA': os.path.join(_home, 'userdata'),
    'SCIPION_TESTS': os.path.join(_home, 'tests'),
    'SCIPION_CONFIG': os.path.join(_home, 'config', 'scipion.conf'),
    'SCIPION_HOSTS': os.path.join(_home, 'config', 'hosts.conf'),
    'SCIPION_TEST_NOSYNC': '1',
    'SCIPION_DOMAIN': 'pwem',
    'SCIPION_PYTHON': sys.executable,  # protocols run in child processes with this Python
})
os.environ.pop('DISPLAY', None)
if shutil.which('relion_postprocess') and 'RELION_HOME' not in os.environ:
    # Debian's RELION (3.1) in /usr/bin, for the template's RELION post-processing step.
    os.environ['RELION_HOME'] = os.path.dirname(os.path.dirname(shutil.which('relion_postprocess')))

from pyworkflow.project import Manager  # noqa: E402
from pyworkflow.protocol import HostConfig  # noqa: E402

HostConfig.writeBasic(os.environ['SCIPION_HOSTS'])


def new_project(name):
    """A new project in the scratch folder; the current folder becomes the project's, as Scipion
    expects when it launches protocols."""
    manager = Manager()
    os.makedirs(manager.PROJECTS, exist_ok=True)
    project = manager.createProject(name)
    os.chdir(project.getPath())
    return project


def log_tail(protocol, lines=40):
    text = []
    for fn in (protocol.getStdoutLog(), protocol.getStderrLog()):
        if os.path.exists(fn):
            with open(fn) as f:
                text += f.read().splitlines()[-lines:]
    return '\n'.join(text)


def launch(project, protocol):
    """Runs the protocol to the end; AssertionError with its log when it does not finish."""
    project.launchProtocol(protocol, wait=True)
    if not protocol.isFinished():
        raise AssertionError('%s %s: %s\n%s' % (protocol.getClassName(), protocol.getStatus(),
                                                protocol.getErrorMessage(), log_tail(protocol)))
    return protocol
