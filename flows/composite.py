"""composite stage flow: the final edited video with watermark and provenance."""

from flows.common import stage_flow
from stages.composite import run_composite

composite_flow = stage_flow("composite", run_composite)
