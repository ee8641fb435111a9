r"""Diagonal (elementwise) linear networks: the Hadamard product map and its calculus.

A diagonal net of depth :math:`N` has layers :math:`w_1,\dots,w_N` of one shape :math:`(d_N, d_0)` and the
end-to-end matrix

.. math::

    W = w_N \odot \cdots \odot w_1 ,\qquad L(w) = \ell(W),

so each entry of :math:`W` is a scalar deep net of its own (THEOREMS2.md §20: Woodworth et al.'s model; a
vector :math:`\beta` is the case :math:`d_N = 1`; a diagonal matrix factorization in a fixed basis is the case
of §16a). With prefixes :math:`p_j = w_j\odot\cdots\odot w_1` and suffixes :math:`s_j = w_N\odot\cdots\odot w_{j+1}`
(``None`` standing for the all-ones array), and :math:`c_j = s_j \odot p_{j-1}` the product of all layers but
:math:`j`:

.. math::

    \frac{\partial L}{\partial w_j} = \nabla\ell(W)\odot c_j, \qquad
    (\nabla^2 L[V])_j = \nabla^2\ell(W)[\delta W]\odot c_j + \nabla\ell(W)\odot\dot c_j,
    \qquad \delta W = \sum_k V_k\odot c_k,

with :math:`\dot c_j = \dot s_j\odot p_{j-1} + s_j\odot\dot p_{j-1}`, :math:`\dot p_j = \dot p_{j-1}\odot w_j + p_{j-1}\odot V_j`,
:math:`\dot s_{j} = \dot s_{j+1}\odot w_{j+1} + s_{j+1}\odot V_{j+1}`: :math:`O(N)` elementwise products, no
division by a layer (so zeros are fine). The losses are those of the dense map (:mod:`linnet.losses`).

Woodworth et al.'s two-tower model :math:`\beta = w_+^{D} - w_-^{D}` (Woodworth, Gunasekar, Lee, Moroshko,
Savarese, Golan, Soudry & Srebro, `Kernel and Rich Regimes in Overparametrized Models
<https://arxiv.org/abs/2002.09277>`_, COLT 2020) is this map on the lifted problem :math:`[X; -X]` with
:math:`\beta = W_{:, :d} - W_{:, d:}` (:func:`lift`). With equal layers at init the untied layers stay equal, and
untied flow is the tied flow :math:`\dot w = -D w^{D-1}\odot g` slowed by the factor :math:`D` (same limit).

Training: :func:`gd`, :func:`momentum` and :func:`sgd` run this map on the one descent driver of
:mod:`linnet.train` (:func:`linnet.train.driver.descend`, the loop of :func:`linnet.train.gd`) with
:func:`value_and_grad`'s formulas as its evaluation (:func:`sgd` on the minibatches of :func:`linnet.train.sgd`);
:func:`flow` integrates its gradient flow with :mod:`linnet.ivp`.

Layout: :mod:`linnet.diagonal.calculus` holds the map and its calculus (:func:`check_layers` to :func:`lift`),
:mod:`linnet.diagonal.training` the trainers (:func:`gd`, :func:`momentum`, :func:`sgd`, :func:`flow`) and
:class:`GDRun`; every name is imported from here.
"""

from __future__ import annotations

from .calculus import check_layers, end_to_end, grad, hessian, hvp, lift, loss, value_and_grad
from .training import CONVERGED, DIVERGED, RUNNING, GDRun, flow, gd, momentum, sgd

__all__ = [
    "check_layers",
    "end_to_end",
    "loss",
    "grad",
    "value_and_grad",
    "hvp",
    "hessian",
    "lift",
    "GDRun",
    "RUNNING",
    "CONVERGED",
    "DIVERGED",
    "gd",
    "momentum",
    "sgd",
    "flow",
]
