"""Rendering of verdicts: the terminal table, the JSON document and the Markdown report.

Pure functions of the verdicts and the run metadata (no I/O beyond the ``write_*`` helpers), so the CLI and
the tests share them. A verdict reads:

- **verdict** ``holds`` when the measured figure satisfies its bound, ``FAILS`` when not, ``ERROR`` when the
  check raised (a crash is a failure);
- **control** ``failed (ok)`` when the negative control failed as it must, ``HELD (defect)`` when the broken
  input still satisfied the assertion (the check cannot tell right from wrong), ``not run`` after a crash.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import math
import platform
import re
import sys
import textwrap
from typing import Any, Iterable, Sequence

from ._core import Check, Context, Measurement, Verdict

__all__ = [
    "verdict_word",
    "control_word",
    "format_figure",
    "format_measurement",
    "format_margin",
    "format_table",
    "summary",
    "summary_line",
    "metadata",
    "to_json",
    "to_markdown",
    "rst_to_markdown",
    "write_json",
    "write_markdown",
]

_REL_SYMBOL = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}


# ---- words and numbers --------------------------------------------------------------------------------------
def is_error(v: Verdict) -> bool:
    """Whether the check crashed (``run_check`` turns an exception into a failed verdict with an ``error:`` note)."""
    return (not v.result.holds) and v.result.note.startswith("error:")


def verdict_word(v: Verdict) -> str:
    """``holds``, ``FAILS`` or ``ERROR``."""
    if is_error(v):
        return "ERROR"
    return "holds" if v.holds else "FAILS"


def control_word(v: Verdict) -> str:
    """``failed (ok)``, ``HELD (defect)`` or ``not run``."""
    if is_error(v) or v.control.note == "not run":
        return "not run"
    return "failed (ok)" if v.control_failed else "HELD (defect)"


def format_figure(x: Any) -> str:
    """A number in 4 significant digits (integers as integers); ``nan``/``inf`` spelled out."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f == int(f) and abs(f) < 1e6:
        return str(int(f))
    short = f"{f:.4g}"
    if float(short) == int(float(short)):  # e.g. a ratio 1.0000001: do not print it as the integer 1
        return f"{f:.8g}"
    return short


def format_measurement(m: Measurement | dict) -> str:
    """``figure ≤ bound`` (the relation the figure is held to)."""
    if isinstance(m, dict):
        fig, bound, rel = m.get("figure"), m.get("bound"), m.get("relation", "<=")
    else:
        fig, bound, rel = m.figure, m.bound, m.relation
    if isinstance(bound, float) and math.isnan(bound):
        return format_figure(fig)
    return f"{format_figure(fig)} {_REL_SYMBOL.get(rel, rel)} {format_figure(bound)}"


def format_margin(m: Any) -> str:
    """A margin in decades for the table: ``4.0 dec`` (room of 10^4), ``+0.08%`` (a close call, ratio within a
    factor 2), ``exact`` (a zero figure against a non-zero bound), ``n/a`` (no meaningful ratio, e.g. a count 0 <= 0);
    negative when the assertion fails."""
    if m is None:
        return "n/a"
    f = float(m)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "exact" if f > 0 else "-inf"
    if abs(f) >= 0.3:
        return f"{f:.1f} dec"
    return f"{(10.0**f - 1.0) * 100:+.2g}%"


