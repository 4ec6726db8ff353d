"""composite stage: blend, watermark, provenance and the final video (see compose.py)."""

from stages.composite.compose import run_composite

__all__ = ["run_composite"]
