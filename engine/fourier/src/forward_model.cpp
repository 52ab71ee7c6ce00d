#include "tessera/forward_model.hpp"

#include <fmt/format.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "tessera/alignment.hpp"
#include "tessera/ctf.hpp"
#include "tessera/fft.hpp"

namespace tessera {
namespace {

void check_ctf_shape(const RealGrid* ctf, int box, const char* caller) {
  if (ctf && (ctf->nx() != box / 2 + 1 || ctf->ny() != box || ctf->nz() != 1))
    throw std::invalid_argument(fmt::format("{}: the CTF is {}x{}x{}, the half-complex grid of box {} is {}x{}", caller,
                                            ctf->nx(), ctf->ny(), ctf->nz(), box, box / 2 + 1, box));
}

// scale * CTF at storage index i (the CTF is optional).
float amplitude(const RealGrid* ctf, double scale, std::size_t i) {
  return static_cast<float>(ctf ? scale * (*ctf)[i] : scale);
}

}  // namespace

ModelPose model_pose(const ProjectionPose& pose, double pixel_A) {
  return ModelPose{euler_to_matrix(pose.angles), pose.origin_x_A / pixel_A, pose.origin_y_A / pixel_A};
}

namespace {

CtfParams model_ctf_params(const Particle& p, const OpticsGroup& g) {
  CtfParams c = CtfParams::of(p, g);
  c.scale = 1;  // the contrast is the model's separate scale
  return c;
}

}  // namespace

RealGrid model_ctf(const Particle& p, const OpticsGroup& g, int box) {
  return ctf_image(model_ctf_params(p, g), box, box, g.pixel_A);
}

void model_ctf_points(const Particle& p, const OpticsGroup& g, const FourierDisk& disk, std::vector<float>& out) {
  const Ctf ctf(model_ctf_params(p, g));
  const double span_A = disk.box * g.pixel_A;  // ctf_image's frequencies: index / (N pixel)
  out.resize(disk.size());
  for (std::size_t j = 0; j < disk.size(); ++j) out[j] = ctf(double(disk.kx[j]) / span_A, double(disk.ky[j]) / span_A);
}

cfloat origin_phase(double kx, double ky, int box, double origin_x_px, double origin_y_px) {
  const double phase = 2.0 * std::numbers::pi / box * (kx * origin_x_px + ky * origin_y_px);
  return {static_cast<float>(std::cos(phase)), static_cast<float>(std::sin(phase))};
}

void expected_transform(const Projector& volume, const ModelPose& pose, const RealGrid* ctf, double scale,
                        ComplexGrid& out) {
  check_ctf_shape(ctf, volume.box(), "expected_transform");
  volume.project(pose.rotation, out);
  apply_image_formation(pose, ctf, scale, out);
}

void apply_image_formation(const ModelPose& pose, const RealGrid* ctf, double scale, ComplexGrid& out) {
  const int n = out.ny(), hx = n / 2 + 1;
  if (out.nx() != hx || out.nz() != 1)
    throw std::invalid_argument(fmt::format("apply_image_formation: a {}x{}x{} grid is not the half-complex grid of "
                                            "a {}x{} image",
                                            out.nx(), out.ny(), out.nz(), n, n));
  check_ctf_shape(ctf, n, "apply_image_formation");
  for (int y = 0; y < n; ++y) {
    const int ky = fourier_index(y, n);
    for (int x = 0; x < hx; ++x) {
      const std::size_t i = static_cast<std::size_t>(y) * hx + x;
      out[i] *= origin_phase(x, ky, n, pose.origin_x_px, pose.origin_y_px) * amplitude(ctf, scale, i);
    }
  }
}

void expected_points(const Projector& volume, const ModelPose& pose, const FourierDisk& disk, const RealGrid* ctf,
                     double scale, std::vector<cfloat>& out) {
  const int n = volume.box();
  if (disk.box != n)
    throw std::invalid_argument(
        fmt::format("expected_points: the disk is for box {}, the volume's box is {}", disk.box, n));
  check_ctf_shape(ctf, n, "expected_points");
  out.resize(disk.size());
  volume.project_points(pose.rotation, disk.kx.data(), disk.ky.data(), disk.size(), out.data());
  for (std::size_t j = 0; j < disk.size(); ++j)
    out[j] *= origin_phase(disk.kx[j], disk.ky[j], n, pose.origin_x_px, pose.origin_y_px) *
              amplitude(ctf, scale, disk.index[j]);
}

void backprojection_terms(const ComplexGrid& image, const ModelPose& pose, const RealGrid* ctf, double scale,
                          double probability, ComplexGrid& data, RealGrid& weight) {
  const int n = image.ny();
  check_ctf_shape(ctf, n, "backprojection_terms");
  data = image;
  phase_shift_2d(data, n, pose.origin_x_px, pose.origin_y_px);
  if (weight.nx() != image.nx() || weight.ny() != image.ny()) weight = RealGrid(image.nx(), image.ny());
  const float a = static_cast<float>(probability * scale), w = static_cast<float>(probability * scale * scale);
  for (std::size_t k = 0; k < data.size(); ++k) {
    const float c = ctf ? (*ctf)[k] : 1.0f;
    data[k] *= a * c;
    weight[k] = w * c * c;
  }
}

}  // namespace tessera
