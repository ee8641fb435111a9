"""Extra columns from other frameworks (PyTorch, JAX), run in a child process where the framework is importable.

Never a dependency: :func:`benchmarks._harness.extra_column` starts ``python -m benchmarks._extra_columns NAME
ARRAYS.npz PARAMS_JSON`` only when the framework is installed, and reads one JSON object from the last line of
its output. A child process keeps the framework's own threading runtime (OpenMP, its BLAS) out of the process
that times linnet and NumPy: importing PyTorch in the same process slowed NumPy's small products there by up to
1.5x on the 2-core test machine.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from linnet.backend import usable_cores

from ._harness import race


def _weights(a) -> list:
    return [a[f"W{j}"] for j in range(sum(k.startswith("W") for k in a.files))]


def torch_w2(a, p: dict) -> dict:
    """W2 with PyTorch autograd: the ensemble as stacked (B, d, d) tensors, one GD step = forward, grad, update."""
    import torch

    torch.set_num_threads(usable_cores())
    lr, steps = p["lr"], p["steps"]
    Ws = [torch.tensor(W, requires_grad=True) for W in _weights(a)]
    P = torch.tensor(a["Phi"])

    def run():
        nonlocal Ws
        for _ in range(steps):
            We = Ws[0]
            for W in Ws[1:]:
                We = W @ We
            L = 0.5 * ((We - P) ** 2).sum()
            gs = torch.autograd.grad(L, Ws)
            with torch.no_grad():
                Ws = [(W - lr * g).requires_grad_() for W, g in zip(Ws, gs)]

    r = race({"torch": run}, repeats=p["repeats"])["torch"]
    return {"version": torch.__version__, "best_s_per_step": r["best_s"] / steps, "threads": torch.get_num_threads()}


def jax_w2(a, p: dict) -> dict:
    """W2 with JAX: a jitted GD step (``jax.grad``) on the stacked ensemble, float64."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    lr, steps = p["lr"], p["steps"]

    def loss(Ws, P):
        We = Ws[0]
        for W in Ws[1:]:
            We = W @ We
        return 0.5 * jnp.sum((We - P) ** 2)

    @jax.jit
    def step(Ws, P):
        g = jax.grad(loss)(Ws, P)
        return [W - lr * gi for W, gi in zip(Ws, g)]

    Ws = [jnp.asarray(W) for W in _weights(a)]
    P = jnp.asarray(a["Phi"])

    def run():
        nonlocal Ws
        for _ in range(steps):
            Ws = step(Ws, P)
        Ws[0].block_until_ready()

    r = race({"jax": run}, repeats=p["repeats"])["jax"]
    return {"version": jax.__version__, "best_s_per_step": r["best_s"] / steps}


def torch_w3(a, p: dict) -> dict:
    """W3 with PyTorch: the dense Hessian of the loss on the raw data (``torch.autograd.functional.hessian``,
    vectorized over its backward passes), and its distance to linnet's closed-form Hessian ``H``."""
    import torch

    torch.set_num_threads(usable_cores())
    X, Y, H_ref = torch.tensor(a["X"]), torch.tensor(a["Y"]), a["H"]
    Ws = _weights(a)
    shapes = [W.shape for W in Ws]
    sizes = [int(np.prod(s)) for s in shapes]
    m = X.shape[1]

    def f(theta):
        H = X
        for part, sh in zip(torch.split(theta, sizes), shapes):
            H = part.reshape(sh) @ H
        return 0.5 * ((H - Y) ** 2).sum() / m

    th = torch.tensor(np.concatenate([W.ravel() for W in Ws]))

    def hess():
        return torch.autograd.functional.hessian(f, th, vectorize=True)

    H = hess().numpy()
    r = race({"torch": hess}, repeats=p["repeats"])["torch"]
    return {
        "version": torch.__version__,
        "best_s": r["best_s"],
        "rel_diff_to_linnet": float(np.linalg.norm(H - H_ref) / np.linalg.norm(H_ref)),
    }


COLUMNS = {"torch_w2": torch_w2, "jax_w2": jax_w2, "torch_w3": torch_w3}


def main(argv) -> int:
    name, path, params = argv
    with np.load(path) as a:
        out = COLUMNS[name](a, json.loads(params))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main(sys.argv[1:]))
