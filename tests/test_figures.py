"""Each figure's data checked against the theory it illustrates (THEOREMS.md), plus determinism and the CLI.

Sizes are reduced where ``data()`` takes size parameters, to keep this file fast.
"""

from __future__ import annotations

import numpy as np
import pytest

import figures
from figures import __main__ as cli

# ---------------------------------------------------------------------------------------------------------------
# framework
# ---------------------------------------------------------------------------------------------------------------


def test_registry_modules_have_the_contract():
    """Every registered figure has NAME, TITLE, SOURCE, CAPTION, data and make."""
    assert len(figures.NAMES) >= 18 and len(set(figures.NAMES)) == len(figures.NAMES)
    for name in figures.NAMES:
        mod = figures.get(name)
        assert mod.NAME == name
        assert mod.TITLE and mod.SOURCE.startswith("THEOREMS.md") and mod.CAPTION.endswith(".")
        assert callable(mod.data) and callable(mod.make)


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="name"):
        figures.get("nope")


def test_same_bytes_twice(tmp_path):
    """A figure built twice (png and pdf) gives identical bytes."""
    mod = figures.get("hardt_ma")
    a = mod.make(tmp_path / "a", formats=("png", "pdf"))
    b = mod.make(tmp_path / "b", formats=("png", "pdf"))
    assert [p.name for p in a] == ["hardt_ma.png", "hardt_ma.pdf"]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
    assert a[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in a[0].read_bytes()
    assert a[0].stat().st_size < 150_000


def test_cli_list(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in figures.NAMES:
        assert name in out


def test_cli_one_figure(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path), "scalar_landscape"]) == 0
    assert (tmp_path / "scalar_landscape.png").is_file()
    assert "[ 1/1] scalar_landscape" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["--out", str(tmp_path), "nope"])
    with pytest.raises(SystemExit):
        cli.main(["--out", str(tmp_path), "--format", "jpg", "scalar_landscape"])


# ---------------------------------------------------------------------------------------------------------------
# figure 6: scalar landscape (THEOREMS §5, §12)
# ---------------------------------------------------------------------------------------------------------------


def test_scalar_landscape_theory():
    from figures import scalar_landscape as f

    d = f.data(grid_size=21, steps=300)
    # contours: the loss formula on the grid
    w1, w2 = np.meshgrid(d.grid, d.grid)
    np.testing.assert_allclose(d.L_grid, 0.5 * (d.phi - w1 * w2) ** 2, rtol=1e-12, atol=1e-14)
    # GD paths end on the hyperbola, except the one started on the stable manifold w1 = -w2 (ends at the saddle)
    prod = d.paths[-1, :, 0] * d.paths[-1, :, 1]
    np.testing.assert_allclose(prod[:-1], d.phi, rtol=1e-8)
    assert np.max(np.abs(d.paths[-1, -1])) < 1e-6
    # GD nearly conserves w1^2 - w2^2 (O(lr) drift over the run; exact under gradient flow)
    c = d.paths[..., 0] ** 2 - d.paths[..., 1] ** 2
    assert np.max(np.abs(c[-1] - c[0])) < 0.25 * np.max(np.abs(c[0]))
    # leaving the origin at order t^N (THEOREMS §5 (d): slope N within 0.05)
    for N in (2, 3):
        assert abs(d.slope[N] - N) < 0.05
        np.testing.assert_allclose(d.drop[N], d.phi * d.t**N - 0.5 * d.t ** (2 * N), rtol=1e-6)
    # Hessian at the origin: +-phi at depth 2, exactly zero at depth 3
    np.testing.assert_allclose(d.hess0[2], [-d.phi, d.phi], rtol=1e-12)
    assert np.max(np.abs(d.hess0[3])) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# figure 8: Hessian spectra (THEOREMS §5, §11)
# ---------------------------------------------------------------------------------------------------------------


def test_hessian_spectra_theory():
    from figures import hessian_spectra as f

    d = f.data()
    assert d.loss_min < 1e-20
    neg, zero, pos = f.counts(d.eig_min)
    assert (neg, pos, zero) == (0, d.n_samples, d.eig_min.size - d.n_samples)
    # strict saddle at the origin of a depth-2 net: +-sigma_i(Phi), each d1 times
    expected = np.sort(np.concatenate([np.repeat(d.sigma, d.d1), -np.repeat(d.sigma, d.d1)]))
    np.testing.assert_allclose(d.eig_saddle, expected, rtol=1e-12)
    assert f.counts(d.eig_saddle)[0] > 0
    # depth 3: the Hessian at the origin is exactly zero
    assert np.max(np.abs(d.eig_flat)) == 0.0
    assert f.counts(d.eig_flat) == (0, d.eig_flat.size, 0)


