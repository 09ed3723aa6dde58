"""Domain names: IDNA normalization, validation, and reading watchlist files."""

from __future__ import annotations

import csv
import encodings.idna
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import dns.exception
import dns.name

# IDNA 2003 is what dnspython can always do (IDNA 2008 needs a recent `idna` package), so
# A-labels never depend on what happens to be installed.  The four characters below are the
# ones IDNA 2003 and IDNA 2008 encode differently (faß.de is xn--fa-hia.de under 2008 but
# fass.de under 2003): rather than silently watch another domain, such names are refused and
# the user writes the A-label.
_DEVIATIONS = {"\u00df": "ß", "\u03c2": "ς", "\u200c": "ZWNJ", "\u200d": "ZWJ"}
_DOTS = ("\u3002", "\uff0e", "\uff61")
_LDH_ = re.compile(r"[a-z0-9_-]+")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_COMMENT = re.compile(r"(^|\s)#.*")
# The first line that is not blank, up to its "\n" (\s is what str.strip strips), found
# without splitting the file: the reader splits it once, and it may hold a million lines.
_FIRST_LINE = re.compile(r"\s*([^\n]*)")
_PLAIN_LABEL = r"(?!xn--)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_PLAIN_NAME = re.compile(rf"{_PLAIN_LABEL}(?:\.{_PLAIN_LABEL})*\.?")
_MAX_NAME = 253
# Controls, separators and surrogates never appear in a U-label (ZWNJ, a format char, may).
_NOT_IN_LABELS = {"Cc", "Cs", "Zs", "Zl", "Zp"}
_MAX_LABEL = 63

CITIZEN_LAB_HEADER = "url,category_code,category_description,date_added,source,notes"


class ListedName(NamedTuple):
    """One line of a watchlist file that names a host: where, what it says, and the host.

    ``text`` is the line (or the CSV's url cell) as written, a URL or a name; ``name`` is the
    host it stands for, not yet validated (pass it to `to_alabel`).
    """

    line: int
    text: str
    name: str


class WatchlistFile(NamedTuple):
    """What a watchlist file lists, in file order.

    ``names`` keeps every line that names a host, repeats included (the caller merges them);
    ``addresses`` holds the lines whose host is an IP address, which a watchlist of names
    skips (a Citizen Lab list legitimately holds URLs such as http://8.8.8.8/).
    """

    names: list[ListedName]
    addresses: list[ListedName]


