r"""The result of a training run (:class:`Trajectory`), the per-net status codes and divergence detection.

A net whose loss or weights stop being finite (or whose loss grows past a huge threshold) is frozen at its last
finite iterate and marked :data:`DIVERGED`. "Huge" means :math:`|L| >` :data:`DIVERGENCE_FACTOR`
:math:`\cdot\max(|L_0|, 1)` (capped at ``1e-8`` times the dtype's largest value). Floating-point warnings of
diverging nets are silenced inside the training routines (:func:`_quiet`); the status reports them.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import NamedTuple, Optional

import numpy as np  # host side only: status names

from .._backend import Array, to_numpy

__all__ = ["Trajectory", "CONVERGED", "MAX_STEPS", "DIVERGED", "STATUS_NAMES", "DIVERGENCE_FACTOR"]


CONVERGED = 0  #: met ``gtol``/``ftol`` (descent) or reached ``t_final`` (flows)
MAX_STEPS = 1  #: ran out of steps (descent: the normal end without tolerances)
DIVERGED = 2  #: loss or weights became non-finite or huge; frozen at the last finite iterate
STATUS_NAMES = ("converged", "max_steps", "diverged")

#: A net whose loss exceeds this factor times ``max(|L_0|, 1)`` counts as diverged (capped below the dtype's max).
DIVERGENCE_FACTOR = 1e100


class Trajectory(NamedTuple):
    """The result of a training run on a batch of nets.

    ``batch`` below is the broadcast batch shape of the weights, the problem and a per-net ``lr``.

    Attributes
    ----------
    weights : tuple of arrays
        Final layers, ``W_j`` of shape ``(*batch, d_j, d_{j-1})``, the weights' dtype. For the end-to-end
        dynamics a 1-tuple ``(W_e,)`` of shape ``(*batch, d_N, d_0)``. A diverged net holds its last finite
        iterate.
    loss : array ``(n_rec, *batch)``, the weights' dtype
        Loss recorded at each record (step 0 or the first record time included). SGD records the full-data loss.
    steps : int64 array ``(n_rec,)``
        Step index of each record (flows: the loop iteration at which the record was taken).
    times : float64 array ``(n_rec,)``
        Time of each record: the requested times for flows, ``lr * steps`` for descent (shape ``(n_rec, *batch)``
        when ``lr`` is per-net).
    status : int64 array ``(*batch)``
        :data:`CONVERGED`, :data:`MAX_STEPS` or :data:`DIVERGED` per net (see :attr:`status_names`).
    diverged_at : int64 array ``(*batch)``
        Step at which a net diverged (flows: its number of attempted steps when it failed), ``-1`` otherwise.
    history : tuple of arrays or None
        With ``keep_history=True``, per layer an array ``(n_rec, *batch, d_j, d_{j-1})`` of the recorded weights.
    n_steps : int
        Steps actually executed (flows: loop iterations); smaller than requested when every net stopped early.
        A resumed run counts the steps of the run it continues too.
    state : dict or None
        What a descent run needs to be continued bit for bit (``resume=``): ``"threshold"`` (the divergence
        threshold of its first run), ``"momentum"`` (heavy ball; a tuple of arrays), ``"rng"`` and ``"chunk"``
        (SGD: the generator state at the start of the minibatch chunk holding the next step, as JSON). ``None``
        for flows.
    records : dict or None
        With ``observe=``, per observer name an array ``(n_obs, *batch, ...)`` of its values.
    record_steps : dict or None
        Per observer name, the int64 steps ``(n_obs,)`` at which it was recorded.
    converged_at : int64 array ``(*batch)`` or None
        Descent: the step at which a net met ``gtol``/``ftol`` (status :data:`CONVERGED`), ``-1`` otherwise.
        ``None`` for flows and for archives written before this field existed.
    """

    weights: tuple
    loss: Array
    steps: Array
    times: Array
    status: Array
    diverged_at: Array
    history: Optional[tuple]
    n_steps: int
    state: Optional[dict] = None
    records: Optional[dict] = None
    record_steps: Optional[dict] = None
    converged_at: Optional[Array] = None

    @property
    def status_names(self) -> np.ndarray:
        """Status of each net as a NumPy array of str: ``'converged'``, ``'max_steps'`` or ``'diverged'``."""
        codes = np.asarray(to_numpy(self.status), dtype=np.int64)
        return np.asarray(STATUS_NAMES)[codes]

    def save(self, path) -> None:
        """Write this trajectory to ``path`` as a NumPy ``.npz`` archive (portable, no pickle).

        Every field is stored on the host with its dtype: arrays as they are, tuples of arrays entry by entry,
        ``None`` as an absent entry, Python ints as 0-d int64 arrays. :meth:`load` reads it back.
        """
        out = {"__format__": np.asarray(_NPZ_FORMAT)}
        for name in self._fields:
            value = getattr(self, name)
            if value is None:
                out[f"{name}.none"] = np.asarray(True)
            elif isinstance(value, tuple):
                out[f"{name}.len"] = np.asarray(len(value), dtype=np.int64)
                for k, a in enumerate(value):
                    out[f"{name}.{k}"] = to_numpy(a)
            elif isinstance(value, dict):
                out[f"{name}.keys"] = np.asarray(sorted(value), dtype=np.str_)
                for key, v in value.items():
                    _store(out, f"{name}.{key}", v)
            else:
                _store(out, name, value)
        with open(path, "wb") as fh:
            np.savez(fh, **out)

    @classmethod
    def load(cls, path, *, xp=None) -> "Trajectory":
        """Read a trajectory written by :meth:`save`; arrays land in namespace ``xp`` (default NumPy), dtypes kept.

        Raises ``ValueError`` naming ``path`` when the file is not such an archive.
        """
        from .._backend import get_namespace

        ns = get_namespace(xp)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"`path` must be a Trajectory .npz archive written by Trajectory.save: {exc}") from None
        if data.get("__format__") is None or str(data["__format__"]) != _NPZ_FORMAT:
            raise ValueError(f"`path` must be a Trajectory .npz archive written by Trajectory.save, got {path!r}")
        move = lambda a: ns.asarray(a)  # noqa: E731 - keeps the dtype
        fields = {}
        for name in cls._fields:
            if f"{name}.none" in data:
                fields[name] = None
            elif f"{name}.len" in data:
                fields[name] = tuple(move(data[f"{name}.{k}"]) for k in range(int(data[f"{name}.len"])))
            elif f"{name}.keys" in data:
                fields[name] = {str(k): _restore(data, f"{name}.{k}", move) for k in data[f"{name}.keys"]}
            elif name in data or f"{name}.int" in data:
                fields[name] = _restore(data, name, move)
            elif name in cls._field_defaults:
                fields[name] = cls._field_defaults[name]
            else:
                raise ValueError(f"`path`: the archive has no field {name!r}")
        return cls(**fields)


def _store(out: dict, key: str, value) -> None:
    """One value into the archive dict: None, int, str, a tuple of arrays, or an array."""
    if value is None:
        out[f"{key}.none"] = np.asarray(True)
    elif isinstance(value, bool) or isinstance(value, (int, np.integer)):
        out[f"{key}.int"] = np.asarray(int(value), dtype=np.int64)
    elif isinstance(value, str):
        out[f"{key}.str"] = np.asarray(value, dtype=np.str_)
    elif isinstance(value, tuple):
        out[f"{key}.len"] = np.asarray(len(value), dtype=np.int64)
        for k, a in enumerate(value):
            out[f"{key}.{k}"] = to_numpy(a)
    else:
        out[key] = to_numpy(value)


def _restore(data: dict, key: str, move):
    if f"{key}.none" in data:
        return None
    if f"{key}.int" in data:
        return int(data[f"{key}.int"])
    if f"{key}.str" in data:
        return str(data[f"{key}.str"])
    if f"{key}.len" in data:
        return tuple(move(data[f"{key}.{k}"]) for k in range(int(data[f"{key}.len"])))
    return move(data[key])


#: Format tag of the ``.npz`` archives of :meth:`Trajectory.save`.
_NPZ_FORMAT = "linnet.Trajectory/1"


def _stack_history(records: list, keep_history: bool, xp) -> Optional[tuple]:
    """Per layer, the recorded weights stacked along a new first axis (``None`` without ``keep_history``)."""
    if not keep_history:
        return None
    return tuple(xp.stack([r[j] for r in records], axis=0) for j in range(len(records[0])))


#: Relative margin below the divergence threshold within which a fast loss value (``fast_value`` of
#: :func:`linnet._step.value_and_grads`, equal to the loss to round-off far from the minimum) is not trusted:
#: descent replays the window, the flow re-evaluates the stage, with exact values. A fast value never decides.
_FAST_VALUE_MARGIN = 1e-6


def _loss_ok(L, limit, xp):
    """Per net: the loss is finite and within ``limit`` in absolute value (the divergence test)."""
    return xp.isfinite(L) & (xp.abs(L) <= limit)


def _threshold(L0, xp):
    """Per-net divergence threshold ``factor * max(|L_0|, 1)``, kept finite in the dtype."""
    factor = min(DIVERGENCE_FACTOR, float(xp.finfo(L0.dtype).max) * 1e-8)
    scale = xp.where(xp.isfinite(L0), xp.abs(L0), xp.zeros_like(L0))
    return factor * xp.maximum(scale, xp.ones_like(L0))


@contextlib.contextmanager
def _quiet():
    """Silence the floating-point warnings of nets that diverge (they are reported by status instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(overflow|invalid value|divide by zero).*", category=RuntimeWarning
        )
        yield


def _weights_finite(Ws, xp):
    """Per-net finiteness of all layers (a sum is non-finite iff an entry is, up to overflow, which also counts)."""
    s = None
    for W in Ws:
        t = xp.sum(W, axis=(-2, -1))
        s = t if s is None else s + t
    return xp.isfinite(s)
