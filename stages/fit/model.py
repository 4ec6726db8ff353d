"""The person model built from the clip itself, and per-frame pose/expression fitting.

Shape: ``mean`` (N, 3) in the canonical head frame (``geometry.canonicalize``:
unit inter-ocular distance, image-like axes) plus an expression basis of 64
orthonormal components, the principal components of the non-rigid deformation
left after aligning every frame's landmarks to the mean with a similarity
Procrustes on the rigid (skull) points only, so jaw and lip motion stays in the
residual and ends up in the basis.

A frame's parameters: expression e (64), rotation R (axis-angle), translation
t (px) and scale s, with weak-perspective projection:
    points_3d = s * R @ (mean + basis . e) + t,   points_2d = points_3d[:, :2].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save
from scipy.spatial import Delaunay

from stages.fit.geometry import (
    apply_similarity,
    canonicalize,
    from_rotvec,
    mean_rotation,
    orient_triangles,
    procrustes,
    to_rotvec,
    undo_similarity,
)
from stages.fit.topology import Topology, topology_for, topology_named
from talkedit.artifacts import N_EXPRESSION
from talkedit.atomic import write_safetensors
from talkedit.errors import TalkeditError

MESH_SOURCES = {
    "mediapipe": "MediaPipe canonical face mesh: 3-cliques of mp.solutions.face_mesh_connections"
                 ".FACEMESH_TESSELATION",
    "ibug68": "Delaunay triangulation of the mean shape (x, y)",
}


@dataclass
class PersonModel:
    topology: str
    mean: np.ndarray  # (N, 3) canonical head frame
    basis: np.ndarray  # (64, N, 3) orthonormal expression components
    stddev: np.ndarray  # (64,) standard deviation of each coefficient over the clip
    explained: np.ndarray  # (64,) share of the non-rigid variance each component explains
    albedo: np.ndarray  # (N, 3) RGB in 0..1, de-shaded
    triangles: np.ndarray  # (T, 3) int32, wound towards the camera
    mask_indices: np.ndarray  # lower-face outline (jaw line + under the nose), a closed polygon
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def topo(self) -> Topology:
        return topology_named(self.topology)

    @property
    def explained_variance(self) -> float:
        return float(self.explained.sum())

    def shape(self, expression: np.ndarray) -> np.ndarray:
        """(n, N, 3) canonical shapes for (n, 64) expression coefficients."""
        e = np.atleast_2d(np.asarray(expression, dtype=np.float32))
        flat = e @ self.basis.reshape(len(self.basis), -1)
        return self.mean[None].astype(np.float32) + flat.reshape(len(e), *self.mean.shape)

    def save(self, path: str | Path) -> Path:
        tensors = {"mean": self.mean, "basis": self.basis, "stddev": self.stddev,
                   "explained": self.explained, "albedo": self.albedo}
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        tensors["triangles"] = np.ascontiguousarray(self.triangles, dtype=np.int32)
        tensors["mask_indices"] = np.ascontiguousarray(self.mask_indices, dtype=np.int32)
        meta = {**self.meta, "topology": self.topology, "mesh": MESH_SOURCES[self.topology]}
        write_safetensors(path, save(tensors, metadata=meta))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> PersonModel:
        path = Path(path)
        if not path.is_file():
            raise TalkeditError(path, "not found", "run the fit stage first (dvc repro)")
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
        t = load_file(str(path))
        return cls(meta.pop("topology"), t["mean"], t["basis"], t["stddev"], t["explained"],
                   t["albedo"], t["triangles"], t["mask_indices"], meta)


@dataclass
class Pose:
    """Per-frame weak-perspective pose: (n, 3) axis-angle, (n, 3) px, (n,) scale."""

    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray

    def __getitem__(self, index: slice | np.ndarray) -> Pose:
        """The pose of some frames (a slice, index array or boolean mask)."""
        return Pose(self.rotation[index], self.translation[index], self.scale[index])


# --- building ------------------------------------------------------------------------------

ChunkSource = Callable[[], Iterable[np.ndarray]]  # yields (n, N, 3) landmark chunks, detected only


def _align_to(ref: np.ndarray, chunk: np.ndarray, topo: Topology) -> np.ndarray:
    """Landmarks rigidly aligned onto ``ref`` (similarity fitted on the rigid points)."""
    rigid = list(topo.rigid)
    s, r, t = procrustes(ref[rigid], chunk[:, rigid])
    return undo_similarity(chunk.astype(np.float64), s, r, t)


def build_shape_model(chunks: ChunkSource, topo: Topology, n_components: int = N_EXPRESSION,
                      iterations: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean shape and expression basis from every detected frame, streaming.

    Generalized Procrustes on the rigid points gives the mean; it is then turned
    to the clip's average head orientation (so a zero rotation means "facing
    the camera as the speaker usually does", eye line level). The basis is the
    top eigenvectors of the covariance of what the rigid alignment leaves,
    accumulated chunk by chunk (memory flat in length).
    Returns mean (N, 3), basis (k, N, 3), stddev (k,), explained share (k,).
    """
    ref = next((canonicalize(chunk[0], topo) for chunk in chunks()), None)
    if ref is None:
        raise ValueError("no detected frame to build a model from")
    rigid = list(topo.rigid)
    for _ in range(iterations):
        total, count = np.zeros_like(ref), 0
        for chunk in chunks():
            total += _align_to(ref, chunk, topo).sum(axis=0)
            count += len(chunk)
        ref = canonicalize(total / count, topo)
    rot_sum = sum(procrustes(ref[rigid], chunk[:, rigid])[1].sum(axis=0) for chunk in chunks())
    ref = canonicalize(ref @ mean_rotation(rot_sum).T, topo)

    dim = ref.size
    gram, first, count = np.zeros((dim, dim)), np.zeros(dim), 0
    rows: list[np.ndarray] | None = []  # the deviations themselves, while fewer than dim
    for chunk in chunks():
        d = (_align_to(ref, chunk, topo) - ref).reshape(len(chunk), dim)
        gram += d.T @ d
        first += d.sum(axis=0)
        count += len(chunk)
        rows = rows + [d] if rows is not None and count <= dim else None
    mu = first / count
    gram /= count  # in place: the covariance, with no second dim x dim buffer
    gram -= np.outer(mu, mu)
    evals, evecs, total = _principal_components(gram, rows, mu)
    k = min(n_components, dim, len(evals))
    basis = np.zeros((n_components, dim))
    stddev, explained = np.zeros(n_components), np.zeros(n_components)
    # Fewer frames than components (very short clips): the extra components stay zero.
    rank = min(k, max(count - 1, 0))
    basis[:rank] = evecs[:, :rank].T
    stddev[:rank] = np.sqrt(evals[:rank])
    explained[:rank] = evals[:rank] / max(total, 1e-12)
    # The mean of the rigidly aligned shapes, so that e = 0 is the clip's average face.
    mean = ref + mu.reshape(ref.shape)
    return mean, basis.reshape(n_components, *ref.shape), stddev, explained


