"""The offline demo: embedded resolvers on loopback replay the Na Svyazi finding over three days."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from monitor import gitstore
from monitor.changes import Event
from monitor.config import Config, load_config_text
from monitor.errors import UsageError
from monitor.files import file_error
from monitor.history import DomainHistory, events_between, history
from monitor.lab import Lab, World
from monitor.run import RunResult, run

VANTAGE = "demo"

# The 13 resources Na Svyazi found deleted from NSDI in February 2026 (15 names).
DELETED = {
    "youtube.com": "YouTube",
    "web.whatsapp.com": "WhatsApp Web",
    "whatsapp.com": "WhatsApp",
    "facebook.com": "Facebook",
    "messenger.com": "Facebook Messenger",
    "instagram.com": "Instagram",
    "windscribe.com": "Windscribe",
    "apkmirror.com": "APKMirror",
    "torproject.org": "Tor Project",
    "bbc.com": "BBC",
    "bbc.co.uk": "BBC UK",
    "currenttime.tv": "Current Time",
    "dw.com": "Deutsche Welle",
    "rferl.org": "RFE/RL",
    "themoscowtimes.com": "The Moscow Times",
}
# Names that stay, and the three that show the other verdicts.
STAYING = {
    "yandex.ru": "Yandex",
    "vk.com": "VK",
    "wikipedia.org": "Wikipedia",
    "google.com": "Google",
    "кремль.рф": "Kremlin",
}
REFUSED = "linkedin.com"  # both national resolvers stop answering it: failing
BLOCK_PAGE = "meduza.io"  # one national resolver answers a block-page bogon: tampered
FILTERED = "rutracker.org"  # one control filters it, so the controls disagree: unstable
BLOCK_PAGE_ADDRESS = "10.0.34.34"
CANARY = "example.com"

DAYS = ("2026-02-09", "2026-02-10", "2026-02-11")
# Day 3: these come back on the national side.
RETURNING = ("bbc.com", "bbc.co.uk", "dw.com", REFUSED)
HISTORY_NAMES = ("youtube.com", "bbc.com", REFUSED, FILTERED)

NATIONAL = ("nsdi-a", "nsdi-b")
CONTROL = ("google", "cloudflare", "quad9")

# Set, these would point git at another repository than the one the demo creates.
GIT_REDIRECTS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
)
# The kept config names resolvers that end with the demo: it says so to whoever opens it.
CONFIG_HEADER = """\
# Written by `registry-monitor demo`. The resolvers below were the demo's own, inside its process
# on 127.0.0.1, and stopped when it ended: `run` and `check` here find every one down (exit 4,
# nothing written). `diff`, `history`, `report`, `export` and git read this history offline.
"""


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: one run per day, the key day's diff and a few names' history."""

    repo: Path
    kept: bool
    days: tuple[RunResult, ...]
    diff_day: str
    diff: tuple[Event, ...]
    histories: tuple[DomainHistory, ...]


def _records() -> dict[tuple[str, str], list[str]]:
    names = [*DELETED, *STAYING, REFUSED, BLOCK_PAGE, FILTERED, CANARY]
    records: dict[tuple[str, str], list[str]] = {}
    for i, name in enumerate(names):
        owner = name.encode("idna").decode() if not name.isascii() else name
        # Public-looking addresses from one documentation-free block: data only, never contacted.
        records[(owner, "A")] = [f"185.15.{58 + i // 200}.{10 + i % 200}"]
        records[(owner, "AAAA")] = [f"2a02:ec80:300:{i:x}::10"]
    records[("www.youtube.com", "CNAME")] = ["youtube.com"]
    return records


def _config_text(lab: Lab) -> str:
    lines = [
        CONFIG_HEADER.rstrip("\n"),
        f"vantage: {VANTAGE}",
        "timeout: 0.5",
        "attempts: 2",
        "confirm: 1",
        f"canaries: [{CANARY}]",
        "resolvers:",
        "  national:",
        *(
            f"    - {{name: {n}, address: {lab[n].address}, port: {lab[n].port}, rate: 0}}"
            for n in NATIONAL
        ),
        "  control:",
        *(
            f"    - {{name: {n}, address: {lab[n].address}, port: {lab[n].port}, "
            "transport: tcp, rate: 0}"
            for n in CONTROL
        ),
        "watchlist:",
        *(
            f'  - {{domain: "{d}", label: "{label}"}}'
            for d, label in [*DELETED.items(), *STAYING.items()]
        ),
        f"  - {{domain: {REFUSED}, label: LinkedIn}}",
        f"  - {{domain: {BLOCK_PAGE}, label: Meduza}}",
        f"  - {{domain: {FILTERED}, label: RuTracker}}",
    ]
    return "\n".join(lines) + "\n"


