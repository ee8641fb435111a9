"""Tests of linnet.theory: each closed form against an independent reference (NumPy/SciPy, ODE solvers,
brute force, dense Hessians), plus the negative controls of THEOREMS.md."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

import linnet as ln
from linnet import strategies as lst
from linnet import theory
from linnet._backend import from_host, to_numpy
from linnet.testing import assert_close, tolerances

#: A host NumPy float64 reference: its dtype and namespace are not those of the result on purpose.
HOST_REFERENCE = dict(check_dtype=False, check_namespace=False)

TIGHT = 1e-12  # float64 identities that hold to round-off (THEOREMS.md asserts 1e-12 for these)
ODE_RTOL = 1e-9  # DOP853 at rtol 1e-13 reproduces smooth scalar flows to ~1e-11; 1e-9 leaves margin
MC_SIGMAS = 5.0  # Monte Carlo acceptance band, in standard errors


def _data(n=5, q=4, m=40, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m))
    Y = rng.standard_normal((q, n)) @ X + noise * rng.standard_normal((q, m))
    return X, Y


def _loss(xp, dtype="float64", **kw):
    X, Y = _data(**kw)
    return ln.SquaredLoss.from_data(from_host(X, xp, dtype), from_host(Y, xp, dtype))


def _gd(loss, Ws, lr, steps):
    for _ in range(steps):
        Gs = ln.grad(loss, Ws)
        Ws = tuple(W - lr * G for W, G in zip(Ws, Gs))
    return Ws


# ---------------------------------------------------------------------------------------------------------------
# §2 balancedness
# ---------------------------------------------------------------------------------------------------------------
def test_balancedness_matches_definition_and_balanced_init(xp):
    """delta is max_j ||W_{j+1}^T W_{j+1} - W_j W_j^T||_F, and the ACGH init has delta = 0."""
    Ws = ln.init.gaussian((3, 4, 5, 2), scale=0.7, batch=(2,), seed=1, xp=xp)
    Wh = [to_numpy(W) for W in Ws]
    ref = np.max(
        [
            np.linalg.norm(Wh[j + 1].swapaxes(-1, -2) @ Wh[j + 1] - Wh[j] @ Wh[j].swapaxes(-1, -2), axis=(-2, -1))
            for j in range(2)
        ],
        axis=0,
    )
    assert_close(theory.balancedness(Ws), ref, rtol=TIGHT, **HOST_REFERENCE)
    A = from_host(np.random.default_rng(2).standard_normal((2, 3)), xp)
    Wb = ln.init.balanced(A, (3, 4, 5, 2))
    assert float(theory.balancedness(Wb)) <= 100 * np.finfo(float).eps * float(np.linalg.norm(to_numpy(A))) ** 2
    assert float(theory.balancedness((A,))) == 0.0


def test_gd_drift_is_exact_one_step_change(xp):
    """D_j after one GD step equals D_j + lr^2 (G_{j+1}^T G_{j+1} - G_j G_j^T); G after the step fails."""
    loss = _loss(xp, n=3, q=2, m=20)
    Ws = ln.init.gaussian((3, 4, 3, 2), scale=0.7, seed=3, xp=xp)
    lr = 0.05
    Gs = ln.grad(loss, Ws)
    Wn = tuple(W - lr * G for W, G in zip(Ws, Gs))
    pred = theory.gd_drift(Ws, Gs, lr)
    for D0, D1, P in zip(theory.balancedness_gaps(Ws), theory.balancedness_gaps(Wn), pred):
        scale = float(np.abs(to_numpy(D0)).max() + np.abs(to_numpy(P)).max() + 1)
        assert np.abs(to_numpy(D1 - D0 - P)).max() <= TIGHT * scale
    # negative control (THEOREMS §2 (c)): gradients evaluated after the step do not predict the drift
    bad = theory.gd_drift(Ws, ln.grad(loss, Wn), lr)
    errs = [
        np.abs(to_numpy(D1 - D0 - P)).max()
        for D0, D1, P in zip(theory.balancedness_gaps(Ws), theory.balancedness_gaps(Wn), bad)
    ]
    assert max(errs) > 1e-6


# ---------------------------------------------------------------------------------------------------------------
# §3 ACGH
# ---------------------------------------------------------------------------------------------------------------
def test_deficiency_margin_and_weyl(xp):
    """c(W) = sigma_min(Phi) - ||W - Phi||_F, and c(W) > 0 implies sigma_min(W) >= c(W)."""
    rng = np.random.default_rng(4)
    Phi = np.diag([2.0, 1.5, 1.0]) @ np.linalg.qr(rng.standard_normal((3, 3)))[0]
    W = Phi + 0.1 * rng.standard_normal((64, 3, 3))
    c = to_numpy(theory.deficiency_margin(from_host(W, xp), from_host(Phi, xp)))
    ref = np.linalg.svd(Phi, compute_uv=False).min() - np.linalg.norm(W - Phi, axis=(-2, -1))
    np.testing.assert_allclose(c, ref, rtol=TIGHT)
    smin = np.linalg.svd(W, compute_uv=False).min(axis=-1)
    assert np.all(smin[c > 0] >= c[c > 0] - TIGHT)
    assert np.sum(c > 0) >= 10  # the Weyl check above is not vacuous


def test_acgh_constants_values_and_rate_bound():
    """The Theorem 1 constants on a hand-computed case, and l(t) <= l(0) rate^t along GD at 1e4 * eta_thm."""
    k = theory.acgh_constants(np.array([[2.0]]), 0.5, 2)
    assert float(k.delta_max) == pytest.approx(0.25 / (256 * 8 * 2.0), rel=TIGHT)
    assert float(k.eta_max) == pytest.approx(0.5**3 / (6144 * 8 * 2.0**4), rel=TIGHT)
    assert float(k.rate) == pytest.approx(1 - float(k.eta_max) * 0.5, rel=TIGHT)
    assert float(theory.acgh_steps(1.0, math.exp(-3), 0.5, 1.0, 1)) == pytest.approx(6.0, rel=TIGHT)
    # a run at a step 1e4 times the theorem's, from a balanced init with margin c (THEOREMS §3 check (ii))
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    Phi = U @ np.diag([1.6, 1.0])
    c = 0.3
    Delta = rng.standard_normal((2, 2))
    A = Phi + (1.0 - c) * Delta / np.linalg.norm(Delta)
    N = 3
    Ws = ln.init.balanced(A, (2, 2, 2, 2))
    assert float(theory.deficiency_margin(ln.end_to_end(Ws), Phi)) >= c - TIGHT
    loss = ln.SquaredLoss.whitened(Phi)
    kk = theory.acgh_constants(Phi, c, N)
    assert float(theory.balancedness(Ws)) <= float(kk.delta_max)
    eta = 1e4 * float(kk.eta_max)
    rate = float(theory.acgh_constants(Phi, c, N, eta=eta).rate)
    l0 = float(ln.loss(loss, Ws))
    for t in range(1, 301):
        Ws = _gd(loss, Ws, eta, 1)
        assert float(ln.loss(loss, Ws)) <= l0 * rate**t * (1 + 1e-10)


def test_margin_probability_against_monte_carlo():
    """The noncentral chi^2 formula matches sampled frequencies of ||w - phi|| < ||phi||, and tends to 1/2."""
    rng = np.random.default_rng(6)
    d0, n = 10, 20000
    phi = np.zeros(d0)
    phi[0] = 1.0
    for s in (0.1, 0.3):
        w = s * rng.standard_normal((n, d0))
        freq = np.mean(np.linalg.norm(w - phi, axis=1) < 1.0)
        p = theory.margin_probability(1.0, s, d0)
        assert abs(freq - p) <= MC_SIGMAS * math.sqrt(p * (1 - p) / n)
    assert abs(theory.margin_probability(1.0, 1e-4, d0) - 0.5) < 1e-2
    arr = theory.margin_probability(np.array([1.0, 2.0]), np.array([0.3, 0.6]), d0)
    assert arr.shape == (2,) and arr[0] == pytest.approx(arr[1], rel=TIGHT)


def test_preconditioner_min_eig_matches_spectrum(xp):
    """lambda_min(P_W) closed form equals the smallest eigenvalue of the dense preconditioner."""
    from linnet.linalg import preconditioner

    rng = np.random.default_rng(7)
    for shape in ((3, 3), (2, 4), (4, 2)):
        W = from_host(rng.standard_normal((2,) + shape), xp)
        for N in (1, 2, 3, 4):
            dense = to_numpy(xp.linalg.eigvalsh(preconditioner(W, N)))[..., 0]
            assert_close(theory.preconditioner_min_eig(W, N), dense, rtol=1e-10, **HOST_REFERENCE)


# ---------------------------------------------------------------------------------------------------------------
# §5 RRR and the global minimum
# ---------------------------------------------------------------------------------------------------------------
def _host_truncation_form(X, Y, r):
    """[Phi Lxx^{1/2}]_r Lxx^{-1/2} and the eigenvalue form of the value, computed independently on the host."""
    m = X.shape[1]
    Lxx, Lyx, Lyy = X @ X.T / m, Y @ X.T / m, Y @ Y.T / m
    w, Q = np.linalg.eigh(Lxx)
    half, mhalf = Q @ np.diag(np.sqrt(w)) @ Q.T, Q @ np.diag(1 / np.sqrt(w)) @ Q.T
    Phi = Lyx @ np.linalg.inv(Lxx)
    U, s, Vt = np.linalg.svd(Phi @ half)
    Wstar = (U[:, :r] * s[:r]) @ Vt[:r] @ mhalf
    lam = np.sort(np.linalg.eigvalsh(Lyx @ np.linalg.inv(Lxx) @ Lyx.T))[::-1]
    value = 0.5 * (np.trace(Lyy) - lam[:r].sum())
    return Wstar, value


def test_rrr_matches_truncation_and_eigenvalue_forms(xp):
    """Projection form U_r U_r^T Phi equals [Phi Lxx^{1/2}]_r Lxx^{-1/2}; the value equals (tr Lyy - sum_{i<=r} lam_i)/2."""
    X, Y = _data(n=5, q=4, seed=8)
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    for r in (1, 2, 3):
        res = theory.rrr(loss, r)
        Wref, vref = _host_truncation_form(X, Y, r)
        assert_close(res.We, Wref, rtol=1e-10, atol=1e-12, **HOST_REFERENCE)
        assert_close(res.value, np.asarray(vref), rtol=1e-10, **HOST_REFERENCE)
        assert_close(ln.SquaredLoss.from_data(X, Y).value(to_numpy(res.We)), np.asarray(vref), rtol=1e-10)
        assert np.linalg.matrix_rank(to_numpy(res.We)) == r
    full = theory.rrr(loss, 4)
    assert_close(full.value, to_numpy(loss.c0), rtol=1e-10, atol=1e-14, **HOST_REFERENCE)


def test_rrr_beats_rank_r_competitors():
    """No rank-r matrix does better: random rank-r perturbations and local optima of the factorised problem."""
    X, Y = _data(n=5, q=4, seed=9)
    loss = ln.SquaredLoss.from_data(X, Y)
    r = 2
    best = float(theory.rrr_value(loss, r))
    We = theory.rrr(loss, r).We
    rng = np.random.default_rng(10)
    for _ in range(200):
        U, s, Vt = np.linalg.svd(We + 0.3 * rng.standard_normal(We.shape))
        cand = (U[:, :r] * s[:r]) @ Vt[:r]
        assert float(loss.value(cand)) >= best * (1 - TIGHT)

    def f(theta):
        A, B = theta[:8].reshape(4, 2), theta[8:].reshape(2, 5)
        Ws = (B, A)
        L, (gB, gA) = ln.value_and_grad(loss, Ws)
        return float(L), np.concatenate([gA.ravel(), gB.ravel()])

    found = []
    for _ in range(5):
        res = minimize(f, rng.standard_normal(18), jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000})
        assert res.fun >= best * (1 - TIGHT)
        found.append(res.fun)
    assert min(found) == pytest.approx(best, rel=1e-8)


def test_rrr_singular_lxx_and_batched_problems():
    """With fewer samples than inputs (singular Lxx) the closed form is still attained and unbeaten; batched
    problems equal member-by-member results."""
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
    loss = ln.SquaredLoss.from_data(X, Y)
    res = theory.rrr(loss, 1)
    assert float(loss.value(res.We)) == pytest.approx(float(res.value), rel=1e-10)
    for _ in range(100):
        u, v = rng.standard_normal((3, 1)), rng.standard_normal((1, 6))
        U, s, Vt = np.linalg.svd(res.We + 0.2 * u @ v)
        assert float(loss.value(s[0] * np.outer(U[:, 0], Vt[0]))) >= float(res.value) * (1 - TIGHT)
    Xb, Yb = rng.standard_normal((3, 4, 20)), rng.standard_normal((3, 3, 20))
    lb = ln.SquaredLoss.from_data(Xb, Yb)
    gb = theory.global_min(lb, (4, 2, 3))
    for i in range(3):
        gi = theory.global_min(ln.SquaredLoss.from_data(Xb[i], Yb[i]), (4, 2, 3))
        assert_close(gb.value[i], gi.value, rtol=TIGHT)
        assert_close(gb.We[i], gi.We, rtol=1e-10, atol=1e-13)


def test_global_min_equals_gd_limit_on_bottleneck_net():
    """GD on a net with a width-2 bottleneck converges to the reduced-rank value and matrix."""
    X, Y = _data(n=4, q=3, m=30, seed=12)
    loss = ln.SquaredLoss.from_data(X, Y)
    g = theory.global_min(loss, (4, 2, 3))
    assert g.rank == 2
    Ws = _gd(loss, ln.init.gaussian((4, 2, 3), scale=0.3, seed=13), 0.05, 4000)
    assert float(ln.loss(loss, Ws)) == pytest.approx(float(g.value), rel=1e-9)
    np.testing.assert_allclose(ln.end_to_end(Ws), g.We, atol=1e-6)
    nb = theory.global_min(loss, (4, 5, 3))
    assert_close(nb.value, np.asarray(loss.c0), rtol=TIGHT)
    assert_close(nb.We, loss.Phi, rtol=TIGHT)


def test_global_min_other_losses():
    """A loss with a known min_value and no bottleneck gives that value; otherwise ValueError."""
    cl = ln.CallableLoss(
        lambda W: np.sum((W - 1) ** 2, axis=(-2, -1)),
        lambda W: 2 * (W - 1),
        lambda W, D: 2 * D,
        shape=(2, 2),
        min_value=0.0,
    )
    g = theory.global_min(cl, (2, 3, 2))
    assert g.value == 0.0 and g.We is None
    with pytest.raises(ValueError, match="closed-form"):
        theory.global_min(cl, (2, 1, 2))
    X, Y = _data(n=2, q=2, m=10)
    with pytest.raises(ValueError, match="closed-form"):
        theory.global_min(ln.LpLoss(X, Y, p=4), (2, 3, 2))


# ---------------------------------------------------------------------------------------------------------------
# §6 Baldi–Hornik
# ---------------------------------------------------------------------------------------------------------------
def test_baldi_hornik_points_are_critical_with_formula_index(xp):
    """On (n, q, p) = (5, 4, 2): zero gradients, values L_I, Morse index by the dense Hessian = the formula,
    p^2 null directions at full rank, and one minimum (the top-p set)."""
    loss = _loss(xp, n=5, q=4, seed=14)
    p = 2
    pts = theory.baldi_hornik_points(loss, p)
    assert len(pts) == sum(math.comb(4, k) for k in range(p + 1))
    minima = []
    for pt in pts:
        Gs, L = ln.grad(loss, pt.Ws), ln.loss(loss, pt.Ws)
        gmax = max(float(np.abs(to_numpy(G)).max()) for G in Gs)
        scale = max(float(np.abs(to_numpy(W)).max()) for W in pt.Ws) ** 2 + 1
        assert gmax <= TIGHT * scale * 100
        assert_close(L, to_numpy(pt.value), rtol=TIGHT, **HOST_REFERENCE)
        ev = np.linalg.eigvalsh(to_numpy(ln.hessian(loss, pt.Ws)))
        h = np.abs(ev).max()
        assert int(np.sum(ev < -1e-9 * h)) == pt.index, pt.I
        if len(pt.I) == p:
            assert int(np.sum(np.abs(ev) <= 1e-9 * h)) == p * p
        if pt.index == 0:
            minima.append(pt)
    assert len(minima) == 1 and minima[0].I == (0, 1)
    assert_close(minima[0].value, to_numpy(theory.rrr_value(loss, p)), rtol=TIGHT, **HOST_REFERENCE)


def test_baldi_hornik_negative_control_without_lxx_inverse():
    """Eigenvectors of Lyx Lyx^T (forgetting Lxx^{-1}) do not give critical points when Lxx != I."""
    X, Y = _data(n=5, q=4, seed=15)
    X = np.diag([1.0, 2.0, 0.5, 1.5, 3.0]) @ X
    loss = ln.SquaredLoss.from_data(X, Y)
    _, U = np.linalg.eigh(loss.Syx @ loss.Syx.T)
    A = U[:, ::-1][:, :2]
    B = A.T @ loss.Phi
    assert max(np.abs(G).max() for G in ln.grad(loss, (B, A))) > 1e-3


# ---------------------------------------------------------------------------------------------------------------
# §8 Hardt–Ma
# ---------------------------------------------------------------------------------------------------------------
def _random_R(d, seed):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((d, d))
    return R if np.linalg.det(R) > 0 else R[[1, 0] + list(range(2, d))]


@pytest.mark.parametrize("depth", [10, 50])
def test_hardt_ma_factorization_product_and_norm(xp, depth):
    """(I + A_l)...(I + A_1) = R to 1e-10 and max ||A_i|| <= 2 (sqrt(pi) + sqrt(3 gamma))^2 / l."""
    for R in (_random_R(4, 16), np.diag([-1.0, -1.0, 2.0, 0.5])):  # the second has the eigenvalue -1 twice
        Rx = from_host(R, xp)
        As = theory.hardt_ma_factorization(Rx, depth)
        assert len(As) == depth
        np.testing.assert_allclose(to_numpy(ln.end_to_end(As, residual=True)), R, atol=1e-10)
        assert max(np.linalg.norm(to_numpy(A), 2) for A in As) <= float(theory.hardt_ma_norm_bound(Rx, depth))


def test_hardt_ma_factorization_rejects_negative_determinant():
    """det R < 0 cannot be reached by I + A with ||A|| < 1."""
    with pytest.raises(ValueError, match="det R > 0"):
        theory.hardt_ma_factorization(np.diag([-1.0, 1.0, 1.0]), 5)


def test_hardt_ma_risk_and_gradient_against_lemma_2_4():
    """f = ||E Sigma^{1/2}||^2 + d and Lemma 2.4's gradient, computed directly on the host."""
    rng = np.random.default_rng(17)
    d, L = 3, 4
    R = _random_R(d, 18)
    M = rng.standard_normal((d, d))
    Sigma = M @ M.T + 0.5 * np.eye(d)
    As = tuple(0.2 * rng.standard_normal((d, d)) for _ in range(L))
    I = np.eye(d)
    E = np.linalg.multi_dot([I + A for A in As[::-1]]) - R
    w, Q = np.linalg.eigh(Sigma)
    f_ref = np.linalg.norm(E @ Q @ np.diag(np.sqrt(w)) @ Q.T) ** 2 + d
    assert float(theory.hardt_ma_risk(As, R, Sigma)) == pytest.approx(f_ref, rel=TIGHT)
    grads = theory.hardt_ma_risk_grad(As, R, Sigma)
    for i in range(L):
        # S_i^T = (I + A_{i+1})^T ... (I + A_l)^T and P_{i-1}^T = (I + A_1)^T ... (I + A_{i-1})^T
        left = np.linalg.multi_dot([I] + [(I + As[k]).T for k in range(i + 1, L)] + [I])
        right = np.linalg.multi_dot([I] + [(I + As[k]).T for k in range(i)] + [I])
        np.testing.assert_allclose(grads[i], 2 * left @ E @ Sigma @ right, rtol=1e-10, atol=1e-12)
    # the order as transcribed in THEOREMS.md §8, (I + A_l^T)...(I + A_{i+1}^T) E Sigma (I + A_{i-1}^T)...(I + A_1^T),
    # is the reversed product: it differs for generic non-commuting layers
    i = 1
    left_t = np.linalg.multi_dot([I] + [(I + As[k]).T for k in range(L - 1, i, -1)] + [I])
    assert np.abs(grads[i] - 2 * left_t @ E @ Sigma @ (I + As[0]).T).max() > 1e-3


