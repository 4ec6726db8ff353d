"""Neural face rendering (Fried et al. 2019, step 5): the train and render stages."""

import os

# OpenMP threads that spin while waiting burn the CPU a shared machine's other jobs need,
# and get slower than one thread there (measured: 4.6 s vs 0.55 s a training step on 2
# busy cores). It only takes effect if torch is not imported yet; set it in the
# environment to be sure.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The stages' entry points: stages.render.train.run_train, stages.render.render.run_render;
# stages.render.store.RenderStore reads a render. Nothing is imported here, so a stage
# that needs one of them does not load the others.