def _scenario(worlds: Mapping[str, World], day: int) -> None:
    """Set every resolver's departures from the true table for simulated day ``day`` (0-based)."""
    if day == 0:
        for world in worlds.values():
            world.update(nxdomain=(), refuse=(), drop=(), redirect={})
        return
    deleted = set(DELETED)
    refused = {REFUSED}
    if day >= 2:
        deleted -= set(RETURNING)
        refused -= set(RETURNING)
    worlds["nsdi-a"].update(
        nxdomain=deleted, refuse=refused, redirect={BLOCK_PAGE: BLOCK_PAGE_ADDRESS}
    )
    worlds["nsdi-b"].update(nxdomain=deleted, drop=refused)
    worlds["quad9"].update(nxdomain={FILTERED})


def refuse_unsafe(keep: Path | None) -> None:
    """Raise UsageError (or FileError) unless the demo can only write into a repository of its own.

    ``keep`` must be a new or empty directory, and no GIT_DIR-like variable may send git elsewhere.
    """
    for name in GIT_REDIRECTS:
        if name in os.environ:
            raise UsageError(
                f"{name} is set: the demo would write into that repository instead of its own; "
                "run it without the variable"
            )
    if keep is None or not keep.exists():
        return
    if not keep.is_dir():
        raise UsageError(f"--keep {keep}: not a directory")
    try:
        empty = next(keep.iterdir(), None) is None
    except OSError as exc:
        raise file_error(exc, keep) from exc
    if empty:
        return
    if (keep / "snapshots" / VANTAGE).is_dir():
        hint = (
            "it holds an earlier demo's repository: read it there, or give --keep a new directory"
        )
    else:
        hint = "give a new or empty one (the demo never writes over files or into a repository)"
    raise UsageError(f"--keep {keep}: the directory is not empty; {hint}")


@contextmanager
def _repository(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        try:
            keep.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise file_error(exc, keep) from exc
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="registry-monitor-demo-") as temp:
        yield Path(temp)


def demo(
    keep: Path | None = None,
    on_day: Callable[[RunResult], None] | None = None,
    *,
    confirm_spacing: float = 0.2,
) -> DemoResult:
    """Replay the finding over three simulated days into a git repository; return what happened.

    The repository is temporary unless ``keep`` names a new or empty directory (created if
    missing); its git identity is set in that repository's own config and nowhere else. Nothing
    leaves this machine: the resolvers are in-process responders on 127.0.0.1. ``on_day`` sees
    each run as it ends.

    Raises UsageError, before anything is written, when ``keep`` exists and is not an empty
    directory or a GIT_DIR-like variable is set; FileError when ``keep`` cannot be made.
    """
    refuse_unsafe(keep)
    worlds = {name: World(_records()) for name in (*NATIONAL, *CONTROL)}
    # Share one table: variants keep their own overrides.
    base = worlds["nsdi-a"]
    for name in (*NATIONAL[1:], *CONTROL):
        worlds[name] = base.variant()
    with Lab(worlds) as lab, _repository(keep) as root:
        repo = git.Repo.init(root)
        # As a fork of the project inherits .gitattributes, so the kept repository reads alike.
        (Path(repo.git_dir) / "info").mkdir(exist_ok=True)
        (Path(repo.git_dir) / "info" / "attributes").write_text(
            gitstore.ATTRIBUTES, encoding="utf-8"
        )
        with repo.config_writer() as writer:
            writer.set_value("user", "name", "registry-monitor demo")
            writer.set_value("user", "email", "demo@registry-monitor.invalid")
        config_path = root / "config.yaml"
        config_path.write_text(_config_text(lab), encoding="utf-8")
        config: Config = load_config_text(config_path.read_text(encoding="utf-8"), config_path)
        results = []
        for day, date in enumerate(DAYS):
            _scenario(worlds, day)
            result = run(config, repo=root, date=date, confirm_spacing=confirm_spacing)
            results.append(result)
            if on_day is not None:
                on_day(result)
        commits = gitstore.vantage_commits(repo, VANTAGE)
        diff = events_between(repo, VANTAGE, commits[0].sha, commits[1].sha)
        names = [n.domain for n in config.watchlist if n.display in HISTORY_NAMES]
        histories = history(repo, VANTAGE, names)
        repo.close()
        return DemoResult(
            root, keep is not None, tuple(results), DAYS[1], tuple(diff), tuple(histories)
        )
