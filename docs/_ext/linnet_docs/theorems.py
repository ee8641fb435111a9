"""Theorem pages: one page per numbered section of the specification, generated from its Markdown at build time.

``docs/THEOREMS.md`` (§0–§14) and ``docs/THEOREMS2.md`` (§15 on) are split on their ``## N.`` headings. Each
section becomes ``generated/theorems/sNN.md`` (MyST Markdown, rendered with ``$`` maths) that opens with the
section's status labels and links to what executes it:

- its checks in :mod:`proofs_check`, discovered through the registry and matched by the section number of the
  check id (``s05b-saddles`` belongs to §5), with the verdict of this build's ``python -m proofs_check`` run;
- its figures: modules of :mod:`figures` whose ``section`` attribute (an int or a sequence of ints) names it,
  or, without that attribute, whose ``SOURCE`` names it as ``§N`` (``§5-§6`` is a range);
- its demos: the demos whose text names it as ``§N``.

What precedes the first numbered section (errata, status definitions) and what follows the last one (appendices,
verification logs, sources) go on one extra page per file, so no part of the specification is left out.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

__all__ = [
    "Section",
    "STATUS_LABELS",
    "split_spec",
    "status_labels",
    "section_numbers",
    "check_section",
    "write_theorem_pages",
]

STATUS_LABELS = ("CONFIRMED", "DERIVED+VERIFIED", "UNCONFIRMED")
_NUMBERED = re.compile(r"^## (\d+)\.\s*(.*)$", re.M)
_ANY_H2 = re.compile(r"^## ", re.M)
_LABEL = re.compile(r"(?<![A-Z+])(DERIVED\+VERIFIED|UNCONFIRMED|CONFIRMED)(?![A-Z])")
_SEC_REF = re.compile(r"§\s*(\d+)(?:\s*[-–]\s*§?\s*(\d+))?")
_CHECK_ID = re.compile(r"^s(\d+)")


@dataclasses.dataclass(frozen=True)
class Section:
    """One numbered section of a specification file: number, heading text and Markdown body."""

    number: int
    title: str
    body: str
    source: str


def _strip_rules(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = text.strip("\n")
    while text.endswith("---"):
        text = text[:-3].rstrip()
    while text.startswith("---"):
        text = text[3:].lstrip()
    return text


def split_spec(text: str, source: str) -> tuple[str, list[Section], str]:
    """``(preamble, sections, appendix)`` of one specification file, split on its ``## N.`` headings."""
    heads = list(_NUMBERED.finditer(text))
    if not heads:
        raise ValueError(f"{source}: no '## N.' section headings found")
    sections = []
    appendix = ""
    for k, h in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        chunk = text[h.end() : end]
        if k + 1 == len(heads):  # the last numbered section ends at the next level-2 heading
            nxt = _ANY_H2.search(chunk)
            if nxt:
                appendix = chunk[nxt.start() :]
                chunk = chunk[: nxt.start()]
        sections.append(Section(int(h.group(1)), h.group(2).strip(), _strip_rules(chunk), source))
    return _strip_rules(text[: heads[0].start()]), sections, _strip_rules(appendix)


def status_labels(body: str) -> tuple[list[str], list[str]]:
    """The status labels a section uses (in canonical order) and its ``**Status...**`` paragraphs."""
    paragraphs = [
        m.group(0).strip() for m in re.finditer(r"\*\*Status.*(?:\n(?!\s*\n|\s*[-*] |#|\*\*).+)*", body, re.M)
    ]
    found = set(_LABEL.findall("\n".join(paragraphs) or body))
    return [s for s in STATUS_LABELS if s in found], paragraphs


def section_numbers(text: str) -> set[int]:
    """Section numbers named in a text as ``§N`` or ``§N-§M``."""
    out: set[int] = set()
    for m in _SEC_REF.finditer(text or ""):
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        out.update(range(a, b + 1) if b >= a else [a])
    return out


def check_section(check_id: str) -> int | None:
    """The section number of a check id (``s05b-saddles`` -> 5), ``None`` if it has none."""
    m = _CHECK_ID.match(check_id)
    return int(m.group(1)) if m else None


def figure_sections(module) -> set[int]:
    """Sections a figure module illustrates: its ``section`` attribute, else the ``§N`` in its ``SOURCE``."""
    sec = getattr(module, "section", None)
    if sec is not None:
        return {int(sec)} if isinstance(sec, int) else {int(s) for s in sec}
    return section_numbers(getattr(module, "SOURCE", ""))


def _demote(body: str) -> str:
    """Headings one level up (the section's ``##`` heading is the page title)."""
    return re.sub(r"^(#{3,6}) ", lambda m: m.group(1)[1:] + " ", body, flags=re.M)