def test_hardt_ma_gradient_domination_corrected_holds_printed_fails():
    """Corrected (2.3) holds on random A in the tau-ball and is tight at A_i = -tau I with Sigma = I; the printed
    version fails there (l = 6, tau = 0.3)."""
    rng = np.random.default_rng(19)
    d, L, tau = 3, 6, 0.3
    R = _random_R(d, 20)
    for _ in range(30):
        M = rng.standard_normal((d, d))
        Sigma = M @ M.T + 0.3 * np.eye(d)
        As = []
        for _ in range(L):
            Z = rng.standard_normal((d, d))
            As.append(Z / np.linalg.norm(Z, 2) * rng.uniform(0, tau))
        gd = theory.hardt_ma_gradient_domination(tuple(As), Sigma, tau, R=R)
        assert float(gd.lhs) >= float(gd.rhs) * (1 - 1e-10)
    As = tuple(-tau * np.eye(d) for _ in range(L))
    good = theory.hardt_ma_gradient_domination(As, np.eye(d), tau, R=R)
    bad = theory.hardt_ma_gradient_domination(As, np.eye(d), tau, corrected=False, R=R)
    assert float(good.lhs) == pytest.approx(float(good.rhs), rel=1e-10)
    assert float(bad.rhs) > float(bad.lhs)
    assert float(bad.rhs) / float(bad.lhs) == pytest.approx((1 - tau) ** (-(L - 1)), rel=1e-10)  # 18.77 / 3.15
    coef_only = theory.hardt_ma_gradient_domination(As, np.eye(d), tau)
    assert coef_only.lhs is None and float(coef_only.coefficient) == pytest.approx(float(good.coefficient))


