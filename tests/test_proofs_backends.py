"""The same seed gives the same verdicts on numpy and array_api_strict (cheap checks here; all of them under -m slow)."""

import math

import pytest

from proofs_check import Context, all_checks

CHECKS = {c.id: c for c in all_checks()}
CHEAP = ["s05b-saddles", "s06-baldi-hornik", "s12-symmetry"]


def _verdicts(check, backend):
    ctx = Context(backend=backend)
    m, c = check.measure(ctx), check.control(ctx)
    return m, c


def _assert_same(check_id):
    check = CHECKS[check_id]
    (m0, c0), (m1, c1) = _verdicts(check, "numpy"), _verdicts(check, "array_api_strict")
    assert (m0.holds, c0.holds) == (m1.holds, c1.holds)
    assert {k: d["holds"] for k, d in m0.details.items()} == {k: d["holds"] for k, d in m1.details.items()}
    assert m0.holds and not c0.holds
    assert math.isclose(m0.figure, m1.figure, rel_tol=1e-6, abs_tol=1e-12)


@pytest.mark.parametrize("check_id", CHEAP)
def test_cheap_checks_agree_across_backends(check_id):
    """A cheap check gives the same verdicts, sub-verdicts and headline figure on both CPU backends."""
    _assert_same(check_id)


@pytest.mark.slow
@pytest.mark.parametrize("check_id", sorted(set(CHECKS) - set(CHEAP)))
def test_every_check_agrees_across_backends(check_id):
    """Every check gives the same verdicts on both CPU backends (slow: array_api_strict is unoptimised)."""
    _assert_same(check_id)
