"""proofs_check part 2 (THEOREMS2 §16, §18–§22): each check holds on the default context and its negative
control fails, as it must (every reported control part fails)."""

import pytest

import proofs_check.checks  # noqa: F401  (registers the checks)
from proofs_check import REGISTRY, Context

IDS = [
    "s16-nuclear-norm-and-rank",
    "s18-flattest-minima",
    "s19-width-one-depth",
    "s20-diagonal-nets",
    "s21-large-step-imbalance",
    "s22-gfs-sharpness",
]


@pytest.fixture(scope="module")
def ctx():
    return Context()


@pytest.mark.parametrize("check_id", IDS)
def test_check_holds(check_id, ctx):
    m = REGISTRY[check_id].measure(ctx)
    assert m.holds, (m.note, m.details)
    assert all(d["holds"] for d in m.details.values()), m.details


@pytest.mark.parametrize("check_id", IDS)
def test_control_fails(check_id, ctx):
    c = REGISTRY[check_id].control(ctx)
    assert not c.holds, (c.note, c.details)
    assert not any(d["holds"] for d in c.details.values()), c.details