# ---------------------------------------------------------------------------------------------------------------
# §9 Bartlett–Helmbold–Long
# ---------------------------------------------------------------------------------------------------------------
def test_bhl_modes_track_full_matrix_gd():
    """Identity-initialised GD on SPD Phi at the sufficient step: each eigenvalue follows the scalar recursion,
    and the loss reaches 1e-10 within the derived iteration bound."""
    rng = np.random.default_rng(21)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    lam = np.array([0.2, 1.3, 5.0])
    Phi = Q @ np.diag(lam) @ Q.T
    L = 3
    eta = float(theory.bhl_sufficient_lr(lam, L))
    assert eta == pytest.approx(1 / (L * 5.0 ** (2 - 2 / L)), rel=TIGHT)
    loss = ln.SquaredLoss.whitened(Phi)
    Ws = ln.init.identity((3, 3, 3, 3))
    theta = np.ones(3)
    bound = math.log(float(ln.loss(loss, Ws)) / 1e-10) / (eta * L * min(1.0, lam.min()) ** (2 - 2 / L)) + 1
    for t in range(int(bound) + 1):
        if float(ln.loss(loss, Ws)) <= 1e-10:
            break
        Ws = _gd(loss, Ws, eta, 1)
        theta = theory.bhl_mode_step(theta, lam, eta, L)
        if t % 50 == 0:
            np.testing.assert_allclose(Q.T @ Ws[0] @ Q, np.diag(theta), atol=1e-10)
    assert float(ln.loss(loss, Ws)) <= 1e-10


