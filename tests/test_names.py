"""Tests for monitor.names: IDNA normalization, validation and watchlist files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.names import (
    CITIZEN_LAB_HEADER,
    WatchlistFileError,
    host_from_url,
    read_watchlist_file,
    to_alabel,
    to_display,
)


@pytest.mark.parametrize(
    ("text", "alabel", "display"),
    [
        ("youtube.com", "youtube.com", "youtube.com"),
        ("WWW.Example.COM", "www.example.com", "www.example.com"),
        ("example.com.", "example.com", "example.com"),
        ("кремль.рф", "xn--e1ajeds9e.xn--p1ai", "кремль.рф"),
        ("КРЕМЛЬ.РФ.", "xn--e1ajeds9e.xn--p1ai", "кремль.рф"),
        ("xn--e1ajeds9e.xn--p1ai", "xn--e1ajeds9e.xn--p1ai", "кремль.рф"),
        ("XN--P1AI", "xn--p1ai", "рф"),
        ("bücher.de", "xn--bcher-kva.de", "bücher.de"),
        # An IDNA 2008 A-label IDNA 2003 cannot round-trip is still accepted as written.
        ("xn--fa-hia.de", "xn--fa-hia.de", "faß.de"),
        ("ｅｘａｍｐｌｅ。com", "example.com", "example.com"),
        # The ideographic, full-width and half-width ideographic full stops are dots.
        ("example\u3002com", "example.com", "example.com"),
        ("example\uff0ecom", "example.com", "example.com"),
        ("example\uff61com", "example.com", "example.com"),
        ("кремль\uff0eрф\u3002", "xn--e1ajeds9e.xn--p1ai", "кремль.рф"),
        # The IDNA 2008 A-labels of names with ς, ZWNJ and ZWJ, which IDNA 2003 maps away.
        ("xn--3xab.gr", "xn--3xab.gr", "σς.gr"),
        ("xn--mgba3gch31f060k.com", "xn--mgba3gch31f060k.com", "نامه\u200cای.com"),
        ("XN--10CL1A0B660P.lk", "xn--10cl1a0b660p.lk", "ශ්\u200dරී.lk"),
        ("_dmarc.example.com", "_dmarc.example.com", "_dmarc.example.com"),
        (
            "r3---sn-abc.googlevideo.com",
            "r3---sn-abc.googlevideo.com",
            "r3---sn-abc.googlevideo.com",
        ),
        ("localhost", "localhost", "localhost"),
        ("1.2.3.com", "1.2.3.com", "1.2.3.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com", "a" * 63 + ".com"),
        (
            ".".join(["a" * 63] * 3) + "." + "b" * 61,
            ".".join(["a" * 63] * 3) + "." + "b" * 61,
            None,
        ),
        # 253 octets again, in capitals: not the plain lowercase fast case.
        (
            ".".join(["A" * 63] * 3) + "." + "B" * 61,
            ".".join(["a" * 63] * 3) + "." + "b" * 61,
            None,
        ),
    ],
)
def test_to_alabel_accepts(text: str, alabel: str, display: str | None) -> None:
    assert to_alabel(text) == alabel
    assert to_display(alabel) == (display if display is not None else alabel)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty name"),
        (".", "empty name"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("exa mple.com", "contains whitespace"),
        ("example.com\t", "contains whitespace"),
        ("https://example.com", "is a URL, not a name"),
        ("example.com/path", "contains a path"),
        ("ex\\046ample.com", "contains a backslash"),
        ("1.2.3.4", "is an IP address, not a name"),
        ("1234", "is an IP address, not a name"),
        ("::1", "invalid character ':' in label '::1'"),
        ("example.com:80", "invalid character ':' in label 'com:80'"),
        ("user@example.com", "invalid character '@' in label 'user@example'"),
        ("a!b.com", "invalid character '!' in label 'a!b'"),
        ("-a.com", "label '-a' starts or ends with a hyphen"),
        ("a-.com", "label 'a-' starts or ends with a hyphen"),
        ("-bücher.de", "label '-bücher' starts or ends with a hyphen"),
        ("xn--abc.com", "label 'xn--abc' is not a valid xn-- label"),
        ("xn--zz.com", "label 'xn--zz' is not a valid xn-- label"),
        ("xn--www-.com", "label 'xn--www-' is not a valid xn-- label"),
        ("xn--.com", "label 'xn--' is not a valid xn-- label"),
        # Punycode for "Ü": a U-label is lowercase, so this is no valid A-label.
        ("xn--wca.com", "label 'xn--wca' is not a valid xn-- label"),
        ("aא.com", "label 'aא' is not valid IDNA (Violation of BIDI requirement 2)"),
        ("a" * 64 + ".com", "label longer than 63 octets"),
        ("ü" * 64 + ".com", "label longer than 63 octets"),
        # Invalid and 63 octets as an A-label: the reason is what is wrong, not the length.
        (
            "a" * 54 + "א.com",
            f"label '{'a' * 54}א' is not valid IDNA (Violation of BIDI requirement 2)",
        ),
        ("a" * 55 + "א.com", "label longer than 63 octets"),
        (".".join(["a" * 63] * 4), "name longer than 253 octets"),
        (".".join(["A" * 63] * 3) + "." + "B" * 62, "name longer than 253 octets"),
        ("\u3002", "empty name"),
        ("example\uff0e\uff61com", "empty label"),
        *[
            (
                text,
                f"contains {shown}, which IDNA 2003 and 2008 encode differently: "
                "write the name's A-label (xn--...)",
            )
            for text, shown in [
                ("faß.de", "ß"),
                ("σς.gr", "ς"),
                ("نامه\u200cای.com", "ZWNJ"),
                ("ශ්\u200dරී.lk", "ZWJ"),
            ]
        ],
    ],
)
def test_to_alabel_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        to_alabel(text)
    assert str(caught.value) == reason


def test_to_display_refuses_a_bad_xn_label() -> None:
    with pytest.raises(ValueError, match="not a valid xn-- label"):
        to_display("xn--abc.com")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://www.bbc.com/russian", "www.bbc.com"),
        ("http://www.bbc.com", "www.bbc.com"),
        ("http://user:secret@WWW.Example.com:8080/x?y#z", "www.example.com"),
        ("www.dw.com/ru/", "www.dw.com"),
        ("https://кремль.рф/", "кремль.рф"),
        ("http://1.2.3.4/", None),
        ("http://1234/", None),
        ("http://[2001:db8::1]:8080/", None),
    ],
)
def test_host_from_url(url: str, host: str | None) -> None:
    assert host_from_url(url) == host


@pytest.mark.parametrize(
    ("url", "reason"),
    [("http:///path", "URL has no host"), ("http://[::1/", "cannot parse URL: Invalid IPv6 URL")],
)
def test_host_from_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        host_from_url(url)
    assert str(caught.value) == reason


PLAIN = """\
# Names to watch, one a line.
youtube.com

  bbc.com   # a comment after the name