def _verdict_line(v: dict) -> str:
    from proofs_check.report import format_measurement

    secs = f"{float(v.get('seconds', 0.0)):.1f} s"
    return f"**{v['verdict']}** ({format_measurement(v['result'])}), control {v['control_verdict']}, {secs}"


def _check_block(checks, verdicts: dict | None) -> list[str]:
    lines = []
    for c in checks:
        mod = type(c).__module__
        line = f"- **Check** [`{c.id}`](#check-{c.id}): {c.title}. Status: **{c.status}**. "
        line += "Its module failed to import." if "<locals>" in type(c).__qualname__ else f"Module {{py:mod}}`{mod}`."
        if verdicts is not None:
            v = verdicts.get(c.id)
            line += f" This build's quick run: {_verdict_line(v)}." if v else " Not run in this build."
        lines.append(line)
    return lines


def _page(sec: Section, checks, figs, images, demos, verdicts) -> str:
    labels, status_paras = status_labels(sec.body)
    out = [f"(theorem-s{sec.number})=", f"# §{sec.number}. {sec.title}", ""]
    badge = " · ".join(f"**{s}**" for s in labels) or "no status label"
    out += ["```{admonition} Status: " + badge.replace("**", ""), ":class: tip", ""]
    out += status_paras or ["This section carries no status line."]
    out += ["```", ""]
    links = _check_block(checks, verdicts)
    for f in figs:
        name = f.__name__.split(".")[-1]
        links.append(f"- **Figure** {{ref}}`figure-{name}`")
    for d in demos:
        links.append(f"- **Demo** {{ref}}`sphx_glr_auto_demos_{d.stem}.py`")
    if not links:
        links = ["- No check, figure or demo names this section yet."]
    out += ["**Executed by**", ""] + [x for x in links if x] + ["", "---", ""]
    for f, image in zip(figs, images):
        out += [f"```{{figure}} {image}", f":alt: {getattr(f, 'TITLE', '')}", "", getattr(f, "CAPTION", ""), "```", ""]
    out += [_demote(sec.body), ""]
    source = "docs/THEOREMS.md" if sec.source == "THEOREMS.md" else f"docs/{sec.source}"
    out += [f"*(From `{source}`, section {sec.number}, rendered at build time.)*", ""]
    for c in checks:
        mod = type(c).__module__
        cls = type(c).__qualname__
        out += [f"(check-{c.id})=", f"## Check `{c.id}`", ""]
        if "<locals>" in cls:  # a module that failed to import is registered as a failing stand-in check
            out += [f"The check module failed to import: `{c.claim}`", ""]
            continue
        out += ["```{eval-rst}", f".. automodule:: {mod}", "   :no-members:", ""]
        out += [f".. autoclass:: {mod}.{cls}", "   :no-members:", "```", ""]
    return "\n".join(out)


def write_theorem_pages(root: pathlib.Path, docs: pathlib.Path, out_dir: pathlib.Path, verdicts: dict | None):
    """Write one page per numbered section into ``out_dir`` and return the section list (for the index)."""
    import importlib

    from proofs_check import all_checks

    from .demos import demo_paths, demo_sections
    from .figures_gallery import figure_image

    figures = importlib.import_module("figures")
    fig_mods = figures.all_figures()
    checks = all_checks()
    demos = demo_paths(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.md"):  # no stale page of a section that is gone
        old.unlink()
    all_sections: list[Section] = []
    extras = []
    for fname in ("THEOREMS.md", "THEOREMS2.md"):
        path = docs / fname
        if not path.exists():
            continue
        pre, secs, app = split_spec(path.read_text(encoding="utf-8"), fname)
        stem = fname.removesuffix(".md").lower()
        for part, text in (("preamble", pre), ("notes", app)):
            if text.strip():
                extras.append((f"{stem}-{part}", fname, part, text))
        all_sections.extend(secs)
    numbers = [s.number for s in all_sections]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"section numbers repeat across the specification files: {numbers}")
    for sec in all_sections:
        cs = [c for c in checks if check_section(c.id) == sec.number]
        fs = [f for f in fig_mods if sec.number in figure_sections(f)]
        ds = [d for d in demos if sec.number in demo_sections(d)]
        images = [figure_image(docs, out_dir.parent, f) for f in fs]
        (out_dir / f"s{sec.number:02d}.md").write_text(_page(sec, cs, fs, images, ds, verdicts), encoding="utf-8")
    for name, fname, part, text in extras:
        title = f"{fname}: {'preamble and errata' if part == 'preamble' else 'appendices and notes'}"
        body = text if part == "notes" else _demote("### Preamble\n\n" + text)
        body = re.sub(r"^# .*$", lambda m: "#" + m.group(0), body, flags=re.M)  # no second page title
        (out_dir / f"{name}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return all_sections, [e[0] for e in extras]
