r"""The minibatches of minibatch SGD: :class:`_Minibatches`, shared by :func:`linnet.train.sgd` and
:func:`linnet.diagonal.sgd`.

Step :math:`k` draws ``batch_size`` distinct samples (``numpy.random.Generator.choice`` without replacement) on
the host, independently across steps and in step order, one minibatch for every net of the batch. The draws are
made a chunk of steps at a time; the generator's state before each chunk is kept, so a run can end with the
state its continuation starts from (``resume`` of :func:`linnet.train.sgd`).
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np  # host side only: minibatch indices

from .._backend import host_rng
from .._validate import check_int
from ..losses import Loss

__all__ = ["_Minibatches", "_samples_of"]


def _samples_of(loss_fn: Loss) -> int:
    """The number of samples ``m`` of a loss that carries data (its ``n_samples``); ``ValueError`` otherwise."""
    m = loss_fn.n_samples
    if m is None:
        raise ValueError(
            "`loss` must carry data for sgd (a loss with samples: SquaredLoss.from_data(X, Y), LpLoss, HuberLoss; "
            f"whitened/population losses have no samples to draw), got {type(loss_fn).__name__} without samples: "
            "sgd draws minibatches of samples; train it with gd, momentum or gradient_flow, or build the loss from samples"
        )
    return m


class _Minibatches:
    """The minibatch indices of step ``k``, ``self(k)``: an int64 array ``(batch_size,)`` of the namespace ``xp``.

    Built from a validated loss (``ValueError`` if it carries no samples), ``batch_size`` (an int in
    ``[1, m]``, checked) and ``seed`` (an int or a ``numpy.random.Generator``, advanced by the draws). Minibatch
    ``k`` is row ``k % chunk`` of chunk ``k // chunk`` (``chunk = max(64, check_every + 1)``); chunks are drawn
    in order, so the draws do not depend on the chunking, and the previous chunk is kept for a window of the
    driver replayed after a divergence (``chunk > check_every``). :meth:`restore` continues a run from its
    :meth:`state`.
    """

    def __init__(self, loss_fn: Loss, batch_size: Any, seed: Any, xp, *, check_every: int):
        self.m = _samples_of(loss_fn)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        if self.batch_size > self.m:
            raise ValueError(f"`batch_size` must be <= the number of samples m = {self.m}, got {batch_size!r}")
        self._rng = host_rng(seed)
        self._xp = xp
        self.chunk = max(64, int(check_every) + 1)
        self._chunks: dict = {}
        self._snaps: dict = {}  # the generator's state before each chunk (the RNG position a resumed run starts from)
        self._first = 0

    def restore(self, resume: Optional[Any]) -> None:
        """Continue ``resume`` (a checked sgd :class:`~linnet.train.Trajectory`, or ``None``: nothing to do) from
        the generator position its :meth:`state` recorded; ``ValueError`` if it is not one of the same chunks."""
        if resume is None:
            return
        if "rng" not in resume.state or int(resume.state["chunk"]) != self.chunk:
            raise ValueError(
                "`resume` must be an sgd run with the same `check_every` (minibatch chunks of "
                f"{self.chunk}), got {resume.state.get('chunk')!r}"
            )
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(resume.state["rng"])
        self._rng = rng
        self._first = resume.n_steps // self.chunk

    def __call__(self, k: int):
        chunk, chunks, snaps = self.chunk, self._chunks, self._snaps
        c = k // chunk
        while c not in chunks:
            nxt = max(chunks, default=self._first - 1) + 1
            snaps[nxt] = json.dumps(self._rng.bit_generator.state)
            host = np.stack([self._rng.choice(self.m, size=self.batch_size, replace=False) for _ in range(chunk)])
            chunks[nxt] = self._xp.asarray(host.astype(np.int64))
            chunks.pop(nxt - 2, None)
            snaps.pop(nxt - 2, None)
        return chunks[c][k % chunk, :]

    def state(self, n_steps: int) -> dict:
        """``{"rng", "chunk"}`` for the state of a run of ``n_steps`` steps: the generator's position before the
        chunk of step ``n_steps`` (drawn here if need be), from which a continuation starts."""
        self(n_steps)
        return {"rng": self._snaps[n_steps // self.chunk], "chunk": self.chunk}
