"""Margins, claims rendered with the bounds of the dtype that ran, and the width of ``--list``."""

import io
import math

from proofs_check import _core, cli, report
from proofs_check._core import Measurement, margin_decades, render_claim


def test_margin_decades():
    assert margin_decades(1e-12, 1e-8) == 4.0 or abs(margin_decades(1e-12, 1e-8) - 4.0) < 1e-12
    assert margin_decades(1e-6, 1e-8) < 0  # fails by two decades
    assert abs(margin_decades(0.5, 1.0, ">=") + math.log10(2)) < 1e-12  # 0.5 >= 1 fails
    assert margin_decades(0.0, 1e-8) == math.inf
    assert margin_decades(0, 0) is None and margin_decades(1.0, 1.0, ">=") is None
    assert abs(margin_decades(-1.0, -1e-8, "<") - 8.0) < 1e-12  # -1 < -1e-8 with eight decades to spare
    assert margin_decades(-1.0, 1.0) is None
    assert math.isnan(margin_decades(float("nan"), 1.0))


def test_worst_margin_is_the_closest_part():
    m = Measurement.all_of({"a": Measurement.compare(1e-12, 1e-8), "b": Measurement.compare(0.99, 1.0)})
    assert abs(m.worst_margin - math.log10(1 / 0.99)) < 1e-12
    assert abs(m.margin - 4.0) < 1e-9  # the headline's own


def test_format_margin():
    assert report.format_margin(4.0) == "4.0 dec"
    assert report.format_margin(math.inf) == "exact"
    assert report.format_margin(None) == "n/a"
    assert report.format_margin(math.log10(1.01)).startswith("+1")
    assert report.format_margin(-2.0) == "-2.0 dec"


def test_render_claim_uses_the_bounds_measured():
    m = Measurement.all_of({"x": Measurement.compare(1.0, 2.5e-4), "y": Measurement.compare(1.0, 3.0)})
    assert render_claim("a ({bound:x}) b {bound}", m) == "a (0.00025) b 0.00025"
    assert render_claim("c {bound:y}", m) == "c 3"
    assert render_claim("c {bound:missing}", m) == "c tol"


def test_claims_in_float32_show_float32_bounds():
    """Every check's claim with a placeholder renders without braces (the parts it names exist)."""
    for c in _core.all_checks():
        if "{bound" in c.claim:
            names = [s.split("}")[0] for s in c.claim.split("{bound:")[1:]]
            assert names or "{bound}" in c.claim, c.id  # named parts, or the headline bound


def test_list_fits_100_columns():
    out = io.StringIO()
    assert cli.main(["--list"], stdout=out, stderr=io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert lines and max(len(s) for s in lines) <= cli.LIST_WIDTH


def test_table_and_json_have_margins():
    v = _core.Verdict(
        "x", "t", "c", "s", "MIXED", Measurement.compare(1e-12, 1e-8), Measurement.compare(2, 1), "d", 0.1
    )
    table = report.format_table([v])
    assert "margin" in table.splitlines()[0] and "4.0 dec" in table
    doc = report.to_json([v], {"backend": "numpy"})
    assert abs(doc["checks"][0]["margin"] - 4.0) < 1e-9


def test_markdown_statement_renders_math():
    rst = "Loss :math:`\\ell(W)` see `paper <https://arxiv.org/abs/1>`_ and ``code``.\n\n.. math::\n\n    a = b\n\nEnd."
    md = report.rst_to_markdown(rst)
    assert "$\\ell(W)$" in md and "[paper](https://arxiv.org/abs/1)" in md and "`code`" in md
    assert "$$a = b$$" in md and ":math:" not in md and ".. math::" not in md
    assert md.endswith("End.")
