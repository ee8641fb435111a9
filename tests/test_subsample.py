"""``Loss.subsample`` gives the loss of a subset of the samples, equal to the loss rebuilt from those samples."""

import numpy as np
import pytest

import linnet as ln
from linnet._backend import from_host
from linnet.testing import assert_close

IDX = np.array([1, 4, 5, 7, 11])


def _data(xp):
    rng = np.random.default_rng(3)
    return from_host(rng.standard_normal((3, 20)), xp), from_host(rng.standard_normal((2, 20)), xp), rng


@pytest.mark.parametrize("kind", ["squared", "lp", "huber"])
def test_subsample_equals_the_loss_rebuilt_from_the_samples(xp, kind):
    """Value, gradient and HVP of the subsampled loss equal those of the loss built from the chosen columns."""
    X, Y, rng = _data(xp)
    idx = xp.asarray(IDX)
    Xb, Yb = xp.take(X, idx, axis=-1), xp.take(Y, idx, axis=-1)
    make = {
        "squared": ln.SquaredLoss.from_data,
        "lp": lambda a, b: ln.LpLoss(a, b, p=4),
        "huber": lambda a, b: ln.HuberLoss(a, b, delta=0.5),
    }[kind]
    sub, ref = make(X, Y).subsample(idx), make(Xb, Yb)
    W = from_host(rng.standard_normal((4, 2, 3)), xp)
    D = from_host(rng.standard_normal((4, 2, 3)), xp)
    assert_close(sub.value(W), ref.value(W))
    assert_close(sub.grad(W), ref.grad(W))
    assert_close(sub.hvp(W, D), ref.hvp(W, D))


def test_subsample_needs_samples():
    """A loss without samples (whitened) cannot be subsampled."""
    with pytest.raises(ValueError, match="`loss` must carry data"):
        ln.SquaredLoss.whitened(np.eye(2)).subsample(np.array([0]))
