"""Data of the §15 and §17 figures checked against THEOREMS2.md (reduced sizes where data() takes them)."""

from __future__ import annotations

import numpy as np


def test_svd_dynamics_theory():
    """§15: at depth >= 2 the top singular values are learned in order, each transition sharper at depth 3."""
    from figures import svd_dynamics as f

    d = f.data()
    assert np.all(d.rel_loss < 1e-3)
    half = {int(N): f.crossing_times(t, S, 0.5) for N, t, S in zip(d.depths, d.times, d.sigmas)}
    width = {
        int(N): f.crossing_times(t, S, 0.9) / f.crossing_times(t, S, 0.1)
        for N, t, S in zip(d.depths, d.times, d.sigmas)
    }
    for N in (2, 3):
        assert np.all(np.diff(half[N]) > 0), half[N]  # sigma_1 first, then sigma_2, then sigma_3
    assert np.all(width[3] < width[2]), width  # sharper with depth (in log time)
    # depth 1 moves all singular values at once: no ordering in time
    assert np.ptp(half[1]) <= 2 * (d.times[0][1] - d.times[0][0])
    # the fourth singular value stays small at depth 3 (low rank), unlike depth 1 (no implicit low rank)
    assert d.sigmas[2][-1, 3] < 0.01 * d.target[0] < d.sigmas[0][-1, 3]


def test_completion_depth_theory():
    """§15 check 3 (robust part): erank(N=3) < erank(N=2) in most seeds; median test error falls from N=2 to N=3."""
    from figures import completion_depth as f

    d = f.data(ms=(120, 160), seeds=5, nuclear=False)
    k2, k3 = list(d.depths).index(2), list(d.depths).index(3)
    for j in range(len(d.ms)):
        assert np.sum(d.erank[k3, j] < d.erank[k2, j]) >= 4
        assert np.median(d.test_error[k3, j]) < np.median(d.test_error[k2, j])
    # depth 1 never moves the unobserved entries (up to the 1e-3 init): test error ~ 1
    np.testing.assert_allclose(d.test_error[list(d.depths).index(1)], 1.0, atol=1e-2)
    assert np.all(np.isnan(d.nuclear_error))


def test_separable_alignment_theory():
    """§17: C_i conserved, alignment and cosine improve monotonically late, margin below and toward the SVM's."""
    from figures import separable_alignment as f

    d = f.data(steps=10_000, per_decade=3)
    late = d.steps >= 100
    assert np.all(np.diff(d.loss) <= 0)
    C = d.C[late][:, :2]
    assert np.max(np.abs(C - C[0]) / C[0]) <= 1e-2
    assert np.all(np.diff(d.misalign[late], axis=0) <= 0) and np.all(np.diff(d.cos_gap[late]) <= 0)
    assert np.all(np.diff(d.rank_gap[late][:, :2], axis=0) < 0)
    # no direction beats the max margin; both depths approach it
    assert np.all(d.margin_deep <= d.svm_margin + 1e-12) and np.all(d.margin_shallow <= d.svm_margin + 1e-12)
    assert np.all(np.diff(d.margin_deep[late]) >= 0) and d.svm_margin - d.margin_deep[-1] < 0.05 * d.svm_margin
    assert d.misalign[-1].max() <= 1e-2 and d.cos_gap[-1] <= 1e-2
