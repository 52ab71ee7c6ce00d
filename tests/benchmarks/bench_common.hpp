#pragma once
/// What the benchmark programs (bench_refine_homo, bench_scale, bench_refine_nu)
/// share: running a job and measuring what it cost, the simulated dataset, the
/// refinement commands of Tessera and RELION 3.1, the figures read from their
/// outputs, and results cached per command (--reuse).
///
/// A dataset lives in one work folder: sim/ (tessera_simulate's output, whose
/// particles.star holds the true poses), sim/particles_input.star (the same
/// particles without poses), ref_lp40.mrc (the truth low-passed to 40 A, the
/// initial reference of both programs). Commands are run with /bin/sh; the
/// Tessera command in the work folder, the RELION command in sim/ (RELION
/// resolves image names against its working directory).
///
/// Failures of the benchmark itself (a dataset that cannot be made, an output
/// that cannot be read) throw std::runtime_error with one line.
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/mrc.hpp"
#include "tessera/particles.hpp"

namespace tessera::bench {

/// What one job cost. Memory in MB (2^20 bytes).
struct JobCost {
  double wall_s = 0;
  /// User + system time of every process of the job (the getrusage
  /// RUSAGE_CHILDREN difference across it), seconds: on a shared machine the
  /// fair measure of work. Includes the polling of idle MPI ranks.
  double cpu_s = 0;
  /// Largest sum over the job's process tree (the shell, mpirun, every rank)
  /// of the resident set sizes, sampled every 100 ms. Pages shared between
  /// processes (libraries, MPI shared memory) count once per process.
  double peak_tree_mb = 0;
  double peak_process_mb = 0;  ///< peak RSS of the largest single process (wait4's ru_maxrss)
  int status = -1;             ///< exit status; -1 when killed by a signal
};

/// Runs `command` with /bin/sh in `dir`, stdout and stderr to `log`, and measures it.
JobCost run_job(const std::string& command, const std::filesystem::path& dir, const std::filesystem::path& log);

/// Path of a protocol program of this build (e.g. "tessera_refine_homo").
std::string protocol_path(const std::string& program);

/// "mpirun --allow-run-as-root --oversubscribe -np N " (ranks may outnumber cores).
std::string mpirun_prefix(int ranks);

/// The 7DDO complex of the shared data, relion_7DDO/ground_truth/gt_full_x2.mrc
/// (64^3 at 3 A/px, a gemmi map blurred at 20), when the shared data is present.
std::optional<std::filesystem::path> truth_7ddo();

/// The tessera_simulate option that picks the volume to simulate: truth_7ddo()
/// when present, else the built-in phantom at 3 A/px.
std::string default_volume_option();

/// What simulate() changes of relion_7DDO's recipe.
struct SimulationSettings {
  double snr = 0.1;   ///< signal variance / noise variance over the box
  std::string extra;  ///< more tessera_simulate options (e.g. "--disorder true ...")
};

/// The tessera_simulate command of simulate(), to be run in the work folder.
std::string simulate_command(const std::string& volume_option, long count, int threads,
                             const SimulationSettings& settings);

/// Simulates `count` particles into work/sim (replacing it) as relion_7DDO was
/// made: SNR 0.1 (signal variance / noise variance over the box), defocus
/// 1-2.5 um, astigmatism up to 600 A, origins sigma 3 A, seed 42; `settings`
/// changes the SNR and adds options. volume_option: default_volume_option() or
/// "--volume FILE". Log: work/sim.log.
void simulate(const std::filesystem::path& work, const std::string& volume_option, long count, int threads,
              const SimulationSettings& settings = {});

/// Whether work/sim holds a finished simulation made as `key` says (the text
/// mark_simulation() wrote in work/simulation.key): --reuse keeps it then.
bool simulation_matches(const std::filesystem::path& work, const std::string& key);
void mark_simulation(const std::filesystem::path& work, const std::string& key);

/// A simulated dataset ready for refinement.
struct Dataset {
  std::filesystem::path work;
  MrcMap truth;            ///< sim/truth.mrc
  ParticleSet true_poses;  ///< sim/particles.star
  RealGrid protein_mask;   ///< sim/truth_mask.mrc: tessera_simulate's soft mask of the truth
  /// The truth's point group (RELION's name): angular errors are measured to the
  /// nearest pose that gives the same projection (the refined pose times a
  /// symmetry matrix), whatever symmetry the refinement imposed.
  std::string symmetry = "C1";
  int box() const { return truth.data.nx(); }
  double pixel_A() const { return truth.voxel_A; }
};

/// How RELION groups the particles (noise spectra, scale factors).
enum class RelionGroups {
  PerMicrograph,  ///< RELION's default: no rlnGroupName
  /// All in one group (rlnGroupName 1; Tessera ignores the column). RELION
  /// 3.1.3 crashes in its initial noise estimate ("Array_by_array: different
  /// shapes (+)") on some sets of several micrographs, e.g. box 128 with 300
  /// particles in 3 micrographs; the simulated noise is the same in all.
  One,
};

/// Writes sim/particles_input.star (poses and half sets removed) and
/// ref_lp40.mrc in `work`, which holds a simulation.
Dataset prepare_refinement(const std::filesystem::path& work, RelionGroups groups);

/// tessera_refine_homo from the 40 A reference into `out` (relative to the work
/// folder); `extra`: more options. Put mpirun_prefix() before it for MPI ranks.
std::string tessera_refine_command(const std::string& out, int threads, const std::string& extra);
/// The same with another refinement program of this build taking
/// tessera_refine_homo's options (e.g. "tessera_refine_nu").
std::string tessera_refine_command(const std::string& program, const std::string& out, int threads,
                                   const std::string& extra);

/// relion_refine_mpi as in ../shared/data/relion_7DDO/README.md (1 master + 2
/// workers, --j 1), writing ../relion/run_*, to be run in sim/. The particle
/// diameter (130 A) and angular sampling do not depend on the pixel size; the
/// offset search keeps its physical extent: range 12 A, step 6 A (4 and 2 px at
/// 3 A/px).
std::string relion_refine_command(double pixel_A);

/// How well a refinement found the truth.
/// Resolutions that stay above the threshold up to Nyquist read 2 x pixel.
struct Quality {
  double res_vs_truth_A = 0;  ///< FSC 0.5 of the half-map average against the truth
  /// The same with both maps multiplied by the dataset's protein mask: the
  /// protein alone, whatever the map holds around it (a micelle, noise).
  double res_vs_truth_masked_A = 0;
  double gsfsc_A = 0;  ///< FSC 0.143 between the half maps, unmasked
  /// The run's own GSFSC: fsc.json's corrected@0.143 (tight mask, phase
  /// randomization); 0 for RELION.
  double gsfsc_run_A = 0;
  double median_angle_deg = 0;  ///< angular error to the true poses
  double p90_angle_deg = 0;
  double median_shift_A = 0;
  int iterations = 0;  ///< iterations the program ran
};

/// Quality of a Tessera refinement's run folder `out` (absolute; tessera_refine_homo,
/// tessera_refine_nu); iterations are its "iteration" events in run.log.jsonl.
Quality tessera_quality(const std::filesystem::path& out, const Dataset& d);
/// Quality of RELION's auto-refine that wrote `dir`/run_*; iterations are the
/// highest NNN of its run_itNNN_optimiser.star files.
Quality relion_quality(const std::filesystem::path& dir, const Dataset& d);

/// a / b with two decimals, "-" when b is not positive.
std::string ratio(double a, double b);

/// A file's whole text ("" when it can not be read).
std::string read_file(const std::filesystem::path& file);

/// Size and FNV-1a hash of a file's bytes: a rebuilt program gets a new one.
std::string file_fingerprint(const std::filesystem::path& file);

/// One program's run on one dataset, and what it gave.
struct Result {
  int box = 0;
  double pixel_A = 0;
  long count = 0;
  std::string program;  ///< "Tessera 2t", "RELION", "NU"
  std::string state;    ///< "done", or why there are no figures
  JobCost cost;
  Quality quality;
  bool earlier_build = false;  ///< cached from another build of the program (shown when it is not run)
  bool done() const { return state == "done"; }
  bool is_relion() const { return program == "RELION"; }
};

/// What a cached result depends on besides its dataset: the command and the program's binary.
struct JobKey {
  std::string command;
  std::string binary;  ///< file_fingerprint of the program, "" when not tracked (RELION)
};

/// One run of a program on a dataset.
struct Job {
  std::string program;  ///< Result::program
  std::string name;     ///< file stem: "tessera_2t", "relion"
  JobKey key;
  std::filesystem::path run_in;  ///< working directory of the command
  std::filesystem::path out;     ///< the run's folder, emptied first
  Quality (*quality)(const std::filesystem::path&, const Dataset&);
  std::string failure;              ///< state of a failed run
  bool may_run = true;              ///< false: only a cached result is shown
  std::optional<std::string> skip;  ///< why it can not run here
};

/// Runs `job` on dataset `d` (made as `simulation_key` says), its log in
/// d.work/<name>.log, and caches the figures in d.work/result_<name>.json.
/// With may_reuse, a cached result of the same command and simulation is
/// returned instead when the binary is the same or the job may not run (then
/// marked earlier_build when the binary differs). A job that is skipped or
/// fails gives a Result whose state says why.
Result run_or_reuse(const Dataset& d, const std::string& simulation_key, const Job& job, bool may_reuse);

/// A bad command line: bench_main prints it and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A benchmark's main: runs run(argc, argv); a UsageError ends it with exit code 2, any other
/// exception with 1, each printed as one line.
int bench_main(int argc, char** argv, int (*run)(int, char**));

}  // namespace tessera::bench
