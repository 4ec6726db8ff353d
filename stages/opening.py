"""The mouth's opening read through the person model, in the generator's jaw units.

Shared by the evaluate stage (edits' and real frames' landmarks) and the lipmodel stage
(its predicted expressions), so both score the opening with the one measure that is
validated against the truth: here, not under either stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.fit import PersonModel
from stages.fit.geometry import procrustes, undo_similarity

OPENING_RIDGE = 0.1  # ridge of the expression -> jaw_open map (x mean square coefficient)


@dataclass(frozen=True)
class ExpressionOpening:
    """Mouth opening read through the person model: a frame's landmarks aligned to the
    model's mean by a similarity on the rigid points (as the fit does), the displacement of
    the points below the nose tip projected onto the expression basis (least squares: only
    the region an edit redraws, so the background frame's eyes and brows never enter), and
    those coefficients mapped linearly (ridge) to the generator's ``jaw_open``.

    The landmarker's inner-lip gap fails at wide vowels (it puts the lower lip inside the
    drawn cavity); the model's lower face is read from every lower-face point at once."""

    model: PersonModel
    lower: np.ndarray  # (N,) bool: the points below the nose tip
    projector: np.ndarray  # (64, 3 * n_lower): lower-face displacement -> coefficients
    weights: np.ndarray | None = None  # (64 + 1,) map of [coefficients, 1] to jaw_open

    @classmethod
    def of(cls, model: PersonModel) -> ExpressionOpening:
        nose_tip_y = float(model.mean[model.topo.nose_bottom, 1].min())
        lower = model.mean[:, 1] > nose_tip_y
        basis = model.basis[:, lower].reshape(len(model.basis), -1).astype(np.float64)
        return cls(model, lower, np.linalg.pinv(basis.T))

    def coefficients(self, points: np.ndarray) -> np.ndarray:
        """(n, 64) lower-face expression of (n, N, 3) image landmarks (NaN rows stay NaN)."""
        out = np.full((len(points), self.projector.shape[0]), np.nan)
        ok = np.isfinite(points).all(axis=(1, 2))
        if ok.any():
            rigid = list(self.model.topo.rigid)
            s, r, t = procrustes(self.model.mean[rigid], points[ok][:, rigid])
            moved = undo_similarity(points[ok].astype(np.float64), s, r, t) - self.model.mean
            out[ok] = moved[:, self.lower].reshape(int(ok.sum()), -1) @ self.projector.T
        return out

    def fitted(self, coefficients: np.ndarray, jaw_open: np.ndarray) -> ExpressionOpening:
        """This measure with its map fitted to ``jaw_open`` on frames with coefficients."""
        ok = np.isfinite(coefficients).all(axis=1) & np.isfinite(jaw_open)
        x = np.column_stack([coefficients[ok], np.ones(int(ok.sum()))])
        reg = OPENING_RIDGE * np.eye(x.shape[1]) * float(np.mean(x[:, :-1] ** 2) + 1e-12)
        reg[-1, -1] = 0.0
        weights = np.linalg.solve(x.T @ x + reg, x.T @ jaw_open[ok])
        return ExpressionOpening(self.model, self.lower, self.projector, weights)

    def from_coefficients(self, coefficients: np.ndarray) -> np.ndarray:
        """(n,) opening in jaw_open units of (n, 64) expression coefficients (a plan's too:
        the projection returns any model expression unchanged)."""
        if self.weights is None:
            raise ValueError("the opening map is not fitted (ExpressionOpening.fitted)")
        c = np.asarray(coefficients, np.float64)
        return np.column_stack([c, np.ones(len(c))]) @ self.weights

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(n,) opening of (n, N, 3) image landmarks (NaN where no face)."""
        return self.from_coefficients(self.coefficients(points))
