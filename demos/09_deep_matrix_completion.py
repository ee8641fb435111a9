# %% [markdown]
# # 9. Implicit regularization in deep matrix factorization: deep matrix completion
#
# **Claim** (Arora, Cohen, Hu & Luo 2019, "Implicit Regularization in Deep Matrix Factorization",
# arXiv 1905.13655, Table 1 and Fig. 2; THEOREMS2.md §15). Complete a low-rank matrix $M$ from a few observed
# entries $\Omega$ by gradient descent on $\tfrac12\|P_\Omega(W_N\cdots W_1 - M)\|_F^2$ from a near-zero
# (balanced) initialization. Nothing in the loss asks for low rank — every matrix that agrees with $M$ on
# $\Omega$ is a global minimum — yet GD finds a nearly low-rank one, and **more so as depth grows**: depth 3
# recovers a rank-5 matrix from fewer observations than depth 2. The mechanism is the singular-value dynamics
# $\dot\sigma_r = -N\sigma_r^{2-2/N}\langle\nabla\ell(W), u_rv_r^\top\rangle$: small singular values are slowed, the more
# so the deeper the net, so the modes are learned one at a time and the weak ones never start.
#
# Sizes are chosen to run in well under a minute on two cores: $30\times30$, rank 5
# ($r(2n-r) = 275$ degrees of freedom), 3 seeds per setting.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

effective_rank, unobserved_error = ln.theory.effective_rank, ln.theory.unobserved_error
low_rank_matrix, random_mask = ln.theory.low_rank_matrix, ln.theory.random_mask

n, r, seeds = 30, 5, 3
sv = np.sqrt(n) / 2 * np.linspace(3.0, 1.0, r)  # singular values of M
ms = (300, 400, 500, 650)  # observed entries
rng = np.random.default_rng(0)
Ms = np.stack([low_rank_matrix((n, n), r, singular_values=sv, seed=rng) for _ in range(len(ms) * seeds)])
masks = np.stack([random_mask((n, n), m, seed=rng) for m in ms for _ in range(seeds)])
# one loss for the whole grid: a batch of 12 completion problems (matrix, mask), no dense measurement matrices
loss = ln.MatrixCompletionLoss(Ms, masks, reduction="sum")
print("batch of problems:", Ms.shape, " observed per problem:", masks.sum(axis=(-2, -1)))

# %% [markdown]
# ## Train depths 1–4 from a balanced near-zero init
#
# Layers $\epsilon^{1/N}Q_j$ with random orthogonal $Q_j$ (exactly balanced, $\|W_{1:N}(0)\|_2 = \epsilon = 10^{-3}$), step
# $\eta = 0.3/(N\|M\|_2^{2-2/N})$, until the loss falls to $10^{-5}$ of its start (THEOREMS2 §15 protocol, looser stop).


# %%
def train(N, steps=15_000):
    Ws = []
    for _ in range(N):
        Q, R = np.linalg.qr(rng.standard_normal((len(ms) * seeds, n, n)))
        Ws.append(1e-3 ** (1 / N) * Q * np.sign(np.diagonal(R, axis1=-2, axis2=-1))[..., None, :])
    L0 = float(np.min(ln.loss(loss, Ws)))
    run = ln.train.gd(loss, Ws, lr=0.3 / (N * sv[0] ** (2 - 2 / N)), steps=steps, ftol=1e-5 * L0, record_every=steps)
    return ln.end_to_end(run.weights)


depths = (1, 2, 3, 4)
erank, error, final = {}, {}, {}
for N in depths:
    W = train(N)
    final[N] = W
    erank[N] = np.median(effective_rank(W).reshape(len(ms), seeds), axis=-1)
    error[N] = np.median(unobserved_error(W, Ms, masks).reshape(len(ms), seeds), axis=-1)
    print(f"depth {N}: median effective rank {erank[N].round(2)}, median test error {error[N].round(3)}")

# %% [markdown]
# ## Effective rank and test error against depth (as ACHL Fig. 2)
#
# The effective rank is Roy & Vetterli's $\exp(-\sum_ip_i\log p_i)$, $p = \sigma/\|\sigma\|_1$; the test error is
# $\|P_{\Omega^c}(W - M)\|_F/\|P_{\Omega^c}M\|_F$.

# %%
fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(11, 3.2))
for N in depths:
    a1.plot(ms, erank[N], "o-", label=f"depth {N}")
    a2.plot(ms, error[N], "o-", label=f"depth {N}")
    a3.semilogy(np.linalg.svd(final[N][list(ms).index(400) * seeds], compute_uv=False), ".-", label=f"depth {N}")
a1.axhline(r, color="k", linestyle=":")
a1.set(xlabel="observed entries m", ylabel="effective rank (median)", yscale="log")
a2.set(xlabel="observed entries m", ylabel="relative test error (median)", yscale="log")
a3.set(xlabel="index", ylabel="singular values, m = 400", title="spectrum of the solution")
a1.legend()
fig.tight_layout()

# recovery: median test error below 5 %
recovered = {N: [m for m, e in zip(ms, error[N]) if e < 0.05] for N in depths}
fewest = {N: (min(v) if v else None) for N, v in recovered.items()}
print("fewest observations with median test error < 5%:", fewest)

# %% [markdown]
# ## Exercises
# 1. Raise the init scale $\epsilon$ to 1: does the depth gap shrink, as THEOREMS2 §15 control (c) predicts?
# 2. Compare with the minimum-nuclear-norm completion, `ln.theory.min_nuclear_norm(ln.MatrixCompletionLoss(M, mask), None)`
#    (ACHL's Table 1: nuclear norm is beaten by depth 2 and depth 3 with few observations).
# 3. Replace completion by Gaussian sensing (`ln.theory.gaussian_measurements`, `ln.LinearMeasurementLoss`) and train with
#    `ln.train.sgd` over the measurements.

# %% [markdown]
# ## What this demo taught (checked)

# %%
assert np.all(error[1] > 0.95), "depth 1 (plain GD on W) never fills in the unobserved entries"
assert fewest[3] is not None and fewest[3] <= 400, "depth 3 recovers the rank-5 matrix from 400 entries"
assert fewest[2] is None or fewest[2] > fewest[3], "depth 2 needs more observations than depth 3"
k400 = list(ms).index(400)
assert error[3][k400] < 0.25 * error[2][k400], "at m = 400 depth 3 is far more accurate than depth 2"
assert np.all(erank[3] <= erank[2]) and np.all(erank[2] < erank[1]), "effective rank falls with depth"
assert erank[4][k400] < 1.1 * r, "depth 4 finds (nearly) rank 5"
print("demo 9: all claims hold")
