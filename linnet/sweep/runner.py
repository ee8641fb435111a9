r"""One task of a sweep: train a chunk of runs of one cell and return its rows as plain NumPy columns.

:func:`run_chunk` is the function every execution backend calls (in-process or on a Dask worker). It uses
linnet's public API only: ``ln.init.*`` for the initial layers, ``ln.SquaredLoss`` for the problem,
``ln.train.gd``/``ln.train.momentum`` (the whole chunk as one batch of nets), ``ln.theory.global_min`` for the
closed-form optimum and ``ln.landscape.classify`` for the label of the final point.

Row ``k`` of a chunk depends only on (sweep seed, cell, run index) through :func:`.seeding.run_rng`, and every
net of a batch is trained independently (``ln.train`` freezes each net on its own), so the table does not depend
on the chunking.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .seeding import problem_rng, run_rng
from .spec import Cell, Spec
from .summaries import SUMMARIES, RunContext

__all__ = ["run_chunk", "make_problem", "initial_weights", "to_host", "COLUMNS"]

#: The fixed columns of the table, in order (summary columns follow, in the spec's order).
COLUMNS = (
    "cell", "run", "depth", "width", "init", "scale", "lr",
    "final_loss", "gap", "status", "steps", "label",
)  # fmt: skip


def to_host(a) -> np.ndarray:
    """A NumPy copy of an array of any namespace (CuPy through its get method, else DLPack for array-api-strict)."""
    if isinstance(a, (np.ndarray, np.generic, float, int)):
        return np.asarray(a)
    get = getattr(a, "get", None)
    return np.asarray(get()) if callable(get) else np.from_dlpack(a)


def _namespace(backend: str):
    """The array namespace of ``backend``, through linnet's public creation functions and array-api-compat."""
    import array_api_compat

    import linnet as ln

    return array_api_compat.array_namespace(ln.init.zeros((1, 1), xp=backend)[0])


def make_problem(problem: Mapping, seed: int, xp=None):
    """``(loss, Phi)`` of a sweep: ``Phi`` with i.i.d. ``N(0, target_scale^2)`` entries from the sweep seed.

    Drawn on the host; with ``xp`` the loss holds arrays of that namespace (``Phi`` stays NumPy).
    """
    import linnet as ln

    dev = (lambda a: a) if xp is None else xp.asarray
    rng = problem_rng(seed)
    d_in, d_out = problem["d_in"], problem["d_out"]
    Phi = problem["target_scale"] * rng.standard_normal((d_out, d_in))
    if problem["loss"] == "whitened":
        return ln.SquaredLoss.whitened(dev(Phi)), Phi
    m = problem["n_samples"]
    X = rng.standard_normal((d_in, m))
    Y = Phi @ X + problem["noise"] * rng.standard_normal((d_out, m))
    return ln.SquaredLoss.from_data(dev(X), dev(Y)), Phi


def initial_weights(init: str, widths: tuple, scale: float, rng: np.random.Generator) -> tuple:
    r"""One net's initial layers from its own generator.

    ``gaussian``/``orthogonal``: :func:`linnet.init.gaussian`/:func:`linnet.init.orthogonal` at ``scale``;
    ``identity``: :func:`linnet.init.identity` plus i.i.d. :math:`\mathcal N(0, \mathrm{scale}^2)` entries
    (``scale = 0``: exactly the identity; Bartlett, Helmbold & Long, arXiv 1802.06093);
    ``balanced``: ACGH's procedure on :math:`A` with i.i.d. :math:`\mathcal N(0, \mathrm{scale}^2)` entries
    (THEOREMS.md §3; Arora, Cohen, Golowich & Hu, arXiv 1810.02281, procedure CONFIRMED, secondary).
    """
    import linnet as ln

    if init == "gaussian":
        return ln.init.gaussian(widths, scale, seed=rng)
    if init == "orthogonal":
        return ln.init.orthogonal(widths, scale, seed=rng)
    if init == "identity":  # (rectangular) identities plus an i.i.d. N(0, scale^2) perturbation (Bartlett et al.)
        return tuple(I + G for I, G in zip(ln.init.identity(widths), ln.init.gaussian(widths, scale, seed=rng)))
    A = scale * rng.standard_normal((widths[-1], widths[0]))
    return ln.init.balanced(A, widths)


