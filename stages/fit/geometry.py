"""Batched rigid geometry: similarity Procrustes, the canonical head frame, normals.

Coordinates follow the image: x right, y down, z away from the camera (MediaPipe's
depth convention), a right-handed frame. All functions work on stacks of frames.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from stages.fit.topology import Topology


def procrustes(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) per frame with dst ~ s * R @ src + t (Umeyama, least squares).

    ``src`` is (K, 3) or (n, K, 3), ``dst`` (n, K, 3). Returns s (n,), R (n, 3, 3), t (n, 3).
    """
    dst = np.asarray(dst, dtype=np.float64)
    src = np.broadcast_to(np.asarray(src, dtype=np.float64), dst.shape)
    mu_s, mu_d = src.mean(axis=1, keepdims=True), dst.mean(axis=1, keepdims=True)
    a, b = src - mu_s, dst - mu_d
    cov = np.einsum("nki,nkj->nij", b, a)
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))  # no reflections
    fix = np.ones_like(sig)
    fix[:, -1] = d
    rot = (u * fix[:, None, :]) @ vt
    var_s = (a ** 2).sum(axis=(1, 2))
    scale = (sig * fix).sum(axis=1) / np.maximum(var_s, 1e-12)
    t = mu_d[:, 0] - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s[:, 0])
    return scale, rot, t


def apply_similarity(points: np.ndarray, scale: np.ndarray, rot: np.ndarray,
                     t: np.ndarray) -> np.ndarray:
    """s * R @ p + t for (n, K, 3) points."""
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rot, points) + t[:, None, :]


def undo_similarity(points: np.ndarray, scale: np.ndarray, rot: np.ndarray,
                    t: np.ndarray) -> np.ndarray:
    """R^T (p - t) / s: image-space points back into the model's frame."""
    return np.einsum("nji,nkj->nki", rot, points - t[:, None, :]) / scale[:, None, None]


def canonicalize(points: np.ndarray, topo: Topology) -> np.ndarray:
    """A shape in the canonical head frame: origin at the rigid points' centroid,
    x along the eye line (towards the subject's left), z the normal of the rigid
    points' best-fit plane (into the head), y = z x x (down), unit inter-ocular distance.
    """
    p = np.asarray(points, dtype=np.float64)
    rigid = p[list(topo.rigid)]
    centre = rigid.mean(axis=0)
    _, _, vt = np.linalg.svd(rigid - centre)
    z = vt[2] * np.sign(vt[2, 2] or 1.0)  # the plane normal, pointing away from the camera
    right, left = p[topo.eye_outer[0]], p[topo.eye_outer[1]]
    x = (left - right) - np.dot(left - right, z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    axes = np.stack([x, y, z])  # rows: canonical axes in the input frame
    out = (p - centre) @ axes.T
    return out / np.linalg.norm(out[topo.eye_outer[1]] - out[topo.eye_outer[0]])


def to_rotvec(rot: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(rot).as_rotvec()


def from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(rotvec, dtype=np.float64)).as_matrix()


def head_angles_deg(rotvec: np.ndarray) -> np.ndarray:
    """(n, 3) yaw (about y), pitch (about x), roll (about z), in degrees, image axes."""
    return Rotation.from_rotvec(np.asarray(rotvec, dtype=np.float64)).as_euler("YXZ", degrees=True)


def orient_triangles(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Wind every triangle so its normal faces the camera (-z) on a frontal shape."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    facing_away = np.cross(b - a, c - a)[:, 2] > 0
    out = triangles.copy()
    out[facing_away] = out[facing_away][:, [0, 2, 1]]
    return out


def incidence(n_points: int, triangles: np.ndarray) -> np.ndarray:
    """(N, T) vertex-triangle incidence, for area-weighted vertex normals by one matmul."""
    inc = np.zeros((n_points, len(triangles)), dtype=np.float32)
    for i in range(3):
        inc[triangles[:, i], np.arange(len(triangles))] = 1.0
    return inc


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """(n, N, 3) unit normals (area-weighted); points on no triangle get (0, 0, -1)."""
    a, b, c = (vertices[:, triangles[:, i]] for i in range(3))
    face_n = np.cross(b - a, c - a).astype(np.float32)  # length = 2 x area
    normals = inc @ face_n
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    lonely = norm[..., 0] < 1e-12
    normals = normals / np.maximum(norm, 1e-12)
    normals[lonely] = (0.0, 0.0, -1.0)
    return normals