https://www.dw.com/ru/top-stories/s-9119#section
кремль.рф
youtube.com
http://1.2.3.4/
2001:db8::1
"""

CITIZEN_LAB = """\
url,category_code,category_description,date_added,source,notes
https://www.bbc.com/russian,NEWS,News Media,2014-04-15,citizenlab,
http://www.bbc.com/news,NEWS,News Media,2014-04-15,citizenlab,
https://meduza.io/,NEWS,News Media,2017-01-01,,"a note
over two lines"
http://8.8.8.8/,ANON,Anonymization,2017-01-01,,
https://User@Rferl.org:443/,NEWS,News Media,2017-01-01,,

https://кремль.рф/,GOVT,Government,2020-01-01,,
https://[2001:4860:4860::8888]/dns-query,ANON,Anonymization,2020-01-01,,
"""

# (line, text, name) of each line that names a host: repeats stay, for the caller to merge.
CITIZEN_LAB_NAMES = [
    (2, "https://www.bbc.com/russian", "www.bbc.com"),
    (3, "http://www.bbc.com/news", "www.bbc.com"),
    (4, "https://meduza.io/", "meduza.io"),
    (7, "https://User@Rferl.org:443/", "rferl.org"),
    (9, "https://кремль.рф/", "кремль.рф"),
]
CITIZEN_LAB_ADDRESSES = [
    (6, "http://8.8.8.8/", "8.8.8.8"),
    (10, "https://[2001:4860:4860::8888]/dns-query", "2001:4860:4860::8888"),
]


def shifted(listed: list[tuple[int, str, str]], by: int) -> list[tuple[int, str, str]]:
    return [(line + by, text, name) for line, text, name in listed]


@pytest.mark.parametrize(
    ("content", "names", "addresses"),
    [
        (
            PLAIN,
            [
                (2, "youtube.com", "youtube.com"),
                (4, "bbc.com", "bbc.com"),
                (5, "https://www.dw.com/ru/top-stories/s-9119#section", "www.dw.com"),
                (6, "кремль.рф", "кремль.рф"),
                (7, "youtube.com", "youtube.com"),
            ],
            # The same rule as the CSV's: an IP address, bare or in a URL, is no name.
            [(8, "http://1.2.3.4/", "1.2.3.4"), (9, "2001:db8::1", "2001:db8::1")],
        ),
        (CITIZEN_LAB, CITIZEN_LAB_NAMES, CITIZEN_LAB_ADDRESSES),
        ("\ufeff" + CITIZEN_LAB, CITIZEN_LAB_NAMES, CITIZEN_LAB_ADDRESSES),
        (
            "\n  \n\t\n" + CITIZEN_LAB,
            shifted(CITIZEN_LAB_NAMES, 3),
            shifted(CITIZEN_LAB_ADDRESSES, 3),
        ),
        (CITIZEN_LAB.replace("\n", "\r\n"), CITIZEN_LAB_NAMES, CITIZEN_LAB_ADDRESSES),
        # The header must be the first line that is not blank, or the file is plain text.
        (
            "# exported\n" + CITIZEN_LAB_HEADER + "\nhttps://bbc.com/,NEWS,,,,\n",
            [
                (2, CITIZEN_LAB_HEADER, CITIZEN_LAB_HEADER),
                (3, "https://bbc.com/,NEWS,,,,", "bbc.com"),
            ],
            [],
        ),
        # Digits and dots are what to_alabel calls an IP address (inet_aton reads "1234" as
        # one); a colon that makes no IPv6 address leaves a name, for to_alabel to refuse.
        (
            "1234\nhttp://1.2.3/\n::g\n192.0.2.1.\n",
            [(3, "::g", "::g")],
            [(1, "1234", "1234"), (2, "http://1.2.3/", "1.2.3"), (4, "192.0.2.1.", "192.0.2.1.")],
        ),
        ("# only a comment\n\n", [], []),
        ("\n \t", [], []),
        ("", [], []),
    ],
    ids=[
        "plain",
        "citizen-lab",
        "citizen-lab-bom",
        "citizen-lab-after-blank-lines",
        "citizen-lab-crlf",
        "header-not-first",
        "digits-and-dots",
        "comments-only",
        "blank-without-final-newline",
        "empty",
    ],
)
def test_read_watchlist_file(
    tmp_path: Path,
    content: str,
    names: list[tuple[int, str, str]],
    addresses: list[tuple[int, str, str]],
) -> None:
    path = tmp_path / "list.txt"
    path.write_text(content, encoding="utf-8")
    found = read_watchlist_file(path)
    assert (found.names, found.addresses) == (names, addresses)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("youtube.com\nhttp:///nohost\n", 2, "URL has no host"),
        (
            "url,category_code,category_description,date_added,source,notes\n"
            "https://bbc.com/,NEWS,,,,\n"
            ",NEWS,,,,\n",
            3,
            "empty url column",
        ),
        (
            "url,category_code,category_description,date_added,source,notes\n"
            "http://[::1/,NEWS,,,,\n",
            2,
            "cannot parse URL: Invalid IPv6 URL",
        ),
        (
            "url,category_code,category_description,date_added,source,notes\n"
            "https://bbc.com/,NEWS,,,,\n"
            f"https://dw.com/,NEWS,{'x' * 200_000},,,\n",
            3,
            "bad CSV: field larger than field limit (131072)",
        ),
    ],
)
def test_read_watchlist_file_refuses(tmp_path: Path, content: str, line: int, reason: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WatchlistFileError) as caught:
        read_watchlist_file(path)
    assert (caught.value.line, str(caught.value)) == (line, reason)


def test_a_quoted_citizen_lab_cell_keeps_the_line_ends_inside_it(tmp_path: Path) -> None:
    # Joined, the two halves of this url would name another domain, bbc.com.
    path = tmp_path / "list.csv"
    path.write_text(
        CITIZEN_LAB_HEADER + '\n"https://bb\u2028c.com/",NEWS,,,,\n', encoding="utf-8", newline=""
    )
    assert read_watchlist_file(path).names == [(2, "https://bb\u2028c.com/", "bb\u2028c.com")]
    with pytest.raises(ValueError, match="contains whitespace"):
        to_alabel("bb\u2028c.com")


# Every line end str.splitlines knows, which is how watchlist files are split into lines.
LINE_ENDS = ["\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("end", LINE_ENDS, ids=[repr(e) for e in LINE_ENDS])
def test_plain_lines_end_at_every_line_end(tmp_path: Path, end: str) -> None:
    path = tmp_path / "list.txt"
    lines = ["youtube.com", "", "  bbc.com  # a comment", "https://www.dw.com/ru/", "http:///"]
    path.write_text(end.join(lines[:4]) + end, encoding="utf-8", newline="")
    names = read_watchlist_file(path).names
    assert [(line, name) for line, _, name in names] == [
        (1, "youtube.com"),
        (3, "bbc.com"),
        (4, "www.dw.com"),
    ]
    path.write_text(end.join(lines), encoding="utf-8", newline="")
    with pytest.raises(WatchlistFileError) as caught:
        read_watchlist_file(path)
    assert (caught.value.line, str(caught.value)) == (5, "URL has no host")


NAME_PIECES = st.sampled_from([*"abz09-_.ü кр。ßА:/@\\!", "xn--", "xn--p1ai", "."])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.lists(NAME_PIECES, max_size=30).map("".join))
def test_to_alabel_refuses_with_value_error_or_gives_a_stable_alabel(text: str) -> None:
    try:
        alabel = to_alabel(text)
    except ValueError:
        return
    assert alabel.isascii()
    assert alabel == alabel.lower()
    assert to_alabel(alabel) == alabel
    assert to_display(alabel).lower() == to_display(alabel)
