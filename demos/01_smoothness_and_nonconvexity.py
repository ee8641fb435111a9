# %% [markdown]
# # 1. Smooth, yet non-convex: the landscape of $(\varphi - w_2 w_1)^2$
#
# **Claim.** The loss of a deep linear network is as smooth as a function can be (a polynomial in the weights),
# yet it is not convex. The reason is symmetry: $w_1 \to \alpha w_1$, $w_2 \to w_2/\alpha$ leaves the product, and
# so the loss, unchanged. The minima form a whole curve (a hyperbola), and the segment between two minima on
# different branches climbs over a saddle.
#
# Students often ask whether gradient descent "assumes a smooth landscape". Smoothness is not the issue:
# this landscape is smooth everywhere. What makes it interesting is the shape: a saddle at the origin and a
# continuum of global minima.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

phi = 1.0
loss = ln.SquaredLoss.whitened(np.array([[phi]]))  # ℓ(z) = ½ (z − φ)², a convex function of the product z


def L(w1, w2):
    """The deep loss L(w1, w2) = ℓ(w2 w1) for arrays of scalar weights (a batch of nets)."""
    Ws = (np.asarray(w1, dtype=float)[..., None, None], np.asarray(w2, dtype=float)[..., None, None])
    return ln.loss(loss, Ws)


# %% [markdown]
# ## Smooth: derivatives of every order exist, and linnet has them in closed form
# The gradient and Hessian are polynomials. Compare the closed-form gradient with a finite difference.

# %%
w = (np.array([[0.7]]), np.array([[-0.4]]))
g = ln.grad(loss, w)
h = 1e-6
fd = (L(0.7 + h, -0.4) - L(0.7 - h, -0.4)) / (2 * h)
print("closed form dL/dw1 =", float(g[0][0, 0]), " finite difference =", float(fd))

# %% [markdown]
# ## Non-convex: the midpoint of two minima is worse than both
# $(1, 1)$ and $(-1, -1)$ are both global minima (loss 0). Their midpoint is the origin, where the loss is
# $\varphi^2/2 > 0$. A convex function would be 0 there.

# %%
a, b = L(1.0, 1.0), L(-1.0, -1.0)
mid = L(0.0, 0.0)
print(f"L(1,1) = {float(a):.3g}, L(-1,-1) = {float(b):.3g}, L(midpoint) = {float(mid):.3g}")

# %% [markdown]
# ## The symmetry: a hyperbola of minima, and a saddle at the origin
# The Hessian at the origin has eigenvalues $\pm\varphi$: one direction goes down (along $w_1 = w_2$), one goes up.
# That is a *strict* saddle: gradient descent started near it leaves it.

# %%
H0 = ln.hessian(loss, (np.zeros((1, 1)), np.zeros((1, 1))))
print("Hessian at the origin:\n", H0, "\neigenvalues:", np.linalg.eigvalsh(H0))

t = np.linspace(-2, 2, 201)
W1, W2 = np.meshgrid(t, t)
Z = L(W1, W2)
fig, ax = plt.subplots(figsize=(5, 4))
cs = ax.contour(W1, W2, Z, levels=np.geomspace(1e-3, 8, 14), cmap="viridis")
w1s = np.linspace(0.5, 2, 50)
ax.plot(w1s, phi / w1s, "k--", lw=1, label="minima $w_1 w_2 = \\varphi$")
ax.plot(-w1s, -phi / w1s, "k--", lw=1)
ax.plot([0], [0], "rx", label="saddle")
ax.set(xlabel="$w_1$", ylabel="$w_2$", title="$(\\varphi - w_2 w_1)^2/2$")
ax.legend(loc="upper left", fontsize=8)

# %% [markdown]
# ## Gradient descent from small random starts finds a minimum
# Run 200 nets at once from small random initialisations: every one ends on the hyperbola, none at the saddle.

# %%
Ws0 = ln.init.gaussian((1, 1, 1), scale=0.1, batch=(200,), seed=1)
run = ln.train.gd(loss, Ws0, lr=0.1, steps=2000)
ends = ln.end_to_end(run.weights)[:, 0, 0]
print("final products: min", ends.min(), "max", ends.max())

# %% [markdown]
# ## Exercises
# 1. Set `phi = 0` and rerun. Is the origin still a saddle? (Look at the Hessian's eigenvalues.)
# 2. Replace the loss by a non-convex one, e.g. `ln.CallableLoss` with $\ell(z) = (z^2 - 1)^2 + 0.3 z$. Does GD
#    still always reach the same loss value?

# %% [markdown]
# ## What this demo taught (checked)

# %%
eps = np.finfo(float).eps
assert abs(float(fd) - float(g[0][0, 0])) < 1e-6, "closed-form gradient disagrees with finite differences"
assert float(a) == 0 and float(b) == 0 and float(mid) > 0, "the midpoint of two minima must be worse: non-convex"
ev = np.linalg.eigvalsh(H0)
assert np.allclose(ev, [-phi, phi], atol=100 * eps), "the origin is a strict saddle with eigenvalues ±φ"
assert np.all(np.abs(ends - phi) < 1e-8), "GD from small random starts reaches the hyperbola of global minima"
print("demo 1: all claims hold")
