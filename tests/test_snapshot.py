"""Snapshot lines: rendering, parsing (fast path and YAML), sharding and atomic writes."""

from __future__ import annotations

import ctypes
import datetime
import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import monitor
from monitor import snapshot
from monitor.errors import FileError, SnapshotError
from monitor.snapshot import (
    SHARD_ABOVE,
    WIDE_SHARDS_ABOVE,
    Entry,
    _exchange,
    _fast_entry,
    _parse_yaml,
    domain_files,
    parse_domains,
    parse_line,
    parse_snapshot,
    read_snapshot,
    recover,
    render_domains,
    render_line,
    render_resolvers,
    render_run,
    replace_directory,
    shard_name,
    shared_statuses,
    snapshot_dir,
    write_files,
)

ENTRY = Entry(
    "youtube.com",
    "missing",
    "2026-02-10",
    (("nsdi-a", "nxdomain"), ("nsdi-b", "nxdomain"), ("google", "ok"), ("cloudflare", "ok")),
)


@pytest.fixture(autouse=True)
def fresh_line_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads its lines afresh: the cache of line bodies (filled by earlier tests, or
    by a mutation run's parent process) must not answer for the code under test."""
    monkeypatch.setattr(snapshot, "_BODIES", {})


@pytest.fixture
def yaml_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every text the snapshot module hands to the YAML loader (which still runs)."""
    reads: list[str] = []
    load = yaml.load

    def recording(stream: str, Loader: Any) -> Any:
        reads.append(stream)
        return load(stream, Loader=Loader)

    monkeypatch.setattr(yaml, "load", recording)
    return reads


def test_line_is_exactly_designs_form() -> None:
    assert render_line(ENTRY) == (
        "youtube.com: {verdict: missing, since: 2026-02-10, nsdi-a: nxdomain, "
        "nsdi-b: nxdomain, google: ok, cloudflare: ok}"
    )


# ----------------------------------------------------------------------------- the fast path

# Lines the module writes with every key and value plain: the fast path reads each of them.
PLAIN = [
    (ENTRY, render_line(ENTRY)),
    (
        Entry("bbc.com", "present", "2026-01-01", (("n", "ok"),), "unstable"),
        "bbc.com: {verdict: present, since: 2026-01-01, today: unstable, n: ok}",
    ),
    (
        Entry("xn--e1ajeds9e.xn--p1ai", "unstable", "2026-03-01", (("n", "down"),), "inconclusive"),
        "xn--e1ajeds9e.xn--p1ai: {verdict: unstable, since: 2026-03-01, today: inconclusive, "
        "n: down}",
    ),
    (
        Entry("_dmarc.a-b.co.uk", "national-only", "2026-01-01", ()),
        "_dmarc.a-b.co.uk: {verdict: national-only, since: 2026-01-01}",
    ),
    (
        Entry("localhost", "present", "2026-01-01", (("n1", "ok"), ("n2", "servfail"))),
        "localhost: {verdict: present, since: 2026-01-01, n1: ok, n2: servfail}",
    ),
    # a since that is no date, from a hand-edited file, still reads back as a string
    (
        Entry("a.com", "present", "2026-2-1", (("n", "ok"),)),
        "a.com: {verdict: present, since: 2026-2-1, n: ok}",
    ),
    (
        Entry("a.com", "present", "yesterday", (("n", "ok"),)),
        "a.com: {verdict: present, since: yesterday, n: ok}",
    ),
]

# Lines the module writes with a quoted key or value, because YAML would read the plain text as
# something else than the same string (a null, bool, number) or could not read it at all. The
# fast path accepts no quote, so exactly these lines go to the YAML loader.
QUOTED = [
    (
        Entry("null", "present", "2026-01-01", (("yes", "ok"),)),
        '"null": {verdict: present, since: 2026-01-01, "yes": ok}',
    ),
    (
        Entry("1.5", "gone", "2026-01-01", (("on", "nxdomain"),)),
        '"1.5": {verdict: gone, since: 2026-01-01, "on": nxdomain}',
    ),
    (Entry("true", "gone", "2026-01-01", ()), '"true": {verdict: gone, since: 2026-01-01}'),
    (
        Entry("a.com", "present", "2026-01-01", (("n", "null"), ("m", "010"))),
        'a.com: {verdict: present, since: 2026-01-01, n: "null", m: "010"}',
    ),
    (
        Entry("a.com", "missing", "2026-01-01", (("n", "nxdomain"),), "n/a"),
        'a.com: {verdict: missing, since: 2026-01-01, today: "n/a", n: nxdomain}',
    ),
    (
        Entry("a.com", "odd verdict", "2026-01-01", ()),
        'a.com: {verdict: "odd verdict", since: 2026-01-01}',
    ),
    (Entry("a.com", "present", "", ()), 'a.com: {verdict: present, since: ""}'),
    (Entry("a.com", "present", "null", ()), 'a.com: {verdict: present, since: "null"}'),
    (
        Entry("кремль.рф", "present", "2026-01-01", ()),
        '"\\u043a\\u0440\\u0435\\u043c\\u043b\\u044c.\\u0440\\u0444": '
        "{verdict: present, since: 2026-01-01}",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "line"), PLAIN + QUOTED)
def test_lines_are_rendered_exactly(entry: Entry, line: str) -> None:
    assert render_line(entry) == line


@pytest.mark.parametrize(("entry", "line"), PLAIN + QUOTED)
def test_lines_round_trip_through_yaml(entry: Entry, line: str) -> None:
    data = yaml.safe_load(line)
    assert list(data) == [entry.domain]
    fields = data[entry.domain]
    assert str(fields["verdict"]) == entry.verdict
    assert fields.get("today") == entry.today
    assert parse_line(line) == entry
    assert parse_domains(line + "\n") == {entry.domain: entry}


@pytest.mark.parametrize(("entry", "line"), PLAIN)
def test_plain_lines_are_read_without_yaml(entry: Entry, line: str, yaml_reads: list[str]) -> None:
    assert _fast_entry(line) == entry
    assert parse_line(line) == entry
    assert parse_domains(line + "\n") == {entry.domain: entry}
    assert yaml_reads == []


@pytest.mark.parametrize(("entry", "line"), QUOTED)
def test_quoted_lines_are_read_by_yaml(entry: Entry, line: str, yaml_reads: list[str]) -> None:
    assert _fast_entry(line) is None
    assert parse_line(line) == entry
    assert parse_domains(line + "\n") == {entry.domain: entry}
    assert yaml_reads == [line, line + "\n"]


def test_a_written_file_is_read_without_yaml_and_shares_statuses(yaml_reads: list[str]) -> None:
    statuses = (("nsdi-a", "nxdomain"), ("google", "ok"))
    entries = [Entry(f"name{i}.example", "missing", "2026-02-10", statuses) for i in range(50)]
    text = render_domains(entries)["domains.yaml"]
    back = parse_domains(text)
    assert back == {e.domain: e for e in entries}
    assert yaml_reads == []
    # a million lines have few distinct statuses: every entry holds the same tuple
    assert len({id(e.statuses) for e in back.values()}) == 1


@pytest.mark.parametrize(
    "line",
    [
        "a.com: {verdict: present, since: 2026-01-01, n}",  # a key without a value
        "a.com: {verdict: present, since: 2026-01-01, n: ok, n: servfail}",  # a key twice
        "a.com: {verdict: present, verdict: gone, since: 2026-01-01}",
        "a.com: {since: 2026-01-01, n: ok}",  # no verdict
        "a.com: {verdict: present, n: ok}",  # no since
        "a.com: {}",
        "a.com: {verdict: present, since: 2026-01-01, }",
        'a.com: {verdict: present, since: 2026-01-01, "n": ok}',
        "a.com: {verdict: present, since: 2026-01-01, n: [ok]}",
        "a.com:",
        "  verdict: present",
        "",
    ],
)
def test_the_fast_path_leaves_anything_else_to_yaml(line: str) -> None:
    assert _fast_entry(line) is None


# Hand edits that a line-by-line reader would take literally while YAML reads something else:
# each goes to YAML, so a line means the same to the tool as to anyone who loads the file.
@pytest.mark.parametrize(
    "line",
    [
        "a.com: {verdict: present, since: 2026-01-01, n: null}",
        "a.com: {verdict: yes, since: 2026-01-01}",
        "a.com: {verdict: present, since: 2026-01-01, n: 010}",
        "a.com: {verdict: present, since: 2026-01-01, n: 1_0}",
        "a.com: {verdict: present, since: 2026-01-01, n: }",
        "a.com: {verdict: present, since: 2026-01-01, n : ok}",
        "a.com: {verdict: present, since: 2026-01-01, n: ok }",
        "a.com: {verdict:  present, since: 2026-01-01}",
        "a.com: {verdict: present, since: 2026-01-01, on: ok}",
        "true: {verdict: present, since: 2026-01-01}",
        "1._: {verdict: present, since: 2026-01-01}",
        "a.com: {verdict: present, since: 2026-01-01, today: null}",
        "a.com: {verdict: present, since: null}",
        "a.com: {verdict: present, since: 2026-01-01, n: a: b}",
    ],
)
def test_a_line_yaml_reads_otherwise_is_read_by_yaml(line: str) -> None:
    assert _fast_entry(line) is None
    try:
        expected = _parse_yaml(line, "line")
    except SnapshotError:
        assert parse_line(line) is None
        return
    assert parse_domains(line + "\n") == expected
    assert parse_line(line) == next(iter(expected.values()))


def test_a_date_yaml_cannot_read_is_a_snapshot_error_not_a_crash() -> None:
    text = (
        "a.com: {verdict: present, since: 2026-13-45}\nb.com: {verdict: present, since: x, n: ~}\n"
    )
    with pytest.raises(SnapshotError, match="not valid YAML"):
        parse_domains(text)


def test_a_name_yaml_would_read_as_a_number_is_written_quoted() -> None:
    line = render_line(Entry("1._", "present", "2026-01-01", ()))
    assert line == '"1._": {verdict: present, since: 2026-01-01}'
    assert list(yaml.safe_load(line)) == ["1._"]
    assert parse_line(line) == Entry("1._", "present", "2026-01-01", ())


def test_a_hand_edited_file_is_read_by_yaml(yaml_reads: list[str]) -> None:
    text = (
        "youtube.com:\n  verdict: missing\n  since: 2026-02-10\n  today: unstable\n"
        '  "nsdi-a": nxdomain\nbbc.com: {verdict: present, since: 2026-01-01, nsdi-a: ok}\n'
    )
    assert parse_domains(text) == {
        "youtube.com": Entry(
            "youtube.com", "missing", "2026-02-10", (("nsdi-a", "nxdomain"),), "unstable"
        ),
        "bbc.com": Entry("bbc.com", "present", "2026-01-01", (("nsdi-a", "ok"),)),
    }
    assert yaml_reads == [text]


def test_a_written_file_with_one_hand_edited_line_is_read_whole_by_yaml(
    yaml_reads: list[str],
) -> None:
    hand_edited = "bbc.com:\n  verdict: gone\n  since: 2026-01-05\n"
    text = render_domains([ENTRY])["domains.yaml"] + hand_edited
    assert parse_domains(text) == {
        "youtube.com": ENTRY,
        "bbc.com": Entry("bbc.com", "gone", "2026-01-05", ()),
    }
    assert yaml_reads == [text]


def test_a_domain_twice_in_a_file_is_left_to_yaml(yaml_reads: list[str]) -> None:
    """The later line wins, as YAML says; the fast path does not decide it."""
    first = render_line(Entry("a.com", "present", "2026-01-01", (("n", "ok"),)))
    second = render_line(Entry("a.com", "missing", "2026-02-01", (("n", "nxdomain"),)))
    text = f"{first}\n{second}\n"
    assert parse_domains(text) == {
        "a.com": Entry("a.com", "missing", "2026-02-01", (("n", "nxdomain"),))
    }
    assert yaml_reads == [text]


def statuses(*pairs: str) -> tuple[tuple[str, str], ...]:
    """Return a new tuple each call (the compiler would share equal literal tuples)."""
    return tuple((pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))


def test_statuses_are_shared_between_equal_tuples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_SHARED", {})
    first, again = statuses("n", "ok", "c", "ok"), statuses("n", "ok", "c", "ok")
    assert again == first and again is not first
    assert shared_statuses(first) is first
    assert shared_statuses(again) is first
    assert shared_statuses(statuses("n", "nxdomain")) == (("n", "nxdomain"),)


def test_the_shared_statuses_are_forgotten_above_100_000(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_SHARED", {})
    first = statuses("n", "0")
    shared_statuses(first)
    for i in range(1, 100_000):
        shared_statuses(statuses("n", str(i)))
    assert shared_statuses(statuses("n", "0")) is first  # 100,000 held: kept
    shared_statuses(statuses("n", "100000"))
    again = statuses("n", "0")
    assert shared_statuses(again) is again  # 100,001 held: forgotten, then this one kept
    assert shared_statuses(statuses("n", "0")) is again


def test_domain_file_is_sorted_and_safe_loadable() -> None:
    entries = [
        Entry(d, "present", "2026-01-01", (("a", "ok"),)) for d in ["b.com", "a.org", "c.net"]
    ]
    files = render_domains(entries)
    assert list(files) == ["domains.yaml"]
    text = files["domains.yaml"]
    assert [line.split(":")[0] for line in text.splitlines()] == ["a.org", "b.com", "c.net"]
    assert set(yaml.safe_load(text)) == {"a.org", "b.com", "c.net"}


def test_a_line_with_two_domains_holds_no_entry() -> None:
    line = (
        "{a.com: {verdict: present, since: 2026-01-01}, b.com: {verdict: gone, since: 2026-01-01}}"
    )
    assert parse_line(line) is None
    assert parse_line("") is None
    assert parse_line("a.com: {verdict: present}") is None


@pytest.mark.parametrize("text", ["", "\n", "\n\n", "  \n"])
def test_an_empty_domain_file_holds_no_entries(text: str) -> None:
    assert parse_domains(text) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("youtube.com: [1, 2]\n", "domains/ab.yaml: youtube.com: expected verdict and since"),
        ("a.com:\n", "domains/ab.yaml: a.com: expected verdict and since"),
        ("a.com: 5\n", "domains/ab.yaml: a.com: expected verdict and since"),
        ("a.com: verdict since\n", "domains/ab.yaml: a.com: expected verdict and since"),
        ("a.com: {verdict: present}\n", "domains/ab.yaml: a.com: expected verdict and since"),
        ("a.com: {since: 2026-01-01}\n", "domains/ab.yaml: a.com: expected verdict and since"),
        ("- a\n- b\n", "domains/ab.yaml: expected a mapping of domains"),
        ("just text\n", "domains/ab.yaml: expected a mapping of domains"),
        ("a: {b: [\n", "domains/ab.yaml: not valid YAML: while parsing a flow node"),
    ],
)
def test_bad_domain_files_raise_snapshot_error_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        parse_domains(text, "domains/ab.yaml")
    assert str(caught.value).startswith(message)


def test_a_bad_shard_is_named_in_the_error() -> None:
    good = render_domains([ENTRY])["domains.yaml"].encode()
    with pytest.raises(SnapshotError, match=r"^domains/6b\.yaml: not valid YAML"):
        parse_snapshot({"domains.yaml": good, "domains/6b.yaml": b"a: {b: [\n"})


def test_a_snapshot_is_read_from_its_domain_files_only() -> None:
    bbc = Entry("bbc.com", "present", "2026-01-01", (("n", "ok"),))
    files = {
        "domains.yaml": render_domains([ENTRY])["domains.yaml"].encode(),
        "domains/db.yaml": (render_line(bbc) + "\n").encode(),
        "resolvers.yaml": render_resolvers([("nsdi-a", "national", "up")]).encode(),
        "run.yaml": b"date: '2026-01-01'\nnames: 2\n",
        "feed.atom": b"<feed/>",
        "domains/notes.txt": b"not: {verdict: present, since: 2026-01-01}\n",
        "other/x.yaml": b"x.com: {verdict: present, since: 2026-01-01}\n",
    }
    assert parse_snapshot(files) == {"youtube.com": ENTRY, "bbc.com": bbc}


# ----------------------------------------------------------------------------- sharding


@pytest.mark.parametrize(
    ("domain", "total", "path"),
    [
        ("youtube.com", 1, "domains.yaml"),
        ("youtube.com", SHARD_ABOVE, "domains.yaml"),
        ("youtube.com", SHARD_ABOVE + 1, "domains/6b.yaml"),
        ("youtube.com", WIDE_SHARDS_ABOVE, "domains/6b.yaml"),
        ("youtube.com", WIDE_SHARDS_ABOVE + 1, "domains/6b7.yaml"),
        ("youtube.com", 1_000_000, "domains/6b7.yaml"),
        ("bbc.com", SHARD_ABOVE + 1, "domains/db.yaml"),
        ("bbc.com", WIDE_SHARDS_ABOVE + 1, "domains/db8.yaml"),
        ("web.whatsapp.com", SHARD_ABOVE + 1, "domains/1d.yaml"),
        ("web.whatsapp.com", WIDE_SHARDS_ABOVE + 1, "domains/1d9.yaml"),
        ("xn--e1afmkfd.xn--p1ai", SHARD_ABOVE + 1, "domains/a1.yaml"),
        ("xn--e1afmkfd.xn--p1ai", WIDE_SHARDS_ABOVE + 1, "domains/a10.yaml"),
        ("a.com", SHARD_ABOVE + 1, "domains/92.yaml"),
        ("a.com", WIDE_SHARDS_ABOVE + 1, "domains/920.yaml"),
    ],
)
def test_shard_names_never_change(domain: str, total: int, path: str) -> None:
    """Pinned file names: another hash or width would re-shard every existing repository."""
    assert shard_name(domain, total) == path


def test_the_thresholds_are_designs() -> None:
    assert (SHARD_ABOVE, WIDE_SHARDS_ABOVE) == (5000, 250_000)


def test_sharded_snapshot_reads_back(tmp_path: Path) -> None:
    entries = [
        Entry(f"name{i}.example", "present", "2026-01-01", (("n", "ok"),))
        for i in range(SHARD_ABOVE + 10)
    ]
    assert list(render_domains(entries[:SHARD_ABOVE])) == ["domains.yaml"]
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


def test_domain_files_lists_what_is_there(tmp_path: Path) -> None:
    assert domain_files(tmp_path) == []
    write_files(tmp_path, {"domains/db.yaml": "", "domains/6b.yaml": "", "run.yaml": ""})
    assert domain_files(tmp_path) == ["domains/6b.yaml", "domains/db.yaml"]
    write_files(tmp_path, {"domains.yaml": ""})
    assert domain_files(tmp_path) == ["domains.yaml", "domains/6b.yaml", "domains/db.yaml"]


# ----------------------------------------------------------------------------- the other files


def test_resolvers_file() -> None:
    health = [
        ("nsdi-a", "national", "up"),
        ("google", "control", "down"),
        ("yes", "control", "nxdomain-rewriting"),
    ]
    assert render_resolvers(health) == (
        "nsdi-a: {group: national, health: up}\n"
        "google: {group: control, health: down}\n"
        '"yes": {group: control, health: nxdomain-rewriting}\n'
    )


def test_run_file_keeps_the_given_order_and_unicode() -> None:
    fields = {
        "date": "2026-02-10",
        "vantage": "demo",
        "names": 23,
        "verdicts": {"present": 6, "missing": 15, "failing": 1},
        "events": {},
        "label": "Кремль",
    }
    assert render_run(fields) == (
        "date: '2026-02-10'\n"
        "vantage: demo\n"
        "names: 23\n"
        "verdicts:\n"
        "  present: 6\n"
        "  missing: 15\n"
        "  failing: 1\n"
        "events: {}\n"
        "label: Кремль\n"
    )


@pytest.mark.parametrize(("length", "lines"), [(900, 1), (997, 1), (998, 2)])
def test_run_file_folds_only_past_column_1000(length: int, lines: int) -> None:
    text = render_run({"k": "a" * length + " b"})
    assert len(text.splitlines()) == lines
    assert yaml.safe_load(text) == {"k": "a" * length + " b"}


# ----------------------------------------------------------------------------- writing files


def test_write_files_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_files(tmp_path, {"a.yaml": "a: 1\n", "sub/b.yaml": "b: 2\n"})
    write_files(tmp_path, {"a.yaml": "a: 3\n"})
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert names == ["a.yaml", "sub", "sub/b.yaml"]
    assert (tmp_path / "a.yaml").read_text() == "a: 3\n"


def test_write_files_makes_every_missing_directory(tmp_path: Path) -> None:
    write_files(tmp_path / "new", {"a/b/c.yaml": "c: 1\n"})
    assert (tmp_path / "new" / "a" / "b" / "c.yaml").read_text() == "c: 1\n"


def test_each_file_is_written_beside_its_target_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename is atomic only within one directory; a crash leaves a hidden ``.NAME.*.tmp``
    file beside its target."""
    renames: list[tuple[Path, Path]] = []
    replace = os.replace

    def recording(src: str, dst: Path) -> None:
        renames.append((Path(src), Path(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    write_files(tmp_path, {"domains.yaml": "a\n", "domains/6b.yaml": "b\n"})
    assert [dst for _, dst in renames] == [tmp_path / "domains.yaml", tmp_path / "domains/6b.yaml"]
    for src, dst in renames:
        assert src.parent == dst.parent
        assert src.name.startswith(f".{dst.name}.") and src.name.endswith(".tmp")


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").mkdir()
    (tmp_path / "run.yaml" / "keep").write_text("")
    with pytest.raises(IsADirectoryError):
        write_files(tmp_path, {"run.yaml": "date: today\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


def test_pruning_a_file_that_is_not_there_is_fine(tmp_path: Path) -> None:
    write_files(tmp_path, {"domains.yaml": "a\n"}, prune=["domains/6b.yaml", "domains.yaml"])
    assert domain_files(tmp_path) == ["domains.yaml"]


def test_files_are_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """Under a locale whose encoding is ASCII (or KOI8-R), the files are the same UTF-8 bytes."""
    files = {"domains.yaml": "кремль.рф: x\n"}
    write_files(tmp_path / "here", files)
    code = (
        "import json, sys; from pathlib import Path; from monitor.snapshot import write_files; "
        "write_files(Path(sys.argv[1]), json.loads(sys.argv[2]))"
    )
    env = {
        **os.environ,
        "LC_ALL": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONPATH": str(Path(monitor.__file__).parent.parent),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ascii"), json.dumps(files)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    expected = "кремль.рф: x\n".encode()
    assert (tmp_path / "here" / "domains.yaml").read_bytes() == expected
    assert (tmp_path / "ascii" / "domains.yaml").read_bytes() == expected


@pytest.mark.parametrize("vantage", ["../etc", "a/b", "", "UPPER", "a b"])
def test_vantage_never_makes_a_path_outside_snapshots(tmp_path: Path, vantage: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        snapshot_dir(tmp_path, vantage)
    assert str(caught.value) == f"bad vantage name {vantage!r}: use [a-z0-9-]+"


def test_snapshot_dir() -> None:
    assert snapshot_dir(Path("/repo"), "ru-msk-1") == Path("/repo/snapshots/ru-msk-1")


# ----------------------------------------------------------------------------- whole sets


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> text), and every directory (-> "/")."""
    return {
        p.relative_to(root).as_posix(): "/" if p.is_dir() else p.read_text()
        for p in sorted(root.rglob("*"))
    }


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    write_files(tmp_path / "a", {"run.yaml": "a\n"})
    write_files(tmp_path / "b", {"domains/x.yaml": "b\n"})
    assert _exchange(tmp_path / "a", tmp_path / "b") is True
    assert tree(tmp_path) == {
        "a": "/",
        "a/domains": "/",
        "a/domains/x.yaml": "b\n",
        "b": "/",
        "b/run.yaml": "a\n",
    }


def test_exchange_takes_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(tmp_path / "a", {"run.yaml": "a\n"})
    write_files(tmp_path / "b", {"run.yaml": "b\n"})
    monkeypatch.chdir(tmp_path)
    assert _exchange(Path("a"), Path("b")) is True
    assert tree(tmp_path) == {"a": "/", "a/run.yaml": "b\n", "b": "/", "b/run.yaml": "a\n"}


def test_exchange_with_a_missing_directory_raises(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(OSError) as caught:
        _exchange(tmp_path / "a", tmp_path / "missing")
    assert caught.value.errno == errno.ENOENT
    assert caught.value.strerror == os.strerror(errno.ENOENT)
    assert caught.value.filename == str(tmp_path / "missing")


def test_exchange_refused_by_the_kernel_as_invalid_means_cannot(tmp_path: Path) -> None:
    """EINVAL (here a directory swapped with its own subdirectory; also what a filesystem
    without the exchange says) reads as "cannot", so the caller falls back to renames."""
    (tmp_path / "a" / "sub").mkdir(parents=True)
    assert _exchange(tmp_path / "a", tmp_path / "a" / "sub") is False
    assert tree(tmp_path) == {"a": "/", "a/sub": "/"}


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record every os.rename the snapshot module makes (each still happens)."""
    calls: list[tuple[str, str]] = []
    rename = os.rename

    def recording(src: Path, dst: Path) -> None:
        calls.append((Path(src).name, Path(dst).name))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", recording)
    return calls


def test_replace_directory_swaps_the_whole_set(
    tmp_path: Path, renames: list[tuple[str, str]]
) -> None:
    target = tmp_path / "snapshots" / "v"
    replace_directory(target, {"domains.yaml": "a.com: {verdict: present, since: 2026-01-01}\n"})
    assert renames == [(".v.new", "v")]  # a first set is renamed into place
    replace_directory(target, {"domains/ab.yaml": "b.com: {verdict: gone, since: 2026-01-02}\n"})
    assert renames == [(".v.new", "v")]  # an existing one is exchanged, never renamed away
    assert tree(tmp_path) == {
        "snapshots": "/",
        "snapshots/v": "/",
        "snapshots/v/domains": "/",
        "snapshots/v/domains/ab.yaml": "b.com: {verdict: gone, since: 2026-01-02}\n",
    }


def libc_without_renameat2(*args: object, **kwargs: object) -> object:
    return object()  # as glibc before 2.28, or an old musl


def no_libc(*args: object, **kwargs: object) -> object:
    raise OSError("no C library to load")


@pytest.mark.parametrize("libc", [libc_without_renameat2, no_libc])
def test_without_the_exchange_two_renames_replace_the_set(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    renames: list[tuple[str, str]],
    libc: Callable[..., object],
) -> None:
    target = tmp_path / "v"
    replace_directory(target, {"run.yaml": "yesterday\n", "domains/6b.yaml": "old\n"})
    monkeypatch.setattr(ctypes, "CDLL", libc)
    assert _exchange(tmp_path / "v", tmp_path / "v") is False
    replace_directory(target, {"run.yaml": "today\n"})
    assert renames == [(".v.new", "v"), ("v", ".v.old"), (".v.new", "v")]
    assert tree(tmp_path) == {"v": "/", "v/run.yaml": "today\n"}


# What a crash in replace_directory can leave beside snapshots/v (each directory holds a run.yaml
# saying which set it is), and what recover makes of it: the old set or the new, never a mix.
RECOVERIES = [
    ({}, {}),
    ({"v": "yesterday"}, {"v": "yesterday"}),
    # killed while writing today's set
    ({"v": "yesterday", ".v.new": "to"}, {"v": "yesterday"}),
    ({".v.new": "to"}, {}),
    # exchanged, the retired set (now in staging) not yet removed
    ({"v": "today", ".v.new": "yesterday"}, {"v": "today"}),
    # without the exchange: killed between the two renames
    ({".v.old": "yesterday", ".v.new": "today"}, {"v": "yesterday"}),
    ({".v.old": "yesterday"}, {"v": "yesterday"}),
    # ... or after both, before the retired set was removed
    ({"v": "today", ".v.old": "yesterday"}, {"v": "today"}),
]


@pytest.mark.parametrize(("left", "recovered"), RECOVERIES)
def test_recover_each_leftover_state(
    tmp_path: Path, left: dict[str, str], recovered: dict[str, str]
) -> None:
    for name, text in left.items():
        write_files(tmp_path / name, {"run.yaml": text})
    recover(tmp_path / "v")
    assert {p.name: (p / "run.yaml").read_text() for p in tmp_path.iterdir()} == recovered


@pytest.mark.parametrize(("left", "recovered"), RECOVERIES)
def test_replace_directory_after_each_leftover_state(
    tmp_path: Path, left: dict[str, str], recovered: dict[str, str]
) -> None:
    for name, text in left.items():
        write_files(tmp_path / name, {"run.yaml": text, "domains/x.yaml": text})
    replace_directory(tmp_path / "v", {"run.yaml": "next"})
    assert tree(tmp_path) == {"v": "/", "v/run.yaml": "next"}


# ----------------------------------------------------------------------------- evidence

EDE_ENTRY = Entry(
    "youtube.com",
    "missing",
    "2026-02-10",
    (("nsdi-a", "nxdomain"), ("nsdi-b", "nxdomain"), ("google", "ok")),
    ede=(("nsdi-a", (15,)), ("nsdi-b", (15, 18))),
)


def test_a_flagged_line_carries_the_ede_codes_as_designs() -> None:
    line = render_line(EDE_ENTRY)
    assert line == (
        "youtube.com: {verdict: missing, since: 2026-02-10, nsdi-a: nxdomain, nsdi-b: nxdomain, "
        "google: ok, ede: {nsdi-a: [15], nsdi-b: [15, 18]}}"
    )
    assert yaml.safe_load(line)["youtube.com"]["ede"] == {"nsdi-a": [15], "nsdi-b": [15, 18]}
    assert parse_line(line) == EDE_ENTRY
    assert parse_domains(line + "\n") == {"youtube.com": EDE_ENTRY}
    # the codes are not statuses: ede is no resolver's name
    assert dict(parse_line(line).statuses) == {  # type: ignore[union-attr]
        "nsdi-a": "nxdomain",
        "nsdi-b": "nxdomain",
        "google": "ok",
    }


@pytest.mark.parametrize(
    "ede",
    [
        "'15'",
        "[15]",
        "{nsdi-a: 15}",
        "{nsdi-a: [fifteen]}",
        "{nsdi-a: [70000]}",
        "{nsdi-a: [true]}",
    ],
)
def test_a_hand_edited_ede_that_is_not_codes_is_left_out(ede: str) -> None:
    line = f"a.com: {{verdict: missing, since: 2026-02-10, nsdi-a: nxdomain, ede: {ede}}}"
    entry = parse_line(line)
    assert entry == Entry("a.com", "missing", "2026-02-10", (("nsdi-a", "nxdomain"),))


def test_resolvers_yaml_says_why_tcp_was_not_used() -> None:
    text = render_resolvers(
        [
            ("nsdi-a", "national", "up", "refused"),
            ("nsdi-b", "national", "up", ""),
            ("google", "control", "down"),
        ]
    )
    assert text == (
        "nsdi-a: {group: national, health: up, tcp: refused}\n"
        "nsdi-b: {group: national, health: up}\n"
        "google: {group: control, health: down}\n"
    )
    assert yaml.safe_load(text)["nsdi-a"] == {"group": "national", "health": "up", "tcp": "refused"}


def test_a_tampered_line_says_which_resolver_gave_which_address() -> None:
    entry = Entry(
        "meduza.io",
        "tampered",
        "2026-02-10",
        (("nsdi-a", "ok"), ("nsdi-b", "ok")),
        answers=(("nsdi-a", ("10.0.34.34",)), ("nsdi-b", ("2001:db8::34", "95.213.158.62"))),
    )
    line = render_line(entry)
    assert line == (
        "meduza.io: {verdict: tampered, since: 2026-02-10, nsdi-a: ok, nsdi-b: ok, "
        'answers: {nsdi-a: [10.0.34.34], nsdi-b: ["2001:db8::34", 95.213.158.62]}}'
    )
    assert yaml.safe_load(line)["meduza.io"]["answers"] == {
        "nsdi-a": ["10.0.34.34"],
        "nsdi-b": ["2001:db8::34", "95.213.158.62"],
    }
    assert parse_line(line) == entry


@pytest.mark.parametrize(
    ("note", "comment"),
    [
        ("YouTube", "  # YouTube"),
        ("кремль.рф, Kremlin", "  # кремль.рф, Kremlin"),
        ("a label\nwith: {yaml} # in it\u202e", "  # a label\\x0awith: {yaml} # in it\\u202e"),
    ],
)
def test_a_line_ends_with_the_name_as_people_read_it(note: str, comment: str) -> None:
    entry = Entry("xn--e1ajeds9e.xn--p1ai", "present", "2026-01-01", (("n", "ok"),), note=note)
    line = render_line(entry)
    assert line == "xn--e1ajeds9e.xn--p1ai: {verdict: present, since: 2026-01-01, n: ok}" + comment
    assert "\n" not in line
    assert yaml.safe_load(line) == {
        "xn--e1ajeds9e.xn--p1ai": {
            "verdict": "present",
            "since": datetime.date(2026, 1, 1),
            "n": "ok",
        }
    }
    back = parse_line(line)
    assert back == entry  # the note is not part of what the line says
    assert back is not None and back.note == comment.removeprefix("  # ")


@pytest.mark.parametrize(
    ("ede", "kept"),
    [
        ("{nsdi-a: [0, 65535]}", (("nsdi-a", (0, 65535)),)),  # the whole range of codes
        ("{nsdi-a: [65536]}", ()),
        ("{nsdi-a: [-1]}", ()),
    ],
)
def test_ede_codes_are_sixteen_bits(
    ede: str, kept: tuple[tuple[str, tuple[int, ...]], ...]
) -> None:
    line = f"a.com: {{verdict: missing, since: 2026-02-10, nsdi-a: nxdomain, ede: {ede}}}"
    entry = parse_line(line)
    assert entry is not None and entry.ede == kept


def test_a_hand_edited_answers_that_are_not_addresses_are_left_out() -> None:
    for answers in ("{nsdi-a: 10.0.34.34}", "{nsdi-a: [1, 2]}", "[10.0.34.34]"):
        line = f"a.com: {{verdict: tampered, since: 2026-02-10, nsdi-a: ok, answers: {answers}}}"
        entry = parse_line(line)
        assert entry is not None and entry.answers == (), answers


def test_a_failed_write_names_the_file_as_people_know_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "snapshots" / "lab"

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(snapshot, "write_atomically", full)
    with pytest.raises(FileError) as raised:
        replace_directory(directory, {"domains.yaml": "a.com: {verdict: present, since: x}\n"})
    # the private staging path is shown as the directory people know
    assert str(raised.value) == f"{directory / 'domains.yaml'}: No space left on device"
    assert list((tmp_path / "snapshots").iterdir()) == []  # staging removed, nothing left


def test_a_failed_swap_is_a_file_error_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "snapshots" / "lab"
    replace_directory(directory, {"domains.yaml": "a\n"})

    def refused(a: Path, b: Path) -> bool:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(b))

    monkeypatch.setattr(snapshot, "_exchange", refused)
    with pytest.raises(FileError) as raised:
        replace_directory(directory, {"domains.yaml": "b\n"})
    assert str(raised.value) == f"{directory}: Permission denied"


def test_a_file_where_the_snapshot_directory_goes_is_an_error_and_stays(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    directory.write_text("not a directory\n")
    with pytest.raises(FileError) as raised:
        replace_directory(directory, {"domains.yaml": "a.com: {}\n"})
    assert str(raised.value) == f"{directory}: Not a directory"  # the path people know
    assert directory.read_text() == "not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab"]  # no staging left
