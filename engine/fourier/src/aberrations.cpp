// Odd and even aberrations of an optics group in RELION 3.1's convention (aberrations.hpp).
#include "tessera/aberrations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <stdexcept>

#include "tessera/ctf.hpp"

namespace tessera {

namespace {

double factorial(int k) {
  double f = 1;
  for (int i = 2; i <= k; ++i) f *= i;
  return f;
}

// (x, y) = M k, M = g.mag_matrix (rlnMagMat00, 01, 10, 11).
std::array<double, 2> magnified(const OpticsGroup& g, double kx, double ky) {
  const auto& m = g.mag_matrix;
  return {m[0] * kx + m[1] * ky, m[2] * kx + m[3] * ky};
}

}  // namespace

ZernikeMode odd_zernike_mode(int i) {
  if (i < 0) throw std::invalid_argument("odd_zernike_mode: negative index");
  const int k = static_cast<int>((std::sqrt(1.0 + 4.0 * i) - 1.0) / 2.0);
  const int n = 2 * k + 1;
  return {2 * (i - k * k - k) - n, n};
}

ZernikeMode even_zernike_mode(int i) {
  if (i < 0) throw std::invalid_argument("even_zernike_mode: negative index");
  const int k = static_cast<int>(std::sqrt(static_cast<double>(i)));
  return {2 * (i - k * k - k), 2 * k};
}

int odd_zernike_count(int n_max) {
  const int l = (n_max - 1) / 2 + 1;
  return n_max < 1 ? 0 : l * l + l;
}

int even_zernike_count(int n_max) {
  const int l = n_max / 2;
  return n_max < 0 ? 0 : l * l + 2 * l + 1;
}

double zernike_radial_coefficient(ZernikeMode z, int j) {
  const int am = std::abs(z.m);
  return (j % 2 ? -1.0 : 1.0) * factorial(z.n - j) /
         (factorial(j) * factorial((z.n + am) / 2 - j) * factorial((z.n - am) / 2 - j));
}

double zernike(ZernikeMode z, double x, double y) {
  const int am = std::abs(z.m);
  if (am > z.n || (z.n - am) % 2 != 0)
    throw std::invalid_argument(fmt::format("zernike: no Zernike polynomial of m = {}, n = {}", z.m, z.n));
  // r^(n-2k) cos(m theta) = s^((n-|m|)/2 - k) Re((x + iy)^|m|), s = r^2 (sin and Im for m < 0).
  const double s = x * x + y * y;
  double radial = 0;  // sum_k c_k s^((n-|m|)/2 - k)
  for (int k = 0; k <= (z.n - am) / 2; ++k)
    radial += zernike_radial_coefficient(z, k) * std::pow(s, (z.n - am) / 2 - k);
  std::complex<double> w(1.0, 0.0);
  for (int j = 0; j < am; ++j) w *= std::complex<double>(x, y);
  return radial * (z.m >= 0 ? w.real() : w.imag());
}

double odd_zernike_sum(const std::vector<double>& c, double x, double y) {
  double sum = 0;
  for (std::size_t i = 0; i < c.size(); ++i)
    if (c[i] != 0) sum += c[i] * zernike(odd_zernike_mode(static_cast<int>(i)), x, y);
  return sum;
}

double even_zernike_sum(const std::vector<double>& c, double x, double y) {
  double sum = 0;
  for (std::size_t i = 0; i < c.size(); ++i)
    if (c[i] != 0) sum += c[i] * zernike(even_zernike_mode(static_cast<int>(i)), x, y);
  return sum;
}

double beam_tilt_phase_scale(double cs_mm, double voltage_kV) {
  const double lambda = electron_wavelength_A(voltage_kV);
  return 2.0 * std::numbers::pi * (cs_mm * 1e7) * lambda * lambda * 1e-3;
}

std::vector<double> effective_odd_zernike(const OpticsGroup& g) {
  std::vector<double> c = g.odd_zernike;
  if (g.beam_tilt_x_mrad == 0 && g.beam_tilt_y_mrad == 0) return c;
  if (c.size() < 5) c.resize(5, 0.0);
  const double s = beam_tilt_phase_scale(g.cs_mm, g.voltage_kV);
  const double z3x = -s * g.beam_tilt_x_mrad / 3.0, z3y = -s * g.beam_tilt_y_mrad / 3.0;
  c[1] += 2.0 * z3x;
  c[0] += 2.0 * z3y;
  c[4] = z3x;
  c[3] = z3y;
  return c;
}

void extract_beam_tilt(std::vector<double>& odd, double cs_mm, double voltage_kV, double& tilt_x_mrad,
                       double& tilt_y_mrad) {
  if (odd.size() < 5) odd.resize(5, 0.0);
  const double s = beam_tilt_phase_scale(cs_mm, voltage_kV);
  const double z3x = odd[4], z3y = odd[3];
  odd[4] = odd[3] = 0.0;
  odd[1] -= 2.0 * z3x;
  odd[0] -= 2.0 * z3y;
  tilt_x_mrad = -3.0 * z3x / s;
  tilt_y_mrad = -3.0 * z3y / s;
}

bool has_odd_aberrations(const OpticsGroup& g) {
  return g.beam_tilt_x_mrad != 0 || g.beam_tilt_y_mrad != 0 ||
         std::any_of(g.odd_zernike.begin(), g.odd_zernike.end(), [](double c) { return c != 0; });
}

bool has_even_aberrations(const OpticsGroup& g) {
  return std::any_of(g.even_zernike.begin(), g.even_zernike.end(), [](double c) { return c != 0; });
}

double odd_phase(const OpticsGroup& g, double kx, double ky) {
  const auto [x, y] = magnified(g, kx, ky);
  return odd_zernike_sum(effective_odd_zernike(g), x, y);
}

ComplexGrid odd_phase_factor(const OpticsGroup& g, int box) {
  const int hx = box / 2 + 1;
  ComplexGrid out(hx, box);
  const std::vector<double> c = effective_odd_zernike(g);
  const bool any = std::any_of(c.begin(), c.end(), [](double v) { return v != 0; });
  const double span_A = box * g.pixel_A;
  for (int y = 0; y < box; ++y)
    for (int x = 0; x < hx; ++x) {
      // The Nyquist column and row hold pairs (N/2, y), (N/2, -y) that are each other's mates: an odd
      // phase cannot be given to both consistently, so they are left as they are.
      if (!any || 2 * x == box || 2 * y == box) {
        out(x, y) = cfloat(1.0f, 0.0f);
        continue;
      }
      const auto [mx, my] = magnified(g, x / span_A, fourier_index(y, box) / span_A);
      const double phi = odd_zernike_sum(c, mx, my);
      out(x, y) = cfloat(static_cast<float>(std::cos(phi)), static_cast<float>(std::sin(phi)));
    }
  return out;
}

void multiply_odd_phase(ComplexGrid& transform, const ComplexGrid& factor, OddPhase direction) {
  if (!transform.same_shape(factor))
    throw std::invalid_argument(fmt::format("multiply_odd_phase: a {}x{}x{} transform and a {}x{}x{} factor",
                                            transform.nx(), transform.ny(), transform.nz(), factor.nx(), factor.ny(),
                                            factor.nz()));
  if (direction == OddPhase::Apply)
    for (std::size_t i = 0; i < transform.size(); ++i) transform[i] *= factor[i];
  else
    for (std::size_t i = 0; i < transform.size(); ++i) transform[i] *= std::conj(factor[i]);
}

}  // namespace tessera
