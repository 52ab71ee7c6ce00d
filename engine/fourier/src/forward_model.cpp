#include "tessera/forward_model.hpp"

#include <fmt/format.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "tessera/alignment.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
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

ModelPose model_pose(const ProjectionPose& pose, const OpticsGroup& g) {
  ModelPose m = model_pose(pose, g.pixel_A);
  m.mag_matrix = g.mag_matrix;
  return m;
}

Mat3 model_matrix(const ModelPose& pose) {
  const auto& m = pose.mag_matrix;
  if (m == std::array<double, 4>{1, 0, 0, 1}) return pose.rotation;
  const Mat3& a = pose.rotation;
  Mat3 b = a;  // row 0 of B = M00 row0(A) + M10 row1(A), row 1 = M01 row0(A) + M11 row1(A), row 2 = row2(A)
  for (int j = 0; j < 3; ++j) {
    b[0][j] = m[0] * a[0][j] + m[2] * a[1][j];
    b[1][j] = m[1] * a[0][j] + m[3] * a[1][j];
  }
  return b;
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
  volume.project(model_matrix(pose), out);
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
  volume.project_points(model_matrix(pose), disk.kx.data(), disk.ky.data(), disk.size(), out.data());
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

EwaldSphere parse_ewald_sphere(const std::string& name) {
  if (name == "off") return EwaldSphere::Off;
  if (name == "positive") return EwaldSphere::Positive;
  if (name == "negative") return EwaldSphere::Negative;
  throw InputError(fmt::format("Ewald sphere '{}': expected off, positive or negative", name));
}

std::string ewald_sphere_name(EwaldSphere sphere) {
  switch (sphere) {
    case EwaldSphere::Positive: return "positive";
    case EwaldSphere::Negative: return "negative";
    case EwaldSphere::Off: break;
  }
  return "off";
}

double ewald_curvature_px(EwaldSphere sphere, double voltage_kV, int box, double pixel_A) {
  if (sphere == EwaldSphere::Off) return 0.0;
  const double sign = sphere == EwaldSphere::Positive ? 1.0 : -1.0;
  return sign * electron_wavelength_A(voltage_kV) / (2.0 * box * pixel_A);
}

EwaldCtf model_ewald_ctf(const Particle& p, const OpticsGroup& g, int box, EwaldSphere sphere) {
  EwaldCtf e;
  e.sine = model_ctf(p, g, box);
  // -E sin(chi - pi/2) = E cos(chi): chi falls by the phase shift, so 90 degrees more of it.
  CtfParams c = model_ctf_params(p, g);
  c.phase_shift_deg += 90.0;
  e.cosine = ctf_image(c, box, box, g.pixel_A);
  e.curvature_px = ewald_curvature_px(sphere, g.voltage_kV, box, g.pixel_A);
  return e;
}

void expected_transform_ewald(const Projector& volume, const ModelPose& pose, const EwaldCtf& ctf, double scale,
                              ComplexGrid& out) {
  const int n = volume.box();
  check_ctf_shape(&ctf.sine, n, "expected_transform_ewald");
  check_ctf_shape(&ctf.cosine, n, "expected_transform_ewald");
  ComplexGrid minus;
  volume.project_curved(model_matrix(pose), ctf.curvature_px, out);
  volume.project_curved(model_matrix(pose), -ctf.curvature_px, minus);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const cfloat c_plus(0.5f * ctf.sine[i], -0.5f * ctf.cosine[i]), c_minus(0.5f * ctf.sine[i], 0.5f * ctf.cosine[i]);
    out[i] = c_plus * out[i] + c_minus * minus[i];
  }
  apply_image_formation(pose, nullptr, scale, out);
}

void backproject_ewald(BackProjector& bp, const ComplexGrid& image, const ModelPose& pose, const EwaldCtf& ctf,
                       double scale, double probability) {
  const int n = image.ny();
  check_ctf_shape(&ctf.sine, n, "backproject_ewald");
  check_ctf_shape(&ctf.cosine, n, "backproject_ewald");
  ComplexGrid shifted, data;
  RealGrid unit_weight, weight;
  backprojection_terms(image, pose, nullptr, scale, probability, shifted, unit_weight);
  data = shifted;
  weight = unit_weight;
  for (const double side : {1.0, -1.0}) {
    // conj(c+) = (sine + i cosine) / 2, conj(c-) = (sine - i cosine) / 2
    const float sign = static_cast<float>(side);
    for (std::size_t k = 0; k < data.size(); ++k) {
      data[k] = shifted[k] * cfloat(0.5f * ctf.sine[k], sign * 0.5f * ctf.cosine[k]);
      weight[k] = unit_weight[k] * (0.5f * ctf.sine[k] * ctf.sine[k]);
    }
    bp.insert(data, weight, model_matrix(pose), side * ctf.curvature_px);
  }
}

}  // namespace tessera
