"""MPI through Scipion's own launch, in a real, headless Scipion.

The plugin never calls mpirun itself. The parallel section's numberOfMpi goes to Protocol.runJob, and
pyworkflow (utils/process.py, buildRunCommand) wraps the program's command in the host's
PARALLEL_COMMAND from hosts.conf when it is above 1: JOB_NODES = numberOfMpi, COMMAND =
"$SCIPION_MPI_FLAGS <program> <arguments>". numberOfThreads reaches the program as params.json's
"threads", the threads of each MPI process. Through a queue, the same command is built inside the
job when the whole protocol is the job (QUEUE_FOR_JOBS N), or written into the job script when each
program run is a job (QUEUE_FOR_JOBS Y).

- TestMpiForm runs no program: a schema's supports.mpi decides whether the form has numberOfMpi,
  and the command that runJob hands to pyworkflow's runCommand is the hosts.conf mpirun line.
- TestMpiRuns runs tessera_refine_homo (1 iteration, about 30 s each) with 2 MPI processes of 1 thread
  on the RELION 7DDO particles: directly, and through a local "queue" whose SUBMIT_COMMAND runs the
  job script with bash, in both queue modes. Checked: the mpirun line (in the log or the job script),
  Open MPI's map of the two ranks, the program's own count of its MPI processes and the registered
  outputs. It is skipped, saying so, only when the built tessera_refine_homo's --schema declares no
  MPI support; a program that declares it must pass.
"""
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import unittest
from unittest import mock

import scipion_session as session  # first: sets up Scipion's configuration

from pwem.constants import ALIGN_PROJ  # noqa: E402
from pwem.objects import FSC, SetOfParticles, Volume  # noqa: E402
from pyworkflow.protocol.params import IntParam  # noqa: E402

import tessera  # noqa: E402
from tessera.protocols import TesseraProtRefineHomo, make_protocol_class  # noqa: E402
from test_scipion_workflow import import_inputs  # noqa: E402

MPI_PROCESSES = 2
DISPLAY_MAP = 'OMPI_MCA_rmaps_base_display_map'  # Open MPI: mpirun --display-map
PARALLEL_COMMAND = 'mpirun --allow-run-as-root --oversubscribe -np %_(JOB_NODES)d %_(COMMAND)s'
# A queue that runs the job script where it is submitted, as a batch system would run it on a node.
# SUBMIT_COMMAND prints a job id only when the job succeeded (pyworkflow reads the first number of its
# output), so a failed job fails the submission. CHECK_COMMAND prints nothing: the job is over.
HOSTS_CONF = '''[localhost]
PARALLEL_COMMAND = %s
NAME = local-bash
MANDATORY = 0
SUBMIT_COMMAND = bash %%_(JOB_SCRIPT)s >%%_(JOB_LOGS)s.out 2>%%_(JOB_LOGS)s.err && echo job %%_(JOB_NAME)s
CHECK_COMMAND = true %%_(JOB_ID)s
CANCEL_COMMAND = true %%_(JOB_ID)s
SUBMIT_TEMPLATE = #!/bin/bash
    # What a cluster template would ask its scheduler for:
    #QUEUE --job-name=%%_(JOB_NAME)s --ntasks=%%_(JOB_NODES)d --cpus-per-task=%%_(JOB_THREADS)d
    %%_(JOB_COMMAND)s
QUEUES = {"local": [["QUEUE_FOR_JOBS", "N", "Use queue for jobs", "Y: each program run is a job"]]}
QUEUES_DEFAULT = {}
''' % PARALLEL_COMMAND
# The user's environment can change the command pyworkflow builds; these tests set neither.
COMMAND_ENV = ('PARALLEL_COMMAND_TESSERA', 'SCIPION_MPI_FLAGS')


def setUpModule():
    """This module's hosts.conf replaces the session's until its tests end. (A project's own hosts.conf,
    Project.create(hostsConf=...), is no way around it: pyworkflow keeps it at
    <project>/.config/<SCIPION_HOSTS>, which is SCIPION_HOSTS itself when that is an absolute path.)"""
    for name in COMMAND_ENV:
        unittest.addModuleCleanup(restore_env, name, os.environ.pop(name, None))
    hosts = os.environ['SCIPION_HOSTS']  # read by every protocol run when it loads its project
    with open(hosts) as f:
        unittest.addModuleCleanup(write_file, hosts, f.read())
    write_file(hosts, HOSTS_CONF)


