#include "tessera/alignment.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace tessera {
namespace {

// The score of a pose from its cross term C and model power P (alignment.hpp):
// a C - a^2 P / 2 for a known scale a, max over a >= 0 (C^2 / 2P) for an unknown one.
double pose_score(double cross, double power, const std::optional<double>& scale) {
  if (scale) return *scale * (cross - 0.5 * *scale * power);
  return cross > 0 && power > 0 ? 0.5 * cross * cross / power : 0.0;
}

}  // namespace

FourierDisk FourierDisk::make(int box, double kmax_px, double kmin_px) {
  FourierDisk d;
  d.box = box;
  d.kmax_px = kmax_px;
  const int hx = box / 2 + 1;
  for (int iy = 0; iy < box; ++iy) {
    const int ky = fourier_index(iy, box);
    for (int ix = 0; ix < hx; ++ix) {
      const double r = std::sqrt(double(ix) * ix + double(ky) * ky);
      if (r > kmax_px || r < kmin_px) continue;
      d.index.push_back(static_cast<std::uint32_t>(iy * hx + ix));
      d.kx.push_back(static_cast<float>(ix));
      d.ky.push_back(static_cast<float>(ky));
      d.multiplicity.push_back(ix > 0 ? 2.0f : 1.0f);
      d.shell.push_back(static_cast<int>(std::lround(r)));
    }
  }
  return d;
}

ParticleOnDisk put_on_disk(const ComplexGrid& x, const RealGrid& ctf, const std::vector<double>& inv_sigma2,
                           const FourierDisk& disk, double ox, double oy, std::optional<double> scale) {
  ParticleOnDisk p;
  const std::size_t n = disk.size();
  p.x.resize(n);
  p.ctf.resize(n);
  p.weight.resize(n);
  p.scale = scale;
  const double two_pi_n = 2.0 * std::numbers::pi / disk.box;
  for (std::size_t j = 0; j < n; ++j) {
    const double phase = -two_pi_n * (disk.kx[j] * ox + disk.ky[j] * oy);
    p.x[j] = x[disk.index[j]] * cfloat(static_cast<float>(std::cos(phase)), static_cast<float>(std::sin(phase)));
    p.ctf[j] = ctf[disk.index[j]];
    const int s = disk.shell[j];
    p.weight[j] = disk.multiplicity[j] * static_cast<float>(s < static_cast<int>(inv_sigma2.size()) ? inv_sigma2[s] : 0.0);
  }
  return p;
}

ShiftTable::ShiftTable(const FourierDisk& disk, double range_px, double step_px) : npx_(disk.size()) {
  if (step_px <= 0) throw std::invalid_argument("ShiftTable: step must be positive");
  const int n = static_cast<int>(std::floor(range_px / step_px + 1e-9));
  for (int j = -n; j <= n; ++j)
    for (int i = -n; i <= n; ++i) {
      const double dx = i * step_px, dy = j * step_px;
      if (dx * dx + dy * dy > range_px * range_px + 1e-9) continue;
      dx_.push_back(dx);
      dy_.push_back(dy);
    }
  phase_.resize(dx_.size() * npx_);
  const double two_pi_n = 2.0 * std::numbers::pi / disk.box;
  for (std::size_t s = 0; s < dx_.size(); ++s)
    for (std::size_t j = 0; j < npx_; ++j) {
      const double phase = -two_pi_n * (disk.kx[j] * dx_[s] + disk.ky[j] * dy_[s]);
      phase_[s * npx_ + j] = cfloat(static_cast<float>(std::cos(phase)), static_cast<float>(std::sin(phase)));
    }
}

ShiftScore best_shift(const ParticleOnDisk& p, const cfloat* proj, const ShiftTable& shifts, std::vector<cfloat>& q,
                      const std::vector<double>* log_prior) {
  const std::size_t n = p.x.size();
  q.resize(n);
  double power = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const cfloat m = proj[j] * p.ctf[j];
    q[j] = p.x[j] * std::conj(m) * p.weight[j];
    power += static_cast<double>(p.weight[j]) * std::norm(m);
  }
  ShiftScore best{0, -1e300};
  for (std::size_t s = 0; s < shifts.count(); ++s) {
    const cfloat* e = shifts.phases(s);
    float acc = 0;
    for (std::size_t j = 0; j < n; ++j) acc += q[j].real() * e[j].real() - q[j].imag() * e[j].imag();
    const double score = pose_score(acc, power, p.scale) + (log_prior ? (*log_prior)[s] : 0.0);
    if (score > best.score) best = {s, score};
  }
  return best;
}

double score_at(const ParticleOnDisk& p, const cfloat* proj, const FourierDisk& disk, double dx, double dy) {
  const double two_pi_n = 2.0 * std::numbers::pi / disk.box;
  double cross = 0, power = 0;
  for (std::size_t j = 0; j < p.x.size(); ++j) {
    const cfloat m = proj[j] * p.ctf[j];
    const cfloat q = p.x[j] * std::conj(m);
    const double phase = -two_pi_n * (disk.kx[j] * dx + disk.ky[j] * dy);
    cross += p.weight[j] * (q.real() * std::cos(phase) - q.imag() * std::sin(phase));
    power += p.weight[j] * std::norm(m);
  }
  return pose_score(cross, power, p.scale);
}

}  // namespace tessera
