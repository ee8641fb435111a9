r"""Closed forms of deep linear network theory, beside the simulations that test them.

Every function states its formula, the source (arXiv id, theorem or equation) and the status that
``THEOREMS.md`` gives it: **CONFIRMED** (read in a source), **DERIVED+VERIFIED** (derived for linnet and checked
numerically; no paper backs it) or **UNCONFIRMED** (never presented here as a paper's constant).

Submodules, by section of THEOREMS.md (everything is re-exported here, as ``ln.theory.<name>``):

- ``balance`` (§2): :func:`balancedness_gaps`, :func:`balancedness`, :func:`gd_drift`;
- ``convergence`` (§3 ACGH convergence theorem, §4 end-to-end preconditioner): :func:`deficiency_margin`,
  :func:`acgh_constants`, :func:`acgh_steps`, :func:`margin_probability`, :func:`preconditioner_min_eig`;
- ``minima`` (§5 reduced-rank regression, §6 Baldi–Hornik critical points): :func:`rrr`, :func:`rrr_value`,
  :func:`global_min`, :func:`baldi_hornik_points`;
- ``residual`` (§8 Hardt–Ma residual nets, §9 Bartlett–Helmbold–Long modes): :func:`hardt_ma_factorization`,
  :func:`hardt_ma_norm_bound`, :func:`hardt_ma_loss`, :func:`hardt_ma_risk`, :func:`hardt_ma_risk_grad`,
  :func:`hardt_ma_gradient_domination`, :func:`bhl_sufficient_lr`, :func:`bhl_mode_step`;
- ``saxe`` (§10 Saxe et al. exact solutions): :func:`saxe_mode`, :func:`saxe_time`, :func:`saxe_deep_rhs`,
  :func:`saxe_deep_time`, :func:`saxe_deep_mode`, :func:`saxe_time_deep_limit`;
- ``implicit`` (part 2: §16a, §20, §22): :func:`q_alpha`, :func:`q_alpha_argmin`, :func:`entropy_argmin`,
  :func:`min_l1_interpolant`, :func:`min_l2_interpolant`, :func:`gfs_sharpness`, :func:`h_depth`;
- ``lowrank`` (part 2 §15–§16 helpers): :func:`effective_rank`, :func:`stable_rank`, :func:`unobserved_error`,
  :func:`low_rank_matrix`, :func:`random_mask`, :func:`gaussian_measurements`, :func:`min_nuclear_norm`;
- ``sharpness`` (§13): :func:`sharpness_balanced`, :func:`sharpness_scalar_min`;
- ``_common``: private argument checks and array helpers shared by the above.

Array functions take their namespace from their inputs and are batched over leading dimensions. A few
constructions that are small, dense and done once (the noncentral :math:`\chi^2` CDF, the real Schur form in the
Hardt–Ma factorization) run on the host with SciPy and move their result back to the input's namespace.
"""

from .balance import balancedness, balancedness_gaps, gd_drift
from .convergence import (
    ACGHConstants,
    acgh_constants,
    acgh_steps,
    deficiency_margin,
    margin_probability,
    preconditioner_min_eig,
)
from .implicit import (
    entropy_argmin,
    gfs_sharpness,
    h_depth,
    min_l1_interpolant,
    min_l2_interpolant,
    q_alpha,
    q_alpha_argmin,
)
from .lowrank import (
    NuclearNormSolution,
    effective_rank,
    gaussian_measurements,
    low_rank_matrix,
    min_nuclear_norm,
    random_mask,
    stable_rank,
    unobserved_error,
)
from .minima import RRR, CriticalPoint, GlobalMin, baldi_hornik_points, global_min, rrr, rrr_value
from .residual import (
    GradientDomination,
    bhl_mode_step,
    bhl_sufficient_lr,
    hardt_ma_factorization,
    hardt_ma_gradient_domination,
    hardt_ma_loss,
    hardt_ma_norm_bound,
    hardt_ma_risk,
    hardt_ma_risk_grad,
)
from .saxe import saxe_deep_mode, saxe_deep_rhs, saxe_deep_time, saxe_mode, saxe_time, saxe_time_deep_limit
from .sharpness import sharpness_balanced, sharpness_scalar_min

__all__ = [
    "h_depth",
    "q_alpha",
    "q_alpha_argmin",
    "entropy_argmin",
    "min_l1_interpolant",
    "min_l2_interpolant",
    "gfs_sharpness",
    "effective_rank",
    "stable_rank",
    "unobserved_error",
    "low_rank_matrix",
    "random_mask",
    "gaussian_measurements",
    "NuclearNormSolution",
    "min_nuclear_norm",
    "balancedness_gaps",
    "balancedness",
    "gd_drift",
    "deficiency_margin",
    "ACGHConstants",
    "acgh_constants",
    "acgh_steps",
    "margin_probability",
    "preconditioner_min_eig",
    "RRR",
    "rrr",
    "rrr_value",
    "GlobalMin",
    "global_min",
    "CriticalPoint",
    "baldi_hornik_points",
    "hardt_ma_factorization",
    "hardt_ma_norm_bound",
    "hardt_ma_loss",
    "hardt_ma_risk",
    "hardt_ma_risk_grad",
    "GradientDomination",
    "hardt_ma_gradient_domination",
    "bhl_sufficient_lr",
    "bhl_mode_step",
    "saxe_mode",
    "saxe_time",
    "saxe_deep_rhs",
    "saxe_deep_time",
    "saxe_deep_mode",
    "saxe_time_deep_limit",
    "sharpness_balanced",
    "sharpness_scalar_min",
]
