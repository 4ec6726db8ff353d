"""evaluate stage flow: held-out sentences re-created through the edit path, scored."""

from flows.common import stage_flow
from stages.evaluate import run_evaluate

evaluate_flow = stage_flow("evaluate", run_evaluate)
