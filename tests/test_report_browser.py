"""The report in a real browser: headless Chromium draws it, runs its script, and fetches nothing.

Needs Debian's `chromium` package (apt-get install -y chromium); without it these tests fail
with that command. Screenshots are decoded here with zlib (no imaging library), and every check
is first shown to catch a page that is blank, logs an error or loads something.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import pytest
from test_report import VANTAGES, Model, build_model, isolate

from monitor import gitstore
from monitor.report import build_site

INSTALL = "apt-get install -y chromium"
LINK = "https://github.com/owner/repo"
WIDTH, HEIGHT = 1280, 2000
MISSING_RED = bytes.fromhex("d32f2f")
PRESENT_GREEN = bytes.fromhex("43a047")
WHITE = bytes.fromhex("ffffff")


def chromium_binary() -> str:
    # Debian's package first; GitHub's Ubuntu runners come with Google Chrome.
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"chromium is not installed; install it with: {INSTALL}", pytrace=False)


@dataclass(frozen=True)
class Browser:
    binary: str
    profile: Path

    def run(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run headless Chromium once on ``url``; every host name resolves to nothing."""
        command = [
            self.binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={self.profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--window-size={WIDTH},{HEIGHT}",
            *args,
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    def screenshot(self, page: Path, png: Path) -> bytes:
        self.run(page.as_uri(), f"--screenshot={png}")
        return png.read_bytes()

    def dom_and_log(self, page: Path) -> tuple[str, list[str]]:
        """The DOM after the page's script ran, and what the page wrote to its console."""
        done = self.run(page.as_uri(), "--dump-dom")
        return done.stdout, [ln for ln in done.stderr.splitlines() if ":CONSOLE" in ln]


@dataclass(frozen=True)
class Site:
    model: Model
    index: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, work / "global.gitconfig")
        model = build_model(work / "repo", names=150, days=150, seed=11)
        built = build_site(gitstore.open_repo(model.root), work / "site", link=LINK)
        yield Site(model, built.index)


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    return Browser(chromium_binary(), tmp_path / "profile")


# ----------------------------------------------------------------------------- PNG


def read_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Return width, height, the rows of pixels and the bytes per pixel of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    low7 = int.from_bytes(b"\x7f" * stride, "big")
    high = int.from_bytes(b"\x80" * stride, "big")
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 1:  # Sub: a running sum per channel
            out = bytearray(line)
            for c in range(bpp):
                out[c::bpp] = bytes(map((255).__and__, accumulate(line[c::bpp])))
            line = bytes(out)
        elif kind == 2:  # Up: bytewise addition without carries, on whole rows at once
            a, b = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
            line = (((a & low7) + (b & low7)) ^ ((a ^ b) & high)).to_bytes(stride, "big")
        elif kind in (3, 4):  # Average, Paeth
            out = bytearray(line)
            for i in range(stride):
                left = out[i - bpp] if i >= bpp else 0
                up = previous[i]
                if kind == 3:
                    out[i] = (out[i] + ((left + up) >> 1)) & 255
                    continue
                corner = previous[i - bpp] if i >= bpp else 0
                p = left + up - corner
                da, db, dc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if da <= db and da <= dc else up if db <= dc else corner
                out[i] = (out[i] + guess) & 255
            line = bytes(out)
        rows.append(line)
        previous = line
    return width, height, rows, bpp


def colours(data: bytes) -> Counter[bytes]:
    """How many pixels have each RGB colour."""
    width, height, rows, bpp = read_png(data)
    assert (width, height) == (WIDTH, HEIGHT)
    found: Counter[bytes] = Counter()
    for row in rows:
        found.update(row[i : i + 3] for i in range(0, len(row), bpp))
    return found


# ----------------------------------------------------------------------------- tests


def test_the_screenshot_shows_the_charts_and_timelines(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><title>blank</title>")
    assert len(colours(browser.screenshot(blank, tmp_path / "blank.png"))) == 1

    shot = colours(browser.screenshot(site.index, tmp_path / "report.png"))
    total = WIDTH * HEIGHT
    white = shot[WHITE] / total
    print(f"\nscreenshot: {len(shot)} colours, {white:.0%} white")
    assert len(shot) > 50
    assert shot.most_common(1)[0][1] < 0.9 * total
    # The charts and strips are drawn: large areas in the verdicts' own colours.
    assert shot[PRESENT_GREEN] > 0.01 * total
    assert shot[MISSING_RED] > 0.001 * total


def test_the_script_runs_and_nothing_is_logged_or_fetched(site: Site, browser: Browser) -> None:
    dom, log = browser.dom_and_log(site.index)
    assert log == []
    assert re.search(r'<body data-ready="1">', dom), "the page's script did not run"
    assert dom.count('<svg class="chart"') == 2 * len(VANTAGES)
    for vantage in VANTAGES:
        assert f'<section id="v-{vantage}" class="vantage">' in dom
    rows = dom.count('class="grid row"')
    eventful = sum(
        any(v not in (None, "present") for v in days)
        for vm in site.model.vantages.values()
        for days in vm.days.values()
    )
    assert rows == eventful > 20


def test_the_checks_catch_console_errors_and_fetches(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><title>bad</title><img src='https://example.com/x.png'>"
        "<script>console.error('boom'); missingFunction();</script>"
    )
    _, log = browser.dom_and_log(page)
    assert any("boom" in line for line in log)
    assert any("missingFunction" in line for line in log)


def test_the_page_names_no_outside_resource(site: Site) -> None:
    text = site.index.read_text(encoding="utf-8")
    # Only links to commits: no scripts, styles, fonts or images from anywhere.
    for match in re.finditer(r"https?://", text):
        before = text[max(0, match.start() - 40) : match.start()]
        assert before.endswith('<a class="sha" href="'), text[match.start() - 60 : match.end() + 60]
        assert text.startswith(f"{LINK}/commit/", match.start())
    assert re.findall(r"https?://", text)
    for forbidden in ("<link", " src=", "url(", "@import", "<img", "<iframe", "fetch(", "XMLHttp"):
        assert forbidden not in text
    assert "default-src 'none'" in text
