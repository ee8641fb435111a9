"""proofs_check group B (§3 deficiency margin, §4 end-to-end dynamics, §9 Bartlett-Helmbold-Long, §10 Saxe,
§11 Poggio-Cooper): each check holds on the default context and every case of its negative control fails."""

import math

import numpy as np
import pytest

import proofs_check.checks  # noqa: F401  (registers the checks)
from proofs_check import REGISTRY, Context, Measurement
from proofs_check.checks import s03_deficiency_margin as s03
from proofs_check.checks import s09_bartlett as s09

#: The checks of this group (the backend parity test below, slow); hold/control: tests/test_proofs_registry.py
IDS = ["s03-deficiency-margin", "s04-end-to-end", "s09-bartlett", "s10-saxe", "s11-poggio-cooper"]


@pytest.fixture(scope="module")
def results():
    """One measure/control run per check (numpy, float64, quick), shared by the tests below."""
    cache = {}

    def get(check_id, what):
        key = (check_id, what)
        if key not in cache:
            cache[key] = getattr(REGISTRY[check_id], what)(Context())
        return cache[key]

    return get


def test_unconfirmed_thm2_constants_not_presented():
    """ACGH Theorem 2 constants are UNCONFIRMED: the check reports only the DERIVED margin probability."""
    m = REGISTRY["s03-deficiency-margin"]
    assert "UNCONFIRMED" in s03.__doc__
    note = m._margin_probability(Context()).note
    assert note.startswith("DERIVED (not ACGH Thm 2)")


def test_rate_ratio_flags_divergence_and_violation():
    """The rate-bound figure is inf for a diverged run and exceeds 1 when the loss decays slower than the bound."""
    steps = np.arange(5, dtype=float)
    assert s03._max_rate_ratio(np.ones(5), steps, 0.9, diverged=True) == math.inf
    assert s03._max_rate_ratio(np.array([1.0, 2.0, np.inf, 1.0, 1.0]), steps, 0.9, diverged=False) == math.inf
    exact = 0.9**steps
    assert abs(s03._max_rate_ratio(exact, steps, 0.9, diverged=False) - 1.0) < 1e-12
    assert s03._max_rate_ratio(np.ones(5), steps, 0.9, diverged=False) > 1.5  # stuck loss violates the bound


def test_any_of_holds_if_any_case_holds():
    """A control with several cases is a defect as soon as one case satisfies the conclusion."""
    bad = Measurement.compare(1.0, 0.0, "<=")
    good = Measurement.compare(0.0, 1.0, "<=")
    assert not Measurement.any_of({"a": bad, "b": bad}).holds
    assert Measurement.any_of({"a": bad, "b": good}).holds


def test_scalar_modes_match_engine_recursion():
    """The BHL scalar recursion reproduces the one-step exact fit for L odd, eta = 1, lambda = -1."""
    th = s09._scalar_modes(np.array([-1.0, 2.0]), 3, 1.0, 1)
    assert th[-1, 0] == -1.0 and th[0, 1] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("check_id", IDS)
def test_backend_parity(check_id, results):
    """Same seed, same verdicts (and figures to round-off) on numpy and array_api_strict."""
    ref_m, ref_c = results(check_id, "measure"), results(check_id, "control")
    ctx = Context(backend="array_api_strict")
    m, c = REGISTRY[check_id].measure(ctx), REGISTRY[check_id].control(ctx)
    assert (m.holds, c.holds) == (ref_m.holds, ref_c.holds)
    assert {k: d["holds"] for k, d in m.details.items()} == {k: d["holds"] for k, d in ref_m.details.items()}
    assert math.isclose(m.figure, ref_m.figure, rel_tol=1e-6, abs_tol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (4, 2), (1, 6)])
def test_tight_start_sits_next_to_the_edge(shape):
    """sigma_min(W_e(0)) equals the deficiency margin (Weyl attained), c + 1e-3 (sigma_min(Phi) - c)."""
    Phi = s03._rect_problem(Context(), *shape, key="t")
    c = 0.5
    A = s03._tight_start(Phi, c)
    s_phi = np.linalg.svd(Phi, compute_uv=False)
    assert abs(s_phi[-1] - 1.0) < 1e-14 and s_phi[0] <= 2.0
    margin = s_phi[-1] - np.linalg.norm(A - Phi)
    assert abs(margin - (c + 1e-3 * (s_phi[-1] - c))) < 1e-14
    assert abs(np.linalg.svd(A, compute_uv=False)[-1] - margin) < 1e-14


def test_other_shapes_hold_and_report_the_speed_over_the_bound(results):
    parts = results("s03-deficiency-margin", "measure").details
    rate = parts["rate_bound_other_shapes"]
    assert rate["holds"] and rate["figure"] <= 1.0
    assert "(6, 3, 2, 2, 1)" in rate["note"] and "(5, 3, 4, 3)" in rate["note"]
    assert parts["sigma_min_throughout_other_shapes"]["holds"]


def test_poggio_cooper_controls_each_fail_inside_the_setting(results):
    """Both control cases use the interpolation widths (scalar output) and each fails on its own."""
    c = results("s11-poggio-cooper", "control")
    assert not c.holds
    parts = {k: v for k, v in c.details.items() if isinstance(v, dict) and "holds" in v}
    assert set(parts) == {"no_interpolation_rank_n", "critical_non_interpolating_H_eq_GN"}
    assert not any(p["holds"] for p in parts.values())
    assert str(REGISTRY["s11-poggio-cooper"].widths_interp) in parts["no_interpolation_rank_n"]["note"]
    assert "gradient 0," in parts["critical_non_interpolating_H_eq_GN"]["note"]  # the point is critical
