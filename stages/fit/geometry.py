"""Batched rigid geometry: similarity Procrustes, the canonical head frame, normals.

Coordinates follow the image: x right, y down, z away from the camera (MediaPipe's
depth convention), a right-handed frame. All functions work on stacks of frames.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
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
    """A shape moved into the canonical head frame, keeping the direction it faces.

    Origin at the rigid points' centroid; x along the eye line (towards the
    subject's left); z the input's viewing axis made perpendicular to x (into
    the head); y = z x x (down); unit inter-ocular distance. For landmarks seen
    by a camera this removes roll, position and size, and keeps yaw and pitch.
    """
    p = np.asarray(points, dtype=np.float64)
    centre = p[list(topo.rigid)].mean(axis=0)
    x = p[topo.eye_outer[1]] - p[topo.eye_outer[0]]
    x /= np.linalg.norm(x)
    z = np.array([0.0, 0.0, 1.0]) - x[2] * x
    z /= np.linalg.norm(z)
    axes = np.stack([x, np.cross(z, x), z])  # rows: canonical axes in the input frame
    out = (p - centre) @ axes.T
    return out / np.linalg.norm(out[topo.eye_outer[1]] - out[topo.eye_outer[0]])


def mean_rotation(rot_sum: np.ndarray) -> np.ndarray:
    """The rotation nearest a sum of rotation matrices (chordal L2 mean)."""
    u, _, vt = np.linalg.svd(rot_sum)
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


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


def incidence(n_points: int, triangles: np.ndarray) -> scipy.sparse.csr_matrix:
    """(N, T) sparse vertex-triangle incidence: vertex normals of many frames in one product."""
    t = len(triangles)
    rows = np.asarray(triangles).T.reshape(-1)
    cols = np.tile(np.arange(t), 3)
    return scipy.sparse.csr_matrix((np.ones(3 * t, np.float32), (rows, cols)), shape=(n_points, t))


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray,
                   inc: scipy.sparse.csr_matrix) -> np.ndarray:
    """(n, N, 3) unit normals (area-weighted); points on no triangle get (0, 0, -1)."""
    v = np.asarray(vertices, dtype=np.float32)  # normals need no double precision
    a, b, c = (v[:, triangles[:, i]] for i in range(3))
    face_n = np.cross(b - a, c - a)  # (n, T, 3), length = 2 x area
    n, t = face_n.shape[:2]
    normals = (inc @ face_n.transpose(1, 0, 2).reshape(t, -1)).reshape(-1, n, 3).transpose(1, 0, 2)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    lonely = norm[..., 0] < 1e-12
    normals = normals / np.maximum(norm, 1e-12)
    normals[lonely] = (0.0, 0.0, -1.0)
    return normals
