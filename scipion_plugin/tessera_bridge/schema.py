"""A Tessera program's ``--schema`` JSON mapped onto a Scipion protocol form, and back.

The mapping is the table in docs/schema.md ("Mapping onto Scipion's protocol form"):
parameter names are kept verbatim as form attribute names, so each parameter's
``scipion_condition`` works as written. Two rules go beyond one-to-one:

- the inputs ``half_map_A`` and ``half_map_B`` (kind volume) become one pointer, ``half_maps``, to a
  Volume that carries its half maps (Scipion keeps half maps as files of their Volume,
  ``Volume.getHalfMaps()``, not as objects a form could point to);
- common options: ``out`` is the run's extra folder, ``threads`` the parallel section's
  ``numberOfThreads``, ``gpu`` the hidden ``useGpu``/``gpuList`` pair, ``continue`` (a Python
  keyword) the ``doContinue`` flag with ``continueRun``, the run to continue; ``verbose``,
  ``quiet`` and ``overwrite`` are not shown (the extra folder is the protocol's own: the
  protocol passes ``--overwrite`` itself when it runs a step again after a failed attempt).
  Any other common option is mapped like a parameter.
"""
import json
import keyword
import os
import re
from dataclasses import dataclass, field
from typing import Optional

SCHEMA_VERSION = 1
PROGRAM_PREFIX = 'tessera_'
CLASS_PREFIX = 'TesseraProt'

HALF_MAP_INPUTS = ('half_map_A', 'half_map_B')
HALF_MAPS = 'half_maps'
THREADS, GPU, CONTINUE, OUT = 'threads', 'gpu', 'continue', 'out'
HIDDEN_COMMON = ('verbose', 'quiet', 'overwrite')
# Form attributes the mapping itself uses (or Scipion's form defines): no schema name may take them.
NUMBER_OF_THREADS, NUMBER_OF_MPI = 'numberOfThreads', 'numberOfMpi'
USE_GPU, GPU_LIST = 'useGpu', 'gpuList'  # pyworkflow.protocol.constants USE_GPU, GPU_LIST
DO_CONTINUE, CONTINUE_RUN = 'doContinue', 'continueRun'
RESERVED = {'runName', 'runMode', 'hostName', NUMBER_OF_THREADS, NUMBER_OF_MPI, USE_GPU, GPU_LIST,
            DO_CONTINUE, CONTINUE_RUN, HALF_MAPS}

POINTER_CLASSES = {'particles': 'SetOfParticles', 'volume': 'Volume', 'mask': 'VolumeMask',
                   'classes': 'SetOfClasses2D,SetOfClasses3D', 'ctfs': 'SetOfCTF,SetOfParticles'}
UNIT_SYMBOLS = {'A': 'Å', 'A2': 'Å²', 'deg': 'deg', 'px': 'px'}


class SchemaError(ValueError):
    """A schema file that cannot be used; the message names the file."""


@dataclass
class Bounds:
    """A number's allowed range (None: unbounded on that side), checked by the form."""
    min: Optional[float] = None
    max: Optional[float] = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    unit: str = ''

    def check(self, value):
        """None when value is inside, else the message for the form."""
        if value is None:
            return None
        low_bad = self.min is not None and (value <= self.min if self.min_exclusive else value < self.min)
        high_bad = self.max is not None and (value >= self.max if self.max_exclusive else value > self.max)
        return None if not (low_bad or high_bad) else 'must be %s' % self.describe()

    def describe(self):
        unit = (' ' + UNIT_SYMBOLS.get(self.unit, self.unit)) if self.unit else ''
        parts = []
        if self.min is not None:
            parts.append('%s %g%s' % ('>' if self.min_exclusive else '>=', self.min, unit))
        if self.max is not None:
            parts.append('%s %g%s' % ('<' if self.max_exclusive else '<=', self.max, unit))
        return ' and '.join(parts)


