"""linnet: a testbed for the theory of deep linear networks.

The engine is pure array code through the Python array API (NumPy, CuPy, array-api-strict): the product map
:math:`W \\mapsto W_N\\cdots W_1` (or :math:`(I+W_N)\\cdots(I+W_1)`) composed with end-to-end losses, with
closed-form gradients, Hessian-vector products and Hessians, batched over independent nets.
"""

from . import backend, init, product
from ._fastpaths.threads import set_num_threads
from .calculus import flatten, gauss_newton_hvp, grad, hessian, hvp, loss, num_params, unflatten, value_and_grad
from .losses import CallableLoss, HuberLoss, Loss, LpLoss, QuadraticForm, SquaredLoss
from .losses_classification import ExponentialLoss, LogisticLoss, max_margin_direction
from .losses_sensing import LinearMeasurementLoss, MatrixCompletionLoss
from .product import end_to_end

__version__ = "0.1.0"

_LAZY = {
    "diagonal",
    "tied",
    "ivp",
    "train",
    "theory",
    "landscape",
    "linalg",
    "strategies",
    "testing",
    "losses",
    "calculus",
}


def __getattr__(name):
    # submodules load on first use; `strategies` needs hypothesis, which only the `test` extra installs
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)


__all__ = [
    "backend",
    "init",
    "diagonal",
    "tied",
    "ivp",
    "train",
    "theory",
    "landscape",
    "linalg",
    "product",
    "end_to_end",
    "loss",
    "grad",
    "value_and_grad",
    "hvp",
    "gauss_newton_hvp",
    "hessian",
    "flatten",
    "unflatten",
    "num_params",
    "Loss",
    "SquaredLoss",
    "LpLoss",
    "HuberLoss",
    "CallableLoss",
    "LinearMeasurementLoss",
    "MatrixCompletionLoss",
    "LogisticLoss",
    "ExponentialLoss",
    "max_margin_direction",
    "QuadraticForm",
    "set_num_threads",
]
