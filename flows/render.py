"""render stage flow: generated face crops for every edited frame of a plan."""

from flows.common import stage_flow
from stages.render import run_render

render_flow = stage_flow("render", run_render)
