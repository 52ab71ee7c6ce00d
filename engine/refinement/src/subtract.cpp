#include "tessera/subtract.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <utility>

#include "tessera/error.hpp"
#include "tessera/aberrations.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/simulate.hpp"

namespace tessera {
namespace {

MapRegions split(const RealGrid& map, const RealGrid& mask, bool mask_keeps) {
  if (!map.same_shape(mask))
    throw InputError(fmt::format("subtraction: the mask is {}x{}x{}, the map {}x{}x{}", mask.nx(), mask.ny(), mask.nz(),
                                 map.nx(), map.ny(), map.nz()));
  check_mask(mask, "subtraction mask");
  MapRegions r{RealGrid(map.nx(), map.ny(), map.nz()), RealGrid(map.nx(), map.ny(), map.nz())};
  double removed = 0;
  for (std::size_t i = 0; i < map.size(); ++i) {
    const float keep = mask_keeps ? mask[i] : 1.0f - mask[i];
    r.keep[i] = map[i] * keep;
    r.remove[i] = map[i] - r.keep[i];
    removed += std::abs(r.remove[i]);
  }
  if (removed == 0) throw InputError("subtraction: the mask keeps the whole map, nothing is left to subtract");
  return r;
}

/// Least squares x ~ sum_j beta_j cols[j]: coefficients, (C^T C)^-1 (inv,
/// row-major p x p; inv_diag its diagonal) and the residual sum of squares. A
/// column that is (numerically) a combination of the others gets coefficient 0
/// and inverse row and column 0.
struct LeastSquares {
  std::vector<double> beta, inv_diag, inv;
  double rss = 0;
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

LeastSquares least_squares(const std::vector<const std::vector<double>*>& cols, const std::vector<double>& x) {
  const std::size_t p = cols.size();
  // Gauss-Jordan on [G | I | b], G = C^T C, with partial pivoting.
  std::vector<std::vector<double>> m(p, std::vector<double>(2 * p + 1, 0.0));
  double scale = 0;
  for (std::size_t i = 0; i < p; ++i) {
    for (std::size_t j = 0; j < p; ++j) m[i][j] = dot(*cols[i], *cols[j]);
    m[i][p + i] = 1;
    m[i][2 * p] = dot(*cols[i], x);
    scale = std::max(scale, m[i][i]);
  }
  std::vector<bool> dropped(p, false);
  for (std::size_t c = 0; c < p; ++c) {
    std::size_t best = c;
    for (std::size_t r = c + 1; r < p; ++r)
      if (std::abs(m[r][c]) > std::abs(m[best][c])) best = r;
    if (!(std::abs(m[best][c]) > 1e-12 * scale)) {
      dropped[c] = true;
      continue;
    }
    std::swap(m[c], m[best]);
    const double pivot = m[c][c];
    for (double& v : m[c]) v /= pivot;
    for (std::size_t r = 0; r < p; ++r)
      if (r != c && m[r][c] != 0) {
        const double f = m[r][c];
        for (std::size_t k = 0; k < m[r].size(); ++k) m[r][k] -= f * m[c][k];
      }
  }
  LeastSquares out;
  out.beta.assign(p, 0.0);
  out.inv_diag.assign(p, 0.0);
  out.inv.assign(p * p, 0.0);
  for (std::size_t c = 0; c < p; ++c) {
    if (dropped[c]) continue;
    out.beta[c] = m[c][2 * p], out.inv_diag[c] = m[c][p + c];
    for (std::size_t j = 0; j < p; ++j)
      if (!dropped[j]) out.inv[c * p + j] = m[c][p + j];
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    double r = x[i];
    for (std::size_t j = 0; j < p; ++j) r -= out.beta[j] * (*cols[j])[i];
    out.rss += r * r;
  }
  return out;
}

/// The band-passed image and models over the fit region; remove_k and keep_k
/// are the models times |k| / k_band (empty for a constant gain).
struct Columns {
  std::vector<double> image, remove, keep, ones, remove_k, keep_k;
};

std::vector<double> sum(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> s(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) s[i] = a[i] + b[i];
  return s;
}

double rms_of_residual(const std::vector<double>& x, const std::vector<double>& model) {
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) s += (x[i] - model[i]) * (x[i] - model[i]);
  return x.empty() ? 0.0 : std::sqrt(s / static_cast<double>(x.size()));
}

/// The fitted gain: s'(kappa) = b0 + b1 kappa clamped to [lo, hi], kappa =
/// |k| / k_band; cov: the noise covariance of (b0, b1) as (var b0, cov, var b1).
/// The kept region's fitted coefficient is the gain (Whole) or `keep`.
struct GainFit {
  double b0 = 1, b1 = 0, lo = -INFINITY, hi = INFINITY;
  std::array<double, 3> cov{};
  std::optional<double> keep;
  bool linear = false;
};

/// One least-squares fit of the image on the gain's columns (the constant's
/// last when fitted) and what it gives.
struct GainCandidate {
  LeastSquares ls;
  std::size_t params = 0;
  bool linear = false;
};

GainCandidate fit_gain(const SubtractOptions& o, const Columns& c, const std::vector<double>& whole,
                       const std::vector<double>& whole_k, bool linear) {
  std::vector<const std::vector<double>*> cols;
  if (o.fit_model == FitModel::Separate) {
    cols = {&c.remove};
    if (linear) cols.push_back(&c.remove_k);
    cols.push_back(&c.keep);
  } else {
    cols = {&whole};
    if (linear) cols.push_back(&whole_k);
  }
  if (o.fit_offset) cols.push_back(&c.ones);
  return GainCandidate{least_squares(cols, c.image), cols.size(), linear};
}

/// Chooses s' (and the constant) and fills every field but `left`, `scale`
/// (for a linear gain: see subtract) and the shell terms.
SubtractResult fit_scale(const SubtractOptions& o, const Columns& c, double particle_scale, double band_fraction,
                         GainFit& gain) {
  SubtractResult res;
  std::vector<const std::vector<double>*> joint_cols{&c.remove, &c.keep};
  if (o.fit_offset) joint_cols.push_back(&c.ones);
  const LeastSquares joint = least_squares(joint_cols, c.image);
  const double dof =
      std::max<double>(1.0, static_cast<double>(c.image.size()) - static_cast<double>(joint_cols.size()));
  const double noise_var = joint.rss / dof / band_fraction;  // white-noise variance per pixel
  res.noise_variance = noise_var;
  res.joint_scale = joint.beta[0];
  res.joint_variance = noise_var * joint.inv_diag[0];
  res.removed_power = dot(c.remove, c.remove);

  const std::vector<double> whole = sum(c.remove, c.keep);
  const std::vector<double> whole_k = c.remove_k.empty() ? std::vector<double>{} : sum(c.remove_k, c.keep_k);
  std::vector<double> model(c.image.size());
  if (o.scale_mode != ScaleMode::Fit) {
    res.scale = o.scale_mode == ScaleMode::Refinement ? particle_scale : o.fixed_scale;
    gain = GainFit{};
    gain.b0 = res.scale;
    for (std::size_t i = 0; i < model.size(); ++i) model[i] = res.scale * whole[i];
  } else {
    const GainCandidate constant = fit_gain(o, c, whole, whole_k, false);
    GainCandidate chosen = constant;
    const double s_c = constant.ls.beta[0];
    if (o.gain_model != GainModel::Constant && s_c > 0) {
      const GainCandidate linear = fit_gain(o, c, whole, whole_k, true);
      // Adjusted R^2 over the band's independent samples: the same total sum of
      // squares, so the higher one has the lower rss / (n - p).
      const double n = static_cast<double>(c.image.size()) * band_fraction;
      const auto per_dof = [&](const GainCandidate& g) {
        return g.ls.rss / std::max(1.0, n - static_cast<double>(g.params));
      };
      if (o.gain_model == GainModel::Linear || per_dof(linear) < per_dof(constant)) chosen = linear;
    }
    const LeastSquares& ls = chosen.ls;
    const std::size_t p = chosen.params;
    gain = GainFit{};
    gain.linear = chosen.linear;
    gain.b0 = ls.beta[0];
    gain.cov[0] = noise_var * ls.inv[0];
    if (chosen.linear) {
      gain.b1 = ls.beta[1];
      gain.cov[1] = noise_var * ls.inv[1];
      gain.cov[2] = noise_var * ls.inv[p + 1];
      gain.lo = s_c / o.max_gain_ratio;
      gain.hi = s_c * o.max_gain_ratio;
    }
    if (o.fit_model == FitModel::Separate) gain.keep = ls.beta[chosen.linear ? 2 : 1];
    res.offset = o.fit_offset ? ls.beta[p - 1] : 0.0;
    res.scale = gain.b0;
    res.scale_variance = gain.cov[0];
    for (std::size_t i = 0; i < model.size(); ++i) {
      double m = gain.b0 * (gain.keep ? c.remove[i] : whole[i]) + res.offset;
      if (chosen.linear) m += gain.b1 * (gain.keep ? c.remove_k[i] : whole_k[i]);
      if (gain.keep) m += *gain.keep * c.keep[i];
      model[i] = m;
    }
  }
  res.gain_intercept = gain.b0;
  res.gain_slope = gain.b1;
  res.linear_gain = gain.linear;
  res.residual_rms = rms_of_residual(c.image, model);
  return res;
}

int checked_box(const std::vector<MapRegions>& regions) {
  if (regions.empty() || regions.size() > 2) throw std::invalid_argument("Subtractor: give one map or two half maps");
  const int n = regions.front().remove.nx();
  for (const auto& r : regions)
    for (const RealGrid* g : {&r.remove, &r.keep})
      if (g->nx() != n || g->ny() != n || g->nz() != n || n < 4)
        throw InputError(fmt::format("subtraction: maps must be cubes of one box (at least 4), got {}x{}x{} and box {}",
                                     g->nx(), g->ny(), g->nz(), n));
  return n;
}

void require_positive(const std::optional<double>& v, const char* name) {
  if (v && !(*v > 0 && std::isfinite(*v)))
    throw InputError(fmt::format("subtraction: {} must be a positive number, got {}", name, *v));
}

}  // namespace

std::vector<double> wiener_left_share(const std::vector<double>& fsc_curve, const RealGrid& removed, double voxel_A,
                                      const std::vector<double>& up_to_A) {
  const std::vector<double> power = shell_mean_power(removed);
  if (fsc_curve.size() != power.size())
    throw std::invalid_argument(fmt::format("wiener_left_share: {} FSC shells for a box of {}", fsc_curve.size(),
                                            removed.nx()));
  std::vector<double> shares;
  for (double d : up_to_A) {
    const double last = std::min(static_cast<double>(power.size() - 1), removed.nx() * voxel_A / d);
    double left = 0, total = 0;
    for (std::size_t k = 1; k <= static_cast<std::size_t>(last); ++k) {
      const double w = power[k] * 2 * std::numbers::pi * static_cast<double>(k);
      left += w * (1 - std::clamp(fsc_curve[k], 0.0, 1.0));
      total += w;
    }
    shares.push_back(total > 0 ? left / total : 0.0);
  }
  return shares;
}

RealGrid molecule_envelope(const RealGrid& map, double voxel_A) {
  constexpr double kLowpassA = 15, kThreshold = 0.2, kDilateA = 3, kSoftEdgeA = 6;
  return map_mask(map, kLowpassA, voxel_A, kThreshold, kDilateA, kSoftEdgeA);
}

void restrict_removed(MapRegions& regions, const RealGrid& envelope) {
  if (!regions.remove.same_shape(envelope))
    throw InputError(fmt::format("subtraction: the envelope is {}x{}x{}, the map {}x{}x{}", envelope.nx(),
                                 envelope.ny(), envelope.nz(), regions.remove.nx(), regions.remove.ny(),
                                 regions.remove.nz()));
  check_mask(envelope, "envelope");
  for (std::size_t i = 0; i < envelope.size(); ++i) regions.remove[i] *= envelope[i];
}

MapRegions split_keep(const RealGrid& map, const RealGrid& keep_mask) {
  return split(map, keep_mask, true);
}
MapRegions split_remove(const RealGrid& map, const RealGrid& remove_mask) {
  return split(map, remove_mask, false);
}

Subtractor::Subtractor(const std::vector<MapRegions>& regions, double pixel_A, SubtractOptions options)
    : box_(checked_box(regions)), pixel_A_(pixel_A), opt_(std::move(options)), fft_(RealFft::plan_2d(box_, box_)) {
  if (!(pixel_A > 0 && std::isfinite(pixel_A)))
    throw InputError(fmt::format("subtraction: the pixel size must be positive, got {}", pixel_A));
  if (!std::isfinite(opt_.fixed_scale)) throw InputError("subtraction: the fixed scale must be a finite number");
  require_positive(opt_.fit_low_res_A, "fit_low_res_A");
  require_positive(opt_.fit_high_res_A, "fit_high_res_A");
  require_positive(opt_.fit_radius_px, "fit_radius_px");
  require_positive(opt_.lowpass_A, "lowpass_A");
  if (opt_.padding < 1) throw InputError("subtraction: padding must be at least 1");
  if (!(opt_.max_gain_ratio >= 1 && std::isfinite(opt_.max_gain_ratio)))
    throw InputError(fmt::format("subtraction: max_gain_ratio must be at least 1, got {}", opt_.max_gain_ratio));
  if (const auto& r = opt_.refine_pose) {
    if (!(r->shift_range_A >= 0 && std::isfinite(r->shift_range_A)))
      throw InputError(fmt::format("subtraction: the pose's shift range must be >= 0 A, got {}", r->shift_range_A));
    require_positive(r->shift_step_A, "the pose's shift step");
    require_positive(r->angle_step_deg, "the pose's angle step");
    if (r->angle_steps < 0)
      throw InputError(fmt::format("subtraction: the pose's angle steps must be >= 0, got {}", r->angle_steps));
  }

  const double r_lo = opt_.fit_low_res_A ? box_ * pixel_A_ / *opt_.fit_low_res_A : 0.0;
  const double r_hi = std::min(box_ / 2.0, opt_.fit_high_res_A ? box_ * pixel_A_ / *opt_.fit_high_res_A : INFINITY);
  band_ = RealGrid(box_ / 2 + 1, box_);
  double inside = 0;
  for (int y = 0; y < box_; ++y)
    for (int x = 0; x <= box_ / 2; ++x) {
      const int ky = fourier_index(y, box_);
      const double r = std::sqrt(double(x) * x + double(ky) * ky);
      // The zero frequency carries the arbitrary background level: fitted only with the constant.
      if ((r == 0 && !opt_.fit_offset) || (r > 0 && r < r_lo - 1e-9) || r > r_hi + 1e-9) continue;
      band_(x, y) = 1;
      inside += (x == 0 || (box_ % 2 == 0 && x == box_ / 2)) ? 1.0 : 2.0;  // Friedel mates counted
    }
  if (inside == 0)
    throw InputError(
        fmt::format("subtraction: the fit band from fit_low_res_A {:.4g} A to fit_high_res_A {:.4g} A "
                    "holds no frequency below Nyquist (box {}, {} A/px)",
                    opt_.fit_low_res_A.value_or(INFINITY), opt_.fit_high_res_A.value_or(2 * pixel_A_), box_, pixel_A_));
  band_fraction_ = inside / (double(box_) * box_);
  kappa_ = RealGrid(box_ / 2 + 1, box_);
  shell_.resize(kappa_.size());
  mates_.resize(kappa_.size());
  for (int y = 0; y < box_; ++y)
    for (int x = 0; x <= box_ / 2; ++x) {
      const int ky = fourier_index(y, box_);
      const double r = std::sqrt(double(x) * x + double(ky) * ky);
      const std::size_t i = static_cast<std::size_t>(y) * (box_ / 2 + 1) + x;
      kappa_[i] = static_cast<float>(r / r_hi);
      shell_[i] = static_cast<int>(std::min<long>(std::lround(r), box_ / 2 + 1));
      mates_[i] = (x == 0 || (box_ % 2 == 0 && x == box_ / 2)) ? 1.0f : 2.0f;
    }
  if (!opt_.subtract_gains.empty()) {
    if (opt_.subtract_gains.size() != static_cast<std::size_t>(box_ / 2 + 1))
      throw std::invalid_argument(fmt::format("subtraction: {} subtract gains for a box of {} (box/2 + 1 needed)",
                                              opt_.subtract_gains.size(), box_));
    subtract_gain_ = RealGrid(box_ / 2 + 1, box_);
    for (int y = 0; y < box_; ++y)
      for (int x = 0; x <= box_ / 2; ++x) {
        const int ky = fourier_index(y, box_);
        const auto k = static_cast<std::size_t>(std::lround(std::sqrt(double(x) * x + double(ky) * ky)));
        subtract_gain_(x, y) = k < opt_.subtract_gains.size() ? static_cast<float>(opt_.subtract_gains[k]) : 0.0f;
      }
  }

  for (const MapRegions& r : regions) {
    auto prepare = [&](const RealGrid& v) { return opt_.lowpass_A ? lowpass(v, *opt_.lowpass_A, pixel_A_) : v; };
    halves_.push_back(Half{Projector(prepare(r.remove), opt_.padding), Projector(prepare(r.keep), opt_.padding)});
  }
}

const Subtractor::Half& Subtractor::half_for(const Particle& p) const {
  if (halves_.size() == 1) return halves_.front();
  if (p.half_set == 1 || p.half_set == 2) return halves_[static_cast<std::size_t>(p.half_set - 1)];
  throw InputError(
      fmt::format("particle {}: half set (rlnRandomSubset) is {}; with half maps every particle "
                  "must be in half set 1 or 2",
                  p.image.to_string(), p.half_set));
}

Subtractor::Models Subtractor::model_transforms(const Half& h, const ProjectionPose& pose, const RealGrid* ctf,
                                                const std::array<double, 4>& mag) const {
  ModelPose mp = model_pose(pose, pixel_A_);
  mp.mag_matrix = mag;
  Models m;
  expected_transform(h.remove, mp, ctf, 1.0, m.remove);
  expected_transform(h.keep, mp, ctf, 1.0, m.keep);
  return m;
}

std::vector<double> Subtractor::band_passed(const ComplexGrid& f, const std::vector<std::size_t>& region) const {
  ComplexGrid filtered = f;
  for (std::size_t i = 0; i < filtered.size(); ++i) filtered[i] *= band_[i];
  RealGrid real;
  fft_.inverse(filtered, real);
  corner_to_centre(real, false);
  std::vector<double> out(region.size());
  for (std::size_t i = 0; i < region.size(); ++i) out[i] = real[region[i]];
  return out;
}

std::vector<std::size_t> Subtractor::fit_region(const ProjectionPose& pose) const {
  const double radius = opt_.fit_radius_px.value_or(box_ / 2.0);
  const double cx = box_ / 2 - pose.origin_x_A / pixel_A_, cy = box_ / 2 - pose.origin_y_A / pixel_A_;
  std::vector<std::size_t> region;
  for (int y = 0; y < box_; ++y)
    for (int x = 0; x < box_; ++x)
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius)
        region.push_back(static_cast<std::size_t>(y) * box_ + x);
  return region;
}