# ---------------------------------------------------------------------------------------------------------------
# §10 Saxe
# ---------------------------------------------------------------------------------------------------------------
def _ode(rhs, u0, t_end, t_eval=None, event=None):
    kw = {}
    if event is not None:

        def ev(t, u):
            return u[0] - event

        ev.terminal = True
        kw["events"] = ev
    return solve_ivp(
        lambda t, u: [rhs(u[0])], (0, t_end), [u0], method="DOP853", rtol=1e-13, atol=1e-16, t_eval=t_eval, **kw
    )


def test_saxe_eq12_and_eq11_against_ode(xp):
    """Eq. 12 solves u' = 2u(s - u); eq. 11 is the ODE's hitting time."""
    s, u0 = 1.7, 1e-3
    ts = np.linspace(0, 6, 25)
    sol = _ode(lambda u: 2 * u * (s - u), u0, 6, t_eval=ts)
    u = theory.saxe_mode(from_host(ts, xp), s, u0)
    np.testing.assert_allclose(to_numpy(u), sol.y[0], rtol=ODE_RTOL, atol=1e-12)
    uf = 1.5
    hit = _ode(lambda u: 2 * u * (s - u), u0, 100, event=uf).t_events[0][0]
    assert float(theory.saxe_time(s, u0, uf)) == pytest.approx(hit, rel=ODE_RTOL)
    # decay from above s is covered by the same formulas
    hit2 = _ode(lambda u: 2 * u * (s - u), 3.0, 100, event=2.0).t_events[0][0]
    assert float(theory.saxe_time(s, 3.0, 2.0)) == pytest.approx(hit2, rel=ODE_RTOL)


