"""train stage flow: the per-person neural face renderer, trained on the clip's own frames."""

from flows.common import stage_flow
from stages.render import run_train

train_flow = stage_flow("train", run_train)