SubtractResult Subtractor::subtract(RealGrid& image, const Particle& p, const OpticsGroup& g) const {
  if (!p.pose)
    throw InputError(fmt::format("particle {}: no pose (angles and origins are needed)", p.image.to_string()));
  if (image.nx() != box_ || image.ny() != box_ || image.nz() != 1)
    throw InputError(fmt::format("particle {}: image is {}x{}, the map's box is {}", p.image.to_string(), image.nx(),
                                 image.ny(), box_));
  for (float v : image.values())
    if (!std::isfinite(v))
      throw InputError(fmt::format("particle {}: the image has NaN or infinite values", p.image.to_string()));
  const Half& h = half_for(p);
  std::optional<RealGrid> ctf;
  if (opt_.apply_ctf) ctf = model_ctf(p, g, box_);  // at scale 1: the contrast is what the fit finds
  RealGrid work = image;
  centre_to_corner(work, false);
  ComplexGrid fx;
  fft_.forward(work, fx);
  // Odd aberrations (aberrations.hpp): the fit works on the corrected image, as every reader of images
  // does (ParticleImageReader), and the subtracted image gets them back: it stays in its own frame.
  std::optional<ComplexGrid> odd_phase;
  if (has_odd_aberrations(g)) {
    odd_phase = odd_phase_factor(g, box_);
    multiply_odd_phase(fx, *odd_phase, OddPhase::Remove);
  }

  const ProjectionPose pose =
      opt_.refine_pose ? refine_pose(h, fx, *p.pose, ctf ? &*ctf : nullptr, g.mag_matrix) : *p.pose;
  const Models m = model_transforms(h, pose, ctf ? &*ctf : nullptr, g.mag_matrix);
  const std::vector<std::size_t> region = fit_region(pose);
  if (region.size() < 8)
    throw InputError(fmt::format("particle {}: fewer than 8 pixels within the fit radius", p.image.to_string()));
  Columns c{band_passed(fx, region), band_passed(m.remove, region), band_passed(m.keep, region),
            std::vector<double>(region.size(), 1.0), {}, {}};
  const bool may_vary = opt_.scale_mode == ScaleMode::Fit && opt_.gain_model != GainModel::Constant;
  if (may_vary) {
    ComplexGrid rk = m.remove, kk = m.keep;
    for (std::size_t i = 0; i < rk.size(); ++i) rk[i] *= kappa_[i], kk[i] *= kappa_[i];
    c.remove_k = band_passed(rk, region);
    c.keep_k = band_passed(kk, region);
  }
  GainFit gain;
  SubtractResult res = fit_scale(opt_, c, p.scale, band_fraction_, gain);
  res.pose = pose;
  res.pose_shift_A = std::hypot(pose.origin_x_A - p.pose->origin_x_A, pose.origin_y_A - p.pose->origin_y_A);
  res.pose_angle_deg = rotation_distance_deg(euler_to_matrix(pose.angles), euler_to_matrix(p.pose->angles));

  // The gain and its noise variance per frequency; with a linear gain, s' is
  // its mean over the band weighted by the removed region's power.
  RealGrid gains(box_ / 2 + 1, box_), variances(box_ / 2 + 1, box_);
  double weighted = 0, weighted_var = 0, power = 0;
  for (std::size_t i = 0; i < gains.size(); ++i) {
    const double kap = kappa_[i];
    gains[i] = static_cast<float>(std::clamp(gain.b0 + gain.b1 * kap, gain.lo, gain.hi));
    variances[i] = static_cast<float>(gain.cov[0] + 2 * kap * gain.cov[1] + kap * kap * gain.cov[2]);
    const double w = band_[i] * mates_[i] * std::norm(m.remove[i]);
    weighted += w * gains[i], weighted_var += w * variances[i], power += w;
  }
  if (gain.linear && power > 0) res.scale = weighted / power, res.scale_variance = weighted_var / power;

  for (std::size_t i = 0; i < fx.size(); ++i)
    fx[i] -= gains[i] * (subtract_gain_.size() > 0 ? subtract_gain_[i] : 1.0f) * m.remove[i];
  c.image = band_passed(fx, region);
  std::vector<const std::vector<double>*> cols{&c.remove, &c.keep};
  if (opt_.fit_offset) cols.push_back(&c.ones);
  res.left = least_squares(cols, c.image).beta[0];
  shell_terms(m, fx, gains, variances, gain.keep, res);
  res.shells.pose = pose_left_by_shell(h, m, pose, ctf ? &*ctf : nullptr, g.mag_matrix, res.noise_variance);

  if (odd_phase) multiply_odd_phase(fx, *odd_phase, OddPhase::Apply);
  fft_.inverse(fx, image);
  corner_to_centre(image, false);
  return res;
}