@pytest.mark.parametrize("D", [1, 2, 3, 5])
def test_saxe_deep_time_and_mode_against_ode(xp, D):
    """Eq. 15 integrated exactly: hitting times and trajectories of u' = D u^{2-2/D} (s - u)."""
    s, u0, uf = 1.3, 1e-4, 1.2
    rhs = lambda u: D * u ** (2 - 2 / D) * (s - u)  # noqa: E731
    hit = _ode(rhs, u0, 1e7, event=uf).t_events[0][0]
    assert float(theory.saxe_deep_time(s, u0, uf, D)) == pytest.approx(hit, rel=ODE_RTOL)
    ts = np.linspace(0, hit, 9)
    sol = _ode(rhs, u0, hit, t_eval=ts)
    um = theory.saxe_deep_mode(from_host(ts, xp), s, u0, D)
    np.testing.assert_allclose(to_numpy(um), sol.y[0], rtol=ODE_RTOL, atol=1e-12)
    rhs_val = theory.saxe_deep_rhs(0.5, s, D)
    assert float(rhs_val) == pytest.approx(D * 0.5 ** (2 - 2 / D) * (s - 0.5), rel=TIGHT)


def test_saxe_deep_reduces_to_two_layer_and_limit_against_ode():
    """D = 2 gives eq. 11/12; eq. 17 is the hitting time of u' = n u^2 (s - u)."""
    s, u0, uf = 2.0, 0.01, 1.9
    assert float(theory.saxe_deep_time(s, u0, uf, 2)) == pytest.approx(float(theory.saxe_time(s, u0, uf)), rel=TIGHT)
    t = np.linspace(0, 3, 7)
    np.testing.assert_allclose(theory.saxe_deep_mode(t, s, u0, 2), theory.saxe_mode(t, s, u0), rtol=1e-11)
    n = 40
    hit = _ode(lambda u: n * u**2 * (s - u), u0, 1e6, event=uf).t_events[0][0]
    assert float(theory.saxe_time_deep_limit(s, u0, uf, n)) == pytest.approx(hit, rel=ODE_RTOL)


