"""A tessera_bridge FormSpec applied to a pyworkflow protocol form."""
import pyworkflow.protocol.params as params
from pyworkflow.protocol.constants import LEVEL_ADVANCED, LEVEL_NORMAL

PARAM_CLASSES = {
    'pointer': params.PointerParam, 'file': params.FileParam, 'int': params.IntParam,
    'float': params.FloatParam, 'bool': params.BooleanParam, 'enum': params.EnumParam,
    'string': params.StringParam, 'hidden_bool': params.BooleanParam, 'hidden_string': params.StringParam,
}


# Tessera protocols run their steps one after another (STEPS_SERIAL), so numberOfThreads is the
# program's --threads; with MPI, each of the numberOfMpi processes that mpirun starts runs that many.
THREADS_PER_PROCESS_HELP = (
    '*Threads*:\nThreads of each MPI process (the program\'s --threads): the run uses MPIs x Threads '
    'cores. In a queue job script, JOB_NODES is the number of MPI processes and JOB_THREADS this value.')


class BoundsValidator(params.Conditional):
    """The schema's min/max (inclusive or exclusive); an empty optional value passes."""

    def __init__(self, bounds):
        params.Conditional.__init__(self, 'must be %s' % bounds.describe(), allowsNull=True)
        self._bounds = bounds

    def _condition(self, value):
        return self._bounds.check(value) is None


class RequiredValidator(params.Conditional):
    """A required text value (pyworkflow's NonEmpty fails on None)."""

    def __init__(self):
        params.Conditional.__init__(self, 'cannot be EMPTY.')

    def _condition(self, value):
        return value is not None and str(value).strip() != ''


def _kwargs(p):
    kw = {'label': p.label, 'help': p.help, 'expertLevel': LEVEL_ADVANCED if p.expert else LEVEL_NORMAL}
    if p.condition:
        kw['condition'] = p.condition
    if p.kind == 'pointer':
        kw.update(pointerClass=p.pointer_class, allowsNull=p.allows_null)
        if p.pointer_condition:
            kw['pointerCondition'] = p.pointer_condition
        return kw
    if p.default is not None:
        kw['default'] = p.default
    if p.allows_null:
        kw['allowsNull'] = True
    if p.kind == 'enum':
        kw.update(choices=p.choices, display=params.EnumParam.DISPLAY_COMBO)
    validators = []
    if p.bounds is not None:
        validators.append(BoundsValidator(p.bounds))
    if p.required and p.kind in ('string', 'file'):
        validators.append(RequiredValidator())
    if validators:
        kw['validators'] = validators
    return kw


def define_form(form, spec):
    """Sections in the schema's order with their parameters, then the parallel section."""
    for section in spec.sections:
        form.addSection(label=section)
        for p in spec.params:
            if p.section != section:
                continue
            if p.kind.startswith('hidden_'):
                form.addHidden(p.name, PARAM_CLASSES[p.kind], default=p.default)
            else:
                form.addParam(p.name, PARAM_CLASSES[p.kind], **_kwargs(p))
    if spec.threads or spec.mpi:
        form.addParallelSection(threads=1 if spec.threads else 0, mpi=1 if spec.mpi else 0,
                                binThreadsHelp=THREADS_PER_PROCESS_HELP if spec.threads and spec.mpi else None)