class WatchlistFileError(ValueError):
    """A line of a watchlist file that cannot be read; ``line`` is its 1-based number."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def to_alabel(text: str) -> str:
    """Return *text* as a lowercase IDNA A-label name without the trailing dot.

    "кремль.рф" gives "xn--e1ajeds9e.xn--p1ai"; "WWW.Example.COM." gives "www.example.com".
    Raises ValueError with a short reason when *text* is not a domain name: empty labels,
    a label over 63 or a name over 253 octets, characters other than letters, digits, hyphen
    and underscore, a label that starts or ends with a hyphen, an invalid xn-- label, an IP
    address, whitespace, a URL or a path.
    """
    if not text:
        raise ValueError("empty name")
    plain = _PLAIN_NAME.fullmatch(text)
    if plain is not None and len(text) <= _MAX_NAME and not _DIGITS_AND_DOTS.fullmatch(text):
        # The common case, fast at a million names: lowercase LDH labels of 1 to 63 octets
        # that neither start nor end with a hyphen and are not xn-- labels.
        return text.rstrip(".")
    if any(c.isspace() for c in text):
        raise ValueError("contains whitespace")
    if "://" in text:
        raise ValueError("is a URL, not a name")
    if "/" in text:
        raise ValueError("contains a path")
    if "\\" in text:
        raise ValueError("contains a backslash")
    for char, shown in _DEVIATIONS.items():
        if char in text:
            raise ValueError(
                f"contains {shown}, which IDNA 2003 and 2008 encode differently: "
                "write the name's A-label (xn--...)"
            )
    for dot in _DOTS:
        text = text.replace(dot, ".")
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("empty name")
    labels = [_label_to_ascii(label) for label in text.split(".")]
    alabel = ".".join(labels)
    if len(alabel) > _MAX_NAME:
        raise ValueError(f"name longer than {_MAX_NAME} octets")
    if _DIGITS_AND_DOTS.fullmatch(alabel):
        raise ValueError("is an IP address, not a name")
    # dnspython has the last word: whatever it would refuse to put on the wire is refused here.
    try:
        name = dns.name.from_unicode(alabel, idna_codec=dns.name.IDNA_2003)
    except dns.exception.DNSException as e:
        raise ValueError(str(e)) from e
    return name.to_text(omit_final_dot=True)


def _label_to_ascii(label: str) -> str:
    """Return one label as a validated lowercase A-label; raise ValueError if it is not one."""
    if not label:
        raise ValueError("empty label")
    if label.isascii():
        ascii_label = label.lower()
    else:
        try:
            ascii_label = encodings.idna.ToASCII(label).decode("ascii").lower()
        except UnicodeError as e:
            if len(label.encode("punycode")) + len("xn--") > _MAX_LABEL:
                raise ValueError(f"label longer than {_MAX_LABEL} octets") from e
            raise ValueError(f"label {label!r} is not valid IDNA ({e})") from e
    if len(ascii_label) > _MAX_LABEL:
        raise ValueError(f"label longer than {_MAX_LABEL} octets")
    bad = next((c for c in ascii_label if not _LDH_.fullmatch(c)), None)
    if bad is not None:
        raise ValueError(f"invalid character {bad!r} in label {label!r}")
    # A hyphen at either end is checked on the Unicode form: an A-label starts with "xn--"
    # whatever its U-label looks like.
    ulabel = _label_to_unicode(ascii_label)
    if ulabel.startswith("-") or ulabel.endswith("-"):
        raise ValueError(f"label {label!r} starts or ends with a hyphen")
    return ascii_label


def _label_to_unicode(ascii_label: str) -> str:
    """Return the U-label of an xn-- label (others unchanged); raise ValueError if invalid."""
    if not ascii_label.startswith("xn--"):
        return ascii_label
    # Plain Punycode, not IDNA 2003's ToUnicode: an IDNA 2008 A-label such as xn--fa-hia
    # (faß) does not survive IDNA 2003's round trip, yet it is a real, registrable name.
    try:
        ulabel = ascii_label[4:].encode("ascii").decode("punycode")
        round_trip = ulabel.encode("punycode").decode("ascii")
    except UnicodeError as e:
        raise ValueError(f"label {ascii_label!r} is not a valid xn-- label") from e
    if (
        round_trip != ascii_label[4:]
        or ulabel.isascii()
        or any(unicodedata.category(c) in _NOT_IN_LABELS for c in ulabel)
        # Both IDNA versions map to lowercase NFC before encoding, so nothing else decodes.
        or ulabel != unicodedata.normalize("NFC", ulabel.lower())
        or any(c.isascii() and not _LDH_.fullmatch(c) for c in ulabel)
    ):
        raise ValueError(f"label {ascii_label!r} is not a valid xn-- label")
    return ulabel


def to_display(alabel: str) -> str:
    """Return the Unicode form of an A-label name ("xn--p1ai" gives "рф").

    A name without xn-- labels comes back unchanged.  Raises ValueError when an xn-- label
    does not decode to a valid U-label.
    """
    return ".".join(_label_to_unicode(label) for label in alabel.split("."))


def _url_host(text: str) -> str:
    """Return the host of a URL (or of "host/path"), lowercase; raise ValueError if it has none."""
    try:
        host = urlsplit(text if "://" in text else "//" + text).hostname
    except ValueError as e:
        raise ValueError(f"cannot parse URL: {e}") from e
    if not host:
        raise ValueError("URL has no host")
    return host


def _is_ip(host: str) -> bool:
    """Whether a host is an IP address: what `to_alabel` calls one (digits and dots, as
    inet_aton and browsers read "1234" too), or an IPv6 address."""
    if host[:1].isdigit() and _DIGITS_AND_DOTS.fullmatch(host):
        return True
    if ":" not in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_from_url(text: str) -> str | None:
    """Return the host name of a URL, without userinfo or port.

    "https://www.bbc.com/russian" gives "www.bbc.com".  Returns None when the host is an IP
    address (digits and dots, or IPv6); raises ValueError when the URL cannot be parsed or has
    no host.  The host is not validated: pass it to `to_alabel`.
    """
    host = _url_host(text)
    return None if _is_ip(host) else host


def read_watchlist_file(path: Path) -> WatchlistFile:
    """Return the names and the IP-address lines of a watchlist file, in file order.

    The file is plain text (one name a line, "#" comments, blank lines; a URL stands for its
    host) or a Citizen Lab test-lists CSV, recognized by its header line, whose url column
    gives the host.  Both formats follow one rule: a line whose host is an IP address (bare,
    or in a URL) goes to ``addresses``; every other goes to ``names``, repeats included.
    The names are not validated: pass them to `to_alabel`.  Raises OSError when the file
    cannot be read, UnicodeDecodeError when it is not UTF-8, and WatchlistFileError for a
    line that cannot be parsed.
    """
    text = path.read_text(encoding="utf-8-sig")
    first = _FIRST_LINE.match(text)[1].strip()  # type: ignore[index]  # it matches anything
    found = WatchlistFile(names=[], addresses=[])
    if first.lower() == CITIZEN_LAB_HEADER:
        _read_citizen_lab(text, found)
    else:
        _read_plain(text, found)
    return found


def _read_plain(text: str, found: WatchlistFile) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        # "#" opens a comment only at the start or after whitespace, so a URL's fragment stays.
        line = _COMMENT.sub("", raw).strip() if "#" in raw else raw.strip()
        if not line:
            continue
        _list(found, number, line, _url_host if "/" in line else None)


def _list(
    found: WatchlistFile, number: int, text: str, host_of: Callable[[str], str] | None
) -> None:
    """Add a line's name (or, for an IP address, the line as skipped) to ``found``; ``host_of``
    takes the host out of a URL. Raises WatchlistFileError for a URL without one."""
    host = text
    if host_of is not None:
        try:
            host = host_of(text)
        except ValueError as e:
            raise WatchlistFileError(str(e), number) from e
    listed = ListedName(number, text, host)
    (found.addresses if _is_ip(host) else found.names).append(listed)


def _read_citizen_lab(text: str, found: WatchlistFile) -> None:
    reader = csv.reader(text.splitlines(keepends=True))
    header_seen = False
    start = 1
    try:
        for row in reader:
            # line_num is where a record ends; a quoted note may span lines.
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if not header_seen:
                header_seen = True
                continue
            url = row[0].strip()
            if not url:
                raise WatchlistFileError("empty url column", number)
            _list(found, number, url, _url_host)
    except csv.Error as e:
        raise WatchlistFileError(f"bad CSV: {e}", reader.line_num) from e