def _first_reached(loss_hist: np.ndarray, steps: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per net, the first recorded step whose loss is ``<= level`` (``-1`` if none)."""
    hit = loss_hist <= level
    first = np.argmax(hit, axis=0)
    return np.where(hit.any(axis=0), steps[first], -1).astype(np.int64)


def run_chunk(raw: Mapping, cell: Mapping, start: int, stop: int) -> dict:
    """Train runs ``start`` to ``stop - 1`` of ``cell`` and return the table's columns for them.

    Parameters
    ----------
    raw : mapping
        The normalised spec (``Spec.raw``; plain JSON types, so it ships to any worker).
    cell : mapping
        The cell's fields (``dataclasses.asdict`` of a :class:`.spec.Cell`).
    start, stop : int
        Run indices ``[start, stop)``.

    Returns
    -------
    dict of str -> NumPy array ``(stop - start,)``
        int64, float64 and str columns only: :data:`COLUMNS` then the spec's summaries.
    """
    import linnet as ln

    spec = Spec(raw=raw, cells=())  # raw was validated by load_spec on the client
    cell = Cell(**cell)
    train = spec.train
    xp = None if train["backend"] == "numpy" else _namespace(train["backend"])
    loss, Phi = make_problem(spec.problem, spec.seed, xp)
    widths = spec.widths(cell)
    L_star = float(to_host(ln.theory.global_min(loss, widths).value))
    nets = [
        initial_weights(cell.init, widths, cell.scale, run_rng(spec.seed, cell.index, r)) for r in range(start, stop)
    ]
    Ws = tuple(np.stack([net[j] for net in nets]) for j in range(len(widths) - 1))  # host draws, one move per layer
    if xp is not None:
        Ws = tuple(xp.asarray(W) for W in Ws)
    ftol = L_star + train["tol"]
    kw = dict(lr=cell.lr, steps=train["steps"], ftol=ftol, record_every=1)
    if train["optimizer"] == "momentum":
        traj = ln.train.momentum(loss, Ws, beta=train["beta"], **kw)
    else:
        traj = ln.train.gd(loss, Ws, **kw)
    final = np.asarray(to_host(ln.loss(loss, traj.weights)), dtype=np.float64)
    reached = _first_reached(to_host(traj.loss), to_host(traj.steps), ftol)
    if train["classify"]:
        label = np.asarray(ln.landscape.classify(loss, traj.weights).label, dtype=str)
    else:
        label = np.full(stop - start, "", dtype=str)
    B = stop - start
    cols = {
        "cell": np.full(B, cell.index, dtype=np.int64),
        "run": np.arange(start, stop, dtype=np.int64),
        "depth": np.full(B, cell.depth, dtype=np.int64),
        "width": np.full(B, cell.width, dtype=np.int64),
        "init": np.array([cell.init] * B),  # (np.full with dtype=str would truncate to one character)
        "scale": np.full(B, cell.scale, dtype=np.float64),
        "lr": np.full(B, cell.lr, dtype=np.float64),
        "final_loss": final,
        "gap": final - L_star,
        "status": np.asarray(traj.status_names, dtype=str),
        "steps": reached,
        "label": label,
    }
    ctx = RunContext(traj, loss, spec.problem["loss"], Phi, widths, L_star, cell, to_host)
    for name in spec.summaries:
        v = np.asarray(SUMMARIES[name](ctx))
        cols[name] = v.astype(np.int64 if v.dtype.kind in "iub" else np.float64)
    return cols
