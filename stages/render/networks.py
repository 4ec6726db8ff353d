"""The renderer's networks: a recurrent U-Net generator and patch discriminators.

Generator (Fried et al. step 5, after Deep Video Portraits): its input at frame
t is a short window of conditioning images (frames t-window+1..t, each
``conditioning_channels()`` channels) and its own previous output frame (3
channels), so it sees where the mouth comes from and keeps texture steady. A
U-Net: strided-conv encoder, residual blocks at the bottleneck, nearest-
upsampling decoder with skip connections. With ``residual`` the output is a
correction added to the last 3 conditioning channels (the exemplar crop of
``conditioning.py``), so the untrained network starts at "paste the nearest
frame" and learns what to change (light, shape, seams); otherwise tanh RGB.
No normalization layers: batches are small and instance statistics would
drift per frame.

Discriminators: PatchGAN (strided 4x4 convs, spectral norm), one *spatial* on
a frame with its conditioning, one *temporal* on a stack of consecutive
frames with theirs. Each returns its patch logits and the intermediate
features (for the feature-matching loss).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), _act(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """window x conditioning + previous output -> RGB in [-1, 1]."""

    def __init__(self, cond_channels: int, window: int, base: int = 32, depth: int = 4,
                 max_channels: int = 256, res_blocks: int = 2, residual: bool = False) -> None:
        super().__init__()
        self.window = window
        self.residual = residual
        self.in_channels = cond_channels * window + 3
        widths = [min(base * 2 ** i, max_channels) for i in range(depth + 1)]
        self.stem = nn.Sequential(nn.Conv2d(self.in_channels, widths[0], 3, padding=1), _act())
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), _act(),
                          nn.Conv2d(widths[i + 1], widths[i + 1], 3, padding=1), _act())
            for i in range(depth))
        self.middle = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(res_blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i + 1] + widths[i], widths[i], 3, padding=1), _act(),
                          nn.Conv2d(widths[i], widths[i], 3, padding=1), _act())
            for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)
        if residual:  # start exactly at the exemplar
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, conditioning: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """conditioning (B, window*C, H, W), previous (B, 3, H, W) -> (B, 3, H, W)."""
        x = self.stem(torch.cat([conditioning, previous], dim=1))
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.middle(skips.pop())
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        if self.residual:
            return (conditioning[:, -3:] + self.head(x)).clamp(-1.0, 1.0)
        return torch.tanh(self.head(x))


class PatchDiscriminator(nn.Module):
    """PatchGAN: (B, in, H, W) -> logits (B, 1, h, w) and the hidden features."""

    def __init__(self, in_channels: int, base: int = 32, layers: int = 3,
                 max_channels: int = 256) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i in range(layers):
            c_out = min(base * 2 ** i, max_channels)
            blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2,
                                                                padding=1)), _act()))
            c_in = c_out
        c_out = min(c_in * 2, max_channels)
        blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1)), _act()))
        self.blocks = nn.ModuleList(blocks)
        self.head = spectral_norm(nn.Conv2d(c_out, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats
