# %% [markdown]
# # 2. No bad local minima — yet non-convex
#
# **Claim** (Kawaguchi 2016; Lu & Kawaguchi 2017). For the squared loss of a deep linear network of any depth and
# widths, every local minimum is a global minimum. With a bottleneck (a hidden layer narrower than input and
# output) the deep problem is the *rank-constrained* regression $\min_{\operatorname{rank} R \le r} \|Y - RX\|^2$,
# whose optimum has a closed form (reduced-rank regression, THEOREMS.md §5).
#
# Why does gradient descent work on a non-convex loss? Here because the landscape has no bad valleys to get stuck
# in: whatever the random start, GD lands at the same loss value — the closed-form optimum.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

rng = np.random.default_rng(1)
d0, dN, m = 5, 4, 60
X = rng.standard_normal((d0, m))
Y = rng.standard_normal((dN, d0)) @ X + 0.3 * rng.standard_normal((dN, m))
loss = ln.SquaredLoss.from_data(X, Y)

# %% [markdown]
# ## Many random starts, one answer
# 300 nets with a bottleneck of width 2, trained together.

# %%
widths = (d0, 6, 2, 6, dN)
Ws0 = ln.init.gaussian(widths, scale=0.4, batch=(300,), seed=0)
run = ln.train.gd(loss, Ws0, lr=0.05, steps=20_000, gtol=1e-9)
final = np.asarray(run.loss[-1])
best = ln.theory.global_min(loss, widths)
print("closed-form optimum (rank 2):", float(best.value))
print("final losses: min %.12f  max %.12f" % (final.min(), final.max()))
print("status counts:", {s: int((run.status_names == s).sum()) for s in set(run.status_names)})

# %% [markdown]
# ## The rank constraint is what the bottleneck costs
# Without a bottleneck the optimum is ordinary least squares; each narrower bottleneck discards one more
# eigenvalue of $\Lambda_{yx}\Lambda_{xx}^{-1}\Lambda_{xy}$.

# %%
values = {r: float(ln.theory.global_min(loss, (d0, r, dN)).value) for r in range(1, 5)}
print("optimal loss by bottleneck width:", values)
fig, ax = plt.subplots(figsize=(4.5, 3.2))
ax.hist(final - float(best.value), bins=30)
ax.set(xlabel="final loss − closed-form optimum", ylabel="nets", title="300 random starts, bottleneck 2")

# %% [markdown]
# ## Exercises
# 1. Replace the loss by the non-convex `ln.CallableLoss` of demo 1's exercise. Do all runs still agree?
# 2. Make the bottleneck width 4 (no bottleneck): which optimum do the runs reach now?

# %% [markdown]
# ## What this demo taught (checked)

# %%
converged = run.status_names == "converged"
assert converged.mean() > 0.95, "nearly every run reaches a critical point"
assert np.all(np.abs(final[converged] - float(best.value)) <= 1e-8 * float(best.value)), (
    "every converged run sits at the closed-form global minimum: no bad local minima"
)
assert all(values[r] >= values[r + 1] - 1e-12 for r in range(1, 4)), "a narrower bottleneck never helps"
print("demo 2: all claims hold")
