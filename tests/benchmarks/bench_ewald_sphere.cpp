// bench_ewald_sphere [COUNT] [THREADS]: Ewald sphere correction at a realistic size. Not a test:
// it prints figures.
//
// A large particle (Gaussian blobs, sigma 0.8 A, within 110 A of the centre) in a box of 256 at
// 1 A/px and 300 kV (lambda 0.0197 A: at Nyquist the sheets lie 0.63 px off the central slice),
// COUNT noise-free images (default 6000) at true poses, 20 per defocus (0.5-2.5 um), simulated
// with positive curvature and reconstructed with the flat insertion (off), the right sign
// (positive) and the wrong one (negative). Printed per band: the relative error against the
// truth (sum |R - T|^2 / sum |T|^2) and the FSC against the truth.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ewald_test_util.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/parallel.hpp"
#include "tessera/projector.hpp"
#include "tessera/simulate.hpp"

using namespace tessera;

int main(int argc, char** argv) {
  const long count = argc > 1 ? std::atol(argv[1]) : 6000;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const int box = 256;
  const double pixel_A = 1.0;
  const auto started = std::chrono::steady_clock::now();
  const RealGrid truth = test::blob_volume(box, test::blobs_in_ball(20000, 110, 3), 0.8);
  SimulationOptions o;
  o.count = count;
  o.pixel_A = pixel_A;
  o.voltage_kV = 300;
  o.defocus_min_A = 5000;
  o.defocus_max_A = 25000;
  o.particles_per_micrograph = 20;
  o.seed = 7;
  o.ewald_sphere = EwaldSphere::Positive;
  const Simulator sim({truth}, o);
  const OpticsGroup g = sim.optics();
  std::printf("box %d, %.1f A/px, %.0f kV (lambda %.5f A), %ld noise-free particles, %d threads\n", box, pixel_A,
              o.voltage_kV, electron_wavelength_A(o.voltage_kV), count, threads);
  RealGrid probe;
  sim.make(0, probe);
  centre_to_corner(probe, false);
  const ComplexGrid probe_f = fft_2d(probe);
  double power = 0;
  for (const cfloat& v : probe_f.values()) power += std::norm(v);
  const auto quanta = AccumulationQuanta::for_power(20 * power / probe_f.size());
  BackProjector off(box, 2, {}, {}, quanta), right(box, 2, {}, {}, quanta), wrong(box, 2, {}, {}, quanta);
  for_each_particle(count, threads, [&](int, long i) {
    RealGrid image;
    const SimulatedParticle sp = sim.make(i, image);
    centre_to_corner(image, false);
    const ComplexGrid x = fft_2d(image);
    const ModelPose pose = model_pose(*sp.particle.pose, g);
    const EwaldCtf plus = model_ewald_ctf(sp.particle, g, box, EwaldSphere::Positive);
    EwaldCtf minus = plus;
    minus.curvature_px = -plus.curvature_px;
    ComplexGrid data;
    RealGrid weight;
    backprojection_terms(x, pose, &plus.sine, 1, 1, data, weight);
    off.insert(data, weight, model_matrix(pose));
    backproject_ewald(right, x, pose, plus, 1, 1);
    backproject_ewald(wrong, x, pose, minus, 1, 1);
  });
  const double inserted_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ReconstructOptions ro;
  ro.threads = threads;
  const char* names[3] = {"off", "positive (right)", "negative (wrong)"};
  const BackProjector* bps[3] = {&off, &right, &wrong};
  const double bands[][2] = {{51, 64}, {64, 85}, {85, 102}, {102, 116}, {116, 128}};
  std::printf("%-18s", "resolution (A)");
  for (const auto& b : bands) std::printf("  %5.2f-%5.2f", box * pixel_A / b[0], box * pixel_A / b[1]);
  std::printf("\n");
  for (int m = 0; m < 3; ++m) {
    const RealGrid r = bps[m]->reconstruct(ro);
    const std::vector<double> curve = fsc(r, truth);
    std::printf("%-18s", names[m]);
    for (const auto& b : bands) std::printf("  %11.4f", test::band_error(r, truth, b[0], b[1]));
    std::printf("   relative error\n%-18s", "");
    for (const auto& b : bands) {
      double s = 0;
      int n = 0;
      for (int k = static_cast<int>(b[0]); k < static_cast<int>(b[1]) && k < static_cast<int>(curve.size()); ++k)
        s += curve[static_cast<std::size_t>(k)], ++n;
      std::printf("  %11.4f", n ? s / n : 0.0);
    }
    std::printf("   FSC against the truth (band mean)\n");
  }
  std::printf("simulate and insert %.0f s, all %.0f s\n", inserted_s,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}
