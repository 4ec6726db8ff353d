"""talkedit: edit a talking-head video by editing its transcript."""

import os

__version__ = "0.1.0"

# numpy's and scipy's OpenBLAS split a product or a factorization over their threads, and
# the split changes the last bits of the result (measured: fit's expression basis differed
# between OMP_NUM_THREADS=1 and 2), so an artifact's bytes would depend on the machine's
# core count. One BLAS thread makes them independent of it; the heavy numerics (torch)
# set their own fixed thread count. Takes effect when talkedit is imported before numpy,
# as the `talkedit` command and `python -m talkedit` do.
for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"
