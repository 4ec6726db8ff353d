"""A batched triangle rasterizer in plain torch (no compiled extension; CPU or GPU).

Orthographic (the fit's weak-perspective camera): vertices arrive in pixel
coordinates (x right, y down, pixel centres on integers, as OpenCV's warps)
with a depth z (larger = farther). Every triangle's bounding box is expanded
into (triangle, pixel) candidate pairs all at once; a candidate survives when
its barycentric coordinates are all >= 0, and a z-buffer built with
``scatter_reduce(amin)`` keeps the nearest surface per pixel. Vertex
attributes are interpolated with the barycentrics (Gouraud).

Work is proportional to the summed bounding-box area of the triangles, a few
times the face's area in pixels: tens of thousands of pairs per 128 px frame.
"""

from __future__ import annotations

import torch

EDGE_EPS = 1e-6  # pixels exactly on a shared edge belong to both triangles; the z-test picks one


@torch.no_grad()
def rasterize(vertices: torch.Tensor, triangles: torch.Tensor, attributes: torch.Tensor,
              height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``attributes`` of a triangle mesh into images.

    vertices (B, V, 3) pixel x, y and depth z; triangles (T, 3) int;
    attributes (B, V, A). Returns images (B, A, H, W) (0 where no triangle
    covers a pixel) and coverage (B, 1, H, W) bool.
    """
    b, _, _ = vertices.shape
    n_attr = attributes.shape[-1]
    device = vertices.device
    tri = triangles.long()
    corners = vertices[:, tri]  # (B, T, 3 corners, 3 coords)
    out = torch.zeros(b * height * width, n_attr, dtype=attributes.dtype, device=device)
    covered = torch.zeros(b * height * width, dtype=torch.bool, device=device)

    xy = corners[..., :2]
    lo = torch.ceil(xy.amin(dim=2)).clamp_min(0)
    hi = torch.floor(xy.amax(dim=2))
    hi = torch.stack([hi[..., 0].clamp_max(width - 1), hi[..., 1].clamp_max(height - 1)], -1)
    span = (hi - lo + 1).clamp_min(0).long()  # (B, T, 2) box width, height in pixels
    a, bb, c = xy[:, :, 0], xy[:, :, 1], xy[:, :, 2]
    e1, e2 = bb - a, c - a
    area = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]  # signed, 2x the triangle's area
    count = (span[..., 0] * span[..., 1]) * (area.abs() > 1e-9)  # degenerate: no pixels
    count = count.reshape(-1)
    total = int(count.sum())
    if total == 0:
        return (out.reshape(b, height, width, n_attr).permute(0, 3, 1, 2),
                covered.reshape(b, 1, height, width))

    # Every (triangle, pixel-in-its-box) pair, without a Python loop over triangles. The
    # per-triangle numbers are packed in one table so each pair needs a single gather.
    owner = torch.repeat_interleave(torch.arange(count.numel(), device=device), count)
    start = torch.cumsum(count, 0) - count
    table = torch.cat([lo, span.to(xy.dtype), a, e1, e2, area[..., None], corners[..., 2]],
                      dim=-1).reshape(-1, 14)
    per = table[owner]  # (P, 14): lo xy, span xy, a xy, e1 xy, e2 xy, area, z of a b c
    local = (torch.arange(total, device=device) - start[owner]).to(xy.dtype)
    row = torch.div(local, per[:, 2], rounding_mode="floor")
    px = per[:, 0] + local - row * per[:, 2]
    py = per[:, 1] + row
    # Barycentrics of the pixel centre (weights of corners b and c; a gets the rest).
    dx, dy = px - per[:, 4], py - per[:, 5]
    wb = (dx * per[:, 9] - dy * per[:, 8]) / per[:, 10]
    wc = (per[:, 6] * dy - per[:, 7] * dx) / per[:, 10]
    wa = 1.0 - wb - wc
    inside = (wa >= -EDGE_EPS) & (wb >= -EDGE_EPS) & (wc >= -EDGE_EPS)
    keep = torch.nonzero(inside).squeeze(1)
    if keep.numel() == 0:
        return (out.reshape(b, height, width, n_attr).permute(0, 3, 1, 2),
                covered.reshape(b, 1, height, width))
    owner, per = owner[keep], per[keep]
    wa, wb, wc = wa[keep], wb[keep], wc[keep]
    px, py = px[keep].long(), py[keep].long()

    frame = owner // tri.shape[0]
    depth = wa * per[:, 11] + wb * per[:, 12] + wc * per[:, 13]
    key = (frame * height + py) * width + px
    zbuf = torch.full((b * height * width,), float("inf"), dtype=depth.dtype, device=device)
    zbuf.scatter_reduce_(0, key, depth, reduce="amin")
    front = depth <= zbuf[key]
    # Ties (a pixel on an edge shared by two front triangles): keep the last candidate.
    cand = torch.nonzero(front).squeeze(1)
    pick = torch.full((b * height * width,), -1, dtype=torch.long, device=device)
    pick.scatter_reduce_(0, key[cand], cand, reduce="amax")
    win = pick[pick >= 0]

    t_idx = owner[win] % tri.shape[0]
    corner_attr = attributes[frame[win][:, None], tri[t_idx]]  # (P, 3, A)
    weights = torch.stack([wa[win], wb[win], wc[win]], dim=1).to(attributes.dtype)
    out[key[win]] = (weights[..., None] * corner_attr).sum(dim=1)
    covered[key[win]] = True
    return (out.reshape(b, height, width, n_attr).permute(0, 3, 1, 2),
            covered.reshape(b, 1, height, width))
