# %% [markdown]
# # 6. Deficiency margin and linear convergence (Arora, Cohen, Golowich & Hu 2018)
#
# **Claim** (ACGH, arXiv:1810.02281, Theorem 1; constants as in THEOREMS.md §3). On whitened data,
# $\ell(W) = \tfrac12\|W - \Phi\|_F^2$, if the initial weights are (nearly) balanced and the initial end-to-end
# matrix has a *deficiency margin* $c > 0$, i.e. $\|W_{1:N}(0) - \Phi\|_F \le \sigma_{\min}(\Phi) - c$, then gradient
# descent with a small enough step converges at a linear rate:
# $$\ell(t) \le \ell(0)\,\big(1 - \eta\,c^{2(N-1)/N}\big)^t .$$
# Both conditions matter: without a margin GD can get stuck at a saddle; far from balanced it can blow up.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

rng = np.random.default_rng(2)
d, N = 3, 3
Q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
Q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
Phi = Q1 @ np.diag([2.0, 1.5, 1.0]) @ Q2.T  # singular values in [1, 2]
loss = ln.SquaredLoss.whitened(Phi)
c = 0.5
Delta = rng.standard_normal((d, d))
Delta *= (1.0 - c) / np.linalg.norm(Delta)  # ‖Δ‖_F = σ_min(Φ) − c
Ws0 = ln.init.balanced(Phi + Delta, (d,) * (N + 1))
print("deficiency margin of the start:", float(ln.theory.deficiency_margin(ln.end_to_end(Ws0), Phi)))

# %% [markdown]
# ## The theorem's step size, and larger ones
# The theorem's $\eta$ is tiny (its constants are worst-case). The rate bound is checked at $\eta_{thm}$ and at much
# larger steps, where it still holds in this example.

# %%
const = ln.theory.acgh_constants(Phi, c, N)
print("theorem: delta_max = %.3g, eta_max = %.3g" % (float(const.delta_max), float(const.eta_max)))
steps = 2000
ratios = {}
fig, ax = plt.subplots(figsize=(5, 3.5))
for mult in (1e4, 1e5):
    eta = float(const.eta_max) * mult
    run = ln.train.gd(loss, Ws0, lr=eta, steps=steps)
    k = np.asarray(run.steps)
    bound = float(run.loss[0]) * (1 - eta * c ** (2 * (N - 1) / N)) ** k
    ratios[mult] = float(np.max(np.asarray(run.loss) / bound))
    ax.semilogy(k, run.loss, label=f"GD, η = {mult:g}·η_thm")
    ax.semilogy(k, bound, "--", lw=1, label=f"bound, η = {mult:g}·η_thm")
ax.set(xlabel="iteration t", ylabel="loss", title="linear convergence under a deficiency margin")
ax.legend(fontsize=7)
print("max loss/bound:", ratios)

# %% [markdown]
# ## Without a margin: stuck at a saddle
# Scalar target $\varphi = 1$, balanced weights with an odd number of negative layers (product $< 0$): the
# end-to-end value can never cross 0, so the loss stays $\ge \varphi^2/2$ (THEOREMS.md §3, derived and verified).

# %%
Wneg = (np.array([[-0.5]]), np.array([[0.5]]), np.array([[0.5]]))
stuck = ln.train.gd(ln.SquaredLoss.whitened(np.array([[1.0]])), Wneg, lr=0.05, steps=5000)
print("no-margin final loss:", float(stuck.loss[-1]))

# %% [markdown]
# ## Far from balanced: the theorem's step size does not save it
# $w_1 = 2000$, $w_2 = 0.7/2000$ has margin $0.7$, but the sharpness is about $w_1^2 = 4\cdot10^6 > 2/\eta$.

# %%
Wub = (np.array([[2000.0]]), np.array([[0.7 / 2000]]))
eta_ub = 0.7**3 / (6144 * 8)
blow = ln.train.gd(ln.SquaredLoss.whitened(np.array([[1.0]])), Wub, lr=eta_ub, steps=50)
print("unbalanced start: status", blow.status_names, "at step", blow.diverged_at)

# %% [markdown]
# ## Exercises
# 1. Shrink the margin `c` towards 0. How does the guaranteed rate change? And the observed one?
# 2. Try the no-margin start with a *large* step (η = 1). Can a big step jump across the singular set?

# %% [markdown]
# ## What this demo taught (checked)

# %%
assert all(r <= 1 + 1e-10 for r in ratios.values()), "the loss stays below ℓ(0)(1 − ηc^{2(N−1)/N})^t"
assert float(stuck.loss[-1]) >= 0.5 - 1e-9, "without a margin GD stays stuck at loss ≥ φ²/2"
assert blow.status_names.item() == "diverged", "far from balanced, GD at the theorem's step diverges"
print("demo 6: all claims hold")
