"""Scipion plugin for Tessera: cryo-EM single-particle protocols next to RELION and Xmipp.

Each Tessera program becomes one protocol class, built when ``tessera.protocols`` is imported
from the JSON schema the program's build installs (``TESSERA_HOME/share/tessera/schemas``,
written by ``tessera_<name> --schema``), or from the copies the plugin ships (``tessera/schemas``)
where TESSERA_HOME has none; see scipion_plugin/README.md.
"""
import os

import pwem
import pyworkflow.utils as pwutils

from .constants import (BIN_DIRS, SCHEMA_DIR, SHIPPED_SCHEMA_DIR, TESSERA_CITATION, TESSERA_HOME,
                        TESSERA_SOURCE, TESSERA_SOURCE_DEFAULT, V0_1_0)

__version__ = V0_1_0
_references = [TESSERA_CITATION]


class Plugin(pwem.Plugin):
    _homeVar = TESSERA_HOME
    _pathVars = [TESSERA_HOME]
    _supportedVersions = [V0_1_0]
    _url = ''  # no public home page yet

    @classmethod
    def _defineVariables(cls):
        # Default: what defineBinaries installs (software/em/tessera-<version>); scipion.conf or the
        # environment may point TESSERA_HOME at another install prefix or at a build folder.
        cls._defineEmVar(TESSERA_HOME, 'tessera-%s' % V0_1_0)
        cls._defineVar(TESSERA_SOURCE, TESSERA_SOURCE_DEFAULT)

    @classmethod
    def getTesseraHome(cls):
        """TESSERA_HOME, also when tessera.protocols is imported before Scipion registers the plugin."""
        if TESSERA_HOME not in cls.getVars():
            return os.environ.get(TESSERA_HOME) or os.path.join(pwem.Config.EM_ROOT, 'tessera-%s' % V0_1_0)
        return cls.getVar(TESSERA_HOME)

    @classmethod
    def getProgram(cls, program):
        """Path of a Tessera program: TESSERA_HOME/bin (installed) or, in a build folder,
        protocols/ or viewers/. The bin/ path when it is in neither (see validateInstallation)."""
        home = cls.getTesseraHome()
        for folder in BIN_DIRS:
            path = os.path.join(home, folder, program)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        return os.path.join(home, BIN_DIRS[0], program)

    @classmethod
    def hasProgram(cls, program):
        return os.access(cls.getProgram(program), os.X_OK)

    @classmethod
    def getInstalledSchemaDir(cls):
        """The schemas of the programs in TESSERA_HOME (written by their build)."""
        return os.path.join(cls.getTesseraHome(), *SCHEMA_DIR)

    @classmethod
    def getSchemaDir(cls):
        """Where the protocol classes come from: the installed programs' schemas, or the copies the
        plugin ships when TESSERA_HOME has none (the classes exist; running them needs Tessera)."""
        installed = cls.getInstalledSchemaDir()
        return installed if os.path.isdir(installed) and os.listdir(installed) else SHIPPED_SCHEMA_DIR

    @classmethod
    def getEnviron(cls):
        env = pwutils.Environ(os.environ)
        folders = [os.path.join(cls.getTesseraHome(), d) for d in BIN_DIRS]
        env.update({'PATH': os.pathsep.join(f for f in folders if os.path.isdir(f))},
                   position=pwutils.Environ.BEGIN)
        return env

    @classmethod
    def validateInstallation(cls):
        schemas = cls.getInstalledSchemaDir()
        if os.path.isdir(schemas) and os.listdir(schemas):
            return []
        return ['Tessera is not installed in TESSERA_HOME = %s: no program schemas in %s.' % (
                cls.getTesseraHome(), schemas),
                'Install it (scipion3 installb tessera) or set TESSERA_HOME to an install prefix or '
                'build folder of Tessera.']

    @classmethod
    def defineBinaries(cls, env):
        """Builds Tessera from source with CMake and installs it into software/em/tessera-<version>."""
        jobs = max(1, env.getProcessors()) if hasattr(env, 'getProcessors') else 4
        source = cls.getVar(TESSERA_SOURCE, TESSERA_SOURCE_DEFAULT)
        # A local source folder is built in place; anything else is cloned at this version's tag.
        fetch = ('true' if os.path.isdir(source) else
                 'rm -rf src && git clone --depth 1 --branch v{v} {src} src'.format(v=V0_1_0, src=source))
        tree = source if os.path.isdir(source) else 'src'
        build = ('{fetch} && rm -rf build && cmake -S {tree} -B build -DCMAKE_BUILD_TYPE=Release '
                 '-DTESSERA_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=. && cmake --build build -j {j} && '
                 'cmake --install build && rm -rf build').format(fetch=fetch, tree=tree, j=jobs)
        env.addPackage('tessera', version=V0_1_0, tar='void.tgz', default=True,
                       neededProgs=['git', 'cmake', 'make', 'g++', 'pkg-config'],
                       commands=[(build, ['bin/tessera_refine_homo', 'bin/tessera_refine_nu',
                                          'share/tessera/schemas/tessera_refine_homo.json',
                                          'share/tessera/schemas/tessera_refine_nu.json'])])