@dataclass
class FormParam:
    """One form parameter: what ``form.addParam(name, <kind>Param, ...)`` receives.

    kind: pointer, file, int, float, bool, enum, string, hidden_bool, hidden_string.
    schema_names: the schema inputs/parameters this form value feeds (two for ``half_maps``,
    none for the form-only ``doContinue``/``continueRun``/``useGpu``/``gpuList``).
    """
    name: str
    kind: str
    section: str
    label: str
    help: str = ''
    default: object = None
    expert: int = 0
    condition: Optional[str] = None
    allows_null: bool = False
    required: bool = False
    pointer_class: Optional[str] = None
    pointer_condition: Optional[str] = None
    choices: list = field(default_factory=list)
    bounds: Optional[Bounds] = None
    schema_names: tuple = ()
    input_kind: Optional[str] = None  # particles, volume, mask, file, classes, ctfs (inputs only)


@dataclass
class FormSpec:
    """The whole form of one program's protocol class."""
    program: str
    class_name: str
    sections: list
    params: list
    threads: bool = False
    mpi: bool = False
    gpu: bool = False
    resume: bool = False

    def param(self, name):
        return next(p for p in self.params if p.name == name)


def load_schema(path):
    """The schema in `path`, checked enough to build a form from it (SchemaError otherwise)."""
    try:
        with open(path) as f:
            schema = json.load(f)
    except (OSError, ValueError) as e:
        raise SchemaError('%s: not a readable schema JSON (%s)' % (path, e))
    if not isinstance(schema, dict) or schema.get('schema_version') != SCHEMA_VERSION:
        raise SchemaError('%s: schema_version is %r, this plugin reads %d'
                          % (path, schema.get('schema_version') if isinstance(schema, dict) else None,
                             SCHEMA_VERSION))
    for key in ('program', 'version', 'label', 'inputs', 'parameters', 'common_parameters', 'outputs',
                'supports', 'sections'):
        if key not in schema:
            raise SchemaError('%s: key %r is missing' % (path, key))
    if not schema['program'].startswith(PROGRAM_PREFIX):
        raise SchemaError('%s: program %r does not start with %r' % (path, schema['program'], PROGRAM_PREFIX))
    names = [e['name'] for e in schema['inputs'] + schema['parameters']]
    taken = sorted(set(names) & RESERVED) + [n for n in names if keyword.iskeyword(n)]
    if taken:
        raise SchemaError('%s: %s: name(s) reserved by the Scipion form' % (path, ', '.join(taken)))
    return schema


def load_schemas(folder):
    """Every tessera_*.json in `folder`, sorted by program name ([] when the folder is missing)."""
    if not os.path.isdir(folder):
        return []
    files = sorted(f for f in os.listdir(folder) if f.startswith(PROGRAM_PREFIX) and f.endswith('.json'))
    return [load_schema(os.path.join(folder, f)) for f in files]


def camel(snake):
    """refine_homo -> RefineHomo; half_map_A -> HalfMapA."""
    return ''.join(w[:1].upper() + w[1:] for w in snake.split('_') if w)


def class_name(program):
    """tessera_refine_homo -> TesseraProtRefineHomo."""
    return CLASS_PREFIX + camel(program[len(PROGRAM_PREFIX):])


def label_with_unit(label, unit):
    return '%s (%s)' % (label, UNIT_SYMBOLS.get(unit, unit)) if unit else label


def _half_map_pair(schema):
    kinds = {i['name']: i['kind'] for i in schema['inputs']}
    return all(kinds.get(n) == 'volume' for n in HALF_MAP_INPUTS)


def scipion_condition(entry, schema):
    """The entry's Scipion condition, with half_map_A/B renamed to the half_maps pointer."""
    cond = entry.get('scipion_condition')
    if cond and _half_map_pair(schema):
        cond = re.sub(r'\b(%s)\b' % '|'.join(HALF_MAP_INPUTS), HALF_MAPS, cond)
    return cond or None


