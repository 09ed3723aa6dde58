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


_INVISIBLE = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))


def escape_json(text: str) -> str:
    """Return JSON text with every control, format (bidi) or line-separator character written
    as a \\uXXXX escape: the same document to a parser, and harmless on a terminal."""
    if text.isascii() and "\x7f" not in text:
        return text  # json.dumps escaped the other ASCII controls already
    out = []
    for ch in text:
        if ord(ch) > 0x7E and unicodedata.category(ch) in _INVISIBLE:
            code = ord(ch)
            if code > 0xFFFF:  # a surrogate pair, as JSON writes it
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