void Subtractor::shell_terms(const Models& m, const ComplexGrid& subtracted, const RealGrid& gain,
                             const RealGrid& gain_variance, const std::optional<double>& keep,
                             SubtractResult& res) const {
  const std::size_t shells = static_cast<std::size_t>(box_ / 2 + 1);
  ShellTerms& t = res.shells;
  for (auto* v : {&t.signal, &t.contrast, &t.subtracted, &t.in_phase, &t.kept, &t.cross, &t.in_phase_kept})
    v->assign(shells, 0.0);
  const bool unfitted = opt_.scale_mode != ScaleMode::Fit;
  for (auto* v : {&t.unfitted_square, &t.unfitted_mean, &t.unfitted_power}) v->assign(unfitted ? shells : 0, 0.0);
  for (std::size_t i = 0; i < subtracted.size(); ++i) {
    const auto k = static_cast<std::size_t>(shell_[i]);
    if (k >= shells) continue;
    const double w = mates_[i], g = subtract_gain_.size() > 0 ? subtract_gain_[i] : 1.0;
    const double s = gain[i], v = gain_variance[i], power = std::norm(m.remove[i]);
    t.signal[k] += w * (s * s - v) * g * power;
    t.contrast[k] += w * v * g * power;
    if (unfitted) {
      t.unfitted_square[k] += w * (res.left * res.left - res.joint_variance) * g * power;
      t.unfitted_mean[k] += w * res.left * g * power;
      t.unfitted_power[k] += w * g * power;
    }
    const cfloat r = static_cast<float>(s * g) * m.remove[i];
    const cfloat kept = static_cast<float>(keep ? *keep : s) * m.keep[i];
    t.subtracted[k] += w * std::norm(r);
    const cfloat rest = subtracted[i] - kept;
    t.in_phase[k] += w * std::real(std::conj(r) * rest);
    t.kept[k] += w * std::norm(kept);
    t.cross[k] += w * std::real(std::conj(r) * kept);
    t.in_phase_kept[k] += w * std::real(std::conj(kept) * rest);
  }
}