def _input_param(inp, schema):
    kind = inp['kind']
    return FormParam(
        name=inp['name'], kind='file' if kind == 'file' else 'pointer', section=inp['section'],
        label=inp['label'], help=inp.get('help') or '', expert=inp.get('level', 0),
        condition=scipion_condition(inp, schema), allows_null=not inp['required'], required=inp['required'],
        pointer_class=inp.get('pointer_class') or POINTER_CLASSES.get(kind),
        pointer_condition=inp.get('pointer_condition'), schema_names=(inp['name'],), input_kind=kind)


def _half_maps_param(schema):
    a, b = (next(i for i in schema['inputs'] if i['name'] == n) for n in HALF_MAP_INPUTS)
    conds = [c for c in (a.get('pointer_condition'), 'hasHalfMaps') if c]
    help_text = ('A volume with its two half maps (e.g. a refinement\'s output volume): its first half '
                 'map is given as %s, its second as %s. %s %s' % (a['option'], b['option'], a.get('help') or '',
                                                                    b.get('help') or '')).strip()
    return FormParam(
        name=HALF_MAPS, kind='pointer', section=a['section'], label='Volume with half maps', help=help_text,
        expert=min(a.get('level', 0), b.get('level', 0)), condition=scipion_condition(a, schema),
        allows_null=not (a['required'] or b['required']), required=a['required'] or b['required'],
        pointer_class='Volume', pointer_condition=' and '.join(conds), schema_names=HALF_MAP_INPUTS,
        input_kind='volume')


def _value_param(p, schema, section=None):
    """A schema parameter (or a common one mapped like a parameter) as a form parameter."""
    t = p['type']
    default = p['default']
    kinds = {'int': 'int', 'float': 'float', 'bool': 'bool', 'choice': 'enum', 'string': 'string'}
    if t not in kinds:
        raise SchemaError('%s: parameter %r has unknown type %r' % (schema['program'], p['name'], t))
    bounds = None
    if t in ('int', 'float') and (p['min'] is not None or p['max'] is not None):
        bounds = Bounds(p['min'], p['max'], bool(p['min_exclusive']), bool(p['max_exclusive']), p.get('unit', ''))
    if t == 'choice' and default is not None:
        default = p['choices'].index(default)
    return FormParam(
        name=p['name'], kind=kinds[t], section=section or p['section'],
        label=label_with_unit(p['label'], p.get('unit', '')), help=p.get('help') or '', default=default,
        expert=p.get('level', 0), condition=scipion_condition(p, schema),
        allows_null=default is None and t != 'bool', required=bool(p['required']),
        choices=list(p['choices']), bounds=bounds, schema_names=(p['name'],))


def _common_params(schema):
    """Form parameters for the common options that the user sets in the form."""
    params = []
    for p in schema['common_parameters']:
        name = p['name']
        if name in (OUT, THREADS, GPU) + HIDDEN_COMMON:
            continue
        if name == CONTINUE:
            params.append(FormParam(
                name=DO_CONTINUE, kind='bool', section=p['section'], label='Continue a previous run?',
                help='Resume the run chosen below from its last finished iteration (the program\'s '
                     '--continue): its output folder is copied into this run\'s first.', default=False,
                expert=p.get('level', 0)))
            params.append(FormParam(
                name=CONTINUE_RUN, kind='pointer', section=p['section'], label='Run to continue',
                help='A finished or stopped run of this protocol.', condition=DO_CONTINUE,
                pointer_class=class_name(schema['program']), expert=p.get('level', 0)))
        else:
            params.append(_value_param(p, schema))
    return params


