"""`registry-monitor demo`: the whole story offline, checked from the outside."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import git
import yaml

from monitor.demo import BLOCK_PAGE, DELETED, FILTERED, REFUSED, RETURNING, VANTAGE


def run_demo(*args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_MONITOR_CONFIG"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "monitor", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def subject(commit: git.Commit) -> str:
    """Return a commit's first line (GitPython gives bytes only for a message it cannot decode)."""
    assert isinstance(commit.summary, str)
    return commit.summary


def test_demo_tells_the_story_and_leaves_a_repository(tmp_path: Path) -> None:
    keep = tmp_path / "demo-repo"
    result = run_demo("--keep", str(keep))
    assert result.returncode == 0, result.stderr
    out = result.stdout

    repo = git.Repo(keep)
    subjects = [subject(c) for c in repo.iter_commits()][::-1]
    assert subjects[0] == "demo: no change, 0 missing of 23 (2026-02-09)"
    assert subjects[1].startswith("demo: 15 disappeared, 2 degraded: youtube.com, web.whatsapp.com")
    assert subjects[1].endswith("(2026-02-10)")
    assert subjects[2] == ("demo: 4 restored: bbc.com, bbc.co.uk, dw.com, and 1 more (2026-02-11)")
    for name in DELETED:
        assert f"disappeared: {name} (present → missing)" in out
    assert f"degraded: {REFUSED} (present → failing)" in out
    assert f"degraded: {BLOCK_PAGE} (present → tampered)" in out
    for name in RETURNING:
        assert f"restored: {name} " in out
    assert "=== diff: the events of 2026-02-10 ===" in out
    assert "youtube.com    missing   2026-02-10 → 2026-02-11 (last run)" in out
    assert f"{FILTERED}  unstable  2026-02-10 → 2026-02-11 (last run)" in out

    snapshot = yaml.safe_load((keep / "snapshots" / VANTAGE / "domains.yaml").read_text())
    assert snapshot["youtube.com"]["verdict"] == "missing"
    assert str(snapshot["youtube.com"]["since"]) == "2026-02-10"
    assert snapshot["bbc.com"]["verdict"] == "present"
    # the filtered name was never judged otherwise than present: that day is marked, not flagged
    assert snapshot[FILTERED] == {
        "verdict": "present",
        "since": __import__("datetime").date(2026, 2, 9),
        "today": "unstable",
        "nsdi-a": "ok",
        "nsdi-b": "ok",
        "google": "ok",
        "cloudflare": "ok",
        "quad9": "nxdomain",
    }
    assert snapshot["xn--e1ajeds9e.xn--p1ai"]["verdict"] == "present"


def test_demo_in_a_temporary_directory_leaves_nothing_behind(tmp_path: Path) -> None:
    result = run_demo(tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Done." in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_in_process_stops_its_responders() -> None:
    from monitor.demo import demo

    before = {t.name for t in threading.enumerate()}
    outcome = demo(confirm_spacing=0.0)
    assert [len(day.events) for day in outcome.days] == [0, 17, 4]
    assert not outcome.repo.exists()
    after = {t.name for t in threading.enumerate()}
    assert not {n for n in after - before if n.startswith("lab-responder")}