# ---------------------------------------------------------------------------------------------------------------
# §13 sharpness
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [2, 3, 4])
def test_sharpness_balanced_matches_hessian(xp, N):
    """lambda_max(H) = N sigma_1^{2-2/N} at balanced minima; gauge-transformed minima are sharper."""
    rng = np.random.default_rng(22 + N)
    Phi = rng.standard_normal((3, 2))
    loss = ln.SquaredLoss.whitened(from_host(Phi, xp))
    widths = (2,) + (3,) * (N - 1) + (3,)
    Ws = ln.init.balanced(from_host(Phi, xp), widths)
    top = float(to_numpy(xp.linalg.eigvalsh(ln.hessian(loss, Ws)))[-1])
    assert top == pytest.approx(float(theory.sharpness_balanced(from_host(Phi, xp), N)), rel=1e-9)
    G = np.eye(3) + 0.5 * rng.standard_normal((3, 3))
    Wg = list(Ws)
    Wg[0] = from_host(G, xp) @ Wg[0]
    Wg[1] = Wg[1] @ from_host(np.linalg.inv(G), xp)
    top_g = float(to_numpy(xp.linalg.eigvalsh(ln.hessian(loss, tuple(Wg))))[-1])
    assert top_g >= top * (1 - 1e-9)


def test_sharpness_scalar_min_matches_hessian():
    """phi^2 sum w_i^{-2} is the top Hessian eigenvalue at scalar minima, minimised (N phi^{2-2/N}) when balanced."""
    phi, N = 2.5, 3
    loss = ln.SquaredLoss.whitened(np.array([[phi]]))
    rng = np.random.default_rng(30)
    for _ in range(5):
        w = np.exp(rng.uniform(-1, 1, N))
        w[-1] = phi / np.prod(w[:-1])
        Ws = tuple(np.array([[x]]) for x in w)
        top = np.linalg.eigvalsh(ln.hessian(loss, Ws))[-1]
        assert float(theory.sharpness_scalar_min(w, phi)) == pytest.approx(top, rel=1e-10)
        assert top >= N * phi ** (2 - 2 / N) * (1 - TIGHT)
    bal = np.full(N, phi ** (1 / N))
    assert float(theory.sharpness_scalar_min(bal, phi)) == pytest.approx(10.179066, abs=1e-6)
    assert float(theory.sharpness_scalar_min(bal, phi)) == pytest.approx(
        float(theory.sharpness_balanced(np.array([[phi]]), N)), rel=TIGHT
    )


