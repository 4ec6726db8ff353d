"""The report's plots, drawn with matplotlib (Agg: no display, same bytes every run).

Each function takes the artifacts' tables and arrays and returns PNG bytes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, and no backend probing on import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.tri import Triangulation  # noqa: E402

from stages.report.page import png_bytes  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                     "axes.spines.right": False, "figure.dpi": 80, "svg.hashsalt": "talkedit"})
WIDTH_IN = 15.0
SOURCE_COLOURS = {"clip": "#3b7dd8", "tts": "#e08a1e", "recording": "#2ca25f"}


def _envelope(samples: np.ndarray, rate: int, start_s: float, end_s: float, bins: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min and max of the samples in ``bins`` equal slices of [start_s, end_s): a waveform
    drawn at screen resolution without plotting every sample."""
    a, b = int(start_s * rate), min(int(end_s * rate), len(samples))
    part = samples[a:b]
    if len(part) < bins:
        part = np.pad(part, (0, bins - len(part)))
    usable = len(part) // bins * bins
    blocks = part[:usable].reshape(bins, -1)
    times = start_s + (np.arange(bins) + 0.5) * (end_s - start_s) / bins
    return times, blocks.min(axis=1), blocks.max(axis=1)


def waveform_words_phones(samples: np.ndarray, rate: int, words: pd.DataFrame,
                          phones: pd.DataFrame, dpi: int, row_s: float = 6.0) -> bytes:
    """The recording in rows of ``row_s`` seconds: the waveform, each word's span above it
    (low-confidence words in orange) and each phone's label below, at aligned times."""
    duration = len(samples) / rate
    n_rows = max(1, int(np.ceil(duration / row_s - 0.05)))
    row_s = duration / n_rows  # equal rows, none left nearly empty
    fig, axes = plt.subplots(n_rows, 1, figsize=(WIDTH_IN, 1.9 * n_rows), squeeze=False)
    peak = float(np.abs(samples).max()) or 1.0
    for r, ax in enumerate(axes[:, 0]):
        start, end = r * row_s, min((r + 1) * row_s, duration)
        t, lo, hi = _envelope(samples, rate, start, end, 1200)
        ax.fill_between(t, lo / peak, hi / peak, color="#7a8699", linewidth=0)
        for _, w in words[(words.end_s > start) & (words.start_s < end)].iterrows():
            colour = "#e0661e" if w.low_confidence else "#2a5bd7"
            ax.axvspan(w.start_s, w.end_s, ymin=0.78, ymax=0.98, color=colour, alpha=0.18)
            ax.text((max(w.start_s, start) + min(w.end_s, end)) / 2, 1.12, w.word,
                    ha="center", va="center", fontsize=8, color=colour, clip_on=True)
        for _, p in phones[(phones.end_s > start) & (phones.start_s < end)].iterrows():
            ax.axvline(p.start_s, color="#c4cad4", linewidth=0.5, zorder=0)
            if p.phone != "sil":
                ax.text((p.start_s + p.end_s) / 2, -1.12, p.phone, ha="center", va="center",
                        fontsize=6.5, color="#333", clip_on=True)
        ax.set_xlim(start, start + row_s)
        ax.set_ylim(-1.3, 1.3)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout(h_pad=0.4)
    return png_bytes(fig, dpi)


def face_overlays(frames: list[tuple[int, np.ndarray]], observed: np.ndarray,
                  fitted: np.ndarray, triangles: np.ndarray | None, detected: np.ndarray,
                  dpi: int) -> bytes:
    """Sampled frames cropped to the face: the landmarker's points (green dots; none where
    the face was not detected) and the fitted model's mesh (blue wireframe)."""
    n = len(frames)
    fig, axes = plt.subplots(1, n, figsize=(2.15 * n, 2.5), squeeze=False)
    for ax, (k, image), obs, fit, found in zip(axes[0], frames, observed, fitted, detected,
                                               strict=True):
        lo, hi = fit.min(axis=0), fit.max(axis=0)
        centre, half = (lo + hi) / 2, (hi - lo).max() * 0.65
        ax.imshow(image)
        tri = Triangulation(fit[:, 0], fit[:, 1], triangles)
        ax.triplot(tri, color="#2a7fff", linewidth=0.25, alpha=0.8)
        if found:
            ax.plot(obs[:, 0], obs[:, 1], ".", color="#39d353", markersize=1.2)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] + half, centre[1] - half)
        ax.set_title(f"frame {k}" + ("" if found else " (not detected)"), fontsize=8)
        ax.axis("off")
    fig.tight_layout(w_pad=0.3)
    return png_bytes(fig, dpi)


