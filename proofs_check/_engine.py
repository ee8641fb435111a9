"""Engine-consistency helpers shared by the checks: the trainers' steps against their definition.

A theorem about training says nothing if the trainer silently runs another algorithm (a wrong step size, a
dropped momentum term), so every check that trains also replays the first steps of one of its nets from the
definition :math:`W_j \\leftarrow W_j - \\eta\\,\\partial L/\\partial W_j` with the engine's ``ln.grad`` (itself
checked against finite differences by s01) and compares the trainer's iterates with the replay.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from ._core import Context, Measurement, host

__all__ = ["gd_replay_error", "gd_replay", "gd_reference_error", "layer_grads_reference"]


def _first(a, n_batch: int):
    return a[(0,) * n_batch + (...,)] if n_batch else a


def _replay_error(ctx: Context, history, W0, advance, steps: int) -> tuple[float, float]:
    r"""``(figure, bound)`` of a trainer's recorded iterates ``history`` (per layer, ``(steps + 1, ...)``) against
    ``steps`` replayed updates ``W <- advance(W)`` from ``W0``: the largest error as a fraction of the largest
    distance moved, and the round-off of ``steps`` updates, :math:`10^3\epsilon\max(1, |W|)` over that distance,
    capped at 0.1."""
    hist = [host(h) for h in history]
    start = [host(w) for w in W0]
    top = max(float(np.max(np.abs(w))) for w in start)
    err = move = 0.0
    W = W0
    for k in range(1, steps + 1):
        W = advance(W)
        for j, w in enumerate(W):
            wh = host(w)
            err = max(err, float(np.max(np.abs(hist[j][k] - wh))))
            move = max(move, float(np.max(np.abs(wh - start[j]))))
            top = max(top, float(np.max(np.abs(wh))))
    if move == 0.0:
        return (0.0 if err == 0.0 else np.inf), 0.1
    return err / move, min(0.1, 1e3 * ctx.eps * max(1.0, top) / move)


def gd_replay_error(ctx: Context, loss, Ws, lr, *, steps: int = 3, residual: bool = False) -> tuple[float, float]:
    r"""``(figure, bound)``: the trainer's first ``steps`` GD iterates of the first net of the batch against a
    replay of :math:`W \leftarrow W - \eta\nabla L(W)` with ``ln.grad`` in the context's dtype.

    The figure is :math:`\max|W_{\rm trainer} - W_{\rm replay}| / \max|W_{\rm replay} - W_0|` (the error as a
    fraction of the distance moved, so a step size off by a factor 2 gives about 0.5); the bound is the
    round-off of ``steps`` updates, :math:`10^3\epsilon\max(1, |W|)` over the distance moved, capped at 0.1.
    """
    nb = Ws[0].ndim - 2
    W0 = tuple(_first(W, nb) for W in Ws)
    lr_h = np.asarray(host(lr) if not isinstance(lr, (int, float)) else lr, dtype=np.float64)
    lr1 = float(lr_h.reshape(-1)[0])
    loss1 = loss  # an unbatched problem (every check's training problem is)
    run = ln.train.gd(loss1, W0, lr=ctx.asarray(np.float64(lr1)), steps=steps, keep_history=True, residual=residual)
    step = ctx.asarray(np.float64(lr1))

    def advance(W):
        return tuple(w - step * g for w, g in zip(W, ln.grad(loss1, W, residual=residual)))

    return _replay_error(ctx, run.history, tuple(W0), advance, steps)


def gd_replay(ctx: Context, loss, Ws, lr, **kw) -> Measurement:
    """:func:`gd_replay_error` as a measurement part."""
    fig, bound = gd_replay_error(ctx, loss, Ws, lr, **kw)
    return Measurement.compare(
        fig, bound, "<=", "trainer's first GD iterates vs W - lr grad L (ln.grad), error / distance moved"
    )


def layer_grads_reference(Ws: list, end_grad) -> list:
    r"""Host float64 layer gradients :math:`S_j^\top G P_{j-1}^\top` of :math:`\ell(W_N\cdots W_1)` by the chain rule,
    with :math:`G` = ``end_grad(W_e)`` an independent formula for :math:`\nabla\ell` (no engine code)."""
    N = len(Ws)
    P = [np.eye(Ws[0].shape[1])]  # P[j] = W_j ... W_1 (1-based), P[0] = I
    for W in Ws:
        P.append(W @ P[-1])
    S = [np.eye(Ws[-1].shape[0])] * N  # S[j] = W_N ... W_{j+2} (1-based): the layers after layer j + 1
    for j in range(N - 2, -1, -1):
        S[j] = S[j + 1] @ Ws[j + 1]
    G = end_grad(P[-1])
    return [S[j].T @ G @ P[j].T for j in range(N)]


def gd_reference_error(ctx: Context, loss, Ws, lr: float, end_grad, *, steps: int = 3) -> tuple[float, float]:
    r"""``(figure, bound)`` as :func:`gd_replay_error`, but the replay uses an independent host formula for the
    loss's gradient (``end_grad``: :math:`W_e\mapsto\nabla\ell(W_e)`, float64) through
    :func:`layer_grads_reference`, so a wrong gradient of the loss itself (not only of the trainer) shows."""
    run = ln.train.gd(loss, list(Ws), lr=ctx.asarray(np.float64(lr)), steps=steps, keep_history=True)

    def advance(W):
        return [w - lr * g for w, g in zip(W, layer_grads_reference(W, end_grad))]

    return _replay_error(ctx, run.history, [host(w) for w in Ws], advance, steps)
