# %% [markdown]
# # 4. Balancedness: a conservation law, and what gradient descent does to it
#
# **Claim.** Under gradient flow the matrices $D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top$ do not change
# (Du, Hu & Lee 2018; Arora et al. 2018). It is a Noether charge of the symmetry
# $W_j \to G W_j$, $W_{j+1} \to W_{j+1} G^{-1}$. Gradient descent with step $\eta$ breaks it, by exactly
# $\eta^2 (G_{j+1}^\top G_{j+1} - G_j G_j^\top)$ per step (THEOREMS.md §2, derived and verified), so over a fixed
# time the drift is $O(\eta)$: halve the step, halve the drift.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

rng = np.random.default_rng(0)
X, Y = rng.standard_normal((3, 40)), rng.standard_normal((2, 40))
loss = ln.SquaredLoss.from_data(X, Y)
widths = (3, 4, 4, 2)
Ws0 = ln.init.gaussian(widths, scale=0.5, seed=3)

# %% [markdown]
# ## Gradient flow conserves every $D_j$

# %%
flow = ln.train.gradient_flow(loss, Ws0, t_final=5.0, rtol=1e-10, atol=1e-12)
D0 = ln.theory.balancedness_gaps(Ws0)
D1 = ln.theory.balancedness_gaps(flow.weights)
flow_change = max(float(np.abs(a - b).max()) for a, b in zip(D0, D1))
print("loss: %.4f -> %.4f" % (float(ln.loss(loss, Ws0)), float(ln.loss(loss, flow.weights))))
print("max change of D_j under gradient flow:", flow_change)

# %% [markdown]
# ## One GD step changes $D_j$ by exactly $\eta^2(G_{j+1}^\top G_{j+1} - G_jG_j^\top)$

# %%
eta = 0.05
G = ln.grad(loss, Ws0)
Ws1 = tuple(W - eta * g for W, g in zip(Ws0, G))
pred = ln.theory.gd_drift(Ws0, G, eta)
step_err = max(float(np.abs((b - a) - p).max()) for a, b, p in zip(D0, ln.theory.balancedness_gaps(Ws1), pred))
print("one-step drift, |actual - predicted| =", step_err)

# %% [markdown]
# ## Over a fixed time, the drift is proportional to $\eta$

# %%
T = 2.0
etas = np.array([0.04, 0.02, 0.01, 0.005])
drift = []
for e in etas:
    run = ln.train.gd(loss, Ws0, lr=float(e), steps=int(round(T / e)))
    Dt = ln.theory.balancedness_gaps(run.weights)
    drift.append(max(float(np.linalg.norm(a - b)) for a, b in zip(D0, Dt)))
drift = np.array(drift)
slope = np.polyfit(np.log(etas), np.log(drift), 1)[0]
print("drift over time T:", drift, " log-log slope:", round(slope, 3))

fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.loglog(etas, drift, "o-", label="GD")
ax.loglog(etas, drift[0] * etas / etas[0], "k--", lw=1, label="slope 1")
ax.set(xlabel="step size $\\eta$", ylabel="$\\max_j\\|D_j(T) - D_j(0)\\|_F$", title="balancedness drift at T = 2")
ax.legend()

# %% [markdown]
# ## Exercises
# 1. Use a different step size for each layer (scale one layer's gradient by 2). Is the drift still $O(\eta^2)$ per step?
# 2. Start from `ln.init.balanced(A, widths)`: the flow keeps $D_j = 0$. Plot how GD's imbalance grows with $\eta$.

# %% [markdown]
# ## What this demo taught (checked)

# %%
eps = np.finfo(float).eps
assert flow_change < 1e-8, "gradient flow conserves balancedness"
assert step_err < 1e3 * eps, "the one-step GD drift is exactly η²(G_{j+1}ᵀG_{j+1} − G_jG_jᵀ)"
assert abs(slope - 1) < 0.1, "over a fixed time the GD drift is O(η)"
print("demo 4: all claims hold")
