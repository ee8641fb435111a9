# %% [markdown]
# # 11. Spherical p-spin glass: critical points layered by index and energy — and a deep linear net
#
# **Claim.** For the spherical 3-spin glass $H(\sigma) = N^{-1}\sum_{ijk}J_{ijk}\sigma_i\sigma_j\sigma_k$ on the sphere
# $\|\sigma\|^2 = N$ ($J$ i.i.d. standard normal over ordered triples, so $\operatorname{Var}H = N$), critical points are
# *layered*: the lower the energy $u = H/N$, the lower the index $k$ (Auffinger, Ben Arous & Černý 2013,
# arXiv 1003.1129; THEOREMS.md §14: model and qualitative layering CONFIRMED). Quantitatively, the Riemannian Hessian at
# a critical point of energy $u$ is close to a GOE semicircle of radius $2\sqrt{p(p-1)}$ centred at $-pu$, so
# $k/(N-1) \approx F_{sc}(u\sqrt{p/(p-1)})$ (DERIVED+VERIFIED in §14); index 0 appears only below
# $-E_\infty = -2\sqrt{(p-1)/p}$. Choromanska et al. 2015 (arXiv 1412.0233) map network losses to this model. A deep
# linear net's landscape is different in kind: its critical points (Baldi & Hornik 1989, §6) are finitely many
# families, every local minimum is global, and the minimum is the only index-0 point.

# %%

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

import linnet as ln

N, p = 30, 3
rng = np.random.default_rng(0)
J = rng.standard_normal((N, N, N))
Js = sum(np.transpose(J, perm) for perm in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])
E_inf = 2 * np.sqrt((p - 1) / p)


def energy(s):
    return np.einsum("ijk,i,j,k->", J, s, s, s) / N


def egrad(s):
    return np.einsum("ijk,j,k->i", Js, s, s) / (2 * N)


def ehess(s):
    return np.einsum("ijk,k->ij", Js, s) / N


def tangent_basis(s):
    """Orthonormal basis (N, N-1) of the tangent space at s."""
    q = np.linalg.qr(np.column_stack([s, np.eye(N)[:, : N - 1]]))[0]
    return q[:, 1:]


def rgrad(s):
    g = egrad(s)
    return g - (g @ s / N) * s


def rhess(s, curvature=True):
    """Riemannian Hessian in the tangent basis: B^T (hess - (g.s/N) I) B (without the curvature term: B^T hess B)."""
    B = tangent_basis(s)
    H = ehess(s) - (egrad(s) @ s / N) * np.eye(N) * curvature
    return B.T @ H @ B


# %% [markdown]
# ## Check the calculus against central differences

# %%
s0 = rng.standard_normal(N)
s0 *= np.sqrt(N) / np.linalg.norm(s0)
h = 1e-5
fd_g = np.array([(energy(s0 + h * e) - energy(s0 - h * e)) / (2 * h) for e in np.eye(N)])
fd_h = np.array([(egrad(s0 + h * e) - egrad(s0 - h * e)) / (2 * h) for e in np.eye(N)])
calc_err = max(np.abs(fd_g - egrad(s0)).max(), np.abs(fd_h - ehess(s0)).max())
print("gradient / Hessian vs finite differences:", calc_err)

# %% [markdown]
# ## Find critical points: tangent-space Newton from random starts and from partly descended starts

# %%


def newton(s, iters=60):
    for _ in range(iters):
        B = tangent_basis(s)
        g = B.T @ rgrad(s)
        if np.linalg.norm(g) < 1e-12:
            break
        step = np.linalg.lstsq(rhess(s), -g, rcond=None)[0]
        nrm = np.linalg.norm(step)
        step = step / max(1.0, nrm)  # cap the step at 1
        s = s + B @ step
        s *= np.sqrt(N) / np.linalg.norm(s)
    return s


def descend(s, steps):
    for _ in range(steps):
        s = s - 0.05 * rgrad(s)
        s *= np.sqrt(N) / np.linalg.norm(s)
    return s


points = []
for trial in range(160):
    s = rng.standard_normal(N)
    s *= np.sqrt(N) / np.linalg.norm(s)
    if trial % 2:
        s = descend(s, int(rng.integers(5, 200)))
    s = newton(s)
    if np.linalg.norm(rgrad(s)) > 1e-10:
        continue
    if any(np.linalg.norm(s - q) < 1e-6 for q in points):
        continue
    points.append(s)
u = np.array([energy(s) / N for s in points])
k = np.array([int(np.sum(np.linalg.eigvalsh(rhess(s)) < 0)) for s in points])
k_flat = np.array([int(np.sum(np.linalg.eigvalsh(rhess(s, curvature=False)) < 0)) for s in points])


