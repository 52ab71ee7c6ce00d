#pragma once
/// What the benchmark programs (bench_refine_homo, bench_scale) share: running a
/// job and measuring what it cost, the simulated dataset, the refinement
/// commands of Tessera and RELION 3.1, and the figures read from their outputs.
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

/// Simulates `count` particles into work/sim (replacing it) as relion_7DDO was
/// made: SNR 0.1 (signal variance / noise variance over the box), defocus
/// 1-2.5 um, astigmatism up to 600 A, origins sigma 3 A, seed 42.
/// volume_option: default_volume_option() or "--volume FILE". Log: work/sim.log.
void simulate(const std::filesystem::path& work, const std::string& volume_option, long count, int threads);

/// A simulated dataset ready for refinement.
struct Dataset {
  std::filesystem::path work;
  MrcMap truth;            ///< sim/truth.mrc
  ParticleSet true_poses;  ///< sim/particles.star
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

/// relion_refine_mpi as in ../shared/data/relion_7DDO/README.md (1 master + 2
/// workers, --j 1), writing ../relion/run_*, to be run in sim/. The particle
/// diameter (130 A) and angular sampling do not depend on the pixel size; the
/// offset search keeps its physical extent: range 12 A, step 6 A (4 and 2 px at
/// 3 A/px).
std::string relion_refine_command(double pixel_A);

/// How well a refinement found the truth.
struct Quality {
  double res_vs_truth_A = 0;    ///< FSC 0.5 of the half-map average against the truth
  double gsfsc_A = 0;           ///< FSC 0.143 between the half maps, unmasked
  double median_angle_deg = 0;  ///< angular error to the true poses
  double p90_angle_deg = 0;
  double median_shift_A = 0;
  int iterations = 0;  ///< iterations the program ran
};

/// Quality of tessera_refine_homo's run folder `out` (absolute); iterations
/// are its "iteration" events in run.log.jsonl.
Quality tessera_quality(const std::filesystem::path& out, const Dataset& d);
/// Quality of RELION's auto-refine that wrote `dir`/run_*; iterations are the
/// highest NNN of its run_itNNN_optimiser.star files.
Quality relion_quality(const std::filesystem::path& dir, const Dataset& d);

/// a / b with two decimals, "-" when b is not positive.
std::string ratio(double a, double b);

}  // namespace tessera::bench