def test_float32_dtype_preserved(xp):
    """Closed forms keep float32 inputs in float32."""
    Phi = from_host(np.array([[2.0, 0.0], [0.0, 1.0]]), xp, "float32")
    assert theory.sharpness_balanced(Phi, 3).dtype == xp.float32
    assert theory.deficiency_margin(Phi * 0.9, Phi).dtype == xp.float32
    loss = ln.SquaredLoss.whitened(Phi)
    g = theory.global_min(loss, (2, 1, 2))
    rtol, _ = tolerances(xp.float32)
    assert g.We.dtype == xp.float32 and float(g.value) == pytest.approx(0.5, rel=rtol)


# ---------------------------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------------------------
BAD = [
    (lambda: theory.balancedness([np.ones((2, 3)), np.ones((2, 3))]), "mismatched widths"),
    (lambda: theory.gd_drift((np.ones((2, 2)),) * 2, (np.ones((2, 2)),) * 2, 0.0), "`lr`"),
    (lambda: theory.deficiency_margin(np.ones((2, 3)), np.ones((3, 2))), "`We`"),
    (lambda: theory.acgh_constants(np.eye(2), -1.0, 3), "`c`"),
    (lambda: theory.acgh_constants(np.eye(2), 0.5, 0), "`depth`"),
    (lambda: theory.margin_probability(1.0, 0.0, 3), "`s`"),
    (lambda: theory.rrr(ln.SquaredLoss.whitened(np.eye(2)), -1), "`rank`"),
    (lambda: theory.global_min(ln.SquaredLoss.whitened(np.eye(2)), (3, 1, 2)), "`widths`"),
    (lambda: theory.baldi_hornik_points(ln.SquaredLoss.whitened(np.eye(3)), 1), "distinct eigenvalues"),
    (lambda: theory.baldi_hornik_points(ln.SquaredLoss.whitened(np.diag([3.0, 2.0, 1.0])), 3), "`p`"),
    (lambda: theory.hardt_ma_factorization(np.ones((2, 3)), 3), "square"),
    (lambda: theory.hardt_ma_norm_bound(np.zeros((2, 2)), 3), "non-singular"),
    (lambda: theory.hardt_ma_gradient_domination((np.zeros((2, 2)),), np.eye(2), 1.0), "`tau`"),
    (lambda: theory.bhl_sufficient_lr([1.0, -1.0], 2), "`eigs`"),
    (lambda: theory.saxe_mode(1.0, -1.0, 0.1), "`s`"),
    (lambda: theory.saxe_mode(1.0, 1.0, 0.0), "`u0`"),
    (lambda: theory.saxe_time(1.0, 0.5, 1.5), "`uf`"),
    (lambda: theory.saxe_deep_time(1.0, 1.5, 0.5, 3), "`u0`"),
    (lambda: theory.saxe_deep_mode(-1.0, 1.0, 0.5, 3), "`t`"),
    (lambda: theory.sharpness_scalar_min([1.0, 0.0], 1.0), "`w`"),
    (lambda: theory.deficiency_margin(np.array([[np.nan]]), np.array([[1.0]])), "finite"),
]


