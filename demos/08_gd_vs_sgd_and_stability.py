# %% [markdown]
# # 8. GD versus SGD; sharp and flat minima; the 2/η stability limit
#
# **Claims.**
# * Poggio & Cooper 2020: GD stops at every critical point, but single-sample SGD can only stop where *every*
#   per-sample gradient vanishes. In the 1-D example $\ell_i(w) = a(w - x_i)^2$ with $x_2 = -x_1$, GD sees one minimum
#   at 0; each sample alone has its minimum at $\pm x_1$, so SGD keeps moving.
# * Linear stability: GD with step $\eta$ can only settle at a minimum whose sharpness $\lambda_{\max}(H)$ is at most
#   $2/\eta$. For $\tfrac12(\varphi - w_N\cdots w_1)^2$ the flattest minimum is the balanced one, with
#   $\lambda_{\max} = N|\varphi|^{2-2/N}$ (THEOREMS.md §13, derived and verified).

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

# %% [markdown]
# ## The 1-D example: what GD sees and what SGD sees

# %%
a, x1 = 1.0, 1.0
X = np.array([[1.0, 1.0]])  # a depth-1 "net" w with inputs 1: prediction w, targets ±x1
Y = np.array([[x1, -x1]])
loss = ln.SquaredLoss.from_data(X, Y)
gd_run = ln.train.gd(loss, (np.array([[0.7]]),), lr=0.1, steps=500)
sgd_run = ln.train.sgd(loss, (np.array([[0.7]]),), lr=0.1, steps=500, batch_size=1, seed=0, record_every=1)
w_gd = float(gd_run.weights[0][0, 0])
w_sgd_final = float(sgd_run.weights[0][0, 0])
sgd_spread = float(np.std(np.asarray(sgd_run.loss)[100:]))
print(
    "GD ends at w = %.2e; SGD ends at w = %.3f, its loss keeps fluctuating (std %.3f)" % (w_gd, w_sgd_final, sgd_spread)
)

ws = np.linspace(-2, 2, 201)
fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
ax[0].plot(ws, a * (ws - x1) ** 2 + a * (ws + x1) ** 2, label="GD: sum of both")
ax[0].plot(ws, 2 * a * (ws - x1) ** 2, "--", label="SGD: sample 1")
ax[0].plot(ws, 2 * a * (ws + x1) ** 2, "--", label="SGD: sample 2")
ax[0].set(xlabel="w", ylabel="loss", title="the landscapes GD and SGD see")
ax[0].legend(fontsize=7)

# %% [markdown]
# ## The sharpness of minima, and the 2/η limit
# All global minima of $\tfrac12(\varphi - w_3w_2w_1)^2$ have loss 0; their sharpness differs. GD from near the
# balanced minimum converges when $\eta$ is just below $2/S_{\min}$ and not when it is just above.

# %%
phi, N = 2.0, 3
S_min = ln.theory.sharpness_balanced(np.array([[phi]]), N)
w_bal = tuple(np.array([[phi ** (1 / N)]]) for _ in range(N))
H = ln.hessian(ln.SquaredLoss.whitened(np.array([[phi]])), w_bal)
print(
    "sharpness of the balanced minimum: Hessian %.6f, formula N φ^(2−2/N) = %.6f"
    % (np.linalg.eigvalsh(H)[-1], float(S_min))
)
rng = np.random.default_rng(0)
pert = 1 + 0.03 * rng.standard_normal((40, N))
starts = tuple(np.asarray(phi ** (1 / N) * pert[:, j])[:, None, None] for j in range(N))
outcome = {}
for f in (0.9, 0.99, 1.01, 1.1):
    run = ln.train.gd(
        ln.SquaredLoss.whitened(np.array([[phi]])), starts, lr=f * 2 / float(S_min), steps=20_000, ftol=1e-20
    )
    outcome[f] = float(np.mean(np.asarray(run.loss[-1]) < 1e-20))
print("fraction converged by η/(2/S_min):", outcome)
ax[1].bar([str(k) for k in outcome], list(outcome.values()))
ax[1].set(xlabel="η · S_min / 2", ylabel="fraction converged", title="the 2/η stability limit")

# %% [markdown]
# ## Exercises
# 1. Use minibatches of 2 (the whole data set): does SGD now stop where GD stops?
# 2. Start GD far from balanced with η just below 2/S_min. Does it still converge? Why is that not a contradiction?

# %% [markdown]
# ## What this demo taught (checked)

# %%
assert abs(w_gd) < 1e-10, "GD converges to the single minimum of the full loss at 0"
assert sgd_spread > 1e-3, "single-sample SGD keeps moving: no point zeroes both per-sample gradients"
assert np.isclose(np.linalg.eigvalsh(H)[-1], float(S_min), rtol=1e-10), "balanced sharpness N φ^(2−2/N)"
assert outcome[0.9] == 1.0 and outcome[0.99] == 1.0, "below 2/S_min GD converges"
assert outcome[1.01] == 0.0 and outcome[1.1] == 0.0, "above 2/S_min no minimum is stable"
print("demo 8: all claims hold")
