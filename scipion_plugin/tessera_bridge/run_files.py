"""The files of a run folder that Tessera's programs write and the plugin reads (outputs.json,
run.log.jsonl, iterations.json, fsc.json, fsc.star): their names, JSON keys, fixed values and
format versions, read at import from their one declaration, protocols/common/run_files.json, from
which the build also writes the programs' C++ header tessera/run_files.hpp.

In a source checkout ``tessera_bridge/run_files.json`` is a link to that file; building the package
(pip install, a wheel or an sdist) copies the file itself into it (pyproject.toml package-data).

Each declared file is a module attribute named by its id, as in C++ (tessera::run_files::fsc), with
its ``name``, ``version`` and groups of names: ``fsc.curve.corrected == 'corrected'``,
``fsc_star.curve_column.corrected == 'rlnFourierShellCorrelationCorrected'``,
``manifest.status.done == 'done'``. A name the declaration lacks is an AttributeError that says
what it declares. The file names themselves are also MANIFEST, RUN_LOG, ITERATIONS, FSC_JSON and
FSC_STAR.
"""
import json
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'run_files.json')
_SOURCE = 'protocols/common/run_files.json'


class RunFilesError(RuntimeError):
    """The declaration cannot be read; the message names the file and how to get it back."""


class Names:
    """One group of names of a declared file (e.g. fsc.curve): identifier -> the text in the file,
    as attributes; iterating gives the texts in declaration order."""
    RESERVED = ('description', 'items')

    def __init__(self, where, description, values):
        self._where, self.description, self._values = where, description, dict(values)
        for ident, value in self._values.items():
            setattr(self, ident, value)

    def __getattr__(self, ident):  # only for names that are not attributes
        if ident.startswith('_'):
            raise AttributeError(ident)
        raise AttributeError('%s declares no %r (it declares %s; see %s)'
                             % (self._where, ident, ', '.join(self._values), _SOURCE))

    def __iter__(self):
        return iter(self._values.values())

    def __contains__(self, value):
        return value in self._values.values()

    def __len__(self):
        return len(self._values)

    def items(self):
        """(identifier, text) pairs in declaration order."""
        return self._values.items()


class DeclaredFile:
    """One file of a run folder: its name, format version, description and groups of names."""
    RESERVED = ('id', 'name', 'version', 'description', 'groups')

    def __init__(self, ident, name, version, description, groups):
        self.id, self.name, self.version, self.description = ident, name, version, description
        self.groups = dict(groups)
        for group, names in self.groups.items():
            setattr(self, group, names)

    def __getattr__(self, group):
        if group.startswith('_'):
            raise AttributeError(group)
        raise AttributeError('%s (%s) declares no group %r (it declares %s; see %s)'
                             % (self.id, self.name, group, ', '.join(self.groups), _SOURCE))


def _identifier(path, where, ident, reserved):
    if not ident.isidentifier() or ident.startswith('_') or ident in reserved:
        besides = (', nor one of ' + ', '.join(reserved)) if reserved else ''
        raise RunFilesError('%s: %s: %r is not usable as a Python attribute (an identifier not starting '
                            'with _%s)' % (path, where, ident, besides))


def _group(path, where, decl):
    values = {}
    for ident, entry in decl['names'].items():
        _identifier(path, where, ident, Names.RESERVED)
        value = entry['value'] if isinstance(entry, dict) else ident
        if not isinstance(value, str) or not value:
            raise RunFilesError('%s: %s.%s: the value is not a non-empty text' % (path, where, ident))
        values[ident] = value
    return Names(where, decl['description'], values)


def load(path=PATH):
    """The declaration at `path`: file id -> DeclaredFile. Raises RunFilesError."""
    if os.path.islink(path) and not os.path.exists(path):
        raise RunFilesError(
            '%s is a link to %s, which does not exist: tessera_bridge was taken out of the Tessera checkout '
            'without the declaration of the run-folder files. Install the plugin with pip (pip install '
            'scipion_plugin, which copies %s into the package) or use it inside the checkout.'
            % (path, os.readlink(path), _SOURCE))
    try:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise RunFilesError(
            '%s is missing: the plugin reads the names of the files Tessera\'s programs write from it. '
            'A built scipion-em-tessera package holds a copy of %s (pyproject.toml package-data), a source '
            'checkout a link to it; reinstall the plugin (pip install scipion_plugin).'
            % (path, _SOURCE)) from None
    except (OSError, ValueError) as e:
        raise RunFilesError('%s: cannot read the declaration of the run-folder files (%s); it should be a '
                            'copy of or a link to %s' % (path, e, _SOURCE)) from None
    files = {}
    try:
        for ident, decl in doc['files'].items():
            _identifier(path, 'files', ident, ())
            if not isinstance(decl['version'], int) or decl['version'] < 1:
                raise RunFilesError('%s: files.%s.version is not a positive integer' % (path, ident))
            groups = {}
            for group, gdecl in decl['groups'].items():
                _identifier(path, 'files.%s.groups' % ident, group, DeclaredFile.RESERVED)
                groups[group] = _group(path, '%s.%s' % (ident, group), gdecl)
            files[ident] = DeclaredFile(ident, decl['name'], decl['version'], decl['description'], groups)
    except (KeyError, TypeError, AttributeError) as e:
        raise RunFilesError('%s: not a declaration of run-folder files (%s: %s)'
                            % (path, type(e).__name__, e)) from None
    return files


FILES = load()


def _declared(ident):
    if ident not in FILES:
        raise RunFilesError('%s declares no file %r, which the plugin reads' % (PATH, ident))
    return FILES[ident]


manifest = _declared('manifest')
run_log = _declared('run_log')
iterations = _declared('iterations')
fsc = _declared('fsc')
fsc_star = _declared('fsc_star')

MANIFEST = manifest.name  # outputs.json; its manifest_version is manifest.version
RUN_LOG = run_log.name  # run.log.jsonl
ITERATIONS = iterations.name  # iterations.json
FSC_JSON = fsc.name  # fsc.json
FSC_STAR = fsc_star.name  # fsc.star
