"""The schema -> Scipion form mapping (tessera_bridge.schema), without Scipion.

Oracles: the schemas the built programs export (every input and parameter must reach the form as
docs/schema.md's table says), hand-written expectations for a schema that exercises every rule,
and the programs themselves, which must accept the --params JSON the plugin writes.
"""
import copy
import json
import os
import re
import shutil
import tempfile
import unittest

import tessera_build as build
from tessera_bridge import schema as S


def param(name, type_, **kw):
    p = {'name': name, 'option': '--' + name.replace('_', '-'), 'type': type_, 'label': name.title(),
         'help': '', 'section': 'Parameters', 'level': 0, 'unit': '', 'default': None, 'required': False,
         'min': None, 'max': None, 'min_exclusive': False, 'max_exclusive': False, 'choices': [],
         'condition': None, 'scipion_condition': None}
    p.update(kw)
    return p


def inp(name, kind, **kw):
    i = {'name': name, 'option': '--' + name.replace('_', '-'), 'kind': kind, 'label': name.title(),
         'help': '', 'section': 'Input', 'level': 0, 'required': True, 'pointer_class': None,
         'pointer_condition': None, 'condition': None, 'scipion_condition': None}
    i.update(kw)
    return i


def synthetic_schema():
    """A schema with one of each mapping rule (same keys as --schema writes)."""
    common = [param('out', 'string', section='Run', required=True), param('threads', 'int', section='Run', default=1),
              param('gpu', 'string', section='Run', level=1), param('seed', 'int', section='Run', level=1, default=1),
              param('continue', 'bool', section='Run', default=False),
              param('verbose', 'bool', section='Run', level=1), param('quiet', 'bool', section='Run', level=1)]
    return {
        'schema_version': 1, 'program': 'tessera_demo_tool', 'version': '1.2.3', 'label': 'demo tool',
        'description': 'A demo.', 'scipion_base_class': 'ProtAnalysis3D', 'citations': ['10.1/x'],
        'supports': {'threads': True, 'mpi': True, 'gpu': True, 'continue': True},
        'sections': ['Input', 'Parameters', 'Fit'],
        'inputs': [inp('particles', 'particles', pointer_class='SetOfParticles', pointer_condition='hasAlignmentProj'),
                   inp('half_map_A', 'volume', required=False, help='first'),
                   inp('half_map_B', 'volume', required=False, help='second'),
                   inp('mask', 'mask', required=False), inp('notes', 'file', required=False, section='Fit')],
        'parameters': [
            param('mode', 'choice', choices=['fit', 'fixed'], default='fixed'),
            param('fixed_scale', 'float', default=1.0, condition="mode == 'fixed'", scipion_condition='mode == 1'),
            param('max_res_A', 'float', unit='A', min=0.0, min_exclusive=True, section='Fit'),
            param('box_px', 'int', unit='px', min=8, max=512, max_exclusive=True, default=64, level=1),
            param('use_halves', 'bool', default=True, condition='half_map_A and not mask',
                  scipion_condition='half_map_A and not mask'),
            param('symmetry', 'string', default='C1'), param('label_text', 'string', required=True)],
        'common_parameters': common, 'outputs': []}


