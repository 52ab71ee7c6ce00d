"""Tessera's protocol classes, one per program, built at import from the programs' schemas.

The schemas are the JSON files that the Tessera build writes with ``tessera_<name> --schema``
(TESSERA_HOME/share/tessera/schemas, see Plugin.getSchemaDir): reading files keeps import fast
and works where the programs cannot run (a submit host without their libraries), and since the
files come from the programs themselves, a parameter added to a program appears in its form after
the next build, without editing Python. tessera_refine_homo becomes TesseraProtRefineHomo, a
subclass of TesseraProtocol and of the pwem class its schema names (ProtRefine3D, ...).
"""
import logging

import pwem.objects
import pwem.protocols

from tessera_bridge import outputs as toutputs
from tessera_bridge import schema as tschema

from .. import Plugin
from .protocol_base import CLASSIFY_BASES, MICROGRAPH_TABLES, TesseraProtocol

logger = logging.getLogger(__name__)

GENERATED = {}  # class name -> class, in program order


def make_protocol_class(schema):
    """The protocol class of one program's schema (SchemaError when it cannot be built)."""
    spec = tschema.form_spec(schema)
    base = getattr(pwem.protocols, schema.get('scipion_base_class') or 'EMProtocol', None)
    if base is None:
        raise tschema.SchemaError('%s: scipion_base_class %r is not a pwem protocol class'
                                  % (schema['program'], schema['scipion_base_class']))
    clashes = [p.name for p in spec.params if hasattr(base, p.name)]
    if clashes:
        raise tschema.SchemaError('%s: parameter name(s) %s clash with %s attributes'
                                  % (schema['program'], ', '.join(clashes), base.__name__))
    possible = {attr: getattr(pwem.objects, cls) for attr, cls in toutputs.output_attributes(schema).values()}
    if schema.get('scipion_base_class') in CLASSIFY_BASES:
        possible['outputClasses'] = pwem.objects.SetOfClasses3D  # or 2D, as its classes input
    outputs = {o['name'] for o in schema['outputs']}
    possible.update({attr: pwem.objects.SetOfCTF for name, attr in MICROGRAPH_TABLES.items() if name in outputs})
    doc = '%s\n\n(Tessera program %s %s.)' % (schema['description'], schema['program'], schema['version'])
    attrs = {'__module__': __name__, '__doc__': doc, '_label': schema['label'], '_possibleOutputs': possible,
             '_tesseraSchema': schema, '_tesseraSpec': spec}
    return type(spec.class_name, (TesseraProtocol, base), attrs)


def _generate():
    try:
        schemas = tschema.load_schemas(Plugin.getSchemaDir())
    except tschema.SchemaError as e:
        logger.error('Tessera protocols not loaded: %s', e)
        return
    if not schemas:
        logger.warning('No Tessera program schemas in %s: no Tessera protocols (set TESSERA_HOME).',
                       Plugin.getSchemaDir())
    for schema in schemas:
        try:
            cls = make_protocol_class(schema)
        except tschema.SchemaError as e:
            logger.error('Tessera protocol not loaded: %s', e)
            continue
        GENERATED[cls.__name__] = cls
        globals()[cls.__name__] = cls


_generate()
