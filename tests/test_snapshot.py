"""Snapshot lines: rendering, parsing (fast path and YAML), sharding and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.errors import SnapshotError
from monitor.snapshot import (
    SHARD_ABOVE,
    Entry,
    domain_files,
    parse_domains,
    parse_line,
    read_snapshot,
    recover,
    render_domains,
    render_line,
    replace_directory,
    shard_name,
    snapshot_dir,
    write_files,
)

ENTRY = Entry(
    "youtube.com",
    "missing",
    "2026-02-10",
    (("nsdi-a", "nxdomain"), ("nsdi-b", "nxdomain"), ("google", "ok"), ("cloudflare", "ok")),
)


def test_line_is_exactly_designs_form() -> None:
    assert render_line(ENTRY) == (
        "youtube.com: {verdict: missing, since: 2026-02-10, nsdi-a: nxdomain, "
        "nsdi-b: nxdomain, google: ok, cloudflare: ok}"
    )


@pytest.mark.parametrize(
    "entry",
    [
        ENTRY,
        Entry("bbc.com", "present", "2026-01-01", (("n", "ok"),), "unstable"),
        Entry("xn--e1ajeds9e.xn--p1ai", "unstable", "2026-03-01", (("n", "down"),), "inconclusive"),
        # names that YAML would read as something else than a string are quoted
        Entry("null", "present", "2026-01-01", (("yes", "ok"),)),
        Entry("1.5", "gone", "2026-01-01", (("on", "nxdomain"),)),
        Entry("true", "gone", "2026-01-01", ()),
    ],
)
def test_lines_round_trip_through_yaml_and_fast_parser(entry: Entry) -> None:
    line = render_line(entry)
    data = yaml.safe_load(line)
    assert list(data) == [entry.domain]
    fields = data[entry.domain]
    assert str(fields["verdict"]) == entry.verdict
    assert fields.get("today") == entry.today
    assert parse_line(line) == entry
    assert parse_domains(line + "\n") == {entry.domain: entry}


def test_domain_file_is_sorted_and_safe_loadable() -> None:
    entries = [
        Entry(d, "present", "2026-01-01", (("a", "ok"),)) for d in ["b.com", "a.org", "c.net"]
    ]
    files = render_domains(entries)
    assert list(files) == ["domains.yaml"]
    text = files["domains.yaml"]
    assert [line.split(":")[0] for line in text.splitlines()] == ["a.org", "b.com", "c.net"]
    assert set(yaml.safe_load(text)) == {"a.org", "b.com", "c.net"}


def test_hand_edited_yaml_is_read_as_yaml() -> None:
    text = 'youtube.com:\n  verdict: missing\n  since: 2026-02-10\n  "nsdi-a": nxdomain\n'
    entries = parse_domains(text)
    assert entries["youtube.com"] == Entry(
        "youtube.com", "missing", "2026-02-10", (("nsdi-a", "nxdomain"),)
    )


@pytest.mark.parametrize(
    "text",
    ["youtube.com: [1, 2]\n", "- a\n- b\n", "a: {verdict: present}\n", "a: {b: [\n"],
)
def test_bad_domain_files_raise_snapshot_error(text: str) -> None:
    with pytest.raises(SnapshotError):
        parse_domains(text, "domains.yaml")


def test_big_watchlists_are_sharded_with_stable_names() -> None:
    assert shard_name("youtube.com", 100) == "domains.yaml"
    shard = shard_name("youtube.com", SHARD_ABOVE + 1)
    assert shard.startswith("domains/") and shard.endswith(".yaml") and len(shard) == 15
    assert shard_name("youtube.com", SHARD_ABOVE * 10) == shard  # stable as the list grows
    assert len(shard_name("youtube.com", 1_000_000)) == 16  # 4,096 shards at a million


def test_sharded_snapshot_reads_back(tmp_path: Path) -> None:
    entries = [
        Entry(f"name{i}.example", "present", "2026-01-01", (("n", "ok"),))
        for i in range(SHARD_ABOVE + 10)
    ]
    files = render_domains(entries)
    assert len(files) > 200 and "domains.yaml" not in files
    write_files(tmp_path, files)
    back = read_snapshot(tmp_path)
    assert len(back) == len(entries) and back["name7.example"] == entries[7]
    # shrinking back below the threshold prunes the shards
    small = render_domains(entries[:3])
    write_files(tmp_path, small, prune=domain_files(tmp_path))
    assert domain_files(tmp_path) == ["domains.yaml"]
    assert not (tmp_path / "domains").exists()


def test_write_files_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_files(tmp_path, {"a.yaml": "a: 1\n", "sub/b.yaml": "b: 2\n"})
    write_files(tmp_path, {"a.yaml": "a: 3\n"})
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert names == ["a.yaml", "sub", "sub/b.yaml"]
    assert (tmp_path / "a.yaml").read_text() == "a: 3\n"


@pytest.mark.parametrize("vantage", ["../etc", "a/b", "", "UPPER", "a b"])
def test_vantage_never_makes_a_path_outside_snapshots(tmp_path: Path, vantage: str) -> None:
    with pytest.raises(SnapshotError):
        snapshot_dir(tmp_path, vantage)


def test_replace_directory_swaps_the_whole_set(tmp_path: Path) -> None:
    target = tmp_path / "snapshots" / "v"
    replace_directory(target, {"domains.yaml": "a.com: {verdict: present, since: 2026-01-01}\n"})
    replace_directory(target, {"domains/ab.yaml": "b.com: {verdict: gone, since: 2026-01-02}\n"})
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert names == [
        "snapshots",
        "snapshots/v",
        "snapshots/v/domains",
        "snapshots/v/domains/ab.yaml",
    ]


def test_recover_removes_a_half_written_staging_set(tmp_path: Path) -> None:
    target = tmp_path / "v"
    replace_directory(target, {"run.yaml": "date: yesterday\n"})
    staging = tmp_path / ".v.new"
    staging.mkdir()
    (staging / "run.yaml").write_text("date: to")  # killed while writing today's set
    recover(target)
    assert not staging.exists() and (target / "run.yaml").read_text() == "date: yesterday\n"


def test_recover_puts_back_a_retired_set_when_killed_between_renames(tmp_path: Path) -> None:
    target = tmp_path / "v"
    old = tmp_path / ".v.old"
    old.mkdir()
    (old / "run.yaml").write_text("date: yesterday\n")
    recover(target)
    assert (target / "run.yaml").read_text() == "date: yesterday\n" and not old.exists()
