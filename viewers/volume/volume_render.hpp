#pragma once
/// What tessera_view_volume draws from a volume: orthogonal slices, projections
/// along the axes, and renderings at a viewing direction. Each returns a 2D
/// grid (x fastest; row 0 is drawn on top, contrast.hpp).
///
/// Slices and projections, for a volume v of nx * ny * nz (grid.hpp layout):
///   axis z: picture (i, j) = v(i, j, index)      nx wide, ny high ("XY")
///   axis y: picture (i, j) = v(i, index, j)      nx wide, nz high ("XZ")
///   axis x: picture (i, j) = v(index, i, j)      ny wide, nz high ("YZ")
/// A projection along an axis is the sum over that axis, laid out the same way.
///
/// Renderings use the projection convention of geometry.hpp: at Euler angles
/// (rot, tilt, psi) with RELION's matrix A, picture pixel (i, j) is the ray
/// through the volume points c + A^T (i - n/2, j - n/2, t) for depth t, with c
/// the volume centre (nx/2, ny/2, nz/2) and n = max(nx, ny, nz); values between
/// voxels are interpolated trilinearly, points outside the box are skipped.
///   MIP:     the largest value on the ray, t = -n/2 .. n/2 in steps of 1 voxel
///            (the volume's minimum where the ray misses the box). At (0, 0, 0)
///            this is the maximum along z of the XY slices.
///   surface: rendered with `oversample` rays per voxel along each side (a
///            picture of n * oversample pixels; pixel (I, J) is the ray through
///            i = (I + 1/2) / oversample - 1/2, likewise j, so oversample 1 is the
///            rays above). The ray walks from t = n/2 down to -n/2 (the viewer
///            sits at +t) in steps of 1/4 voxel to the first point at or above
///            `level`, placed by bisection between the last two steps (to 1/256
///            voxel); there the outward normal N = -g / |g| (g the density
///            gradient, central differences of the trilinear field over +-1
///            voxel, in the view frame) is shaded as a surface lit from the upper
///            left, in front: 0.1 + 0.75 max(0, N.L) + 0.3 max(0, N.H)^24 (Blinn-
///            Phong; L = kSurfaceLight, H the half-vector between L and the view
///            direction (0, 0, 1)), at most 1; 0 where the ray hits nothing.
///   surface values: the same rays; per pixel the value of a second grid of the
///            volume's shape (e.g. a local-resolution map) at the voxel nearest
///            the surface point (each coordinate rounded), NaN where the ray hits
///            nothing.
#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"

namespace tessera::viewer {

enum class Axis { X = 0, Y = 1, Z = 2 };

/// The slice at `index` (0 <= index < the volume's size along `axis`).
RealGrid volume_slice(const RealGrid& v, Axis axis, int index);
/// The sum along `axis`.
RealGrid volume_projection(const RealGrid& v, Axis axis);
/// Size of the volume along an axis.
int axis_size(const RealGrid& v, Axis axis);
/// "x", "y", "z".
const char* axis_name(Axis axis);

/// Trilinear value at (x, y, z) in voxels; nullopt-like: returns false outside [0, n-1] on any axis.
bool sample_trilinear(const RealGrid& v, double x, double y, double z, double& out);

/// The light's direction in the view frame (towards the light; x right, y down
/// the picture, z towards the viewer): from the upper left, in front,
/// (-1, -1, 2) / sqrt(6).
inline constexpr Vec3 kSurfaceLight{-0.40824829046386302, -0.40824829046386302, 0.81649658092772603};

/// The shade of a surface point with outward unit normal `normal` (view frame).
double surface_shade(const Vec3& normal);

RealGrid render_mip(const RealGrid& v, const Euler& view);
RealGrid render_surface(const RealGrid& v, const Euler& view, double level, int oversample = 1);

struct SurfaceRendering {
  RealGrid shade;   ///< as render_surface
  RealGrid values;  ///< the surface values (NaN off the surface)
};
/// The surface and its values from `values` (same shape as v; the caller checks).
SurfaceRendering render_surface(const RealGrid& v, const Euler& view, double level, const RealGrid& values,
                                int oversample = 1);

}  // namespace tessera::viewer
