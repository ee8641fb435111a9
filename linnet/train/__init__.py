r"""Training dynamics of deep linear networks: GD, SGD, heavy-ball momentum, gradient flow, end-to-end dynamics.

Every routine trains a whole batch of independent nets at once (leading dimensions of the weights, of the
problem, or of a per-net step size) and returns a :class:`Trajectory`. Each net has its own status: a net whose
loss or weights stop being finite (or whose loss grows past a huge threshold) is frozen at its last finite
iterate and marked ``diverged`` with the step; the others go on. Nothing returns NaN silently. "Huge" means
:math:`|L| >` :data:`DIVERGENCE_FACTOR` :math:`\cdot\max(|L_0|, 1)` (capped at ``1e-8`` times the dtype's largest
value). Floating-point warnings of diverging nets are silenced inside these routines; the status reports them.

The public functions validate their arguments once, then loop on :func:`linnet._step.value_and_grads`, the hot
path shared by every training loop. Host synchronisation happens only every ``check_every`` steps, to stop
early once every net is converged or diverged; per-net freezing itself is exact at every step (a window in
which a net diverged is replayed with ``xp.where`` roll-back masks), so ``check_every`` changes the cost, never
the result.

* :func:`gd`, :func:`sgd`, :func:`momentum`: discrete descent on the layers, :math:`W_j \leftarrow W_j - \eta\,
  \partial L/\partial W_j` (THEOREMS.md §1–§2).
* :func:`gradient_flow`: :math:`\dot W_j = -\partial L/\partial W_j` by the embedded Runge–Kutta pair of Dormand &
  Prince (5(4), FSAL), each net with its own step size and accept/reject decision.
* :func:`end_to_end_flow`, :func:`end_to_end_gd`: the end-to-end dynamics of Arora, Cohen & Hazan
  (`arXiv:1802.06509 <https://arxiv.org/abs/1802.06509>`_, THEOREMS.md §4),
  :math:`\dot W_e = -\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\nabla\ell(W_e)[W_e^\top W_e]^{\frac{N-j}N}`.

Submodules (everything public is re-exported here, as ``ln.train.<name>``):

- ``trajectory``: :class:`Trajectory`, the status codes :data:`CONVERGED`, :data:`MAX_STEPS`, :data:`DIVERGED`
  (:data:`STATUS_NAMES`), :data:`DIVERGENCE_FACTOR` and the divergence tests;
- ``descent``: :func:`gd`, :func:`momentum` and the windowed descent driver (freezing, roll-back replays) that
  :func:`sgd` and :func:`end_to_end_gd` share;
- ``stochastic``: :func:`sgd` (minibatches from :meth:`linnet.losses.Loss.subsample`);
- ``flow``: :func:`gradient_flow` and the batched Dormand–Prince integrator;
- ``end_to_end``: :func:`end_to_end_flow`, :func:`end_to_end_gd` (ACH);
- ``_stages``: the Dormand–Prince tableau and the stage arithmetic of ``flow`` (array code, NumPy buffers);
- ``_args``: private argument checks shared by the above;
- ``_minibatch``: the minibatch draws of :func:`sgd`, shared with :func:`linnet.diagonal.sgd`.
"""

from . import observers
from .descent import gd, momentum
from .end_to_end import end_to_end_flow, end_to_end_gd
from .flow import gradient_flow
from .stochastic import sgd
from .trajectory import CONVERGED, DIVERGED, DIVERGENCE_FACTOR, MAX_STEPS, STATUS_NAMES, Trajectory

__all__ = [
    "observers",
    "Trajectory",
    "CONVERGED",
    "MAX_STEPS",
    "DIVERGED",
    "STATUS_NAMES",
    "DIVERGENCE_FACTOR",
    "gd",
    "sgd",
    "momentum",
    "gradient_flow",
    "end_to_end_flow",
    "end_to_end_gd",
]
