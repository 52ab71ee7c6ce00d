#pragma once
/// Reading particle images for computation: streamed from their stacks one
/// at a time (memory does not grow with the number of particles), centred
/// and Fourier transformed. The loop over particles is parallel.hpp's.
#include <array>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/mrc.hpp"
#include "tessera/parallel.hpp"
#include "tessera/particles.hpp"

namespace tessera {

/// One per thread: keeps the stacks it has opened and an FFT plan.
class ParticleImageReader {
 public:
  explicit ParticleImageReader(int box);
  /// Multiply each image by a soft circular window before transforming it: 1
  /// inside inner_px, a raised cosine to 0 at outer_px (radii from the centre).
  void set_window(double inner_px, double outer_px);
  /// Half-complex transform of the particle's image with its centre (N/2)
  /// moved to the origin. Throws InputError for an image of the wrong size or
  /// with NaN or infinite values (check_finite_image).
  /// When the particle's optics group has odd aberrations (beam tilt, rlnOddZernike;
  /// aberrations.hpp) the transform is corrected for them, multiplied by exp(-i phi(k)):
  /// what every computation then sees is the image without them (the factor has modulus
  /// 1, so white noise stays white). Work that writes images back in their own frame
  /// (subtraction) applies exp(+i phi) again.
  const ComplexGrid& transform(const ParticleSet& set, const Particle& p);

 private:
  const MrcStackReader& stack(const std::filesystem::path& path);
  const ComplexGrid* odd_phase(const OpticsGroup& g);  // nullptr: none
  struct OddPhaseCache {
    std::vector<double> coefficients;  // effective_odd_zernike of the group it was made for
    std::array<double, 4> mag{};
    double pixel_A = 0;
    ComplexGrid factor;
  };
  std::map<int, OddPhaseCache> odd_phases_;  // by optics group number
  int box_;
  RealGrid window_;  // empty: no window
  RealFft fft_;
  ComplexGrid out_;
  std::map<std::string, std::unique_ptr<MrcStackReader>> stacks_;
};

/// Throws InputError naming the particle ("particle 000008@stack.mrcs: the
/// image has NaN or infinite values ...") unless every pixel is finite.
void check_finite_image(const RealGrid& image, const Particle& p);

/// The box size of a set: its first optics group's image size, or the first stack's.
int particle_box(const ParticleSet& set);

/// Mean |X(k)|^2 per Fourier shell (round(|k|), 0 .. box/2) of the transforms of up to
/// `max_images` particles spread through the set: a refinement's first noise model, and the
/// scale of back-projection sums (AccumulationQuanta::for_power).
std::vector<double> mean_image_power(const ParticleSet& set, int box, int threads, long max_images = 500);

}  // namespace tessera
