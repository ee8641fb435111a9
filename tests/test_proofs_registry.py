"""Every registered theorem check, parametrized over the registry (nothing listed by hand): it holds on the
default context and its negative control fails. Checks with ``cost = "heavy"`` run only under ``-m slow``."""

import pytest

from proofs_check import Context
from proofs_check._core import all_checks


def _params():
    out = []
    for check in all_checks():
        marks = [pytest.mark.slow] if getattr(check, "cost", "light") == "heavy" else []
        out.append(pytest.param(check, id=check.id, marks=marks))
    return out


def _parts(measurement):
    """The sub-assertions a check reports in ``details`` (entries with a ``holds`` verdict)."""
    return [d for d in measurement.details.values() if isinstance(d, dict) and "holds" in d]


@pytest.mark.parametrize("check", _params())
def test_registered_check_holds_and_its_control_fails(check):
    ctx = Context()
    m = check.measure(ctx)
    assert m.holds, (m.note, dict(m.details))
    assert all(d["holds"] for d in _parts(m)), dict(m.details)  # every sub-assertion holds
    c = check.control(ctx)
    assert not c.holds, (c.note, dict(c.details))
    parts = _parts(c)
    assert not parts or not all(d["holds"] for d in parts), dict(c.details)  # a reported control part fails