def form_spec(schema):
    """The form of the program's protocol class: sections in order and their parameters."""
    halves = _half_map_pair(schema)
    params = []
    for inp in schema['inputs']:
        if halves and inp['name'] in HALF_MAP_INPUTS:
            if inp['name'] == HALF_MAP_INPUTS[0]:
                params.append(_half_maps_param(schema))
            continue
        params.append(_input_param(inp, schema))
    params += [_value_param(p, schema) for p in schema['parameters']]
    params += _common_params(schema)
    params = _conditions_after_their_names(params)
    sections = []
    for name in list(schema['sections']) + [p.section for p in params]:
        if name not in sections and any(p.section == name for p in params):
            sections.append(name)
    supports = schema['supports']
    spec = FormSpec(program=schema['program'], class_name=class_name(schema['program']), sections=sections,
                    params=params, threads=bool(supports.get('threads')), mpi=bool(supports.get('mpi')),
                    gpu=bool(supports.get('gpu')), resume=bool(supports.get('continue')))
    if spec.gpu:
        spec.params.append(FormParam(name=USE_GPU, kind='hidden_bool', section=sections[-1], label='Use GPU',
                                     default=False))
        spec.params.append(FormParam(name=GPU_LIST, kind='hidden_string', section=sections[-1],
                                     label='GPU list', default='0'))
    return spec


def _condition_names(condition):
    return set(re.findall(r'[A-Za-z_][A-Za-z0-9_]*', condition or '')) - {'and', 'or', 'not', 'True', 'False'}


def _conditions_after_their_names(params):
    """The parameters in their order, except that one whose condition names a parameter that comes later
    (an input conditional on a flag, inputs being listed first) moves just after the last one it names:
    pyworkflow resolves a condition against the parameters already defined when it is added."""
    ordered = list(params)
    for _ in range(len(ordered)):
        moved = False
        for i, p in enumerate(ordered):
            names = _condition_names(p.condition)
            later = [j for j, q in enumerate(ordered) if j > i and q.name in names]
            if later:
                ordered.insert(max(later), ordered.pop(i))
                moved = True
                break
        if not moved:
            return ordered
    raise ValueError('parameter conditions refer to each other in a cycle: '
                     + ', '.join(p.name for p in ordered if p.condition))


def condition_holds(condition, values):
    """Evaluates a Scipion condition (Python subset, docs/schema.md) on form values; inputs count as
    given when their value is not None."""
    if not condition:
        return True
    env = {n: values.get(n) for n in _condition_names(condition)}
    return bool(eval(condition, {'__builtins__': {}}, env))  # the grammar has no calls or attributes


def _schema_value(param, value):
    """A form value as the schema's typed value (None: leave it out of params.json)."""
    if value is None or (param.kind == 'string' and value == ''):
        return None
    if param.kind == 'enum':
        return param.choices[int(value)]
    return {'int': int, 'float': float, 'bool': bool, 'string': str}[param.kind](value)


def build_params(spec, schema, values, out_dir):
    """The program's --params JSON object from the form's values.

    values: form attribute name -> value, where every input is already the path of its file
    (None when not given; ``half_maps`` a pair of paths) and enum values are indices. Parameters
    whose condition is false and empty optional values are left out, so the program uses its own
    defaults and prints no warnings.
    """
    params = {}
    for p in spec.params:
        if not p.schema_names or not condition_holds(p.condition, values):
            continue
        value = values.get(p.name)
        if p.name == HALF_MAPS and p.schema_names == HALF_MAP_INPUTS:
            if value is not None:
                params.update(zip(HALF_MAP_INPUTS, value))
        elif p.kind in ('pointer', 'file'):
            if value is not None:
                params[p.name] = value
        else:
            typed = _schema_value(p, value)
            if typed is not None:
                params[p.name] = typed
    common = {c['name'] for c in schema['common_parameters']}
    params[OUT] = out_dir
    if THREADS in common and values.get(NUMBER_OF_THREADS) is not None:
        params[THREADS] = int(values[NUMBER_OF_THREADS])
    if GPU in common and values.get(USE_GPU) and values.get(GPU_LIST):
        params[GPU] = str(values[GPU_LIST]).replace(' ', ',')
    if CONTINUE in common and values.get(DO_CONTINUE):
        params[CONTINUE] = True
    return params