class TestSyntheticSchema(unittest.TestCase):

    def setUp(self):
        self.schema = synthetic_schema()
        self.spec = S.form_spec(self.schema)

    def test_an_input_conditional_on_a_parameter_follows_it(self):
        schema = synthetic_schema()
        schema['inputs'].append(inp('extra_mask', 'mask', required=False, section='Parameters',
                                    condition='use_halves', scipion_condition='use_halves'))
        names = [p.name for p in S.form_spec(schema).params]
        self.assertGreater(names.index('extra_mask'), names.index('use_halves'))
        self.assertLess(names.index('mask'), names.index('use_halves'))  # the others keep their order

    def test_class_and_parallel(self):
        self.assertEqual(self.spec.class_name, 'TesseraProtDemoTool')
        self.assertTrue(self.spec.threads and self.spec.mpi and self.spec.gpu and self.spec.resume)
        self.assertEqual(self.spec.sections, ['Input', 'Parameters', 'Fit', 'Run'])

    def test_inputs(self):
        p = self.spec.param('particles')
        self.assertEqual((p.kind, p.pointer_class, p.pointer_condition, p.allows_null), (
            'pointer', 'SetOfParticles', 'hasAlignmentProj', False))
        halves = self.spec.param('half_maps')
        self.assertEqual((halves.kind, halves.pointer_class, halves.pointer_condition, halves.allows_null,
                          halves.schema_names), ('pointer', 'Volume', 'hasHalfMaps', True, S.HALF_MAP_INPUTS))
        self.assertNotIn('half_map_A', [p.name for p in self.spec.params])
        mask = self.spec.param('mask')
        self.assertEqual((mask.pointer_class, mask.allows_null), ('VolumeMask', True))
        self.assertEqual((self.spec.param('notes').kind, self.spec.param('notes').section), ('file', 'Fit'))

    def test_parameters(self):
        mode = self.spec.param('mode')
        self.assertEqual((mode.kind, mode.choices, mode.default), ('enum', ['fit', 'fixed'], 1))
        self.assertEqual(self.spec.param('fixed_scale').condition, 'mode == 1')
        res = self.spec.param('max_res_A')
        self.assertEqual((res.label, res.allows_null, res.section), ('Max_Res_A (Å)', True, 'Fit'))
        self.assertEqual(res.bounds.check(0.0), 'must be > 0 Å')
        self.assertIsNone(res.bounds.check(1e-3))
        self.assertIsNone(res.bounds.check(None))
        box = self.spec.param('box_px')
        self.assertEqual((box.expert, box.default), (1, 64))
        self.assertEqual(box.bounds.check(512), 'must be >= 8 px and < 512 px')
        self.assertIsNone(box.bounds.check(511))
        self.assertEqual(self.spec.param('use_halves').condition, 'half_maps and not mask')
        self.assertTrue(self.spec.param('label_text').required)

    def test_common_options(self):
        names = [p.name for p in self.spec.params]
        for hidden in ('out', 'threads', 'gpu', 'verbose', 'quiet', 'continue'):
            self.assertNotIn(hidden, names)
        self.assertEqual(self.spec.param('seed').expert, 1)
        self.assertEqual(self.spec.param(S.CONTINUE_RUN).pointer_class, 'TesseraProtDemoTool')
        self.assertEqual(self.spec.param(S.CONTINUE_RUN).condition, S.DO_CONTINUE)
        self.assertEqual((self.spec.param(S.USE_GPU).kind, self.spec.param(S.GPU_LIST).kind),
                         ('hidden_bool', 'hidden_string'))

    def test_params_json(self):
        values = {'particles': 'Runs/1/particles.sqlite', 'half_maps': ('a.mrc', 'b.mrc'), 'mask': None,
                  'notes': None, 'mode': 0, 'fixed_scale': 2.5, 'max_res_A': None, 'box_px': 96,
                  'use_halves': False, 'symmetry': 'D2', 'label_text': 'x', 'seed': 7, S.DO_CONTINUE: True,
                  S.CONTINUE_RUN: object(), S.NUMBER_OF_THREADS: 3, S.USE_GPU: True, S.GPU_LIST: '0 1'}
        got = S.build_params(self.spec, self.schema, values, 'Runs/2/extra')
        self.assertEqual(got, {'particles': 'Runs/1/particles.sqlite', 'half_map_A': 'a.mrc', 'half_map_B': 'b.mrc',
                               'mode': 'fit', 'box_px': 96, 'use_halves': False, 'symmetry': 'D2',
                               'label_text': 'x', 'seed': 7, 'out': 'Runs/2/extra', 'threads': 3,
                               'gpu': '0,1', 'continue': True})
        values.update(mode=1, half_maps=None, **{S.USE_GPU: False, S.DO_CONTINUE: False})
        got = S.build_params(self.spec, self.schema, values, 'o')
        self.assertEqual(got['fixed_scale'], 2.5)  # its condition now holds
        self.assertNotIn('use_halves', got)  # its condition (half maps given) does not
        for absent in ('gpu', 'continue', 'half_map_A'):
            self.assertNotIn(absent, got)

    def test_parallel_section_follows_supports(self):
        """supports.threads/mpi decide the parallel section; the thread count reaches the program as
        "threads", the MPI count never does (mpirun, through Scipion's launch, starts the processes)."""
        for threads, mpi in ((True, True), (True, False), (False, True), (False, False)):
            schema = synthetic_schema()
            schema['supports'].update(threads=threads, mpi=mpi)
            if not threads:  # a program without threads has no --threads (protocols/common/schema.cpp)
                schema['common_parameters'] = [c for c in schema['common_parameters'] if c['name'] != 'threads']
            spec = S.form_spec(schema)
            self.assertEqual((spec.threads, spec.mpi), (threads, mpi))
            values = {'particles': 'p.sqlite', 'label_text': 'x', S.NUMBER_OF_THREADS: 3, S.NUMBER_OF_MPI: 2}
            got = S.build_params(spec, schema, values, 'o')
            self.assertEqual(got.get('threads'), 3 if threads else None, (threads, mpi))
            self.assertFalse({'mpi', S.NUMBER_OF_MPI} & set(got), got)

    def test_reserved_and_keyword_names_are_refused(self):
        for bad in ('numberOfThreads', 'half_maps', 'lambda'):
            schema = synthetic_schema()
            schema['parameters'].append(param(bad, 'int'))
            folder = tempfile.mkdtemp()
            self.addCleanup(shutil.rmtree, folder)
            path = os.path.join(folder, 'tessera_demo_tool.json')
            with open(path, 'w') as f:
                json.dump(schema, f)
            with self.assertRaisesRegex(S.SchemaError, 'tessera_demo_tool.json: .*reserved'):
                S.load_schema(path)

    def test_schema_version_is_checked(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        path = os.path.join(folder, 'tessera_x.json')
        with open(path, 'w') as f:
            json.dump(dict(synthetic_schema(), schema_version=2), f)
        with self.assertRaisesRegex(S.SchemaError, 'schema_version is 2'):
            S.load_schema(path)


class TestBuiltSchemas(unittest.TestCase):
    """Every program the build made: its whole schema reaches the form."""

    @classmethod
    def setUpClass(cls):
        cls.schemas = S.load_schemas(build.require_schemas())

    def test_programs_present(self):
        programs = [s['program'] for s in self.schemas]
        for p in ('tessera_refine_homo', 'tessera_subtract', 'tessera_validate_fsc', 'tessera_reconstruct',
                  'tessera_simulate'):
            self.assertIn(p, programs)

    def test_the_plugin_ships_the_programs_schemas(self):
        """scipion_plugin/tessera/schemas (the classes' source where Tessera is not installed) holds
        exactly the built programs' schemas."""
        def apart_from_build_options(schema):
            # MPI and GPU support follow the build's options (TESSERA_WITH_MPI, CUDA), not the program.
            schema = copy.deepcopy(schema)
            for key in ('mpi', 'gpu'):
                schema['supports'].pop(key, None)
            schema['common_parameters'] = [p for p in schema['common_parameters'] if p['name'] != 'gpu']
            return schema
        shipped_dir = os.path.join(build.PLUGIN_DIR, 'tessera', 'schemas')
        shipped = {s['program']: apart_from_build_options(s) for s in S.load_schemas(shipped_dir)}
        built = {s['program']: apart_from_build_options(s) for s in self.schemas}
        remedy = 'refresh them: scripts/ship_plugin_schemas.sh %s' % build.HOME
        self.assertEqual(sorted(shipped), sorted(built), 'the shipped schemas name other programs; ' + remedy)
        for program, schema in built.items():
            self.assertEqual(shipped[program], schema, '%s: the shipped schema is out of date; %s' % (program, remedy))

    def test_every_input_and_parameter_is_in_the_form(self):
        for schema in self.schemas:
            spec = S.form_spec(schema)
            fed = [n for p in spec.params for n in p.schema_names]
            expected = [e['name'] for e in schema['inputs'] + schema['parameters']]
            expected += [c['name'] for c in schema['common_parameters']
                         if c['name'] not in ('out', 'threads', 'gpu', 'continue', 'verbose', 'quiet', 'overwrite')]
            self.assertEqual(sorted(fed), sorted(expected), schema['program'])
            names = [p.name for p in spec.params]
            self.assertEqual(len(names), len(set(names)), schema['program'])
            # The order pyworkflow adds them in (section by section): a condition names only parameters
            # added before it, or Scipion cannot resolve it.
            added = []
            for section in spec.sections:
                for p in spec.params:
                    if p.section != section:
                        continue
                    for word in re.findall(r'[A-Za-z_]\w*', p.condition or ''):
                        if word not in ('and', 'or', 'not', 'True', 'False'):
                            self.assertIn(word, added, '%s: %s condition %r' % (schema['program'], p.name,
                                                                                p.condition))
                    added.append(p.name)
            for p in spec.params:
                self.assertIn(p.section, spec.sections)
            entries = {e['name']: e for e in schema['parameters']}
            for p in spec.params:
                e = entries.get(p.name)
                if e and e['type'] == 'choice' and e['default'] is not None:
                    self.assertEqual(e['choices'][p.default], e['default'])
                if e:
                    self.assertEqual(p.bounds is not None, e['type'] in ('int', 'float') and (
                        e['min'] is not None or e['max'] is not None))
            self.assertEqual((spec.threads, spec.mpi), (schema['supports']['threads'], schema['supports']['mpi']))

    def test_a_parameter_added_to_a_program_appears_in_its_form(self):
        schema = copy.deepcopy(next(s for s in self.schemas if s['program'] == 'tessera_refine_homo'))
        schema['parameters'].append(param('new_limit_A', 'float', unit='A', min=1.0, default=4.0,
                                          section='Convergence', label='New limit'))
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        with open(os.path.join(folder, 'tessera_refine_homo.json'), 'w') as f:
            json.dump(schema, f)
        spec = S.form_spec(S.load_schemas(folder)[0])
        added = spec.param('new_limit_A')
        self.assertEqual((added.label, added.default, added.section), ('New limit (Å)', 4.0, 'Convergence'))
        self.assertEqual(added.bounds.check(0.5), 'must be >= 1 Å')

    def test_programs_accept_the_params_the_plugin_writes(self):
        """Form defaults with every input given (as a missing file): each program must get past its
        parameter checks and stop at the first input file (exit 2), not at a key or a type."""
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work)
        for schema in self.schemas:
            spec = S.form_spec(schema)
            values = {p.name: p.default for p in spec.params}
            for p in spec.params:
                if p.kind in ('pointer', 'file') and p.schema_names:
                    missing = os.path.join(work, 'missing_%s' % p.name)
                    values[p.name] = (missing + '_1.mrc', missing + '_2.mrc') if p.name == S.HALF_MAPS else missing
                elif p.kind == 'string' and p.required:
                    values[p.name] = 'x'
            values[S.NUMBER_OF_THREADS] = 2
            params = S.build_params(spec, schema, values, os.path.join(work, 'out_' + schema['program']))
            path = os.path.join(work, schema['program'] + '.json')
            with open(path, 'w') as f:
                json.dump(params, f)
            code, err = build.run(schema['program'], '--params', path)
            self.assertEqual(code, 2, err)
            self.assertRegex(err, r'missing_\w+.* does not exist', '%s: %s' % (schema['program'], err))


if __name__ == '__main__':
    unittest.main(verbosity=2)
