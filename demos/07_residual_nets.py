# %% [markdown]
# # 7. Residual nets and identity initialisation (Hardt–Ma; Bartlett–Helmbold–Long)
#
# **Claims.**
# * Hardt & Ma 2016 (arXiv:1611.04231, Theorem 2.1): a deep *residual* linear net $(I + A_\ell)\cdots(I + A_1)$ can
#   represent any $R$ with $\det R > 0$ using small layers, $\max_i\|A_i\| \le 2(\sqrt\pi + \sqrt{3\gamma})^2/\ell$:
#   depth makes every layer close to the identity. Inside the ball $\max_i\|A_i\| < 1$ every critical point is
#   global (Theorem 2.2). The gradient-domination inequality printed as eq. (2.3) is wrong as printed; linnet
#   implements the corrected one (THEOREMS.md §8).
# * Bartlett, Helmbold & Long 2018 (arXiv:1802.06093): identity initialisation works for symmetric positive
#   definite targets but fails for a symmetric target with a negative eigenvalue. linnet checks the derived
#   scalar-mode mechanism (their constants are unconfirmed): with even depth the loss stays $\ge \lambda^2/2$.

# %%
import matplotlib.pyplot as plt
import numpy as np

import linnet as ln

rng = np.random.default_rng(5)
d = 3
R = np.eye(d) + 0.6 * rng.standard_normal((d, d))
if np.linalg.det(R) < 0:
    R[:, 0] *= -1

# %% [markdown]
# ## Small layers by depth
# Build the factorisation for several depths and compare its largest layer norm with the bound.

# %%
depths = [10, 20, 50, 100]
norms, bounds = [], []
for l in depths:
    As = ln.theory.hardt_ma_factorization(R, l)
    prod = ln.end_to_end(As, residual=True)
    assert np.allclose(prod, R, atol=1e-10)
    norms.append(max(np.linalg.norm(A, 2) for A in As))
    bounds.append(float(ln.theory.hardt_ma_norm_bound(R, l)))
print("max ||A_i||:", np.round(norms, 4))
print("bound      :", np.round(bounds, 4))
fig, ax = plt.subplots(figsize=(4.5, 3.3))
ax.loglog(depths, norms, "o-", label="constructed $\\max_i\\|A_i\\|$")
ax.loglog(depths, bounds, "k--", label="Theorem 2.1 bound")
ax.set(xlabel="depth $\\ell$", ylabel="largest layer norm", title="residual layers shrink like 1/ℓ")
ax.legend(fontsize=8)

# %% [markdown]
# ## Identity initialisation: positive definite versus a negative eigenvalue


# %%
def run_identity(eigs, depth, lr, steps=3000):
    Qm, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Phi = Qm @ np.diag(eigs) @ Qm.T
    Phi = 0.5 * (Phi + Phi.T)  # exactly symmetric: round-off asymmetry is a (slow) escape route at depth 2
    Ws = ln.init.identity((d,) * (depth + 1))
    return ln.train.gd(ln.SquaredLoss.whitened(Phi), Ws, lr=lr, steps=steps)


spd = run_identity([0.5, 1.0, 2.0], depth=4, lr=0.05)
neg = run_identity([-1.0, 1.0, 2.0], depth=4, lr=0.05)
print("SPD target: final loss %.2e;  negative eigenvalue: final loss %.6f" % (float(spd.loss[-1]), float(neg.loss[-1])))

# %% [markdown]
# ## Exercises
# 1. Flip the sign of one column of R so that det R < 0 and call `hardt_ma_factorization`. Why must it refuse?
# 2. Use odd depth 3 with step η = 1 and target −I: what happens, and why does that not contradict the theorem?

# %% [markdown]
# ## What this demo taught (checked)

# %%
assert all(n <= b for n, b in zip(norms, bounds)), "the constructed factorisation respects the Hardt–Ma bound"
assert norms[-1] < norms[0] / 5, "layers shrink as depth grows (≈ 1/ℓ)"
assert float(spd.loss[-1]) < 1e-10, "identity init converges on a symmetric positive definite target"
assert np.all(np.asarray(neg.loss) >= 0.5 * (1 - 1e-10)), "with a negative eigenvalue λ = −1, the loss stays ≥ λ²/2"
print("demo 7: all claims hold")
