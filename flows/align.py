"""align stage flow: word and phone timings of the transcript in the clip's audio."""

from flows.common import stage_flow
from stages.align import run_align

align_flow = stage_flow("align", run_align)
