"""proofs_check group A (§1 calculus, §2 balancedness, §12 symmetry, §13 sharpness): each check holds on the
default context and its negative control fails, as it must."""

import pytest

import proofs_check.checks  # noqa: F401  (registers the checks)
from proofs_check import REGISTRY, Context

IDS = ["s01-calculus", "s02-balancedness", "s12-symmetry", "s13-sharpness"]


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
    assert not any(d["holds"] for d in c.details.values()), c.details  # every reported control fails