SubtractSummary summarize(const std::vector<SubtractResult>& results) {
  SubtractSummary s;
  s.count = static_cast<long>(results.size());
  if (results.empty()) return s;
  double sum = 0, sum2 = 0, left = 0, noise = 0, signal = 0, resid = 0;
  s.scale_min = s.scale_max = results.front().scale;
  for (const SubtractResult& r : results) {
    sum += r.scale, sum2 += r.scale * r.scale, resid += r.residual_rms;
    s.scale_min = std::min(s.scale_min, r.scale);
    s.scale_max = std::max(s.scale_max, r.scale);
    left += (r.left * r.left - r.joint_variance + 2 * r.scale_variance) * r.removed_power;
    noise += r.scale_variance * r.removed_power;
    signal += (r.joint_scale * r.joint_scale - r.joint_variance) * r.removed_power;
  }
  const double n = static_cast<double>(results.size());
  s.scale_mean = sum / n;
  s.scale_sd = std::sqrt(std::max(0.0, sum2 / n - s.scale_mean * s.scale_mean));
  s.residual_rms_mean = resid / n;
  if (signal > 0) {
    s.left_fraction = left / signal;
    s.left_fraction_from_noise = noise / signal;
  }
  return s;
}

Recentring recentre(const ProjectionPose& pose, const std::array<int, 3>& point_px, double pixel_A,
                    const std::array<double, 4>& mag) {
  const Vec3 q{double(point_px[0]), double(point_px[1]), double(point_px[2])};
  const Vec3 aq = multiply(euler_to_matrix(pose.angles), q);
  const double px = mag[0] * aq[0] + mag[2] * aq[1], py = mag[1] * aq[0] + mag[3] * aq[1];  // M^T (A q)_xy
  const double dx = pose.origin_x_A / pixel_A - px, dy = pose.origin_y_A / pixel_A - py;
  Recentring r;
  r.shift_x_px = static_cast<int>(std::lround(dx));
  r.shift_y_px = static_cast<int>(std::lround(dy));
  r.pose = pose;
  r.pose.origin_x_A = (dx - r.shift_x_px) * pixel_A;
  r.pose.origin_y_A = (dy - r.shift_y_px) * pixel_A;
  return r;
}