@pytest.mark.parametrize("call,match", BAD, ids=[m for _, m in BAD])
def test_bad_inputs_raise_value_error(call, match):
    """Each bad input raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        call()


def test_index_sets_cover_all_subsets():
    """Baldi–Hornik enumerates every index set of size <= p exactly once, in order of size."""
    loss = ln.SquaredLoss.whitened(np.diag([4.0, 3.0, 2.0, 1.0]))
    Is = [pt.I for pt in theory.baldi_hornik_points(loss, 2)]
    assert Is == [I for k in range(3) for I in itertools.combinations(range(4), k)]


@given(data=st.data())
def test_global_min_property_random_problems(data):
    """For any widths and squared loss, global_min's value is attained by its We, whose rank is at most
    min(widths), and no SVD truncation of a perturbed optimum does better."""
    w = data.draw(lst.widths(min_depth=1, max_depth=3, max_width=4))
    loss = data.draw(lst.squared_losses(w[0], w[-1]))
    g = theory.global_min(loss, w)
    assert float(loss.value(g.We)) == pytest.approx(float(g.value), rel=1e-10, abs=1e-12)
    assert np.linalg.matrix_rank(g.We, tol=1e-9 * max(1.0, np.abs(g.We).max())) <= min(w)
    rng = np.random.default_rng(data.draw(lst.seeds()))
    r = min(w)
    for _ in range(10):
        U, s, Vt = np.linalg.svd(g.We + 0.1 * rng.standard_normal(g.We.shape))
        cand = (U[:, :r] * s[:r]) @ Vt[:r]
        assert float(loss.value(cand)) >= float(g.value) - 1e-12 * max(1.0, abs(float(g.value)))
