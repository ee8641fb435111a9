"""The verdict table of ``python -m proofs_check`` (quick scale), run while the documentation builds.

``LINNET_DOCS_SKIP_CHECKS=1`` skips the run for fast local builds (the page then says so); CI runs it. A check
that fails, or a control that holds, is reported as a Sphinx warning, which ``-W`` turns into a failed build.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

__all__ = ["SKIP_ENV", "run_checks", "write_verdict_page"]

SKIP_ENV = "LINNET_DOCS_SKIP_CHECKS"


def run_checks(root: pathlib.Path, json_path: pathlib.Path) -> tuple[dict | None, str]:
    """Run the checks in a subprocess; ``(document, message)``, document ``None`` when skipped."""
    if os.environ.get(SKIP_ENV, "").strip() not in ("", "0"):
        return None, f"skipped ({SKIP_ENV} is set)"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "proofs_check", "--scale", "quick", "--json", str(json_path), "-q"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if not json_path.exists():
        raise RuntimeError(f"python -m proofs_check wrote no JSON (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    return doc, f"exit status {proc.returncode}"


def _cell(text: str) -> str:
    from .mdrst import _escape

    return _escape(" ".join(str(text).split())) or "\\-"


def write_verdict_page(doc: dict | None, message: str, path: pathlib.Path) -> list[str]:
    """Write ``verdicts.rst``; returns the ids of checks that failed or whose control held."""
    from proofs_check.report import format_measurement

    from .theorems import check_section

    title = "Verdicts of the theorem checks"
    out = [".. _verdicts:", "", title, "=" * len(title), ""]
    out += [
        "Every theorem of the specification is executed by a check in :mod:`proofs_check` with a negative control.",
        "The table is the output of ``python -m proofs_check --scale quick`` run while this site was built",
        "(rerun it with ``python -m proofs_check``; ``--report PATH.md`` writes the same as Markdown).",
        "",
    ]
    bad: list[str] = []
    if doc is None:
        out += [f".. note:: The run was {message}; build without ``{SKIP_ENV}`` to include the table.", ""]
        path.write_text("\n".join(out), encoding="utf-8")
        return bad
    s, meta = doc["summary"], doc["meta"]
    out += [
        f"**{s['checks']} checks, {s['ok']} ok, {s['failed']} failed, {s['errors']} errors, "
        f"{s['controls_held']} controls held** ({s['seconds']:.1f} s; backend ``{meta['backend']}``, "
        f"dtype ``{meta['dtype']}``, seed {meta['seed']}, scale ``{meta['scale']}``).",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 14 6 36 18 8 10 6",
        "",
        "   * - check",
        "     - §",
        "     - claim",
        "     - measured vs bound",
        "     - verdict",
        "     - control",
        "     - s",
    ]
    for c in doc["checks"]:
        sec = check_section(c["id"])
        ref = f":ref:`{c['id']} <check-{c['id']}>`" if sec is not None else f"``{c['id']}``"
        measured = format_measurement(c["result"]) if c["verdict"] != "ERROR" else c["result"]["note"]
        out += [
            f"   * - {ref}",
            f"     - :ref:`{sec} <theorem-s{sec}>`" if sec is not None else "     - \\-",
            f"     - {_cell(c['claim'])}",
            f"     - {_cell(measured)}",
            f"     - {_cell(c['verdict'])}",
            f"     - {_cell(c['control_verdict'])}",
            f"     - {float(c['seconds']):.1f}",
        ]
        if not c["ok"]:
            bad.append(c["id"])
    out += [""]
    path.write_text("\n".join(out), encoding="utf-8")
    return bad
