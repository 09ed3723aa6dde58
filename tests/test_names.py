"""Tests for monitor.names: IDNA normalization, validation and watchlist files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.names import (
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
        (".".join(["a" * 63] * 4), "name longer than 253 octets"),
        (
            "faß.de",
            "contains ß, which IDNA 2003 and 2008 encode differently: "
            "write the name's A-label (xn--...)",
        ),
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
"""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            PLAIN,
            [
                (2, "youtube.com"),
                (4, "bbc.com"),
                (5, "www.dw.com"),
                (6, "кремль.рф"),
                (7, "youtube.com"),
                # An IP host stays, so the caller refuses it with its line number.
                (8, "1.2.3.4"),
            ],
        ),
        (
            CITIZEN_LAB,
            [(2, "www.bbc.com"), (4, "meduza.io"), (7, "rferl.org"), (9, "кремль.рф")],
        ),
        (
            "\ufeff" + CITIZEN_LAB,
            [(2, "www.bbc.com"), (4, "meduza.io"), (7, "rferl.org"), (9, "кремль.рф")],
        ),
        ("# only a comment\n\n", []),
        ("", []),
    ],
    ids=["plain", "citizen-lab", "citizen-lab-bom", "comments-only", "empty"],
)
def test_read_watchlist_file(tmp_path: Path, content: str, expected: list[tuple[int, str]]) -> None:
    path = tmp_path / "list.txt"
    path.write_text(content, encoding="utf-8")
    assert read_watchlist_file(path) == expected


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
    ],
)
def test_read_watchlist_file_refuses(tmp_path: Path, content: str, line: int, reason: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WatchlistFileError) as caught:
        read_watchlist_file(path)
    assert (caught.value.line, str(caught.value)) == (line, reason)


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
