"""extract stage flow: a clip's constant-rate frame timeline and 16 kHz audio."""

from flows.common import stage_flow
from stages.extract import extract_clip

extract_flow = stage_flow("extract", extract_clip)