def test_hessian_counts_can_fail():
    """The zero count is relative to the spectrum's scale (control: a generic spectrum has no zeros)."""
    from figures import hessian_spectra as f

    assert f.counts(np.array([-2.0, 1e-12, 1.0, 3.0])) == (1, 1, 2)
    assert f.counts(np.array([1.0, 2.0])) == (0, 0, 2)


# ---------------------------------------------------------------------------------------------------------------
# figure 10: Bartlett, Helmbold & Long (THEOREMS §9)
# ---------------------------------------------------------------------------------------------------------------


def test_bartlett_theory():
    from figures import bartlett as f

    d = f.data(depths=(2, 3), steps=800, record_every=20)
    for N in d.depths:
        # SPD target: learned
        assert d.loss_spd[N][-1] < 1e-10
        # negative eigenvalue, eta < 1/(1+|lambda|): the loss never goes below lambda^2/2 and ends there
        assert d.lr < 1.0 / (1.0 + abs(d.lam))
        assert np.min(d.loss_neg[N]) >= 0.5 * d.lam**2 * (1 - 1e-10)
        assert d.loss_neg[N][-1] - 0.5 * d.lam**2 < 1e-2
        assert np.min(d.mode_neg[N]) >= -1e-12  # round-off of v^T W_e v once the mode has reached 0
    # control: odd depth with eta = 1 on Phi = -I crosses zero and converges
    assert d.control_depth % 2 == 1
    assert d.control_loss[-1] < 1e-20
    assert np.min(d.control_mode) < 0.0


# ---------------------------------------------------------------------------------------------------------------
# figure 3: balancedness (THEOREMS §2)
# ---------------------------------------------------------------------------------------------------------------


def test_balancedness_theory():
    from figures import balancedness as f

    d = f.data(T=2.0, etas=(0.005, 0.01, 0.02, 0.04), n_rec=11)
    # gradient flow conserves the gaps (started exactly balanced): flat at integration round-off
    assert np.max(d.delta_flow) < 1e-8
    # GD drifts, O(eta) over a fixed time: log-log slope 1 within 0.1 (THEOREMS §2 check 3)
    assert np.all(d.drift > 1e3 * np.max(d.delta_flow))
    assert abs(d.slope - 1.0) < 0.1
    # halving eta roughly halves the drift (ratio in [1.6, 2.5])
    ratios = d.drift[1:] / d.drift[:-1]
    assert np.all((ratios > 1.6) & (ratios < 2.5))


# ---------------------------------------------------------------------------------------------------------------
# figures 1-2: Saxe, McClelland & Ganguli (THEOREMS §10)
# ---------------------------------------------------------------------------------------------------------------

#: Gradient flow runs at rtol 1e-10; mode strengths agree with eq. 12 to ~1e-10 (THEOREMS §10 asks 1e-8 at 1e-12).
SAXE_ATOL = 1e-8


def test_saxe_curves_theory():
    from figures import saxe_curves as f

    d = f.data(n_features=100, n_times=61)
    # decoupled init: every mode follows eq. 12, and the modes stay decoupled
    np.testing.assert_allclose(d.decoupled, d.theory, rtol=0, atol=SAXE_ATOL)
    assert d.off_diag < 1e-10
    # stronger modes are learned first (eq. 11)
    assert np.all(np.diff(d.half_theory) > 0)
    # random small init (THEOREMS §10 control (a)): not eq. 12, but half-learning times within 30%
    assert np.max(np.abs(d.random - d.theory)) > 1e-4
    assert np.all(np.abs(d.half_random / d.half_theory - 1) < 0.3)


