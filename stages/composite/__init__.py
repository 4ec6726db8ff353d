"""composite stage: blend, watermark, provenance and the final video (see compose.py)."""

from stages.composite.compose import CompositeParams, run_composite

__all__ = ["CompositeParams", "run_composite"]