def _shade_runs(ax: plt.Axes, time_s: np.ndarray, mask: np.ndarray, colour: str,
                label: str | None) -> None:
    """Shade the time ranges where ``mask`` holds (one legend entry)."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    step = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 0.04
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        ax.axvspan(time_s[a] - step / 2, time_s[b - 1] + step / 2, color=colour, alpha=0.25,
                   label=label, linewidth=0)
        label = None


def face_curves(time_s: np.ndarray, expression: np.ndarray, opening: np.ndarray,
                angles_deg: np.ndarray, illumination: np.ndarray, residual: np.ndarray,
                detected: np.ndarray, interpolated: np.ndarray, dpi: int,
                components: int = 3) -> bytes:
    """Per-frame fit: mouth opening and the first expression components, head pose,
    lighting (the SH constant term per colour channel) and the landmark residual, with
    detection gaps shaded (interpolated in yellow, not detected in red)."""
    fig, axes = plt.subplots(4, 1, figsize=(WIDTH_IN, 8.2), sharex=True)
    ax = axes[0]
    for c in range(min(components, expression.shape[1])):
        ax.plot(time_s, expression[:, c], linewidth=0.8, label=f"e{c}")
    ax2 = ax.twinx()
    ax2.plot(time_s, opening, color="black", linewidth=1.1, label="mouth opening")
    ax2.set_ylabel("mouth opening\n(inner lips / eyes)")
    ax.set_ylabel("expression\ncoefficient")
    ax.legend(loc="upper left", ncol=components, fontsize=7, frameon=False)
    ax2.legend(loc="upper right", fontsize=7, frameon=False)
    for c, name in enumerate(("yaw", "pitch", "roll")):
        axes[1].plot(time_s, angles_deg[:, c], linewidth=0.9, label=name)
    axes[1].set_ylabel("head pose (deg)")
    axes[1].legend(loc="upper left", ncol=3, fontsize=7, frameon=False)
    for c, (name, colour) in enumerate((("R", "#d62728"), ("G", "#2ca02c"), ("B", "#1f77b4"))):
        axes[2].plot(time_s, illumination[:, 9 * c], color=colour, linewidth=0.9, label=name)
    axes[2].set_ylabel("lighting\n(SH constant term)")
    axes[2].legend(loc="upper left", ncol=3, fontsize=7, frameon=False)
    axes[3].plot(time_s, residual, color="#444", linewidth=0.8, label="landmark residual")
    axes[3].set_ylabel("residual\n(/ inter-ocular)")
    for ax in axes:
        _shade_runs(ax, time_s, interpolated, "#f2c12e", "interpolated" if ax is axes[3] else None)
        _shade_runs(ax, time_s, ~detected & ~interpolated, "#d62728",
                    "no face" if ax is axes[3] else None)
    axes[3].legend(loc="upper left", ncol=3, fontsize=7, frameon=False)
    axes[3].set_xlabel("time (s)")
    fig.tight_layout(h_pad=0.3)
    return png_bytes(fig, dpi)


def loss_curves(losses: pd.DataFrame, dpi: int) -> bytes:
    """Training losses against step: the generator's reconstruction terms on the left, the
    adversarial games on the right."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH_IN, 3.0))
    for name in ("l1", "feature_matching"):
        if name in losses:
            left.plot(losses["step"], losses[name], linewidth=1, label=name)
    left.set_yscale("log")
    left.set_title("generator: reconstruction")
    for name in ("adversarial", "temporal_adversarial", "d_spatial", "d_temporal"):
        if name in losses:
            right.plot(losses["step"], losses[name], linewidth=1, label=name)
    right.set_title("adversarial (LSGAN)")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return png_bytes(fig, dpi)


