"""Escaping: strings that came from DNS (or any outside source) made safe where they are shown."""

from __future__ import annotations

import html
import re
import unicodedata

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def escape_text(text: str) -> str:
    """Return ``text`` safe for a terminal or a one-line message: control characters are escaped.

    Newlines, ANSI escape sequences and other control or format characters (bidi overrides
    included) become ``\\xNN`` / ``\\uNNNN``, so DNS data can neither break a line nor
    steer a terminal.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def escape_markdown(text: str) -> str:
    """Return ``text`` safe inside Markdown: control characters and Markdown/HTML syntax escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escape_text(text))


def escape_html(text: str) -> str:
    """Return ``text`` safe inside HTML or XML, attributes included."""
    return html.escape(escape_text(text), quote=True)
