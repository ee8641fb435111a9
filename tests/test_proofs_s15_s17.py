"""proofs_check §15 (ACHL singular-value dynamics, depth comparison) and §17 (separable data): each check holds on
the default context and every part of its negative control fails, as it must."""

import pytest

import proofs_check.checks  # noqa: F401  (registers the checks)
from proofs_check import REGISTRY, Context

IDS = ["s15-svd-dynamics", "s17-separable"]


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