def edit_timeline(plan: pd.DataFrame, segments: pd.DataFrame, fps: float, dpi: int) -> bytes:
    """Which clip frame feeds each output frame: the background (grey) and the mouth's
    expression (coloured by matched piece); new segments shaded, edited frames marked."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.6))
    frame = plan["frame"].to_numpy()
    ax.plot(frame, plan["source_frame"], color="#9aa3b0", linewidth=1.6, label="background frame")
    piece = plan["piece"].to_numpy()
    kept = piece < 0
    ax.plot(frame[kept], plan["expression_source_frame"].to_numpy()[kept], ".", markersize=1.5,
            color="#1d2330", label="mouth: kept footage")
    pieces = np.unique(piece[~kept])
    cmap = plt.get_cmap("tab20")
    for i, p in enumerate(pieces):
        sel = piece == p
        ax.plot(frame[sel], plan["expression_source_frame"].to_numpy()[sel], "o", markersize=2.6,
                color=cmap(i % 20), label=f"piece {p}" if i < 12 else None)
    for _, s in segments[segments.kind == "new"].iterrows():
        ax.axvspan(s.out_start_s * fps, s.out_end_s * fps, color="#e0661e", alpha=0.12,
                   linewidth=0)
        ax.text((s.out_start_s + s.out_end_s) / 2 * fps, ax.get_ylim()[1], s.words,
                ha="center", va="bottom", fontsize=8, color="#b0480f")
    _shade_runs(ax, frame.astype(float), plan["edited"].to_numpy(), "#f2c12e", "edited (retimed)")
    ax.set_xlabel("output frame")
    ax.set_ylabel("clip frame")
    ax.legend(fontsize=7, ncol=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    return png_bytes(fig, dpi)


def mouth_openings(time_s: np.ndarray, original: np.ndarray, edited: np.ndarray,
                   changed: np.ndarray, segments: pd.DataFrame, dpi: int) -> bytes:
    """Mouth opening over the output timeline: the clip's footage at each frame's
    background frame (original) against the plan's expression (edit); below, each new
    span zoomed in, with a second of context either side."""
    spans = segments[segments.kind == "new"].reset_index(drop=True)
    fig = plt.figure(figsize=(WIDTH_IN, 5.0))
    grid = fig.add_gridspec(2, max(1, len(spans)))
    axes = [fig.add_subplot(grid[0, :])]
    axes += [fig.add_subplot(grid[1, k]) for k in range(len(spans))]
    for k, ax in enumerate(axes):
        ax.plot(time_s, original, color="#9aa3b0", linewidth=2.0, label="original footage")
        ax.plot(time_s, edited, color="#2a5bd7", linewidth=1.0, label="edit")
        _shade_runs(ax, time_s, changed, "#f2c12e", "edited (retimed)")
        ax.set_ylabel("mouth opening" if k < 2 else "")
        if k:
            span = spans.iloc[k - 1]
            ax.set_xlim(span.out_start_s - 1.0, span.out_end_s + 1.0)
            ax.set_title(f"new: {span.words}", fontsize=8)
    axes[0].legend(fontsize=7, ncol=3, frameon=False, loc="upper right")
    axes[-1].set_xlabel("output time (s)")
    fig.tight_layout()
    return png_bytes(fig, dpi)


def audio_sources(units: pd.DataFrame, segments: pd.DataFrame, dpi: int) -> bytes:
    """Each new span's half-phone units along output time, coloured by where their sound
    came from (the speaker's own phones, espeak-ng, a recording), labelled by phone."""
    spans = segments[segments.kind == "new"].reset_index(drop=True)
    fig, axes = plt.subplots(1, max(1, len(spans)), figsize=(WIDTH_IN, 1.9), squeeze=False)
    for ax, (_, span) in zip(axes[0], spans.iterrows(), strict=False):
        mine = units[units.segment == span.segment]
        for _, u in mine.iterrows():
            ax.barh(0, u.out_end_s - u.out_start_s, left=u.out_start_s, height=0.8,
                    color=SOURCE_COLOURS.get(u.source, "#888"), edgecolor="white", linewidth=0.4)
            if u.half == 0 and u.phone != "sil":
                ax.text(u.out_start_s, 0.55, u.phone, fontsize=6.5, va="bottom")
        ax.set_xlim(span.out_start_s, span.out_end_s)
        ax.set_ylim(-0.5, 1.0)
        ax.set_yticks([])
        ax.set_title(span.words, fontsize=8)
        ax.set_xlabel("output time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in SOURCE_COLOURS.values()]
    fig.legend(handles, list(SOURCE_COLOURS), fontsize=7, ncol=3, frameon=False,
               loc="upper right")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return png_bytes(fig, dpi)