def write_file(path, text):
    with open(path, 'w') as f:
        f.write(text)


def restore_env(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def mpirun_line(protocol, nodes):
    """The command pyworkflow runs for the protocol's program with `nodes` MPI processes (spaces
    collapsed): PARALLEL_COMMAND around the program's absolute path and its arguments."""
    program = tessera.Plugin.getProgram(protocol._tesseraSchema['program'])
    command = '%s --params %s' % (program, protocol._getPath('params.json'))
    return PARALLEL_COMMAND.replace('%_(', '%(') % {'JOB_NODES': nodes, 'COMMAND': command}


def squash(text):
    return ' '.join(text.split())


def refine_homo_class(mpi):
    """TesseraProtRefineHomo as the plugin builds it from a schema with supports.mpi = mpi."""
    schema = copy.deepcopy(TesseraProtRefineHomo._tesseraSchema)
    schema['supports'] = dict(schema['supports'], mpi=mpi)
    return make_protocol_class(schema)


class TestMpiForm(unittest.TestCase):
    """The schema's MPI flag -> the form's numberOfMpi -> the command pyworkflow runs."""

    @classmethod
    def setUpClass(cls):
        cls.project = session.new_project('tessera_mpi_form')

    def run_program_step(self, cls, **kwargs):
        """Writes params.json and runs runProgramStep as Scipion's executor would, in this process, with
        pyworkflow's runCommand (the last call, which gets the whole command line) captured."""
        prot = self.project.newProtocol(cls, **kwargs)
        self.project.saveProtocol(prot)
        prot.makePathsAndClean()
        prot.setStepsExecutor()  # the one pw_protocol_run sets up for a serial protocol without a queue
        prot.convertInputStep()
        with mock.patch('pyworkflow.utils.process.runCommand') as run_command:
            prot.runProgramStep()
        self.assertEqual(run_command.call_count, 1)
        with open(prot._getPath('params.json')) as f:
            return prot, squash(run_command.call_args[0][0]), json.load(f)

    def test_mpi_schema_gives_the_mpi_field(self):
        form = refine_homo_class(mpi=True)().getDefinition()
        mpi, threads = form.getParam('numberOfMpi'), form.getParam('numberOfThreads')
        self.assertIsInstance(mpi, IntParam)
        self.assertEqual((mpi.getDefault(), threads.getDefault()), ('1', '1'))
        self.assertEqual(threads.label.get(), 'Threads')  # the program's, not Scipion's step threads
        self.assertIn('each MPI process', threads.help.get())
        self.assertTrue(refine_homo_class(mpi=True)().allowMpi)  # what Scipion's form shows it by

    def test_no_mpi_field_without_mpi_support(self):
        form = refine_homo_class(mpi=False)().getDefinition()
        self.assertIsNone(form.getParam('numberOfMpi'))
        self.assertIsNotNone(form.getParam('numberOfThreads'))
        self.assertFalse(refine_homo_class(mpi=False)().allowMpi)
        built = TesseraProtRefineHomo._tesseraSchema['supports']['mpi']
        self.assertEqual(TesseraProtRefineHomo().allowMpi, built)

    def test_mpi_processes_go_to_mpirun_and_threads_to_the_program(self):
        prot, command, params = self.run_program_step(refine_homo_class(mpi=True), numberOfMpi=MPI_PROCESSES,
                                                      numberOfThreads=3)
        self.assertEqual(command, mpirun_line(prot, MPI_PROCESSES))
        self.assertEqual(params['threads'], 3)
        self.assertFalse({'mpi', 'numberOfMpi'} & set(params))
        self.assertNotIn('MPI', '\n'.join(prot.validate()))
        submit = prot.getSubmitDict()  # what a queue job script is filled with
        self.assertEqual((submit['JOB_NODES'], submit['JOB_THREADS'], submit['JOB_CORES']), (2, 3, 6))

    def test_one_mpi_process_runs_the_program_alone(self):
        prot, command, _ = self.run_program_step(refine_homo_class(mpi=True), numberOfMpi=1, numberOfThreads=2)
        self.assertEqual(command, '%s --params %s' % (tessera.Plugin.getProgram('tessera_refine_homo'),
                                                      prot._getPath('params.json')))

    def test_a_program_without_mpi_never_runs_under_mpirun(self):
        """numberOfMpi can still be set without the form (a workflow file, a script): validation refuses
        it, and the step runs the program alone anyway."""
        prot, command, params = self.run_program_step(refine_homo_class(mpi=False), numberOfMpi=4,
                                                      numberOfThreads=2)
        self.assertNotIn('mpirun', command)
        self.assertTrue(command.startswith(tessera.Plugin.getProgram('tessera_refine_homo')), command)
        self.assertEqual(params['threads'], 2)
        self.assertIn('does not run under MPI', '\n'.join(prot.validate()))


def declared_mpi(program):
    """supports.mpi in the built program's own --schema (not the schema file the plugin read)."""
    done = subprocess.run([program, '--schema'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise AssertionError('%s --schema failed (%d): %s' % (program, done.returncode, done.stderr))
    return bool(json.loads(done.stdout)['supports'].get('mpi'))


class TestMpiRuns(unittest.TestCase):
    """tessera_refine_homo with numberOfMpi=2, numberOfThreads=1: directly and through a queue."""

    @classmethod
    def setUpClass(cls):
        program = tessera.Plugin.getProgram('tessera_refine_homo')
        if not tessera.Plugin.hasProgram('tessera_refine_homo'):
            raise AssertionError('tessera_refine_homo is not built (looked at %s)' % program)
        if not declared_mpi(program):
            raise unittest.SkipTest('%s declares no MPI support (supports.mpi is false in its --schema): the '
                                    'MPI runs through Scipion and its queue were not tested' % program)
        # From here on, a failure is a failure: the program says it runs under mpirun.
        if not TesseraProtRefineHomo._tesseraSpec.mpi:
            raise AssertionError('%s declares MPI support but the schema the plugin read (%s) does not: '
                                 'rebuild the tessera_schemas target' % (program, tessera.Plugin.getSchemaDir()))
        if shutil.which('mpirun', path=tessera.Plugin.getEnviron()['PATH']) is None:
            raise AssertionError('%s declares MPI support but there is no mpirun on the PATH' % program)
        # Open MPI's mpirun prints its process map (one line per rank) into the run's logs: evidence of
        # the ranks that does not depend on what the program logs. The protocol runs inherit it.
        cls.addClassCleanup(restore_env, DISPLAY_MAP, os.environ.get(DISPLAY_MAP))
        os.environ[DISPLAY_MAP] = '1'
        cls.project = session.new_project('tessera_mpi_runs')
        cls.parts, cls.vol, _ = import_inputs(cls.project)

    def refine(self, name, queue_for_jobs=None):
        """Runs the refinement to the end (AssertionError with its log otherwise), through the queue when
        queue_for_jobs is 'N' (the protocol is the job) or 'Y' (each program run is a job)."""
        prot = self.project.newProtocol(
            TesseraProtRefineHomo, objLabel='tessera refine, %d MPI (%s)' % (MPI_PROCESSES, name),
            particles=self.parts.outputParticles, reference=self.vol.outputVolume, max_iterations=1,
            numberOfMpi=MPI_PROCESSES, numberOfThreads=1)
        if queue_for_jobs:
            prot._useQueue.set(True)  # what the form's "Use a queue engine?" sets
            prot.setQueueParams(('local', {'QUEUE_FOR_JOBS': queue_for_jobs}))
        try:
            return session.launch(self.project, prot)
        except AssertionError as e:  # add what the queue jobs printed (their .out and .err)
            jobs = [fn for fn in glob.glob(prot._getLogsPath('*')) if fn.endswith(('.out', '.err'))]
            raise AssertionError('%s\n%s' % (e, '\n'.join(open(fn, errors='replace').read()[-2000:] for fn in jobs)))

    def logs(self, prot):
        """Every log of the run: the protocol's run.stdout/run.stderr and the queue jobs' .out/.err."""
        text = []
        for fn in sorted(glob.glob(prot._getLogsPath('*'))):
            if not fn.endswith('.job'):
                with open(fn, errors='replace') as f:
                    text.append(f.read())
        return '\n'.join(text)

    def job_scripts(self, prot):
        scripts = []
        for fn in sorted(glob.glob(prot._getLogsPath('*.job'))):
            with open(fn) as f:
                scripts.append(squash(f.read()))
        return scripts

    def assertRanMpi(self, prot, logs):
        """mpirun's map of the two ranks is in the logs, the program saw one MPI world of two processes
        (not two programs alone, as an mpirun of another MPI library would start) and the outputs are
        registered."""
        ranks = sorted({int(r) for r in re.findall(r'Process rank: (\d+)', logs)})
        self.assertEqual(ranks, list(range(MPI_PROCESSES)), 'ranks in the process map of %s' % prot.getRunName())
        with open(prot._getExtraPath('run.log.jsonl')) as f:
            messages = [json.loads(line).get('message') or '' for line in f]
        sizes = [int(m) for m in re.findall(r'(\d+) MPI processes', '\n'.join(messages))]
        self.assertEqual(sizes, [MPI_PROCESSES], 'the "<n> MPI processes" messages of run.log.jsonl (the '
                                                 'program reports the size of its MPI world there)')
        with open(prot._getPath('params.json')) as f:
            self.assertEqual(json.load(f)['threads'], 1)
        vol = prot.outputVolume
        self.assertIsInstance(vol, Volume)
        halves = vol.getHalfMaps().split(',')
        self.assertEqual(len(halves), 2)
        self.assertTrue(all(os.path.exists(h) for h in halves), halves)
        self.assertIsInstance(prot.outputFSC, FSC)
        parts = prot.outputParticles
        self.assertIsInstance(parts, SetOfParticles)
        self.assertEqual((parts.getSize(), parts.getAlignment()), (1000, ALIGN_PROJ))

    def test_direct(self):
        prot = self.refine('direct')
        self.assertFalse(prot.useQueue())
        self.assertEqual(self.job_scripts(prot), [])
        logs = self.logs(prot)
        self.assertIn(mpirun_line(prot, MPI_PROCESSES), squash(logs))  # pyworkflow's "Running command"
        self.assertRanMpi(prot, logs)

    def test_queue_runs_the_protocol_as_one_job(self):
        """QUEUE_FOR_JOBS N: the job script runs the whole protocol (pw_protocol_run.py) and asks for 2
        tasks of 1 thread; inside it, runJob builds the mpirun line."""
        prot = self.refine('queue', queue_for_jobs='N')
        self.assertTrue(prot.useQueueForProtocol())
        scripts = self.job_scripts(prot)
        self.assertEqual(len(scripts), 1, scripts)
        self.assertIn('pw_protocol_run.py', scripts[0])
        self.assertIn('--ntasks=%d --cpus-per-task=1' % MPI_PROCESSES, scripts[0])
        logs = self.logs(prot)
        self.assertIn(mpirun_line(prot, MPI_PROCESSES), squash(logs))  # run inside the job
        self.assertRanMpi(prot, logs)

    def test_queue_for_jobs_writes_mpirun_into_the_job_script(self):
        """QUEUE_FOR_JOBS Y: the protocol runs here and submits the program's run as a job whose script
        holds the mpirun line."""
        prot = self.refine('queue for jobs', queue_for_jobs='Y')
        self.assertTrue(prot.useQueueForSteps())
        scripts = self.job_scripts(prot)
        self.assertEqual(len(scripts), 1, scripts)
        self.assertIn(mpirun_line(prot, MPI_PROCESSES), scripts[0])
        self.assertIn('--ntasks=%d --cpus-per-task=1' % MPI_PROCESSES, scripts[0])
        self.assertRanMpi(prot, self.logs(prot))


if __name__ == '__main__':
    unittest.main(verbosity=2)