def _clip(s: str, width: int) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def format_table(verdicts: Sequence[Verdict], *, claim_width: int = 56) -> str:
    """Plain-text table: id, claim, measured vs bound, margin (the closest call over the check's parts), verdict,
    control, seconds (fixed width, pipe-safe)."""
    header = ("id", "claim", "measured vs bound", "margin", "verdict", "control", "s")
    rows = [
        (
            v.id,
            _clip(v.claim, claim_width),
            format_measurement(v.result) if not is_error(v) else _clip(v.result.note, 40),
            format_margin(v.result.worst_margin) if not is_error(v) else "",
            verdict_word(v),
            control_word(v),
            f"{v.seconds:.1f}",
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    align = ["<", "<", "<", ">", "<", "<", ">"]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def summary(verdicts: Sequence[Verdict]) -> dict:
    """Counts: checks, ok, failed (assertion did not hold), errors, controls that held (defects)."""
    errors = sum(is_error(v) for v in verdicts)
    return {
        "checks": len(verdicts),
        "ok": sum(v.ok for v in verdicts),
        "failed": sum((not v.holds) and not is_error(v) for v in verdicts),
        "errors": errors,
        "controls_held": sum((not is_error(v)) and (not v.control_failed) for v in verdicts),
        "seconds": round(sum(v.seconds for v in verdicts), 3),
    }


def summary_line(verdicts: Sequence[Verdict]) -> str:
    s = summary(verdicts)
    verdict = "ALL OK" if s["ok"] == s["checks"] and s["checks"] > 0 else "NOT OK"
    return (
        f"{verdict}: {s['checks']} checks, {s['ok']} ok, {s['failed']} failed, {s['errors']} errors, "
        f"{s['controls_held']} controls held (defects); {s['seconds']:.1f} s"
    )


# ---- metadata -------------------------------------------------------------------------------------------------
def _version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception:  # noqa: BLE001 - an absent optional backend is reported as None
        return None


def metadata(ctx: Context, *, argv: Sequence[str] | None = None, date: str | None = None) -> dict:
    """Run metadata: context, versions, platform and the UTC date (ISO 8601)."""
    versions = {"python": platform.python_version()}
    for mod in ("linnet", "numpy", "scipy", "sympy", "array_api_compat", "array_api_strict"):
        versions[mod] = _version(mod)
    if ctx.backend == "cupy":  # pragma: no cover - GPU only
        versions["cupy"] = _version("cupy")
    return {
        "backend": ctx.backend,
        "dtype": ctx.dtype,
        "seed": int(ctx.seed),
        "scale": ctx.scale,
        "date": date or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "versions": versions,
        "platform": platform.platform(),
        "argv": list(sys.argv[1:] if argv is None else argv),
    }


# ---- JSON -----------------------------------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    """Plain JSON types; non-finite floats become strings ("nan", "inf") so the document stays standard JSON."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and getattr(x, "shape", None) == ():  # NumPy (or other backend) scalar
        x = x.item()
    if isinstance(x, (bool, str)) or x is None:
        return x
    if isinstance(x, int):
        return int(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f if math.isfinite(f) else format_figure(f)


def to_json(verdicts: Sequence[Verdict], meta: dict, *, tracebacks: dict | None = None) -> dict:
    """The JSON document: ``{"meta", "summary", "checks": [Verdict.as_dict() + verdict words]}``."""
    checks = []
    for v in verdicts:
        d = v.as_dict()
        d["verdict"] = verdict_word(v)
        d["control_verdict"] = control_word(v)
        if tracebacks and v.id in tracebacks:
            d["traceback"] = tracebacks[v.id]
        checks.append(d)
    return _jsonable({"meta": meta, "summary": summary(verdicts), "checks": checks})


def write_json(path: str, doc: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, allow_nan=False)
        fh.write("\n")


# ---- Markdown -------------------------------------------------------------------------------------------------
def _md(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def statement(check: Check | None) -> str:
    """The theorem statement of a check: its class docstring, else its module docstring (dedented)."""
    if check is None:
        return ""
    doc = type(check).__doc__
    if not doc or doc == Check.__doc__:
        doc = sys.modules.get(type(check).__module__).__doc__ if type(check).__module__ in sys.modules else ""
    return textwrap.dedent(doc or "").strip()


_RST_MATH = re.compile(r":math:`([^`]*)`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_+")
_RST_LITERAL = re.compile(r"``([^`]+)``")
_RST_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr):`~?([^`]+)`")


def rst_to_markdown(text: str) -> str:
    """The reStructuredText of a check's docstring as Markdown with TeX math (GitHub and most viewers render
    ``$...$`` and ``$$...$$``): inline math, ``.. math::`` blocks, links, literals and Sphinx roles."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(".. math::"):
            body = [line.strip()[len(".. math::") :].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                body.append(lines[i].strip())
                i += 1
            expr = " ".join(b for b in body if b)
            out += ["", f"$${expr}$$", ""]
            continue
        line = _RST_MATH.sub(lambda m: f"${m.group(1)}$", line)
        line = _RST_LINK.sub(lambda m: f"[{m.group(1)}]({m.group(2)})", line)
        line = _RST_ROLE.sub(lambda m: f"`{m.group(1)}`", line)
        line = _RST_LITERAL.sub(lambda m: f"`{m.group(1)}`", line)
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def _details_rows(details: dict) -> list[str]:
    rows = []
    for name, d in details.items():
        if isinstance(d, dict) and "figure" in d:
            holds = d.get("holds")
            word = "" if holds is None else ("holds" if holds else "fails")
            rows.append(f"| {_md(name)} | {_md(format_measurement(d))} | {word} | {_md(d.get('note', ''))} |")
        else:
            rows.append(f"| {_md(name)} | {_md(format_figure(d) if not isinstance(d, (dict, list)) else d)} | | |")
    return rows


def _measurement_md(m: Measurement) -> list[str]:
    out = [f"- figure: `{format_measurement(m)}` ({'holds' if m.holds else 'does not hold'})"]
    if m.note:
        out.append(f"- note: {m.note}")
    if m.details:
        out += ["", "| part | measured vs bound | verdict | note |", "|---|---|---|---|", *_details_rows(m.details)]
    return out


def to_markdown(verdicts: Sequence[Verdict], meta: dict, checks: Iterable[Check] = ()) -> str:
    """Markdown report: metadata, summary table, then per check statement, source, status, figures, control."""
    by_id = {c.id: c for c in checks}
    v_ = meta.get("versions", {})
    out = [
        "# proofs_check report",
        "",
        f"{summary_line(verdicts)}",
        "",
        f"- date: {meta.get('date')}",
        f"- backend: `{meta.get('backend')}`, dtype: `{meta.get('dtype')}`, seed: {meta.get('seed')}, "
        f"scale: `{meta.get('scale')}`",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v_.items() if val is not None),
        "",
        "| id | claim | measured vs bound | margin | verdict | control | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        fig = format_measurement(v.result) if not is_error(v) else v.result.note
        out.append(
            f"| `{v.id}` | {_md(v.claim)} | {_md(fig)} | {format_margin(v.result.worst_margin)} | {verdict_word(v)} "
            f"| {control_word(v)} | {v.seconds:.1f} |"
        )
    for v in verdicts:
        out += ["", f"## `{v.id}`: {v.title}", ""]
        st = statement(by_id.get(v.id))
        if st:
            out += [rst_to_markdown(st), ""]
        out += [
            f"- **claim:** {v.claim}",
            f"- **source:** {v.source}",
            f"- **status:** {v.status}",
            f"- **verdict:** {verdict_word(v)}; **control:** {control_word(v)}; {v.seconds:.2f} s",
            "",
            "### Measured",
            "",
            *_measurement_md(v.result),
            "",
            "### Negative control",
            "",
            f"{v.control_description}",
            "",
            *_measurement_md(v.control),
        ]
    return "\n".join(out) + "\n"


def write_markdown(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
