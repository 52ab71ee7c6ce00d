#pragma once
/// The image-formation ("forward") model: what a particle image is expected to
/// be, given a map, a pose, a CTF and a contrast scale. Written once here and
/// used by the simulator, by subtraction and by refinement.
///
/// In Fourier space (half-complex transform of a centred N x N image, fft.hpp):
///   X(k) = scale * CTF(k) * exp(+2 pi i k.o / N) * P_A(k)
/// with P_A the projection of the volume at rotation A (projector.hpp), o the
/// origin in pixels and k the signed frequency in pixels of the box. The origin
/// is RELION's rlnOrigin: the particle's centre lies at box centre - o, so the
/// phase factor is that of phase_shift_2d (fft.hpp) by (-o_x, -o_y). The same
/// convention holds in alignment.hpp (the pose search's model), in subtract.hpp
/// (the fit region's centre) and in recentre().
///
/// The CTF passed here is the particle's CTF at contrast scale 1 (model_ctf):
/// the contrast is the separate `scale`, so that callers that fit it (the
/// refinement, subtraction) keep it out of the CTF.
#include <array>
#include <string>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"

namespace tessera {

struct FourierDisk;  // alignment.hpp

/// Anisotropic magnification (RELION 3.1's rlnMagMat00, 01, 10, 11 of the optics group, M):
/// the image's frequency k samples the object at M k, so with it the model reads
///   X(k) = scale * CTF(M k) * exp(+2 pi i k.o / N) * V(A^T M k)
/// (the CTF at M k: ctf.hpp). RELION: ObservationModel::applyAnisoMag (src/jaz/single_particle/
/// obs_model.cpp) makes the projection matrix M3^-1 A (M3 = M in the top-left 2x2 of the identity)
/// and Projector::project (src/projector.cpp) samples the map at (M3^-1 A)^-1 (k, 0) = A^T M k;
/// BackProjector::set2DFourierTransform inserts at the same point. M is not normalised (RELION's
/// fit keeps all four entries; a det away from 1 is an overall pixel-size error). The origin's
/// phase stays at the observed k: the shift is measured in the observed image.
///
/// A pose in the image-formation model: rotation, RELION origin in pixels and the optics group's
/// magnification matrix (identity: none).
struct ModelPose {
  Mat3 rotation = identity3();
  double origin_x_px = 0, origin_y_px = 0;
  std::array<double, 4> mag_matrix{1, 0, 0, 1};  ///< M00, M01, M10, M11 (above)
};

/// A particle's pose (RELION angles, origin in Angstrom) as a ModelPose for
/// images of pixel_A Angstrom per pixel. origin_z_A is not used by the model.
/// No magnification matrix: use the overload with the optics group for particles.
ModelPose model_pose(const ProjectionPose& pose, double pixel_A);
/// The same for a particle of optics group g: g.pixel_A and g.mag_matrix.
ModelPose model_pose(const ProjectionPose& pose, const OpticsGroup& g);

/// The matrix that takes image frequency (kx, ky, 0) to the map's frequency in the projector's
/// and back-projector's convention (projector.hpp: frequency k of the image at matrix B is the
/// map's B^T k): B = M3^T A, so that B^T (k, 0) = A^T M k. pose.rotation itself when M is the
/// identity. Every projection and insertion of the model goes through it.
Mat3 model_matrix(const ModelPose& pose);

/// The particle's CTF (its optics group's and its own parameters) with the
/// contrast scale left out (scale 1), on the half-complex grid of a box x box
/// image of g.pixel_A Angstrom per pixel: the `ctf` argument of the model.
RealGrid model_ctf(const Particle& p, const OpticsGroup& g, int box);

/// The same CTF at the points of a FourierDisk (alignment.hpp): out[j] equals
/// model_ctf(p, g, disk.box)[disk.index[j]] (out is resized to disk.size()).
void model_ctf_points(const Particle& p, const OpticsGroup& g, const FourierDisk& disk, std::vector<float>& out);

/// The phase factor at frequency (kx, ky) (signed, pixels of a box of `box`)
/// that shifts the projection by the pose's origin (RELION convention):
/// exp(+2 pi i (kx origin_x_px + ky origin_y_px) / box), i.e. the content
/// moves by (-origin_x_px, -origin_y_px) pixels.
cfloat origin_phase(double kx, double ky, int box, double origin_x_px, double origin_y_px);

/// Expected half-complex transform of a particle:
/// scale * CTF * shift(origin) * projection at rotation (the formula at the top).
/// ctf: nullptr for no CTF (then only the scale multiplies), else a
/// (N/2+1) x N grid (model_ctf). out is resized to (N/2+1) x N, N = volume.box().
/// Frequencies beyond the projector's max_radius_px are zero. Throws
/// std::invalid_argument for a CTF of another shape.
void expected_transform(const Projector& volume, const ModelPose& pose, const RealGrid* ctf, double scale,
                        ComplexGrid& out);

/// The model's factors for a projection made otherwise (by the simulator's
/// disordered component, say): multiplies `projection`, the half-complex
/// transform ((N/2+1) x N) of a centred N x N projection P_A, in place by
/// scale * CTF * the phase of pose's origin (pose.rotation is not used: P_A is
/// already at it). expected_transform is Projector::project followed by this.
/// Throws std::invalid_argument for a grid that is not half-complex N x N or a
/// CTF of another shape.
void apply_image_formation(const ModelPose& pose, const RealGrid* ctf, double scale, ComplexGrid& projection);

/// The same at the points of a FourierDisk (alignment.hpp): out[j] for disk
/// point j (out is resized to disk.size()), with the CTF read at disk.index[j].
/// No radius limit but the disk's. Throws std::invalid_argument when the
/// disk's box is not the volume's or the CTF is of another shape.
void expected_points(const Projector& volume, const ModelPose& pose, const FourierDisk& disk, const RealGrid* ctf,
                     double scale, std::vector<cfloat>& out);

/// What back-projecting an image under this model adds (the model's adjoint,
/// the one recipe of every reconstruction): with c = CTF (1 where ctf is null),
///   data   = probability * scale * c * X shifted back by the pose's origin
///            (phase_shift_2d by (+origin_x_px, +origin_y_px): the particle's
///            centre returns to the box centre),
///   weight = probability * scale^2 * c^2,
/// for BackProjector::insert(data, weight, model_matrix(pose)). image: the
/// half-complex transform of the centred N x N image; data and weight are
/// resized to it. Throws std::invalid_argument for a CTF of another shape.
void backprojection_terms(const ComplexGrid& image, const ModelPose& pose, const RealGrid* ctf, double scale,
                          double probability, ComplexGrid& data, RealGrid& weight);

/// Ewald sphere curvature (docs/ewald_sphere.md). The flat model above takes image frequency k
/// (1/A) from the central slice, V(A^T (k, 0)). With the sphere's curvature the weak-phase image
/// is the sum of two sidebands, each from a sheet of the sphere:
///   X(k) = scale * shift(origin) * [ c+(k) V(A^T (k, +s kz(k))) + c-(k) V(A^T (k, -s kz(k))) ],
///   kz(k) = lambda |k|^2 / 2,  c+ = -(i/2) E e^{-i chi},  c- = +(i/2) E e^{+i chi},
/// with chi and the envelope E the CTF's (ctf.hpp: CTF = -E sin chi), so that c+ + c- = CTF and
/// the flat limit (lambda -> 0) is the model above. s = +1 is EwaldSphere::Positive, -1 Negative:
/// which sideband lies on which sheet depends on the hand of the data, so both are offered;
/// "positive" is defined by this formula (the simulator's). In pixels of a box of N at pixel_A,
/// kz = curvature_px |k|^2 with curvature_px = s lambda / (2 N pixel_A) (ewald_curvature_px).
/// chi here is the CTF's even part (defocus, astigmatism, Cs, phase shift, even aberrations): an
/// odd part chi_o (beam tilt, trefoil) multiplies both sidebands by the same e^{-i chi_o(k)}
/// (c- holds chi(-k)), the factor the simulator applies to the whole image and the particle
/// reader removes. With a magnification matrix the sheets are laid along model_matrix(pose) with kz
/// from the observed |k| (the difference from |M k| is of second order in the anisotropy).
enum class EwaldSphere { Off, Positive, Negative };

/// "off", "positive", "negative"; throws InputError for another name.
EwaldSphere parse_ewald_sphere(const std::string& name);
std::string ewald_sphere_name(EwaldSphere sphere);

/// The signed curvature of the + sideband's sheet in 1/px of a box of `box` pixels of pixel_A:
/// s * lambda(voltage_kV) / (2 box pixel_A), 0 for Off.
double ewald_curvature_px(EwaldSphere sphere, double voltage_kV, int box, double pixel_A);

/// A particle's CTF as the Ewald model needs it: the sidebands' coefficients are
/// c+ = (sine - i cosine) / 2 and c- = (sine + i cosine) / 2, on the half-complex grid.
struct EwaldCtf {
  RealGrid sine;            ///< -E sin(chi): model_ctf, the flat model's CTF
  RealGrid cosine;          ///< E cos(chi)
  double curvature_px = 0;  ///< ewald_curvature_px: the + sideband's sheet (0: both on the central slice)
};

/// The particle's EwaldCtf (contrast scale 1, as model_ctf) for a box x box image of g.pixel_A.
EwaldCtf model_ewald_ctf(const Particle& p, const OpticsGroup& g, int box, EwaldSphere sphere);

/// expected_transform with the Ewald sphere's two sidebands (the formula above): two curved
/// projections (Projector::project_curved at +-curvature_px) per image. With curvature 0 it equals
/// expected_transform with ctf.sine to float rounding.
void expected_transform_ewald(const Projector& volume, const ModelPose& pose, const EwaldCtf& ctf, double scale,
                              ComplexGrid& out);

/// The Ewald model's back-projection (single-sideband, as Russo & Henderson 2018 and RELION's
/// --ewald): the image, shifted back by the pose's origin, is inserted twice into bp at
/// model_matrix(pose), once per sideband on its own sheet: data probability * scale * conj(c+-) * X at
/// curvature +-curvature_px, each with weight probability * scale^2 * sine^2 / 2. The two data
/// sum to the flat model's CTF * X and the weights to its CTF^2, so with curvature 0 this is
/// backprojection_terms + BackProjector::insert to the rounding of the fixed-point sums. The half
/// transform holds kx >= 0 only; the sideband + of frequency -k is the sideband - of k (by
/// Hermitian symmetry), so the two inserts cover every frequency of the full plane once per
/// sideband. The cross terms (c+- conj(c-+), oscillating with 2 chi) average out over defoci.
void backproject_ewald(BackProjector& bp, const ComplexGrid& image, const ModelPose& pose, const EwaldCtf& ctf,
                       double scale, double probability);

}  // namespace tessera
