"""Illumination (second-order spherical harmonics) and de-shaded albedo.

Lambertian image formation per vertex v and colour channel c, as in Face2Face:
    colour[v, c] = albedo[v, c] * sum_k light[c, k] * Y_k(normal[v])
with the 9 real SH basis functions Y_k of the camera-space normal. Normals are
expressed in camera coordinates x right, y up, z towards the camera (the usual
graphics convention); colours are sRGB / 255 (no linearization).

Albedo and light are only known up to a common scale, so albedo is kept at the
clip's mean face colour and the light carries the rest: light[c, 0] * Y_0 is
then about the frame's brightness relative to the clip average.
"""

from __future__ import annotations

import numpy as np

SH_NORM = np.array([0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 0.315392,
                    1.092548, 0.546274])


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """(..., 9) real SH basis of unit normals in camera coordinates (x right, y up, z out)."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    one = np.ones_like(x)
    terms = np.stack([one, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], axis=-1)
    return terms * SH_NORM


def camera_normals(image_normals: np.ndarray) -> np.ndarray:
    """Image-convention normals (x right, y down, z away) to camera coordinates."""
    return image_normals * np.array([1.0, -1.0, -1.0], dtype=image_normals.dtype)


def fit_light(colours: np.ndarray, basis: np.ndarray, albedo: np.ndarray, use: np.ndarray,
              ridge: float = 1e-3, min_points: int = 20) -> np.ndarray:
    """Per-frame SH light (n, 3, 9) by least squares over the ``use``d vertices.

    colours (n, V, 3) in 0..1, basis (n, V, 9), albedo (V, 3), use (n, V) bool.
    A small ridge on the non-constant terms keeps a frame with few visible
    vertices from inventing strong directional light. Frames with fewer than
    ``min_points`` usable vertices get NaN.
    """
    w = use.astype(np.float32)[..., None]
    reg = np.diag([0.0] + [ridge] * 8) * w.sum(axis=1)[:, :, None]
    light = np.empty((len(colours), 3, 9))
    basis = basis.astype(np.float32, copy=False)
    for c in range(3):
        a = basis * albedo[None, :, c, None].astype(np.float32)
        aw = (a * w).transpose(0, 2, 1)  # batched normal equations through BLAS matmuls
        m = (aw @ a).astype(np.float64) + reg + 1e-9 * np.eye(9)
        b = (aw @ colours[..., c, None].astype(np.float32)).astype(np.float64)
        light[:, c] = np.linalg.solve(m, b)[..., 0]
    light[use.sum(axis=1) < min_points] = np.nan
    return light


def shading(basis: np.ndarray, light: np.ndarray) -> np.ndarray:
    """(n, V, 3) shading for basis (n, V, 9) and light (n, 3, 9)."""
    return np.einsum("nvk,nck->nvc", basis, light)


class AlbedoAccumulator:
    """Least-squares albedo over frames, streaming: sum(c * s) / sum(s * s) per vertex."""

    def __init__(self, n_points: int) -> None:
        self.num = np.zeros((n_points, 3))
        self.den = np.zeros((n_points, 3))

    def add(self, colours: np.ndarray, shade: np.ndarray, visible: np.ndarray) -> None:
        w = visible[..., None].astype(np.float64)
        self.num += (w * colours * shade).sum(axis=0)
        self.den += (w * shade * shade).sum(axis=0)

    def albedo(self, fallback: np.ndarray) -> np.ndarray:
        seen = self.den > 1e-9
        return np.where(seen, self.num / np.where(seen, self.den, 1.0), fallback)
