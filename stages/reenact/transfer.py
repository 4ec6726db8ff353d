"""Expression transfer between two people's face models through a shared space.

Both person models (stages/fit/model.py) live on the same landmark topology in the
same canonical head frame (unit inter-ocular distance, image-like axes), but each has
its own mean shape and its own expression basis. A source frame's expression is
carried over as what it does to the face, not as coefficients:

1. each person's **neutral**: the median expression over the share of their usable
   frames with the least mouth opening (robust: a few wide, pressed or mis-fitted
   mouths move a median very little), as a shape on the common topology;
2. the source frame's **displacement**: its shape minus the source's neutral, per
   vertex; optionally scaled by the ratio of the two neutral mouths' width (x, z) and
   nose-to-chin height (y), so a small mouth is not pulled as far as a large one;
3. the target's shape: its neutral plus that displacement, **projected** into the
   target's expression basis (orthonormal, so the projection is the least-squares fit)
   and kept within ``max_extrapolation`` of the target's own standard deviations.

This is deformation transfer in its simplest, per-vertex form (the source and target
shapes share their vertex correspondence, so no mesh deformation gradients are needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.fit.model import PersonModel, mouth_opening


@dataclass(frozen=True)
class Neutral:
    expression: np.ndarray  # (64,) the person's neutral coefficients
    shape: np.ndarray  # (N, 3) canonical shape
    frames: int  # how many frames the median was taken over


def robust_neutral(person: PersonModel, expression: np.ndarray, usable: np.ndarray,
                   share: float) -> Neutral:
    """The median expression of the ``share`` of usable frames with the least mouth opening."""
    rows = np.flatnonzero(usable)
    if not len(rows):
        raise ValueError("no usable frame")
    opening = mouth_opening(person.shape(expression[rows]), person.topo)
    k = max(1, int(round(share * len(rows))))
    calm = rows[np.argsort(opening, kind="stable")[:k]]
    neutral = np.median(expression[calm], axis=0)
    return Neutral(neutral, person.shape(neutral)[0].astype(np.float64), k)


def mouth_size(person: PersonModel, shape: np.ndarray) -> np.ndarray:
    """(x, y) of one canonical shape: the inner lips' width and the nose-to-chin height."""
    topo = person.topo
    lips = np.array([i for pair in topo.inner_lip_pairs for i in pair])
    width = np.ptp(shape[lips, 0])
    chin = shape[list(topo.face_oval), 1].max()
    return np.array([width, chin - shape[topo.nose_bottom, 1]])


@dataclass(frozen=True)
class Transfer:
    """Carries a source person's expressions onto a target person's model."""

    source: PersonModel
    target: PersonModel
    source_neutral: Neutral
    target_neutral: Neutral
    axis_scale: np.ndarray  # (3,) per-axis displacement scale (x, y, z)
    max_extrapolation: float

    @classmethod
    def between(cls, source: PersonModel, source_expr: np.ndarray, source_usable: np.ndarray,
                target: PersonModel, target_expr: np.ndarray, target_usable: np.ndarray,
                neutral_share: float, scale_to_target: bool, max_extrapolation: float
                ) -> Transfer:
        if source.topology != target.topology:
            raise ValueError(f"the source's landmarks ({source.topology}) and the target's "
                             f"({target.topology}) have different topologies")
        sn = robust_neutral(source, source_expr, source_usable, neutral_share)
        tn = robust_neutral(target, target_expr, target_usable, neutral_share)
        scale = np.ones(3)
        if scale_to_target:
            ratio = mouth_size(target, tn.shape) / np.maximum(mouth_size(source, sn.shape), 1e-9)
            scale = np.array([ratio[0], ratio[1], ratio[0]])
        return cls(source, target, sn, tn, scale, max_extrapolation)

    def displacement(self, source_expr: np.ndarray) -> np.ndarray:
        """(n, N, 3) per-vertex displacement of source frames from the source's neutral,
        scaled to the target's proportions."""
        return (self.source.shape(source_expr) - self.source_neutral.shape) * self.axis_scale

    def lower_face_weight(self) -> np.ndarray:
        """(N,) 0 at and above the target's eye line .. 1 from under the nose down (smooth)."""
        mean, topo = self.target.mean, self.target.topo
        eye_y = mean[list(topo.eye_outer), 1].mean()
        x = np.clip((mean[:, 1] - eye_y) / (mean[topo.nose_bottom, 1] - eye_y), 0.0, 1.0)
        return x * x * (3 - 2 * x)

    def __call__(self, source_expr: np.ndarray, target_expr: np.ndarray | None = None
                 ) -> np.ndarray:
        """(n, 64) target coefficients for (n, 64) source coefficients. With the target's
        own frames' coefficients ``target_expr``, only the lower face is carried over (what
        the renderer redraws); the upper face keeps the target frame's own shape."""
        source_expr = np.atleast_2d(source_expr)
        shape = self.target_neutral.shape + self.displacement(source_expr)
        if target_expr is not None:
            w = self.lower_face_weight()[None, :, None]
            shape = w * shape + (1 - w) * self.target.shape(target_expr)
        # The target shape in the target's basis around its mean: least squares, as the
        # basis is orthonormal.
        basis = self.target.basis.reshape(len(self.target.basis), -1).astype(np.float64)
        coeffs = (shape - self.target.mean).reshape(len(source_expr), -1) @ basis.T
        limit = self.max_extrapolation * self.target.stddev
        return np.clip(coeffs, -limit, limit)
