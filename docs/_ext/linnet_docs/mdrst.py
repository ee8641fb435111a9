"""Markdown (CommonMark + ``$``/``$$`` maths) to reStructuredText, for the demos' prose cells.

sphinx-gallery renders a script's text blocks as reStructuredText, while linnet's demos are percent-format
scripts whose prose cells are Markdown (so that they read well as notebooks). This converter covers what the
demos use: headings, paragraphs, emphasis, inline code, links, inline and display maths, bullet and numbered
lists, fenced code and block quotes. Anything else raises ``ValueError`` naming the construct, so a new kind of
Markdown shows up as a build error rather than as garbled text.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.dollarmath import dollarmath_plugin

__all__ = ["md_to_rst"]

_UNDERLINE = {1: "=", 2: "-", 3: "~", 4: "^"}
_ESCAPE = re.compile(r"([\\*`|_])")


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").use(dollarmath_plugin, double_inline=True)


def _escape(text: str) -> str:
    return _ESCAPE.sub(r"\\\1", text)


def _inline(node: SyntaxTreeNode) -> str:
    """The reStructuredText of an ``inline`` node: a run of text and inline markup."""
    pieces: list[tuple[bool, str]] = []  # (is_markup, text)
    for child in node.children:
        pieces.extend(_inline_piece(child))
    out = []
    for i, (markup, text) in enumerate(pieces):
        if markup:
            # reStructuredText needs inline markup delimited by whitespace; an escaped space joins it to a word
            if out and out[-1] and not out[-1][-1].isspace():
                out.append("\\ ")
            out.append(text)
            nxt = pieces[i + 1][1] if i + 1 < len(pieces) else ""
            if nxt and not nxt[0].isspace():
                out.append("\\ ")
        else:
            out.append(text)
    return "".join(out)


def _inline_piece(node: SyntaxTreeNode) -> list[tuple[bool, str]]:
    t = node.type
    if t == "text":
        return [(False, _escape(node.content))]
    if t == "softbreak":
        return [(False, "\n")]
    if t == "hardbreak":
        return [(False, "\n\n")]
    if t == "code_inline":
        return [(True, f"``{node.content}``")]
    if t == "math_inline":
        return [(True, f":math:`{node.content.strip()}`")]
    if t == "math_inline_double":
        return [(True, f":math:`\\displaystyle {node.content.strip()}`")]
    if t in ("strong", "em"):
        inner = "".join(text for _, text in (p for c in node.children for p in _inline_piece(c)))
        mark = "**" if t == "strong" else "*"
        if any(c.type != "text" for c in node.children):
            return [(False, inner)]  # reStructuredText cannot nest markup: keep the content, drop the emphasis
        return [(True, f"{mark}{inner}{mark}")]
    if t == "link":
        label = "".join(text for _, text in (p for c in node.children for p in _inline_piece(c)))
        return [(True, f"`{label} <{node.attrs['href']}>`__")]
    raise ValueError(f"Markdown construct {t!r} is not supported by the demo converter")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.split("\n"))


def _blocks(nodes) -> list[str]:
    out = []
    for node in nodes:
        out.append(_block(node))
    return out


def _block(node: SyntaxTreeNode) -> str:
    t = node.type
    if t == "heading":
        title = _inline(node.children[0])
        level = int(node.tag[1])
        return f"{title}\n{_UNDERLINE[level] * len(title)}"
    if t == "paragraph":
        return _inline(node.children[0])
    if t == "math_block":
        return ".. math::\n\n" + _indent(node.content.strip(), "   ")
    if t in ("fence", "code_block"):
        lang = (node.info or "").strip() or "text"
        return f".. code-block:: {lang}\n\n" + _indent(node.content.rstrip("\n"), "   ")
    if t == "blockquote":
        return _indent("\n\n".join(_blocks(node.children)), "   ")
    if t in ("bullet_list", "ordered_list"):
        items = []
        start = int(node.attrs.get("start", 1)) if t == "ordered_list" else 1
        for k, item in enumerate(node.children):
            marker = "- " if t == "bullet_list" else f"{start + k}. "
            body = "\n\n".join(_blocks(item.children))
            lines = body.split("\n")
            pad = " " * len(marker)
            items.append(marker + lines[0] + ("\n" + _indent("\n".join(lines[1:]), pad) if len(lines) > 1 else ""))
        return "\n".join(items)
    if t == "hr":
        return "----"
    raise ValueError(f"Markdown construct {t!r} is not supported by the demo converter")


def md_to_rst(markdown: str) -> str:
    """reStructuredText for a Markdown text (see the module docstring for what is supported)."""
    tree = SyntaxTreeNode(_parser().parse(markdown))
    return "\n\n".join(_blocks(tree.children)).strip() + "\n"