def test_saxe_depth_theory():
    from figures import saxe_depth as f

    d = f.data(depths=(2, 4, 16))
    # gradient flow of matrix nets reproduces eq. 15's learning time
    np.testing.assert_allclose(d.t_sim, d.t_pred, rtol=1e-6)
    # D = 2 is eq. 11
    np.testing.assert_allclose(d.t_pred[0], d.t_two, rtol=1e-10)
    # D t_D grows with depth and approaches the eq. 17 limit from below
    Dt = d.depths[:, None] * d.t_pred
    assert np.all(np.diff(Dt, axis=0) > 0)
    assert np.all(Dt < d.t_limit)
    gaps = (d.t_limit - Dt) / d.t_limit
    assert np.all(np.diff(gaps, axis=0) < 0) and np.all(gaps[-1] < 0.25)


# ---------------------------------------------------------------------------------------------------------------
# figure 7: Baldi & Hornik (THEOREMS §6)
# ---------------------------------------------------------------------------------------------------------------


def test_baldi_hornik_theory():
    from math import comb

    from figures import baldi_hornik as f

    d = f.data(n_inits=20, steps=2000)
    q, p = d.lam.size, d.p
    assert len(d.sets) == sum(comb(q, k) for k in range(p + 1))
    # every point is critical, its measured Morse index equals the formula
    assert np.max(d.grad_norm) < 1e-10
    np.testing.assert_array_equal(d.index_measured, d.index_formula)
    # value L_I = L_min + (sum of the eigenvalues left out) / 2, relative to the top-p set
    top = set(range(p))
    for I, v in zip(d.sets, d.value):
        np.testing.assert_allclose(
            v - d.global_value,
            0.5 * sum(d.lam[i] for i in top - set(I)) - 0.5 * sum(d.lam[i] for i in set(I) - top),
            rtol=1e-10,
            atol=1e-12,
        )
    # exactly one minimum: the top-p projection; every other point is a strict saddle
    minima = [I for I, k in zip(d.sets, d.index_measured) if k == 0]
    assert minima == [tuple(range(p))]
    assert list(d.labels).count("global minimum") == 1
    assert all(lab == "strict saddle" for I, lab in zip(d.sets, d.labels) if I != tuple(range(p)))
    # p^2 null directions at full-rank points (the GL(p) orbit)
    assert all(z == p * p for I, z in zip(d.sets, d.n_zero) if len(I) == p)
    # every random init ends at the global minimum
    assert np.all(d.final_labels == "global minimum")
    np.testing.assert_allclose(d.runs[-1], d.global_value, rtol=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# figure 9: Hardt & Ma (THEOREMS §8)
# ---------------------------------------------------------------------------------------------------------------


def test_hardt_ma_theory():
    from figures import hardt_ma as f

    d = f.data(depths=(4, 8, 16, 32, 64))
    assert d.det > 0
    assert np.all(d.depths >= 3 * d.gamma)  # Theorem 2.1's hypothesis
    # exact factorization, norms below the bound, decaying like 1/l
    assert np.max(d.recon_error) < 1e-10
    assert np.all(d.norm <= d.bound)
    assert abs(d.slope + 1.0) < 0.1
    np.testing.assert_allclose(d.bound * d.depths, d.bound[0] * d.depths[0], rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# figure 12: linear stability and sharpness (THEOREMS §13)
# ---------------------------------------------------------------------------------------------------------------

#: End points have loss <= 1e-20, so they sit within ~1e-10 of a minimum: sharpness known to ~1e-9 relative.
SHARPNESS_RTOL = 1e-6


def test_stability_theory():
    from figures import stability as f

    d = f.data(ratios=(0.8, 0.99, 1.01, 1.2), n_starts=8, steps=2000, n_random=8, random_steps=2000)
    np.testing.assert_allclose(d.s_min, d.depth * d.phi ** (2 - 2 / d.depth), rtol=1e-14)
    # converged below 2/S_min, not above (THEOREMS §13: 0.99x vs 1.01x)
    np.testing.assert_array_equal(d.converged_frac, (d.ratios < 1.0).astype(float))
    # sharpness of every minimum reached lies in [S_min, 2/eta]; Hessian agrees with phi^2 sum w^-2
    ok = np.isfinite(d.sharpness)
    assert ok.mean() > 0.5
    eta = np.broadcast_to(d.etas[:, None], d.sharpness.shape)
    assert np.all(d.sharpness[ok] <= 2.0 / eta[ok] * (1 + SHARPNESS_RTOL))
    assert np.all(d.sharpness[ok] >= d.s_min * (1 - SHARPNESS_RTOL))
    np.testing.assert_allclose(d.sharpness[ok], d.sharpness_formula[ok], rtol=SHARPNESS_RTOL)


# ---------------------------------------------------------------------------------------------------------------
# figure 4: deficiency margin, ACGH Theorem 1 (THEOREMS §3)
# ---------------------------------------------------------------------------------------------------------------

#: Below this the loss sits at its round-off floor (~1e-27 here) and a comparison with the bound tests rounding.
BOUND_FLOOR = 1e-20


def test_deficiency_margin_theory():
    from figures import deficiency_margin as f

    d = f.data(steps=2000, multiples=(1.0, 1e2, 1e4, 1e5))
    # hypotheses of Theorem 1 hold at the init
    np.testing.assert_allclose(d.margin0, d.c, rtol=1e-12)
    assert d.sigma_min0 >= d.c - 1e-12
    assert d.delta0 <= d.delta_max
    # the loss stays below l(0)(1 - eta c^{2(N-1)/N})^k at every record (at eta_max: the theorem; at larger
    # multiples: THEOREMS §3's observation, held in its runs up to 1e4)
    mask = d.bound > BOUND_FLOOR
    assert np.all(d.loss[mask] <= d.bound[mask] * (1 + 1e-10))
    assert d.loss[-1, -1] < 1e-6 * d.loss[0, -1]  # and GD does converge at the largest step
    # control (a): no margin -> stuck above phi_k^2 / 2 at every step
    assert d.nomargin_margin0 < 0
    assert np.min(d.nomargin_loss) >= d.nomargin_floor * (1 - 1e-10)
    # control (b): unbalanced init diverges at the theorem's own step size, within a few steps
    assert d.unbal_status == "diverged" and 0 < d.unbal_diverged_at <= 10


# ---------------------------------------------------------------------------------------------------------------
# figure 5: acceleration by overparameterization (THEOREMS §4, a demo: loose assertions)
# ---------------------------------------------------------------------------------------------------------------


def test_acceleration_demo():
    from figures import acceleration as f

    d = f.data(steps=1000, lrs=np.geomspace(0.1, 10.0, 9))
    for key, curve in d.curves.items():
        assert np.all(np.isfinite(curve)) and curve[-1] < curve[0]
        assert d.best_lr[key] < d.lrs[-1]  # the tuned step is inside the grid (larger steps diverged)
        # the tuning rule: the tuned run's recorded loss never rises above its running minimum (beyond round-off)
        assert np.all(curve[1:] <= np.minimum.accumulate(curve)[:-1] + 100 * np.finfo(float).eps * curve[0])
    ratio = {p: d.curves[p, 1][-1] / min(d.curves[p, N][-1] for N in d.depths[1:]) for p in d.powers}
    assert ratio[4] > 2.0  # l4: depth accelerates (ACH)
    assert ratio[2] < 2.0  # l2: no comparable speed-up (ACH, Saxe)


# ---------------------------------------------------------------------------------------------------------------
# figure 11: Poggio & Cooper (THEOREMS §11)
# ---------------------------------------------------------------------------------------------------------------


def test_poggio_cooper_theory():
    from figures import poggio_cooper as f

    d = f.data(steps=300)
    # 1-D example: GD's loss has one minimum at 0, the per-sample losses at +-x1; SGD wanders between them
    assert abs(d.w[np.argmin(d.full)]) < 1e-12
    np.testing.assert_allclose(sorted(d.w[np.argmin(d.per_sample, axis=1)]), [-d.x1, d.x1], atol=1e-12)
    np.testing.assert_allclose(d.full, 0.5 * (d.w**2 + d.x1**2), rtol=1e-12)
    assert np.std(d.sgd_1d) > 0.1 * d.x1 and np.max(np.abs(d.sgd_1d)) < d.x1
    # GD's limit is a type-2 point: global minimum (least squares), full gradient 0, per-sample gradients not
    assert d.gd_grad_type2 < 1e-10
    np.testing.assert_allclose(d.gd_loss_type2, d.min_value_type2, rtol=1e-10)
    assert d.per_sample_grad_type2 > 1e-3
    # single-sample SGD leaves it at once (first step moves by ~ lr * per-sample gradient) and the loss rises
    assert d.disp_type2[1] > 1e-3 * d.lr
    assert np.max(d.loss_type2) > d.min_value_type2 * (1 + 1e-6)
    # type 1: at an interpolating minimum every per-sample gradient vanishes and SGD stays to round-off
    assert d.per_sample_grad_type1 < 1e-12
    assert np.max(d.disp_type1) < 1e-14
    # the origin (spurious type 1) is never left
    assert np.max(d.disp_origin) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# figure 13: a linnet.sweep phase diagram, with the deficiency-margin probability (THEOREMS §3)
# ---------------------------------------------------------------------------------------------------------------
def test_sweep_phase_theory():
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import linnet as ln
    from figures import sweep_phase as f

    d = f.data()
    n = d.runs * len(d.depths)  # balanced draws per scale, pooled over depths (independent seeds per cell)
    measured = d.frac_margin.mean(axis=0)
    sigma = np.sqrt(d.margin_pred * (1 - d.margin_pred) / n) + 0.5 / n
    assert np.all(np.abs(measured - d.margin_pred) <= 4 * sigma)  # §3 noncentral chi^2 probability (DERIVED)
    # control: the same formula with the wrong dimension (d_0 = 1 instead of 4) is rejected by the same test
    wrong = np.asarray(ln.theory.margin_probability(d.phi_norm, d.scales, 1))
    assert np.any(np.abs(measured - wrong) > 4 * sigma)
    # every balanced run with a positive margin reached the global minimum (observed, lr far above Theorem 1's)
    ok = ~np.isnan(d.frac_global_with_margin)
    assert ok.sum() >= 12 and np.all(d.frac_global_with_margin[ok] == 1.0)
    assert np.all(d.frac_global >= 0) and np.all(d.frac_global <= 1)
    # the phase boundary: large Gaussian inits fail (diverge at this step size) where balanced ones succeed
    assert d.frac_global[0, -1, -1] <= 0.1 and d.frac_global[1, -1, -1] >= 0.8
    conv = ~np.isnan(d.median_steps)
    assert np.all(d.median_steps[conv] >= 1) and np.all(d.median_steps[conv] <= 1500)


# figures 13-14: diagonal nets' Q_alpha (THEOREMS2 §20), width-1 depth (THEOREMS2 §19)
# ---------------------------------------------------------------------------------------------------------------

#: THEOREMS2 §20: gradient flow = argmin Q_alpha to 1e-8 (LSODA rtol 1e-12, host float64)
GF_ARGMIN_TOL = 1e-8


def test_implicit_regularizer_theory():
    from figures import implicit_regularizer as f

    d = f.data(alphas_gf=(3.0, 0.3))
    assert np.all(d.gf_err <= GF_ARGMIN_TOL)
    # kernel -> rich: distance to l1 falls and to l2 grows as alpha shrinks (monotone, both depths)
    assert np.all(np.diff(d.dist_l1, axis=1) < 0) and np.all(np.diff(d.dist_l2, axis=1) > 0)
    assert np.all(d.dist_l2[:, 0] < 1e-3)  # alpha = 10: the min-l2 interpolant
    assert d.dist_l1[1, -1] < 1e-3 < d.dist_l1[0, -1]  # alpha = 1e-4: depth 3 is rich, depth 2 not yet
    # the penalty shape: ~t^2 at alpha = 10, closer to |t| than to t^2 at alpha = 1e-4
    assert np.abs(d.shape[0] - d.t**2).max() < 1e-2
    assert np.abs(d.shape[-1] - np.abs(d.t)).max() < np.abs(d.shape[-1] - d.t**2).max()


def test_width_one_depth_theory():
    from figures import width_one_depth as f

    d = f.data(depths=(4, 8, 12), cap=5000)
    assert np.all(np.diff(d.median) > 0) and d.slope > 0.1  # THEOREMS2 §19: slope > 0.1 per layer
    assert np.all(d.control_median <= 10)  # near identity: a handful of steps at every depth up to 64


# Figures drawn the same on every BLAS kernel. Round-off-level quantities (gradient flow's balancedness gaps, losses
# converged to 1e-30, reconstruction errors, SGD displacements at an interpolating minimum) are drawn at a stated
# round-off floor and on a fine log grid, and printed as bounds, by the figures' make() (figures/_style.py: floored,
# on_log_grid), so their images do not depend on the summation order; acceleration tunes its step sizes among runs
# whose loss never rises, since a run through a brief instability grows round-off to a visible size. Reproduce a
# kernel dependence with OPENBLAS_CORETYPE=Prescott on an OpenBLAS NumPy.
KERNEL_DEPENDENT = ()
KERNEL_STABLE = tuple(name for name in figures.NAMES if name not in KERNEL_DEPENDENT)


def test_gallery_has_every_figure():
    """docs/gallery holds one PNG per figure, no more (so KERNEL_STABLE covers every committed image but those of
    KERNEL_DEPENDENT)."""
    import pathlib

    gallery = pathlib.Path(__file__).resolve().parents[1] / "docs" / "gallery"
    assert sorted(p.stem for p in gallery.glob("*.png")) == sorted(figures.NAMES)
    assert set(KERNEL_DEPENDENT) <= set(figures.NAMES)


@pytest.mark.slow
def test_committed_gallery_reproduced_on_another_blas_kernel(tmp_path):
    """From a clean checkout, `python -m figures` under another OpenBLAS kernel rewrites the kernel-stable
    figures of docs/gallery byte for byte (same Matplotlib as made them)."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, OPENBLAS_CORETYPE="Prescott", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-m", "figures", "--out", str(tmp_path), *KERNEL_STABLE],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in KERNEL_STABLE:
        assert (tmp_path / f"{name}.png").read_bytes() == (root / "docs" / "gallery" / f"{name}.png").read_bytes(), name


def _at_edge(sharpness, edge, band):
    """Whether a run is at the edge of stability: the two-step mean of its sharpness reaches 0.95·2/η within 100
    steps and then, from 10 steps later on, stays in ``band`` (in units of 2/η)."""
    from figures.edge_of_stability import two_step_mean

    m2 = two_step_mean(np.asarray(sharpness) / edge)
    t = int(np.argmax(m2 > 0.95))
    return bool(m2[t] > 0.95 and t < 100 and band[0] < m2[t + 10 :].min() and m2[t + 10 :].max() < band[1]), t


def test_edge_of_stability_theory():
    """GD between S_min and the gradient-flow solution's sharpness: the sharpness starts far below 2/η, rises to it
    and its two-step mean stays in the band, the loss falls by > 1e3 while rising at a quarter of the steps or more;
    the control (half the middle step size) is not at the edge, never rises and ends at the GF-solution sharpness."""
    mod = figures.get("edge_of_stability")
    d = mod.data()
    K = d.edges.size - 1
    assert d.s_min == pytest.approx(4.0, rel=1e-14)  # N sigma_1^(2-2/N), N=4, sigma_1=1
    assert d.s_min < d.edges[:K].min() and d.edges[:K].max() < d.phi0  # every run in the EoS regime
    for k in range(K):
        assert d.sharpness[0, k] < 0.2 * d.edges[k]  # far below 2/eta at the start: progressive sharpening
        at_edge, t = _at_edge(d.sharpness[:, k], d.edges[k], mod.BAND)
        assert at_edge, k
        L = d.loss[:, k]
        floor = 100 * np.finfo(float).eps * L[0]  # loss changes below this are round-off
        rises = (np.diff(L) > 0) & (L[:-1] > floor)
        assert L[-1] < 1e-3 * L[0], k  # falls overall by orders of magnitude
        assert rises[t + 10 : t + 510].mean() > 0.25, k  # non-monotone over short windows
    # control: same start, half the middle step size; 2/eta' = 9.2 is far above every sharpness it meets
    S_c, L_c = d.sharpness[:, K], d.loss[:, K]
    assert d.edges[K] == pytest.approx(2 * d.edges[K // 2], rel=1e-15)
    at_edge, _ = _at_edge(S_c, d.edges[K], mod.BAND)
    assert not at_edge and mod.two_step_mean(S_c / d.edges[K]).max() < 0.6
    floor = 100 * np.finfo(float).eps * L_c[0]
    assert not np.any((np.diff(L_c) > 0) & (L_c[:-1] > floor)) and L_c[-1] < floor  # monotone, converged
    assert abs(S_c[-1] / d.phi0 - 1) < 0.01  # ends at the GF solution's sharpness (a bit flatter: GD drift, §21)
