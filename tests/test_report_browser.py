"""The report in a real browser: headless Chromium draws it at desktop and phone width, runs its
script and axe-core over it, and fetches nothing.

Chromium is Debian's `chromium` package (apt-get install -y chromium; GitHub's runners have
Google Chrome), driven by Playwright over the DevTools protocol: Playwright's own browser builds
are never downloaded. axe-core is the copy that the axe-playwright-python package bundles.
Without Chromium these tests fail and say how to install it. Every check is first shown to
catch a page that breaks it.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright
from test_report import (
    HOSTILE_NAMES,
    VANTAGES,
    Model,
    build_model,
    hostile_values_repo,
    isolate,
    view_rows,
)

from monitor import gitstore
from monitor.charts import COLOURS
from monitor.escape import escape_text
from monitor.report import build_site, name_anchor

INSTALL = "apt-get install -y chromium"
LINK = "https://github.com/owner/repo"
DESKTOP, PHONE = 1400, 400
WIDTHS = (DESKTOP, PHONE)
HEIGHT = 900
MISSING_RED = bytes.fromhex(COLOURS["missing"][1:])
PRESENT_GREEN = bytes.fromhex(COLOURS["present"][1:])
WHITE = bytes.fromhex("ffffff")
AXE = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def chromium_binary() -> str:
    # Debian's package first; GitHub's Ubuntu runners come with Google Chrome.
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"chromium is not installed; install it with: {INSTALL}", pytrace=False)


@dataclass
class Visit:
    """A page loaded at one width, with what it wrote to its console and what it asked for."""

    page: Page
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def axe(self) -> dict[str, Any]:
        """Run axe-core over the page (every rule, WCAG 2.1 AA and best practice)."""
        self.page.evaluate(AXE)  # over DevTools, which the page's CSP does not govern
        result: dict[str, Any] = self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']})"
        )
        return result


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    with sync_playwright() as playwright:
        # Every host name resolves to nothing: a page that tried to load from anywhere would
        # fail, and the request would still be seen below.
        launched = playwright.chromium.launch(
            executable_path=binary, args=["--host-resolver-rules=MAP * ~NOTFOUND"]
        )
        yield launched
        launched.close()


Visitor = Callable[..., Visit]  # (page, width, fragment="") -> Visit


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visitor]:
    contexts = []

    def load(path: Path, width: int, fragment: str = "") -> Visit:
        context = browser.new_context(viewport={"width": width, "height": HEIGHT})
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page)
        page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: seen.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: seen.requests.append(r.url))
        page.on("dialog", lambda d: seen.dialog(d))
        page.goto(path.as_uri() + fragment)
        return seen

    yield load
    for context in contexts:
        context.close()


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


def colours(data: bytes, size: tuple[int, int]) -> Counter[bytes]:
    """How many pixels have each RGB colour."""
    width, height, rows, bpp = read_png(data)
    assert (width, height) == size
    found: Counter[bytes] = Counter()
    for row in rows:
        found.update(row[i : i + 3] for i in range(0, len(row), bpp))
    return found


# ----------------------------------------------------------------------------- checks

# What scrolls sideways: the document, and every element that is a horizontal scroller; and
# what sticks out past the right edge of the screen.
SIDEWAYS = """() => {
  const width = document.documentElement.clientWidth;
  // Inside an element that clips what overflows it and ends within the screen (the visually
  // hidden header of a table shown as cards): not shown past the edge.
  const clipped = e => {
    for (let a = e.parentElement; a; a = a.parentElement) {
      const style = getComputedStyle(a);
      const clips = style.overflowX !== "visible" || style.clipPath !== "none";
      if (clips && a.getBoundingClientRect().right <= width + 0.5) return true;
    }
    return false;
  };
  const scrollers = [];
  const outside = [];
  for (const e of document.querySelectorAll("body *")) {
    const style = getComputedStyle(e);
    if (["auto", "scroll"].includes(style.overflowX) && e.scrollWidth > e.clientWidth) {
      scrollers.push(e.tagName + "." + (e.getAttribute("class") || ""));
    }
    const box = e.getBoundingClientRect();
    if (box.width > 1 && box.right > width + 0.5 && !clipped(e)) {
      outside.push(e.tagName + "." + (e.getAttribute("class") || ""));
    }
  }
  return {page: document.scrollingElement.scrollWidth, width: width,
          scrollers: scrollers, outside: outside.slice(0, 10)};
}"""


def sideways(visit: Visit) -> dict[str, Any]:
    found: dict[str, Any] = visit.page.evaluate(SIDEWAYS)
    return found


def serious(result: dict[str, Any]) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}, {len(v['nodes'])}): {v['nodes'][0]['failureSummary']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_checks_catch_what_they_look_for(visit: Visitor, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><html lang='en'><title>bad</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<p><span style='color:#fff;background:#43a047'>present</span></p>"
        "<div style='overflow-x:auto'><svg width='880' height='20'></svg></div>"
        "<svg class='wide' width='700' height='20'></svg>"
        "<img src='https://example.com/x.png' alt='x'>"
        "<script>console.error('boom'); alert('hi'); missingFunction();</script></html>"
    )
    seen = visit(bad, PHONE)
    assert any("boom" in line for line in seen.console)
    assert any("missingFunction" in line for line in seen.console)
    assert seen.dialogs == ["hi"]
    assert "https://example.com/x.png" in seen.requests
    found = sideways(seen)
    assert found["scrollers"] == ["DIV."]
    assert found["outside"] == ["svg.wide"]
    problems = serious(seen.axe())
    assert any(p.startswith("color-contrast (serious") for p in problems), problems
    assert any(p.startswith("scrollable-region-focusable (serious") for p in problems), problems


@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_serious_or_critical_violation(site: Site, visit: Visitor, width: int) -> None:
    seen = visit(site.index, width)
    result = seen.axe()
    others = Counter(v["impact"] for v in result["violations"])
    print(f"\naxe-core {result['testEngine']['version']} at {width} px: {dict(others)}")
    assert serious(result) == []
    assert result["testEngine"]["version"].startswith("4.")
    # It looked: the rules the page once broke ran and passed, and it has no scroller left.
    passed = {p["id"] for p in result["passes"]}
    assert {"color-contrast", "svg-img-alt", "nested-interactive"} <= passed, passed
    assert "scrollable-region-focusable" in {i["id"] for i in result["inapplicable"]}
    assert seen.page.evaluate("document.querySelectorAll('.tl.row').length") > 20


@pytest.mark.parametrize("width", WIDTHS)
def test_the_script_runs_and_nothing_is_logged_or_fetched(
    site: Site, visit: Visitor, width: int
) -> None:
    seen = visit(site.index, width)
    assert seen.page.get_attribute("body", "data-ready") == "1"
    assert seen.console == [] and seen.dialogs == []
    assert seen.requests == [site.index.as_uri()]
    page = seen.page
    assert page.locator("#filter").is_visible()
    rows = page.locator(".tl.row:visible").count()
    page.fill("#filter", "n0001.example")
    timelines = sum(
        any(v not in (None, "present") for v in vm.days["n0001.example"])
        for vm in site.model.vantages.values()
    )
    assert page.locator(".tl.row:visible").count() == timelines < rows
    assert page.locator(f"[id='{name_anchor('abroad', 'n0001.example')}']").is_visible()


def test_nothing_scrolls_sideways_at_phone_width(site: Site, visit: Visitor) -> None:
    seen = visit(site.index, PHONE)
    found = sideways(seen)
    assert found["width"] <= PHONE
    assert found["page"] <= found["width"], found
    assert found["scrollers"] == [] and found["outside"] == [], found


def test_timelines_and_charts_scale_to_the_screen(site: Site, visit: Visitor) -> None:
    boxes = {}
    for width in WIDTHS:
        page = visit(site.index, width).page
        boxes[width] = page.evaluate(
            """() => {
              const w = s => Array.from(document.querySelectorAll(s),
                                        e => e.getBoundingClientRect());
              return {strips: w("svg.strip").map(b => [b.left, b.right]),
                      plots: w("svg.plot").map(b => [b.left, b.right]),
                      resolvers: w("table.flags td:nth-child(4)").map(b => b.width),
                      names: w("table.flags td:nth-child(1)").map(b => b.width)};
            }"""
        )
    for width, box in boxes.items():
        strips, plots = box["strips"], box["plots"]
        assert len(strips) > 20 and len(plots) == 2 * len(VANTAGES)
        # Every strip spans the same stretch of the screen, as do the charts (a day sits at
        # one x in every one of them), and they end within the screen.
        assert len({(round(a), round(b)) for a, b in strips + plots}) == 1, (width, strips[:3])
        left, right = strips[0]
        assert right <= width and right - left >= (0.8 if width == PHONE else 0.45) * width
        # The resolver column reads as lines of text, never a letter per line.
        assert min(box["resolvers"]) >= (0.8 if width == PHONE else 0.2) * width
        if width == PHONE:  # a card per name: each line as wide as the screen
            assert min(box["names"]) >= 0.8 * width


@pytest.mark.parametrize("width", WIDTHS)
def test_the_screenshot_shows_the_charts_and_timelines(
    site: Site, visit: Visitor, tmp_path: Path, width: int
) -> None:
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><title>blank</title>")
    size = (width, HEIGHT)
    assert len(colours(visit(blank, width).page.screenshot(), size)) == 1

    page = visit(site.index, width).page
    page.locator(".tl.head").first.scroll_into_view_if_needed()
    shot = colours(page.screenshot(), size)
    total = width * HEIGHT
    print(f"\nscreenshot at {width} px: {len(shot)} colours, {shot[WHITE] / total:.0%} white")
    assert len(shot) > 50
    assert shot.most_common(1)[0][1] < 0.9 * total
    # The strips are drawn across the screen: large areas in the verdicts' own colours (at
    # phone width, not only the first days of each).
    assert shot[PRESENT_GREEN] > 0.02 * total
    assert shot[MISSING_RED] > 0.005 * total


@pytest.mark.parametrize("width", WIDTHS)
def test_every_flagged_name_links_to_its_view(site: Site, visit: Visitor, width: int) -> None:
    page = visit(site.index, width).page
    # Each name in the table of names not present: its link, followed, makes its view the
    # target, and the view shows that name.
    result = page.evaluate(
        """() => Array.from(document.querySelectorAll("table.flags tbody tr"), tr => {
             const a = tr.querySelector("td a");
             location.hash = a.getAttribute("href");
             const target = document.querySelector(":target");
             const box = target && target.getBoundingClientRect();
             return [tr.querySelector("td span").textContent, a.getAttribute("href"),
                     target && target.id, target && target.querySelector("h4").textContent,
                     box && box.top >= -1 && box.top < innerHeight];
           })"""
    )
    flagged = {
        (v, e.domain)
        for v, vm in site.model.vantages.items()
        for e in vm.final.values()
        if e.current != "present"
    }
    assert len(result) == len(flagged) > 10
    for name, href, target, heading, in_view in result:
        assert href[1:] == target and heading.startswith(name) and in_view, (name, href, target)
    assert {r[2] for r in result} == {name_anchor(v, d) for v, d in flagged}
    # A permalink opened afresh lands on the view.
    vantage, domain = sorted(flagged)[0]
    fresh = visit(site.index, width, "#" + name_anchor(vantage, domain)).page
    assert fresh.evaluate("document.querySelector(':target').id") == name_anchor(vantage, domain)
    assert fresh.evaluate("document.querySelector(':target').getBoundingClientRect().top") < 5


def test_every_period_is_on_the_page_as_text(site: Site, visit: Visitor) -> None:
    page = visit(site.index, PHONE).page
    # What a person sees (innerText: as laid out, at phone width; each cell labelled by its
    # column) and what a screen reader is told for each timeline strip (its accessible name).
    shown = page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll("article.view"),
             a => [a.id, Array.from(a.querySelectorAll("tbody tr"),
                                    tr => Array.from(tr.cells, td => td.innerText))]))"""
    )
    columns = page.evaluate(
        """() => Array.from(document.querySelectorAll("article.view"), a => [
             Array.from(a.querySelectorAll("thead th"), th => th.textContent),
             Array.from(a.querySelector("tbody tr").cells,
                        td => getComputedStyle(td, "::before").content)])"""
    )
    labels = page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll("section"),
             v => [v.id, Array.from(v.querySelectorAll("svg.strip"),
                                    s => s.getAttribute("aria-label"))]))"""
    )
    header = ["verdict", "from", "to", "what each resolver said", "commit", "snapshot line"]
    before = ['"verdict: "', '"from: "', '"to: "', '"resolvers: "', '"commit: "', '"line: "']
    assert all(c == [header, before] for c in columns), columns[0]
    periods = 0
    for vantage, vm in site.model.vantages.items():
        for name in vm.days:
            rows = view_rows(vm, name)
            if all(v in (None, "present") for v, _, _ in rows):
                assert name_anchor(vantage, name) not in shown
                continue
            cells = shown[name_anchor(vantage, name)]
            assert [c[:3] for c in cells] == [
                [v or "not watched", start, to or f"{vm.dates[-1]} (latest run)"]
                for v, start, to in rows
            ], name
            periods += sum(v is not None for v, _, _ in rows)
            words = [
                f"{v} "
                + (f"since {s}" if t is None else f"on {s}" if s == t else f"from {s} to {t}")
                for v, s, t in rows
                if v is not None
            ]
            label = next(x for x in labels[f"v-{vantage}"] if x.startswith(f"{name}: "))
            assert all(w in label for w in words), (label, words)
    assert periods > 200


def test_hostile_strings_stay_text_in_the_browser(
    visit: Visitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(monkeypatch, tmp_path / "global.gitconfig")
    root = tmp_path / "repo"
    hostile_values_repo(root)
    labels = dict.fromkeys(HOSTILE_NAMES, "<img src=x onerror=alert(2)>")
    built = build_site(gitstore.open_repo(root), tmp_path / "site", labels=labels, link=LINK)
    seen = visit(built.index, PHONE)
    page = seen.page
    assert seen.dialogs == [] and seen.console == []
    assert seen.requests == [built.index.as_uri()]
    assert page.evaluate("document.querySelectorAll('img, b, i, svg[onload]').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    for raw in HOSTILE_NAMES:
        anchor = name_anchor("lab", raw)
        page.evaluate("a => { location.hash = '#' + a; }", anchor)
        heading = page.evaluate("document.querySelector(':target h4 span').textContent")
        assert heading == escape_text(raw)
    for width in WIDTHS:  # a 200-character name without a space still wraps
        found = sideways(visit(built.index, width))
        assert found["page"] <= width and found["scrollers"] == found["outside"] == [], found
    assert serious(seen.axe()) == []
