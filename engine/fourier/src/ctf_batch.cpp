#include "tessera/ctf_batch.hpp"

#include <cmath>
#include <cstddef>
#include <stdexcept>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {
namespace {

void check_shapes(const ComplexGrid& stack, int nx, std::size_t batch) {
  if (nx < 1)
    throw std::invalid_argument(fmt::format("CtfApplier::apply: image width nx = {} is not positive", nx));
  if (stack.nx() != nx / 2 + 1)
    throw std::invalid_argument(fmt::format(
        "CtfApplier::apply: stack is {} wide but images {} pixels wide need nx/2+1 = {}",
        stack.nx(), nx, nx / 2 + 1));
  if (static_cast<std::size_t>(stack.nz()) != batch)
    throw std::invalid_argument(fmt::format(
        "CtfApplier::apply: stack holds {} images but {} CTF parameter sets were given", stack.nz(),
        batch));
}

void check_params(const CtfParams& p, std::size_t z) {
  const double values[] = {p.defocus_u_A, p.defocus_v_A,  p.defocus_angle_deg,
                           p.voltage_kV,  p.cs_mm,        p.amplitude_contrast,
                           p.phase_shift_deg, p.bfactor_A2, p.scale};
  for (double v : values)
    if (!std::isfinite(v))
      throw InputError(fmt::format("CTF parameters of image {}: a value is not finite ({})", z, v));
  for (const double c : p.even_zernike)
    if (!std::isfinite(c))
      throw InputError(fmt::format("CTF parameters of image {}: an even aberration coefficient is not finite ({})", z, c));
  if (p.voltage_kV <= 0)
    throw InputError(fmt::format("CTF parameters of image {}: voltage {} kV is not positive", z,
                                 p.voltage_kV));
  if (p.amplitude_contrast < 0 || p.amplitude_contrast > 1)
    throw InputError(fmt::format("CTF parameters of image {}: amplitude contrast {} is outside [0, 1]",
                                 z, p.amplitude_contrast));
}

float op_factor(float ctf, CtfOp op) {
  switch (op) {
    case CtfOp::Multiply: return ctf;
    case CtfOp::MultiplyAbs: return std::abs(ctf);
    case CtfOp::Square: return ctf * ctf;
  }
  throw std::invalid_argument("CtfApplier::apply: unknown CtfOp");
}

class CpuCtfApplier final : public CtfApplier {
 private:
  void apply_validated(ComplexGrid& stack, int nx, const std::vector<CtfParams>& params,
                       double pixel_A, CtfOp op) override {
    const int hx = stack.nx(), ny = stack.ny();
    for (std::size_t z = 0; z < params.size(); ++z) {
      const Ctf ctf(params[z]);
      cfloat* image = stack.section(static_cast<int>(z));
      for (int y = 0; y < ny; ++y) {
        // Same frequency expressions as ctf_image() (ctf.cpp), so the values agree bit for bit.
        const double ky = fourier_index(y, ny) / (ny * pixel_A);
        cfloat* row = image + static_cast<std::size_t>(y) * hx;
        for (int x = 0; x < hx; ++x) row[x] *= op_factor(ctf(x / (nx * pixel_A), ky), op);
      }
    }
  }
};

}  // namespace

CtfApplier::~CtfApplier() = default;

void CtfApplier::apply(ComplexGrid& stack, int nx, const std::vector<CtfParams>& params,
                       double pixel_A, CtfOp op) {
  check_shapes(stack, nx, params.size());
  if (op != CtfOp::Multiply && op != CtfOp::MultiplyAbs && op != CtfOp::Square)
    throw std::invalid_argument("CtfApplier::apply: unknown CtfOp");
  if (!(std::isfinite(pixel_A) && pixel_A > 0))
    throw InputError(fmt::format("CTF: pixel size {} A is not a positive number", pixel_A));
  for (std::size_t z = 0; z < params.size(); ++z) check_params(params[z], z);
  if (params.empty() || stack.empty()) return;
  apply_validated(stack, nx, params, pixel_A, op);
}

std::unique_ptr<CtfApplier> make_cpu_ctf_applier() { return std::make_unique<CpuCtfApplier>(); }

}  // namespace tessera
