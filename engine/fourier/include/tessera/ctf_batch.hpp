#pragma once
/// Applying CTFs to a batch of images in Fourier space: one interface, a CPU
/// implementation here and a CUDA one in engine/cuda (ctf_batch_cuda.hpp).
///
/// An applier is a plan in the FINUFFT sense: make it once (the CUDA one owns
/// a device, a stream and device buffers) and call apply() many times. One
/// applier must not be used from two threads at once; make one per thread.
///
/// The CTF model, units and conventions are those of ctf.hpp. The CPU
/// applier evaluates the same tessera::Ctf as ctf_image(), so it multiplies
/// image z by exactly the values ctf_image(params[z], nx, ny, pixel_A) holds.
#include <memory>
#include <vector>

#include "tessera/ctf.hpp"
#include "tessera/grid.hpp"

namespace tessera {

/// What each Fourier component F(k) is multiplied by.
enum class CtfOp {
  Multiply,     ///< F(k) * CTF(k)        (simulate imaging, Wiener numerator)
  MultiplyAbs,  ///< F(k) * |CTF(k)|      (phase flipping of a CTF-multiplied image)
  Square,       ///< F(k) * CTF(k)^2      (Wiener denominator terms, CTF^2 weights)
};

class CtfApplier {
 public:
  virtual ~CtfApplier();
  CtfApplier(const CtfApplier&) = delete;
  CtfApplier& operator=(const CtfApplier&) = delete;

  /// Multiply, in place, image z of a half-complex stack by op(CTF of params[z]).
  ///
  /// stack:   half-complex transforms (grid.hpp) of `params.size()` images of
  ///          nx * ny pixels: stack.nx() == nx/2 + 1, ny == stack.ny(),
  ///          stack.nz() == params.size() (an empty batch is a no-op).
  /// nx:      real width of the images in pixels (needed because nx/2 + 1 is
  ///          the same for an even nx and nx + 1).
  /// pixel_A: pixel size in Angstrom; component (x, y) is at frequency
  ///          (x / (nx pixel_A), fourier_index(y, ny) / (ny pixel_A)) in 1/A.
  ///
  /// Throws std::invalid_argument when the shapes do not agree (a caller
  /// bug) and InputError when a value that comes from data is unusable: a
  /// pixel size that is not positive and finite, or CTF parameters of image z
  /// that are not finite, a voltage that is not positive, or an amplitude
  /// contrast outside [0, 1]; the stack is untouched then. A failure while
  /// running (e.g. a CUDA error) may leave the stack partly processed.
  void apply(ComplexGrid& stack, int nx, const std::vector<CtfParams>& params,
             double pixel_A, CtfOp op = CtfOp::Multiply);

 protected:
  CtfApplier() = default;

 private:
  /// Called by apply() once the arguments have been validated.
  virtual void apply_validated(ComplexGrid& stack, int nx,
                               const std::vector<CtfParams>& params, double pixel_A,
                               CtfOp op) = 0;
};

/// The CPU applier: single-threaded, evaluates tessera::Ctf in double and
/// multiplies in float.
std::unique_ptr<CtfApplier> make_cpu_ctf_applier();

}  // namespace tessera