RealGrid shift_and_window(const RealGrid& g, const std::array<int, 3>& shift_px, int new_box) {
  const int n = g.nx();
  const bool volume = g.nz() > 1;
  if (g.ny() != n || (volume && g.nz() != n) || n < 1)
    throw std::invalid_argument("shift_and_window: needs a square image or a cube");
  if (new_box < 1) throw std::invalid_argument("shift_and_window: new_box must be positive");
  const int off = n / 2 - new_box / 2;
  auto source = [&](int u, int shift) {  // index in g of moved position u, or -1 outside the box
    if (u < 0 || u >= n) return -1;
    return ((u - shift) % n + n) % n;
  };
  RealGrid out(new_box, new_box, volume ? new_box : 1);
  for (int z = 0; z < out.nz(); ++z) {
    const int sz = volume ? source(z + off, shift_px[2]) : 0;
    if (sz < 0) continue;
    for (int y = 0; y < new_box; ++y) {
      const int sy = source(y + off, shift_px[1]);
      if (sy < 0) continue;
      for (int x = 0; x < new_box; ++x) {
        const int sx = source(x + off, shift_px[0]);
        if (sx >= 0) out(x, y, z) = g(sx, sy, sz);
      }
    }
  }
  return out;
}

std::array<int, 3> rounded_centre_of_mass(const RealGrid& v) {
  double mass = 0;
  for (float x : v.values()) mass += std::max(0.0f, x);
  if (!(mass > 0)) throw InputError("centre of mass: the volume has no positive value");
  const Vec3 c = centre_of_mass_px(v);
  return {static_cast<int>(std::lround(c[0])), static_cast<int>(std::lround(c[1])),
          static_cast<int>(std::lround(c[2]))};
}

}  // namespace tessera
