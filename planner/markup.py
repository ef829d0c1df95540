"""Escaping for text that reaches Markdown (PLAN.md, PR comments) from specs and catalogs.

Identifiers (regions, providers, sites, instance types, spec and model names) are restricted to identifier
characters when they are read, so they render as themselves; free text (a catalog row's display name, a source,
a reason that quotes a value) goes through :func:`md` wherever it is rendered, so it can never add a heading, a
link, an image (a tracking pixel), raw HTML or an @mention to a pull request.

Sources: CommonMark's backslash escapes (https://spec.commonmark.org/0.31.2/#backslash-escapes) and GitHub's
rendering of mentions, which backslash escapes do not stop (an HTML entity does).
"""

from __future__ import annotations

import re

__all__ = ["md", "md_code"]

_SPECIAL = re.compile(r"([\\`*\[\]()!|#])")
"""What can start emphasis, a code span, a link or an image, break a table cell or a heading."""
_ENTITIES = {"<": "&lt;", "@": "&#64;"}
"""``<`` opens raw HTML; ``@`` a mention. (``>`` and ``&`` alone cannot open either, so they stay readable.)"""


def md(text: object) -> str:
    """``text`` as inert Markdown inline text: one line, the punctuation that makes links, images, emphasis,
    code, table cells and headings backslash-escaped, ``<`` and ``@`` as HTML entities (no raw HTML, no mentions),
    control characters dropped."""
    s = " ".join(str(text).split())
    s = _SPECIAL.sub(r"\\\1", "".join(ch for ch in s if ch.isprintable()))
    return "".join(_ENTITIES.get(ch, ch) for ch in s)  # after the escapes: entities are not escaped again


def md_code(text: object) -> str:
    """``text`` as an inline code span: backticks removed (a code span cannot escape them), one line."""
    s = " ".join(str(text).split()).replace("`", "'")
    return f"`{''.join(ch for ch in s if ch.isprintable())}`"