def _principal_components(cov: np.ndarray, rows: list[np.ndarray] | None, mu: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, float]:
    """Eigenvalues (descending), eigenvectors (columns) and total variance of ``cov``.

    With fewer frames than dimensions (``rows`` kept), the n x n Gram matrix of the
    centred deviations has the same non-zero spectrum and is far cheaper to
    decompose than the dim x dim covariance (whose large null space also makes
    partial LAPACK solvers crawl).
    """
    total = float(np.trace(cov))
    if rows is None:
        evals, evecs = np.linalg.eigh(cov)
        return np.clip(evals[::-1], 0.0, None), evecs[:, ::-1], total
    d = np.concatenate(rows) - mu
    evals, u = np.linalg.eigh(d @ d.T / len(d))
    evals, u = np.clip(evals[::-1], 0.0, None), u[:, ::-1]
    keep = evals > 1e-12 * max(evals[0], 1e-300)
    evecs = d.T @ u[:, keep] / np.sqrt(evals[keep] * len(d))
    return evals[keep], evecs, total


def mesh_for(mean: np.ndarray, topo: Topology) -> np.ndarray:
    tris = topo.triangles if topo.triangles is not None else Delaunay(mean[:, :2]).simplices
    return orient_triangles(mean, np.asarray(tris, dtype=np.int32))


