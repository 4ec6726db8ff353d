"""Conditioning images: a background crop with the lower face masked out, plus a
synthetic lower face rendered from face-model parameters (Fried et al. step 5).

Everything happens in the *render crop*: the fit stage's aligned crop
(``crop_size`` px) resampled to the generator's ``size``. Per frame:

* the lower-face mask: the person model's lower-face outline for the frame's
  pose and expression (the same polygon the fit stage stores), united with any
  extra outlines (the background frame's own one when rendering an edit; a
  random other frame's while training, so the network learns to fill the
  background an edit uncovers), then dilated (``hard``: the region the
  generator may change) and feathered inside that (``alpha``: how the output is
  blended over the background);
* the synthetic face: the mesh rasterized (``raster.py``) with per-vertex
  colour albedo x SH shading (the fit's light for that frame) and the vertex
  normals, kept inside ``hard``; the open mouth is a hole in the mesh, so it
  reads as "not covered".

The generator works on a ``Box`` of the render crop: every training frame's
dilated lower-face mask plus some context, rounded to the U-Net's stride. The
rest of the crop is the background by construction, so this saves computing
it (about 2.5x fewer pixels at the default framing).

Channels (all in [-1, 1]; ``conditioning_channels``): background RGB outside
``hard`` (3), rendered colour (3), camera-space normal (3), ``hard`` (1),
covered (1) and, with ``reference``, an appearance exemplar inside ``hard``
(3): the crop of the training frame whose expression is nearest
(``data.ReferencePool``). The synthetic face says where the mouth goes; the
exemplar shows the person's real lips, teeth and skin at about that shape,
which a small network trained for minutes on a CPU cannot learn to paint from
scratch (the generator relights and reshapes it to the frame).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stages.fit import PersonModel, Pose, lower_face_mask, rebuild_landmarks
from stages.fit.crops import to_crop
from stages.fit.geometry import incidence, vertex_normals
from stages.fit.shading import camera_normals, sh_basis, shading
from stages.render.raster import rasterize

BASE_CHANNELS = 11  # background 3, face colour 3, normal 3, hard 1, covered 1
# Triangles this far above the nose bottom (canonical units: the eye-corner distance) can
# still fall inside the dilated mask; the dilation is ~0.1 units at the default settings.
LOWER_MARGIN = 0.3


def conditioning_channels(reference: bool) -> int:
    return BASE_CHANNELS + (3 if reference else 0)


def _rescale(crop_size: int, size: int) -> tuple[float, float]:
    """Fit-crop px x -> render-crop px s * x + offset. Pixel centres sit on integers in
    both, so x maps to (x + 0.5) * size / crop_size - 0.5, as cv2.resize samples."""
    s = size / crop_size
    return s, 0.5 * s - 0.5


def render_points(points: np.ndarray, crop_size: int, size: int) -> np.ndarray:
    """Points in fit-crop px -> render-crop px."""
    s, offset = _rescale(crop_size, size)
    return np.asarray(points, dtype=np.float64) * s + offset


def render_transforms(transforms: np.ndarray, crop_size: int, size: int) -> np.ndarray:
    """(n, 6) image -> fit-crop transforms as (n, 6) image -> render-crop ones."""
    s, offset = _rescale(crop_size, size)
    m = np.asarray(transforms, dtype=np.float64).reshape(-1, 2, 3) * s
    m[:, :, 2] += offset
    return m.reshape(-1, 6)


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """(n, S, S, 3) uint8 crops resampled to ``size`` (area filter when shrinking)."""
    if crops.shape[1] == size or not len(crops):
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops])


def to_unit(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, S, S, 3) uint8 -> (n, 3, S, S) float in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, 3, S, S) in [-1, 1] -> (n, S, S, 3) uint8."""
    t = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Box:
    """A window of the render crop: rows top..top+height, columns left..left+width."""

    top: int
    left: int
    height: int
    width: int

    def slice(self, images: np.ndarray | object) -> object:
        """The box of (..., H, W) tensors/arrays (channels first)."""
        return images[..., self.top:self.top + self.height, self.left:self.left + self.width]

    def to_json(self) -> str:
        return json.dumps([self.top, self.left, self.height, self.width])

    @classmethod
    def from_json(cls, text: str) -> Box:
        return cls(*json.loads(text))

    @classmethod
    def around(cls, outlines: np.ndarray, size: int, margin_px: float, multiple: int) -> Box:
        """The smallest box holding every outline point plus ``margin_px``, with sides a
        multiple of ``multiple``, kept inside the crop."""
        lo = np.floor(outlines.reshape(-1, 2).min(axis=0) - margin_px)
        hi = np.ceil(outlines.reshape(-1, 2).max(axis=0) + margin_px) + 1
        (x0, y0), (x1, y1) = np.clip(lo, 0, size), np.clip(hi, 0, size)

        def fit(a: float, b: float) -> tuple[int, int]:
            length = min(size - size % multiple, max(multiple,
                                                     math.ceil((b - a) / multiple) * multiple))
            start = int(round((a + b - length) / 2))
            return min(max(start, 0), size - length), length

        left, width = fit(x0, x1)
        top, height = fit(y0, y1)
        return cls(top, left, height, width)


