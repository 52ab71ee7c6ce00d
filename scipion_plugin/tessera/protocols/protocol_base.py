"""What every Tessera protocol does; tessera.protocols combines it with the program's pwem base class.

Steps: convertInputStep writes the run's params.json (the form's values under the schema's names,
inputs as file names, see tessera.convert), runProgramStep runs the program with
``--params params.json`` (out = the run's extra folder), createOutputStep turns outputs.json into
Scipion objects (tessera_bridge.outputs.plan_outputs) with their relations.
"""
import json
import os

import pyworkflow.utils as pwutils
from pyworkflow import BETA

from tessera_bridge import outputs as toutputs
from tessera_bridge import run_files
from tessera_bridge import schema as tschema

from .. import Plugin
from .. import convert
from ..constants import PARAMS_FILE, PARTICLES_INPUT, TESSERA_CITATION

# pwem base classes of programs whose particle output is a classification (its class ids).
CLASSIFY_BASES = ('ProtClassify2D', 'ProtClassify3D')
# Micrograph STAR outputs that become subsets of the program's SetOfCTF input, and their attributes.
MICROGRAPH_TABLES = {'accepted_micrographs': 'outputAcceptedCTFs', 'rejected_micrographs': 'outputRejectedCTFs'}


class TesseraProtocol:
    """Runs one Tessera program. Generated subclasses set _tesseraSchema and _tesseraSpec."""
    _tesseraSchema = None
    _tesseraSpec = None
    _devStatus = BETA

    # -------------------------- DEFINE param functions -----------------------
    def _defineParams(self, form):
        from .form import define_form
        define_form(form, self._tesseraSpec)

    # -------------------------- INSERT steps functions -----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.runProgramStep, needsGPU=self._tesseraSpec.gpu)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # -------------------------- STEPS functions ------------------------------
    def convertInputStep(self):
        spec = self._tesseraSpec
        if spec.resume and self.getAttributeValue(tschema.DO_CONTINUE):
            previous = self.getAttributeValue(tschema.CONTINUE_RUN)
            pwutils.copyTree(previous._getExtraPath(), self._getExtraPath())
        values = self._formValues()
        params = tschema.build_params(spec, self._tesseraSchema, values, self._getExtraPath())
        with open(self._getPath(PARAMS_FILE), 'w') as f:
            json.dump(params, f, indent=2)

    def runProgramStep(self):
        program = Plugin.getProgram(self._tesseraSchema['program'])
        mpi = self.numberOfMpi.get() if self._tesseraSpec.mpi else 1
        args = '--params %s' % self._getPath(PARAMS_FILE)
        # The programs refuse an output folder that holds an earlier run unless told to continue
        # or replace it. The extra folder is this protocol's own: when Scipion runs this step
        # again (a resumed or restarted protocol) after a failed attempt, replace that attempt.
        continuing = self._tesseraSpec.resume and self.getAttributeValue(tschema.DO_CONTINUE)
        if not continuing and os.path.exists(os.path.join(self._getExtraPath(), run_files.MANIFEST)):
            args += ' --overwrite'
        # Threads reach the program as params.json's "threads" (each MPI process runs that many). MPI
        # processes are Scipion's: with numberOfMpi > 1, pyworkflow wraps the command in the host's
        # PARALLEL_COMMAND from hosts.conf (e.g. mpirun -np %_(JOB_NODES)d %_(COMMAND)s), also when the
        # run goes through a queue.
        self.runJob(program, args, env=Plugin.getEnviron(), numberOfMpi=mpi, numberOfThreads=1)

    def createOutputStep(self):
        manifest = toutputs.read_manifest(self._getExtraPath())
        self._createCtfSubsets(manifest)
        for item in toutputs.plan_outputs(self._tesseraSchema, manifest):
            if item.scipion_class == 'SetOfParticles':
                self._createParticlesOutput(item)
                continue
            if item.scipion_class in ('Volume', 'VolumeMask'):
                out = (convert.make_volume if item.scipion_class == 'Volume' else convert.make_mask)(item)
            elif item.scipion_class == 'FSC':
                out = convert.make_fscs(item)[0]
            else:  # SetOfFSCs
                out = self._createSetOfFSCs()
                for fsc in convert.make_fscs(item)[1]:
                    out.append(fsc)
            self._defineOutputs(**{item.attribute: out})
            for pointer in self._inputPointers():
                self._defineSourceRelation(pointer, out)

    def _createParticlesOutput(self, item):
        """The program's particle set. When the program processes an input set (an input named
        'particles'), as updated copies of its items, with a transform relation when the images are
        the input's, else a source relation; otherwise (e.g. simulated particles, whose input set
        only lends poses) as a copy of the program's own set."""
        table = toutputs.read_particle_rows(item.path)
        pointer = self._processedParticles()
        out = convert.fill_particles(self._createSetOfParticles(), table, pointer.get() if pointer else None)
        self._defineOutputs(**{item.attribute: out})
        if pointer is not None:
            relate = self._defineTransformRelation if convert.same_images(table, pointer.get()) \
                else self._defineSourceRelation
            relate(pointer, out)
        if item.name == PARTICLES_INPUT and self._tesseraSchema.get('scipion_base_class') in CLASSIFY_BASES:
            self._createClassesOutput(out)

    def _createCtfSubsets(self, manifest):
        """Micrograph tables a program writes from a SetOfCTF input (the first 'ctfs' input, passed
        as a micrograph STAR), e.g. accepted_micrographs, become subsets of that SetOfCTF:
        outputAcceptedMicrographsCTFs, ... (MICROGRAPH_TABLES)."""
        ctfs = [getattr(self, p.name) for p in self._inputParams() if p.input_kind == 'ctfs']
        if not ctfs or ctfs[0].get() is None or ctfs[0].get().getClassName() != 'SetOfCTF':
            return
        for name, attribute in MICROGRAPH_TABLES.items():
            done = manifest.output(name)
            if done is None:
                continue
            keep = set(convert.star_column(done.path, 'micrographs', 'rlnMicrographName'))
            source = ctfs[0].get()
            out = self._createSetOfCTF(suffix=name)
            out.setMicrographs(source.getMicrographs())
            for ctf in source.iterItems():
                if ctf.getMicrograph().getFileName() in keep:
                    out.append(ctf.clone())
            self._defineOutputs(**{attribute: out})
            self._defineSourceRelation(ctfs[0], out)

    def _createClassesOutput(self, particles):
        """A program on a pwem classification base class classifies: the class ids of its particle
        output become outputClasses (2D when its first classes input is a SetOfClasses2D, else 3D)."""
        inputs = [getattr(self, p.name).get() for p in self._inputParams() if p.input_kind == 'classes']
        two_d = any(obj is not None and obj.getClassName() == 'SetOfClasses2D' for obj in inputs[:1])
        classes = (self._createSetOfClasses2D if two_d else self._createSetOfClasses3D)(particles)
        classes.classifyItems()
        self._defineOutputs(outputClasses=classes)
        self._defineSourceRelation(particles, classes)

    # -------------------------- helpers --------------------------------------
    def _inputParams(self):
        return [p for p in self._tesseraSpec.params if p.input_kind and p.kind == 'pointer']

    def _inputPointers(self):
        """The form's input pointers that are set (for source relations)."""
        return [getattr(self, p.name) for p in self._inputParams() if getattr(self, p.name).get() is not None]

    def _processedParticles(self):
        """The pointer of the input named 'particles', when given."""
        spec = self._tesseraSpec
        given = any(p.name == PARTICLES_INPUT and p.input_kind == 'particles' for p in spec.params)
        return getattr(self, PARTICLES_INPUT) if given and getattr(self, PARTICLES_INPUT).get() is not None else None

    def _formValues(self):
        """Form attribute -> value, with inputs as the files the program reads."""
        tmp = self._getTmpPath()
        pwutils.makePath(tmp)
        values = {}
        for p in self._tesseraSpec.params:
            if p.kind != 'pointer' or p.name == tschema.CONTINUE_RUN:
                values[p.name] = self.getAttributeValue(p.name)
                continue
            obj = getattr(self, p.name).get()
            if obj is None:
                values[p.name] = None
            elif p.name == tschema.HALF_MAPS:
                values[p.name] = convert.half_map_files(obj, tmp, p.name)
            else:
                values[p.name] = convert.input_file(obj, p.input_kind, tmp, p.name)
        for name in (tschema.NUMBER_OF_THREADS, tschema.USE_GPU, tschema.GPU_LIST):
            if self.hasAttribute(name):
                values[name] = self.getAttributeValue(name)
        return values

    def _manifest(self):
        try:
            return toutputs.read_manifest(self._getExtraPath())
        except toutputs.OutputError:
            return None

    # -------------------------- INFO functions -------------------------------
    def _validate(self):
        errors = []
        program = self._tesseraSchema['program']
        if not Plugin.hasProgram(program):
            errors.append('%s not found (looked in %s). Install Tessera (scipion3 installb tessera) or '
                          'set TESSERA_HOME.' % (program, Plugin.getProgram(program)))
        if not self._tesseraSpec.mpi and self.numberOfMpi.get() > 1:
            # The form offers no MPI field then; a value can still come from a workflow or a script.
            errors.append('%s does not run under MPI (its schema declares no MPI support), so it cannot use '
                          '%d MPI processes: set numberOfMpi to 1.' % (program, self.numberOfMpi.get()))
        for p in self._inputParams():
            obj = getattr(self, p.name).get()
            if obj is None or not self.evalParamCondition(p.name):
                continue
            if p.name == tschema.HALF_MAPS and (not obj.hasHalfMaps() or len(obj.getHalfMaps().split(',')) != 2):
                errors.append('*%s*: %s has no two half maps.' % (p.label, obj.getNameId()))
            if p.input_kind == 'particles' and obj.getSize() > 0:
                image = obj.getFirstItem().getFileName()
                if not convert.is_mrc(image):
                    errors.append('*%s*: Tessera reads MRC images; %s is not one (convert the particles '
                                  'to MRC first).' % (p.label, image))
        return errors

    def _summary(self):
        manifest = self._manifest()
        if manifest is None:
            return ['%s has not run yet.' % self._tesseraSchema['program']]
        if manifest.status != run_files.manifest.status.done:
            return ['%s %s: %s' % (manifest.program, manifest.status, manifest.error or 'running')]
        lines = ['%s %s finished in %.0f s.' % (manifest.program, manifest.version, manifest.wall_s or 0)]
        labels = {o['name']: o['label'] for o in self._tesseraSchema['outputs']}
        for out in manifest.outputs:
            if out.extra:
                lines.append('%s: %s' % (labels.get(out.name, out.name), toutputs.describe_extra(out.extra)))
        return lines

    def _methods(self):
        manifest = self._manifest()
        if manifest is None or manifest.status != run_files.manifest.status.done:
            return []
        inputs = ', '.join('%s %s' % (p.label.lower(), self.getObjectTag(p.name)) for p in self._inputParams()
                           if getattr(self, p.name).get() is not None)
        outputs = ', '.join(self.getObjectTag(name) for name, _ in self.iterOutputAttributes())
        return ['We ran Tessera\'s %s (%s %s) [%s] on %s, which gave %s.' % (
            self._tesseraSchema['label'], manifest.program, manifest.version, TESSERA_CITATION, inputs,
            outputs)]

    def _citations(self):
        """Bibtex keys of the program's citations (DOIs in its schema); a DOI without an entry is
        cited as is."""
        bibtex = getattr(self.getClassPackage(), '_bibtex', {}) or {}
        by_doi = {entry.get('doi', '').split('doi.org/')[-1].strip(): key for key, entry in bibtex.items()}
        return [TESSERA_CITATION] + [by_doi.get(doi, 'doi:%s' % doi) for doi in self._tesseraSchema['citations']]