def lower_face_indices(mean: np.ndarray, topo: Topology) -> np.ndarray:
    """The lower-face outline: the face oval below the nose, closed under the nose.

    Uses the mean shape's canonical y (down) to cut the oval at the level of
    ``nose_bottom``: the polygon runs along the jaw line from cheek to cheek and
    back across under the nose, so it covers lips, chin and jaw.
    """
    oval = np.asarray(topo.face_oval)
    cut = mean[topo.nose_bottom, 1]
    below = mean[oval, 1] > cut
    # Start the ring where it first dips below the cut; keep that one contiguous run.
    start = int(np.flatnonzero(below & ~np.roll(below, 1))[0])
    ring, below = np.roll(oval, -start), np.roll(below, -start)
    length = int(np.argmin(below)) if not below.all() else len(below)
    return np.array([*ring[:length], topo.nose_bottom], dtype=np.int32)


# --- fitting ------------------------------------------------------------------------------


def fit_frames(model: PersonModel, points: np.ndarray) -> tuple[Pose, np.ndarray]:
    """Pose and expression for (n, N, 3) landmarks, the way the basis was built:
    a similarity on the rigid points, then the projection of the aligned residual.
    """
    topo = model.topo
    rigid = list(topo.rigid)
    s, r, t = procrustes(model.mean[rigid], points[:, rigid])
    aligned = undo_similarity(points.astype(np.float64), s, r, t)
    flat = (aligned - model.mean).reshape(len(points), -1)
    expression = flat @ model.basis.reshape(len(model.basis), -1).T
    return Pose(to_rotvec(r), t, s), expression


def rebuild_landmarks(model: PersonModel, pose: Pose, expression: np.ndarray) -> np.ndarray:
    """(n, N, 3) image-space landmarks of the model for frames' pose and expression.

    x, y are pixels; z is depth in the same scale (larger = farther). ``[..., :2]``
    is the 2-D projection.
    """
    shape = model.shape(expression).astype(np.float64)
    rot = from_rotvec(np.atleast_2d(pose.rotation))
    return apply_similarity(shape, np.atleast_1d(pose.scale).astype(np.float64), rot,
                            np.atleast_2d(pose.translation).astype(np.float64))


def inter_ocular(landmarks: np.ndarray, topo: Topology) -> np.ndarray:
    a, b = topo.eye_outer
    return np.linalg.norm(landmarks[..., a, :2] - landmarks[..., b, :2], axis=-1)


def mouth_opening(landmarks: np.ndarray, topology: Topology | None = None) -> np.ndarray:
    """Inner-lip distance / inter-ocular distance, per frame.

    ``landmarks`` is (N, 2|3) or (n, N, 2|3); the inner-lip distance is the
    mean gap between facing upper and lower inner-lip points. Works on image
    landmarks (2-D) and on canonical shapes alike (then pose-free).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    topo = topology or topology_for(lm.shape[-2])
    upper = [u for u, _ in topo.inner_lip_pairs]
    lower = [v for _, v in topo.inner_lip_pairs]
    gap = np.linalg.norm(lm[..., upper, :] - lm[..., lower, :], axis=-1).mean(axis=-1)
    a, b = topo.eye_outer
    eyes = np.linalg.norm(lm[..., a, :] - lm[..., b, :], axis=-1)
    return gap / np.maximum(eyes, 1e-9)


def reprojection_error(model_2d: np.ndarray, observed: np.ndarray, topo: Topology) -> np.ndarray:
    """Mean 2-D landmark distance per frame, as a fraction of the observed inter-ocular distance."""
    err = np.linalg.norm(model_2d[..., :2] - observed[..., :2], axis=-1).mean(axis=-1)
    return err / np.maximum(inter_ocular(observed, topo), 1e-9)
