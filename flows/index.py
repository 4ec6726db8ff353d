"""index stage flow: the clip's viseme string and its suffix array."""

from flows.common import stage_flow
from stages.index import run_index

index_flow = stage_flow("index", run_index)
