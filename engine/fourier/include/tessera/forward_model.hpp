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
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"

namespace tessera {

struct FourierDisk;  // alignment.hpp

/// A pose in the image-formation model: rotation and RELION origin in pixels.
struct ModelPose {
  Mat3 rotation = identity3();
  double origin_x_px = 0, origin_y_px = 0;
};

/// A particle's pose (RELION angles, origin in Angstrom) as a ModelPose for
/// images of pixel_A Angstrom per pixel. origin_z_A is not used by the model.
ModelPose model_pose(const ProjectionPose& pose, double pixel_A);

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
/// for BackProjector::insert(data, weight, pose.rotation). image: the
/// half-complex transform of the centred N x N image; data and weight are
/// resized to it. Throws std::invalid_argument for a CTF of another shape.
void backprojection_terms(const ComplexGrid& image, const ModelPose& pose, const RealGrid* ctf, double scale,
                          double probability, ComplexGrid& data, RealGrid& weight);

}  // namespace tessera
