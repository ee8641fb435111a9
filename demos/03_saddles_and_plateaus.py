# %% [markdown]
# # 3. Saddles: strict at depth 2, flat at depth ≥ 3 — and the plateaus they cause
#
# **Claim.** For a deep linear network with squared loss, the origin is a critical point that is not a minimum
# (when $\Lambda_{yx} \neq 0$). At depth $N = 2$ its Hessian has negative eigenvalues $-\sigma_i(\Lambda_{yx})$: a
# *strict* saddle. At depth $N \ge 3$ its Hessian is exactly **zero**: no curvature test can tell it from a minimum,
# yet the loss falls like $t^N$ along an aligned path (Kawaguchi 2016; THEOREMS.md §5).
#
# Are saddles or local minima the problem? Here there are no bad local minima at all (demo 2), but flat saddles
# slow gradient descent down: started near the origin, GD sits on a plateau whose length grows as the start
# shrinks, much faster at depth 3 than at depth 2.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

rng = np.random.default_rng(0)
d = 3
Phi = np.diag([2.0, 1.0, 0.5])  # whitened target Λyx = Φ
loss = ln.SquaredLoss.whitened(Phi)

# %% [markdown]
# ## The Hessian at the origin
# Depth 2: eigenvalues $\pm\sigma_i(\Phi)$, each with multiplicity $d_1$, plus zeros. Depth 3: all zero.


# %%
def origin(depth, width=d):
    return ln.init.zeros((d,) + (width,) * (depth - 1) + (d,))


H2 = ln.hessian(loss, origin(2))
H3 = ln.hessian(loss, origin(3))
ev2 = np.linalg.eigvalsh(H2)
print("depth 2: smallest eigenvalues", ev2[:4], " largest", ev2[-4:])
print("depth 3: max |H| =", np.abs(H3).max())

# %% [markdown]
# ## Along an aligned path the loss drops like $t^N$
# Put $W_j = t\,e_1e_1^\top$ in every layer. The product is $t^N e_1 e_1^\top$ and
# $\ell(0) - \ell = t^N\sigma_1 - t^{2N}/2$. The log–log slope at small $t$ is $N$.

# %%
ts = np.geomspace(1e-3, 1e-2, 8)
E = np.zeros((d, d))
E[0, 0] = 1.0
slopes = {}
for depth in (2, 3, 4):
    drops = [float(ln.loss(loss, origin(depth)) - ln.loss(loss, tuple(t * E for _ in range(depth)))) for t in ts]
    slopes[depth] = np.polyfit(np.log(ts), np.log(drops), 1)[0]
print("fitted slopes:", {k: round(v, 3) for k, v in slopes.items()})

# %% [markdown]
# ## Plateaus: how long GD stays near the origin
# Start from a small balanced, aligned init of scale $\varepsilon$ per layer and count GD steps until the top mode
# reaches half its target. Depth 2 escapes in $O(\log(1/\varepsilon))$ time; depth 3 needs $O(1/\varepsilon)$
# (Saxe et al. 2014, eqs. 11 and 17).

# %%
lr = 0.05
scales = np.array([1e-2, 1e-3])
escape, curves = {}, {}
for depth in (2, 3):
    # both starting scales as one batch of two nets
    A = np.stack([np.eye(d) * sc**depth for sc in scales])
    Ws = ln.init.balanced(A, (d,) * (depth + 1))
    run = ln.train.gd(loss, Ws, lr=lr, steps=12_000, record_every=10)
    losses = np.asarray(run.loss)  # (records, 2)
    # the top mode (σ₁ = 2) is half learned when the loss has dropped by ½(σ₁² − (σ₁/2)²)
    for i, sc in enumerate(scales):
        k = int(np.argmax(losses[:, i] < losses[0, i] - 0.5 * (2.0**2 - 1.0**2)))
        escape[(depth, float(sc))] = int(run.steps[k])
    curves[depth] = (np.asarray(run.steps) * lr, losses[:, 1])
print("steps to learn the top mode:", escape)

fig, ax = plt.subplots(figsize=(5, 3.5))
for depth, (t, l) in curves.items():
    ax.plot(t, l, label=f"depth {depth}")
ax.set(xlabel="time $t = \\eta k$", ylabel="loss", title="plateaus near the origin (init scale $10^{-3}$)")
ax.legend()

# %% [markdown]
# ## Exercises
# 1. Change the depth to 4 and rerun the Hessian cell: what happens to the Hessian at the origin?
# 2. Start exactly at the origin (`scale = 0`). Does GD ever move? Why not, and what does a $10^{-8}$ perturbation do?

# %% [markdown]
# ## What this demo taught (checked)

# %%
sig = np.linalg.svd(Phi, compute_uv=False)
assert np.isclose(ev2[0], -sig[0]) and np.isclose(ev2[-1], sig[0]), "depth 2: extreme eigenvalues ±σ₁(Φ)"
assert ev2[0] < 0, "depth 2: the origin is a strict saddle"
assert np.abs(H3).max() == 0.0, "depth 3: the Hessian at the origin is exactly zero"
for depth, s in slopes.items():
    assert abs(s - depth) < 0.05, f"depth {depth}: loss drops like t^N along the aligned path"
assert escape[(3, 1e-3)] > 5 * escape[(3, 1e-2)] > 0, "depth 3: the plateau grows like 1/ε"
assert 0 < escape[(2, 1e-3)] < 2 * escape[(2, 1e-2)], "depth 2: the plateau grows only like log(1/ε)"
print("demo 3: all claims hold")
