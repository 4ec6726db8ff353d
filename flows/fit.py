"""fit stage flow: landmarks, the person's 3D face model, per-frame parameters, crops."""

from flows.common import stage_flow
from stages.fit import run_fit

fit_flow = stage_flow("fit", run_fit)