def F_sc(x):
    x = np.clip(x, -2, 2)
    return 0.5 + x * np.sqrt(4 - x**2) / (4 * np.pi) + np.arcsin(x / 2) / np.pi


pred = F_sc(u * np.sqrt(p / (p - 1)))
rms = float(np.sqrt(np.mean((k / (N - 1) - pred) ** 2)))
rms_flat = float(np.sqrt(np.mean((k_flat / (N - 1) - pred) ** 2)))
rho = spearmanr(u, k).correlation
rho_shuffled = spearmanr(rng.permutation(u), k).correlation
print(f"{len(points)} distinct critical points; Spearman(u, k) = {rho:.3f} (shuffled: {rho_shuffled:.3f})")
print(f"semicircle residual rms {rms:.4f}; without the curvature term {rms_flat:.4f}")
print(
    "energies of the minima found (N = 30: finite-size spread above -E_inf):",
    np.round(np.sort(u[k == 0]), 3),
    " -E_inf =",
    round(-E_inf, 3),
)

# %% [markdown]
# ## A deep linear net: all critical points in closed form (Baldi–Hornik), indices from linnet

# %%
q, hidden = 8, 4
Xd = rng.standard_normal((q, 200))
Yd = rng.standard_normal((q, q)) @ Xd + 0.5 * rng.standard_normal((q, 200))
dl_loss = ln.SquaredLoss.from_data(Xd, Yd)
cps = ln.theory.baldi_hornik_points(dl_loss, hidden)
P = 2 * q * hidden
dl_val = np.array([float(c.value) for c in cps])
dl_idx = np.array([c.index for c in cps])
# spot-check the index formula with the engine's dense Hessian
for c in cps[:: max(1, len(cps) // 6)]:
    ev = np.linalg.eigvalsh(ln.hessian(dl_loss, c.Ws))
    assert int(np.sum(ev < -1e-8 * np.abs(ev).max())) == c.index
print(f"deep linear net: {len(cps)} critical families; index-0 values:", np.round(dl_val[dl_idx == 0], 4))

fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.5, 3.8))
uu = np.linspace(-1.8, 0, 200)
ax.plot(u, k / (N - 1), "o", ms=4, label="critical points found")
ax.plot(uu, F_sc(uu * np.sqrt(p / (p - 1))), "k-", lw=1, label="semicircle prediction")
ax.axvline(-E_inf, color="C3", ls="--", lw=1, label="$-E_\\infty$")
ax.set(xlabel="energy u = H/N", ylabel="index fraction k/(N-1)", title=f"spherical {p}-spin, N={N}")
ax.legend(fontsize=7)
bx.plot(dl_val, dl_idx / P, "s", ms=4, color="C1")
bx.set(xlabel="loss at the critical point", ylabel="index / #parameters", title="deep linear net (Baldi-Hornik)")
fig.suptitle("Layered critical points: p-spin glass (many minima in a band) vs deep linear net (one global min)")

# %% [markdown]
# ## Exercises
# 1. Raise $N$ to 60: do the minima move closer to $-E_\infty$ and to the ground state $-E_0 \approx -1.657$?
# 2. In the deep linear net, which critical family has the largest index? Relate it to the Baldi–Hornik formula.

# %% [markdown]
# ## What this demo taught (checked)

# %%
assert calc_err < 1e-6, "the Hamiltonian's gradient and Hessian agree with finite differences"
assert len(points) >= 30, "enough critical points to see the structure"
assert rho >= 0.8, "index rises with energy (layering)"
assert abs(rho_shuffled) < 0.5, "control: shuffled energies lose the correlation"
assert rms <= 0.05 < rms_flat, "semicircle law for the index; the curvature term is needed"
# at N = 30 finite-size effects spread the minima above -E_inf (-1.633): assert the band loosely (THEOREMS §14 says
# "assert loosely"); the lowest point found is a minimum and every minimum lies in the bottom half of the energies
assert k[np.argmin(u)] == 0 and np.all(u[k == 0] < np.median(u)), "minima sit at the bottom of the landscape"
assert np.all(u[k == 0] <= -E_inf + 0.4), "minima lie in a band near -E_inf (finite N = 30)"
assert np.sum(k == 0) >= 2, "the glass has many local minima"
assert np.sum(dl_idx == 0) == 1 and dl_val[dl_idx == 0][0] == dl_val.min(), "deep linear: the only minimum is global"
print("demo 11: all claims hold")