@dataclass
class Conditioning:
    """A batch of conditioning images and what compositing needs."""

    channels: torch.Tensor  # (n, conditioning_channels(), S, S)
    background: torch.Tensor  # (n, 3, S, S) the real crop, [-1, 1], unmasked
    hard: torch.Tensor  # (n, 1, S, S) 1 where the generator may change pixels
    alpha: torch.Tensor  # (n, 1, S, S) blend weight of the generated pixels, 0 outside hard

    def select(self, index: torch.Tensor | slice | list[int]) -> Conditioning:
        """Some of the frames (a batch index)."""
        return Conditioning(self.channels[index], self.background[index], self.hard[index],
                            self.alpha[index])

    def window(self, box: Box) -> Conditioning:
        """The part inside ``box``: what the generator works on."""
        return Conditioning(*(box.slice(t) for t in (self.channels, self.background, self.hard,
                                                     self.alpha)))

    def composite(self, generated: torch.Tensor) -> torch.Tensor:
        """The generator's output inside the (feathered) mask, the background elsewhere."""
        return self.alpha * generated + (1.0 - self.alpha) * self.background

    @property
    def masked_background(self) -> torch.Tensor:
        """What the generator sees of the frame: the background with the mask cut out."""
        return self.channels[:, :3]


class FaceRenderer:
    """Builds conditioning images for one person model at one render size."""

    def __init__(self, model: PersonModel, size: int, dilate: float, feather: float,
                 device: torch.device | str = "cpu") -> None:
        self.model = model
        self.size = size
        self.device = torch.device(device)
        # Only triangles that can reach the mask are rasterized: about half the mesh.
        cut = model.mean[model.topo.nose_bottom, 1] - LOWER_MARGIN
        lower = (model.mean[model.triangles, 1] > cut).any(axis=1)
        self.triangles = torch.from_numpy(model.triangles[lower].astype(np.int64)).to(self.device)
        self._incidence = incidence(len(model.mean), model.triangles)
        self.albedo = model.albedo.astype(np.float32)
        self.feather_px = max(0, int(round(feather * size)))
        self.dilate_px = max(self.feather_px * 2, int(round(dilate * size)))

    def vertices(self, pose: Pose, expression: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """(n, N, 3) model vertices in render-crop px (x, y) with image-scale depth."""
        image = rebuild_landmarks(self.model, pose, expression)
        xy = to_crop(image[..., :2], transforms)
        m = np.asarray(transforms).reshape(-1, 2, 3)
        scale = np.sqrt(np.abs(np.linalg.det(m[:, :, :2])))
        return np.concatenate([xy, image[..., 2:] * scale[:, None, None]], axis=-1)

    def polygons(self, vertices: np.ndarray) -> np.ndarray:
        """(n, K, 2) lower-face outlines in render-crop px."""
        return vertices[:, self.model.mask_indices, :2]

    def masks(self, outlines: list[np.ndarray]) -> torch.Tensor:
        """(n, 1, S, S) union of each frame's outlines (each (n, K, 2) render px)."""
        n = len(outlines[0])
        mask = np.zeros((n, self.size, self.size), np.uint8)
        for k in range(n):
            for polys in outlines:
                mask[k] |= lower_face_mask(polys[k], self.size)
        return torch.from_numpy(mask).to(self.device).float()[:, None]

    def _grow(self, mask: torch.Tensor, radius: int) -> torch.Tensor:
        """Dilate by a (2r+1)^2 square, as two 1-D max pools (much cheaper than one 2-D)."""
        if not radius:
            return mask
        k = 2 * radius + 1
        mask = F.max_pool2d(mask, (k, 1), stride=1, padding=(radius, 0))
        return F.max_pool2d(mask, (1, k), stride=1, padding=(0, radius))

    @torch.no_grad()
    def build(self, background: np.ndarray, pose: Pose, expression: np.ndarray,
              illumination: np.ndarray, transforms: np.ndarray,
              extra_outlines: list[np.ndarray] | None = None,
              reference: np.ndarray | None = None) -> Conditioning:
        """Conditioning for n frames.

        background (n, S, S, 3) uint8 render crops of the background frames;
        pose / expression (n, 64) / illumination (n, 27) the face to render;
        transforms (n, 6) image -> render crop of the background frames;
        extra_outlines: more (n, K, 2) render-px outlines the mask must cover;
        reference: (n, S, S, 3) uint8 exemplar crops, or None for no exemplar channels.
        """
        verts = self.vertices(pose, expression, transforms)
        image_verts = rebuild_landmarks(self.model, pose, expression)
        normals = camera_normals(vertex_normals(image_verts, self.model.triangles,
                                                self._incidence))
        light = np.asarray(illumination, dtype=np.float64).reshape(-1, 3, 9)
        colour = np.clip(self.albedo[None] * shading(sh_basis(normals), light), 0.0, 1.0)
        attrs = np.concatenate([colour * 2.0 - 1.0, normals], axis=-1).astype(np.float32)
        face, covered = rasterize(torch.from_numpy(verts.astype(np.float32)).to(self.device),
                                  self.triangles, torch.from_numpy(attrs).to(self.device),
                                  self.size, self.size)

        mask = self.masks([self.polygons(verts), *(extra_outlines or [])])
        hard = self._grow(mask, self.dilate_px)
        core = self._grow(mask, self.dilate_px - self.feather_px)
        f = self.feather_px
        alpha = (F.avg_pool2d(core, 2 * f + 1, stride=1, padding=f, count_include_pad=False)
                 if f else core)
        bg = to_unit(background, self.device)
        inside = covered.float() * hard
        parts = [bg * (1.0 - hard), face * hard, hard * 2.0 - 1.0, inside * 2.0 - 1.0]
        if reference is not None:
            parts.append(to_unit(reference, self.device) * hard)
        channels = torch.cat(parts, dim=1)
        return Conditioning(channels, bg, hard, alpha)
