"""NumPy fast paths of linnet, one concept per module, chosen by one selector.

- :mod:`.select`: :func:`select_path` (which path a call takes, from the loss's capabilities and the namespace),
  the ``LINNET_FASTPATHS`` switch and the :func:`fastpaths` context manager;
- :mod:`.threads`: linnet's thread pool and per-thread scratch buffers;
- :mod:`.stopping`: the one stopping test (gradient norms, ``gtol``/``ftol``);
- :mod:`.quadratic`: the fused kernel of losses with a :class:`~linnet.losses.QuadraticForm` (its two layouts in
  :mod:`.transposed` and :mod:`.natural`, the fused update in :mod:`.update`);
- :mod:`.curvature`: the exact HVP operator of one net and its top eigenvalue;
- :mod:`.hessian`: the closed-form dense Hessian of a quadratic loss.

Only NumPy arrays take these paths; every other namespace (and NumPy with ``LINNET_FASTPATHS=0``) runs the
generic array-API code, which they match bit for bit or to round-off as their tests state.
"""

from .curvature import HVPOperator, LeanHVP, TopEigen, TopEigenvalue, top_eigenvalue
from .hessian import squared_hessian
from .quadratic import Update, prepare, value_and_grads
from .select import PATHS, enabled, fastpaths, select_path
from .stopping import sq_norm, sq_norms, stop_mask
from .threads import num_threads, set_num_threads, usable_cores

__all__ = [
    "HVPOperator",
    "LeanHVP",
    "TopEigen",
    "TopEigenvalue",
    "top_eigenvalue",
    "squared_hessian",
    "Update",
    "value_and_grads",
    "prepare",
    "PATHS",
    "enabled",
    "fastpaths",
    "select_path",
    "sq_norm",
    "sq_norms",
    "stop_mask",
    "num_threads",
    "set_num_threads",
    "usable_cores",
]
