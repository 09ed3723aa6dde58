"""Hostile input: DNS replies, answers and snapshot files written to break what shows them.

Strings that did not come from this program (DNS answers, a snapshot someone edited in the
repository, a config) carry newlines, Markdown, HTML, ANSI escapes and `../`. Each place they
can reach is shown to escape or refuse them: snapshot lines, commit messages, the feed, the
JSON, the terminal and paths. YAML is only ever read with the safe loader. Random and mutated
replies go through the probe engine end to end, over UDP and TCP, and give only valid
observations.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import io
import json
import re
import struct
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.changes import Event, advance, commit_message
from monitor.config import WatchedName, load_config_text
from monitor.errors import ConfigError, SnapshotError
from monitor.escape import escape_json
from monitor.feed import entries_for, parse_feed, render_feed
from monitor.history import DomainHistory, Period
from monitor.lab import Lab, Reply, Request, Responder, World, encode
from monitor.measure import DomainResult, Measurement, ResolverHealth
from monitor.output import check_table, health_lines, history_csv, measurement_document
from monitor.probe import Engine, Observation
from monitor.probe.wire import MalformedReply, Question, read_reply
from monitor.snapshot import (
    DOMAINS_FILE,
    parse_domains,
    parse_line,
    render_domains,
    shard_name,
    snapshot_dir,
)
from monitor.vocabulary import STATUSES, EventKind, Group, Health, Status, Verdict

PROJECT = Path(__file__).resolve().parent.parent
ESC = "\x1b"
HOSTILE = [
    "line\nbreak",
    "carriage\rreturn",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "**bold** [link](http://evil.example) `code` # head | cell |",
    "<script>alert(1)</script> &amp; </title>",
    "../../etc/passwd",
    "\u202eevil\u2028para\u2029graph\x85",
    "x}\nevil.com: {verdict: missing, since: 2026-01-01",
    'quote" \\ back',
    "present\n\nMonitor-Vantage: evil",
    "NUL\x00byte",
]
RESOLVERS = ("nat-a", "ctl-a")
DAY = "2026-02-11"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")


def result(domain: str, verdict: Verdict, statuses: tuple[str, ...] = ("ok", "ok")) -> DomainResult:
    return DomainResult(WatchedName(domain, domain, None), verdict, RESOLVERS, statuses)


def hostile_snapshot(domain: str, **fields: str) -> str:
    """One domain line whose values are arbitrary strings (JSON strings are YAML too)."""
    return f"{domain}: {{{', '.join(f'{k}: {json.dumps(v)}' for k, v in fields.items())}}}\n"


# ----------------------------------------------------------------------------- snapshot lines


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("key", ["since", "verdict", "today", "nat-a"])
def test_a_hostile_value_in_yesterdays_snapshot_never_breaks_todays_lines(
    text: str, key: str
) -> None:
    """A hand-edited snapshot in the repository is outside input too: its strings are carried
    into today's lines only escaped (or refused when read), never as raw YAML."""
    fields = {"verdict": "present", "since": "2026-02-10", "nat-a": "ok", "ctl-a": "ok"}
    fields[key] = text
    try:
        previous = parse_domains(
            hostile_snapshot("a.com", **fields) + "b.com: {verdict: present, since: 2026-02-10}\n"
        )
    except SnapshotError:
        return  # refused as it is read: fine
    today = [
        result("a.com", Verdict.PRESENT),
        result("b.com", Verdict.UNSTABLE),
        result("c.com", Verdict.MISSING, ("nxdomain", "ok")),
    ]
    entries, _ = advance(previous, today, RESOLVERS, DAY)
    text_out = render_domains(entries)[DOMAINS_FILE]
    lines = text_out.splitlines()
    assert len(lines) == len(entries)
    assert sorted(yaml.safe_load(text_out)) == ["a.com", "b.com", "c.com"]
    assert {e.domain: e for e in entries} == parse_domains(text_out)
    for line, entry in zip(lines, sorted(entries, key=lambda e: e.domain), strict=True):
        assert parse_line(line) == entry


# ----------------------------------------------------------------------------- commit messages


def assert_one_message(message: str, events: int) -> None:
    """Subject, blank, one line per event, blank, exactly the two trailers; nothing else."""
    assert ESC not in message and not CONTROL.search(message.replace("\n", ""))
    head, _, trailers = message.rstrip("\n").rpartition("\n\n")
    assert trailers.splitlines() == [f"Monitor-Date: {DAY}", "Monitor-Vantage: lab"]
    lines = head.split("\n")
    assert len(lines) == (2 + events if events else 1)


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_verdict_in_yesterdays_snapshot_never_breaks_the_commit_message(
    text: str,
) -> None:
    snapshot = hostile_snapshot("a.com", verdict=text, since="2026-02-10")
    snapshot += hostile_snapshot("b.com", verdict="present", since=text)
    try:
        previous = parse_domains(snapshot)
    except SnapshotError:
        return
    today = [
        result("a.com", Verdict.MISSING, ("nxdomain", "ok")),
        result("b.com", Verdict.MISSING, ("nxdomain", "ok")),
    ]
    entries, events = advance(previous, today, RESOLVERS, DAY)
    assert_one_message(commit_message("lab", DAY, events, entries), len(events))


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_in_events_never_break_the_commit_message(text: str) -> None:
    events = [Event(text, EventKind.DISAPPEARED, text, "missing", DAY, text)] * 4
    assert_one_message(commit_message("lab", DAY, events, []), 4)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_in_events_never_break_the_feed(text: str) -> None:
    events = [Event(text, EventKind.DISAPPEARED, text, "missing", DAY, text)] * 4
    feed = render_feed("lab", entries_for("lab", events), [])
    root = ET.fromstring(feed)
    assert [child.tag.split("}")[1] for child in root] == [
        "title",
        "id",
        "updated",
        "author",
        *["entry"] * 1,  # the same event four times is one entry (a stable id)
    ]
    for node in root.iter():
        assert not CONTROL.search(node.text or ""), node.text
        assert "script" not in node.tag
    assert parse_feed(feed)[0].title.startswith("disappeared: ")


# ----------------------------------------------------------------------------- JSON and terminal


def hostile_measurement(text: str) -> Measurement:
    observations = {
        "nat-a": (Observation("nat-a", "a.com", "TXT", Status.OK, (text, json.dumps(text)), text),),
        "ctl-a": (Observation("ctl-a", "a.com", "A", Status.ERROR, (), text),),
    }
    name = WatchedName("a.com", "a.com", text)
    return Measurement(
        "lab",
        (
            ResolverHealth("nat-a", Group.NATIONAL, Health.NXDOMAIN_REWRITING, text),
            ResolverHealth("ctl-a", Group.CONTROL, Health.DOWN, text),
        ),
        (DomainResult(name, Verdict.PRESENT, RESOLVERS, ("ok", "error"), observations),),
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_answers_are_json_encoded_and_never_reach_a_terminal_raw(text: str) -> None:
    m = hostile_measurement(text)
    doc = measurement_document(m, DAY)
    # What the CLI prints (ensure_ascii=False, as cli._echo_json does).
    printed = json.dumps(doc, ensure_ascii=False, indent=1)
    assert ESC not in printed and "\r" not in printed and "\x00" not in printed
    back = json.loads(printed)
    assert back["domains"][0]["resolvers"]["nat-a"]["TXT"]["answers"][0] == text
    assert back["domains"][0]["label"] == text
    table = check_table(m, list(RESOLVERS))
    assert ESC not in table and len(table.splitlines()) == 2
    for line in health_lines(m):
        assert ESC not in line and "\n" not in line and "\r" not in line


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_any_domain_text_in_history_csv_stays_one_cell(text: str) -> None:
    out = history_csv([DomainHistory(text, [Period("missing", DAY, None)])])
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["domain", "display", "label", "verdict", "from", "to"]
    assert len(rows) == 2 and rows[1][2:] == ["", "missing", DAY, ""]


# ----------------------------------------------------------------------------- the CLI, end to end


def git(cwd: Path, *args: str, message: str | None = None) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Hostile",
        "GIT_AUTHOR_EMAIL": "h@example.test",
        "GIT_COMMITTER_NAME": "Hostile",
        "GIT_COMMITTER_EMAIL": "h@example.test",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, input=message
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli(config: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT),
            "HOME": str(cwd),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "Hostile",
            "GIT_AUTHOR_EMAIL": "h@example.test",
            "GIT_COMMITTER_NAME": "Hostile",
            "GIT_COMMITTER_EMAIL": "h@example.test",
        },
    )


TXT = '"\\027[31mRED\\027[0m <script>x</script> ../../etc **md** \\010Monitor-Vantage: evil"'
LAB_RECORDS = {
    ("example.com", "A"): ["93.184.216.34"],
    ("a.com", "A"): ["93.184.216.35"],
    ("a.com", "TXT"): [TXT],
    ("b.com", "A"): ["93.184.216.36"],
}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    world = World(LAB_RECORDS)
    with Lab({"nat-a": world, "ctl-a": world}) as running:
        config = tmp_path / "config.yaml"
        config.write_text(
            "vantage: lab\n"
            "record_types: [A, TXT]\n"
            "resolvers:\n"
            f"  national: [{{name: nat-a, address: 127.0.0.1, port: {running['nat-a'].port}}}]\n"
            f"  control: [{{name: ctl-a, address: 127.0.0.1, port: {running['ctl-a'].port}}}]\n"
            "watchlist: [a.com, b.com]\n",
            encoding="utf-8",
        )
        yield running, config


def test_check_json_and_table_escape_a_hostile_txt_answer(
    lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    _, config = lab
    as_json = cli(config, "check", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert ESC not in as_json.stdout and "\x08" not in as_json.stdout
    doc = json.loads(as_json.stdout)
    txt = doc["domains"][0]["resolvers"]["nat-a"]["TXT"]
    assert txt == {
        "status": "ok",
        "answers": [TXT],
        "ede": [],
        "cname": [],
        "soa": None,
        "aa": False,
    }
    table = cli(config, "check", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert ESC not in table.stdout + table.stderr
    assert len(table.stdout.splitlines()) == 3


def test_diff_and_history_escape_a_hostile_snapshot_in_the_repository(
    lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    """Someone committed a snapshot with hostile verdicts; reading history shows them escaped."""
    _, config = lab
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    directory = repo / "snapshots" / "lab"
    directory.mkdir(parents=True)
    evil = "present\x1b[2J\x1b]0;pwned\x07\nMonitor-Vantage: evil"
    (directory / "domains.yaml").write_text(
        hostile_snapshot("a.com", verdict=evil, since="2026-02-10", **{"nat-a": "ok"})
        + "b.com: {verdict: present, since: 2026-02-10, nat-a: ok, ctl-a: ok}\n",
        encoding="utf-8",
    )
    git(repo, "add", "-A")
    git(
        repo,
        "commit",
        "-q",
        "-F",
        "-",
        message="lab: edited\n\nMonitor-Date: 2026-02-10\nMonitor-Vantage: lab\n",
    )
    (directory / "domains.yaml").write_text(
        "a.com: {verdict: missing, since: 2026-02-11, nat-a: nxdomain, ctl-a: ok}\n"
        "b.com: {verdict: present, since: 2026-02-10, nat-a: ok, ctl-a: ok}\n",
        encoding="utf-8",
    )
    git(repo, "commit", "-q", "-a", "-F", "-", message=f"lab\n\nMonitor-Date: {DAY}\n")
    raw = {}
    for command in ("diff", "history"):
        shown = cli(config, command, "--repo", str(repo), cwd=repo)
        assert shown.returncode == 0, shown.stderr
        raw[command] = bool(CONTROL.search(shown.stdout.replace("\n", "")))
    # Machine formats carry the string itself, encoded: CSV quoting, JSON escapes.
    csv_out = cli(config, "history", "--format", "csv", "--repo", str(repo), cwd=repo).stdout
    rows = list(csv.reader(io.StringIO(csv_out, newline="")))
    # (click strips CSI sequences such as ESC[2J from output that is not a terminal, so the
    # verdict cell is not compared; OSC sequences such as ESC]0;...BEL it leaves alone.)
    assert [(row[0], row[4]) for row in rows[1:]] == [
        ("a.com", "2026-02-10"),
        ("a.com", DAY),
        ("b.com", "2026-02-10"),
    ]
    diff = cli(config, "diff", "--repo", str(repo), cwd=repo).stdout
    assert len(diff.splitlines()) == 1
    history = json.loads(
        cli(config, "history", "--format", "json", "--repo", str(repo), cwd=repo).stdout
    )
    assert [p["verdict"] for p in history["domains"][0]["periods"]] == [evil, "missing"]
    assert raw == {"diff": False, "history": False}  # what a terminal shows is escaped


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "vantage", ["../x", "x/../../y", "/etc", ".", "..", "A", "a b", "a\\nb", "snap/shots", ""]
)
def test_a_vantage_that_could_leave_snapshots_is_refused_with_file_and_line(
    vantage: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"resolvers:\n  national: [{{name: n, address: 192.0.2.1}}]\n"
        f"  control: [{{name: c, address: 192.0.2.2}}]\n"
        f"watchlist: [a.com]\nvantage: {json.dumps(vantage)}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_config_text(config.read_text(), config)
    assert (refused.value.line, refused.value.key) == (5, "vantage")
    done = cli(config, "validate", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {config}:5: vantage: ")
    with pytest.raises(SnapshotError):
        snapshot_dir(tmp_path, vantage)


@given(st.text(min_size=1), st.sampled_from([1, 5001, 300_000]))
@settings(max_examples=500, deadline=None)
def test_snapshot_paths_never_come_from_the_domain(domain: str, total: int) -> None:
    assert re.fullmatch(r"domains\.yaml|domains/[0-9a-f]{2,3}\.yaml", shard_name(domain, total))


def test_the_run_commits_only_under_the_vantage_directory(
    lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    _, config = lab
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    done = cli(config, "run", "--repo", str(repo), "--date", DAY, cwd=repo)
    assert done.returncode == 0, done.stderr
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert files == [
        f"snapshots/lab/{n}"
        for n in sorted(("domains.yaml", "feed.atom", "resolvers.yaml", "run.yaml"))
    ]


# ----------------------------------------------------------------------------- safe YAML

UNSAFE_CALLS = {"unsafe_load", "full_load", "unsafe_load_all", "full_load_all"}
UNSAFE_NAMES = {"Loader", "FullLoader", "UnsafeLoader", "CLoader", "CFullLoader", "CUnsafeLoader"}


def test_monitor_never_loads_yaml_with_an_unsafe_loader() -> None:
    """Every yaml.load/load_all names a loader that builds no Python objects; no unsafe API."""
    import yaml.constructor

    found = []
    for path in sorted((PROJECT / "monitor").glob("*.py")):
        if path.stem == "__main__":
            continue  # importing it would run the command line
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        module = __import__(f"monitor.{path.stem}", fromlist=["_"])
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
                and node.attr in UNSAFE_CALLS | UNSAFE_NAMES
            ):
                found.append(f"{where}: yaml.{node.attr}")
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("load", "load_all", "compose", "compose_all"):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "yaml"):
                continue
            loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            if loader is None:
                found.append(f"{where}: yaml.{node.func.attr} without a Loader")
                continue
            cls = eval(compile(ast.Expression(loader), where, "eval"), vars(module))
            if issubclass(cls, yaml.constructor.FullConstructor) or not issubclass(
                cls, yaml.constructor.SafeConstructor
            ):
                found.append(f"{where}: yaml.{node.func.attr} with {cls.__name__}")
    assert found == []


def test_a_python_tag_in_a_config_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = tmp_path / "config.yaml"
    config.write_text(
        f'vantage: !!python/object/apply:os.system ["touch {marker}"]\nwatchlist: [a.com]\n',
        encoding="utf-8",
    )
    done = cli(config, "validate", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {config}:1")
    assert not marker.exists()


def test_a_python_tag_in_a_snapshot_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'a.com: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(SnapshotError):
        parse_domains(text)
    assert parse_line(text.rstrip("\n")) is None
    assert not marker.exists()


# ----------------------------------------------------------------------------- the engine, fuzzed

FUZZ_NAME = "a.com"
FUZZ_ADDRESS = "93.184.216.35"
GENUINE_WORLD = World({(FUZZ_NAME, "A"): [FUZZ_ADDRESS], ("example.com", "A"): ["93.184.216.34"]})


class Fuzzer:
    """One responder whose reply bytes a hypothesis example sets; the engine asks it once."""

    def __init__(self) -> None:
        self.payload: list[bytes] = []
        self.mutations: list[tuple[int, int]] | None = None
        self.genuine_after = False
        self.responder = Responder(self.handle)

    def handle(self, request: Request) -> Reply:
        assert request.message is not None
        answer = GENUINE_WORLD(request)
        assert isinstance(answer, dns.message.Message)
        genuine = encode(answer, request)
        qid = struct.pack("!H", request.message.id)
        if self.mutations is not None:
            data = bytearray(genuine)
            for position, value in self.mutations:
                data[position % len(data)] = value
            sent = [bytes(data)]
        else:
            sent = [qid + p[2:] if len(p) >= 2 else p for p in self.payload]
        return [*sent, genuine] if self.genuine_after else sent

    def ask(self, transport: str) -> Observation:
        config = load_config_text(
            "resolvers:\n"
            f"  national: [{{name: n, address: 127.0.0.1, port: {self.responder.port}, "
            f"transport: {transport}, rate: 0}}]\n"
            "  control: [{name: c, address: 127.0.0.1}]\nwatchlist: [a.com]\n",
            PROJECT / "config.yaml",
        )
        found: list[Observation] = []

        async def go() -> None:
            async with Engine(config.national, timeout=0.1, attempts=1) as engine:
                await engine.observe(["n"], [FUZZ_NAME], ["A"], lambda _, o: found.append(o))

        asyncio.run(go())
        assert len(found) == 1
        return found[0]


@pytest.fixture(scope="module")
def fuzzer() -> Iterator[Fuzzer]:
    f = Fuzzer()
    yield f
    f.responder.stop()


def believable(data: bytes) -> bool:
    """Whether a reply would be taken as the answer to the fuzz question."""
    try:
        return read_reply(data, Question.of(FUZZ_NAME, 1)) is not None
    except MalformedReply:
        return False


def assert_valid(observation: Observation) -> None:
    assert observation.status in STATUSES
    assert isinstance(observation.answers, tuple)
    if observation.status == "ok":
        for answer in observation.answers:
            assert re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", answer), answer
    else:
        assert observation.answers == ()
    assert observation.detail is None or (
        isinstance(observation.detail, str) and ESC not in observation.detail
    )


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    st.lists(st.binary(max_size=600), min_size=1, max_size=3),
    st.sampled_from(["udp", "tcp"]),
    st.booleans(),
)
def test_random_replies_through_the_engine_give_valid_observations(
    fuzzer: Fuzzer, payload: list[bytes], transport: str, genuine_after: bool
) -> None:
    fuzzer.payload, fuzzer.mutations, fuzzer.genuine_after = payload, None, genuine_after
    observation = fuzzer.ask(transport)
    assert_valid(observation)
    if genuine_after and not any(believable(p) for p in payload):
        # Garbage first must not hide the real answer that follows.
        assert (observation.status, observation.answers) == ("ok", (FUZZ_ADDRESS,))


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
    st.sampled_from(["udp", "tcp"]),
)
def test_mutated_replies_through_the_engine_give_valid_observations(
    fuzzer: Fuzzer, mutations: list[tuple[int, int]], transport: str
) -> None:
    fuzzer.payload, fuzzer.mutations, fuzzer.genuine_after = [], mutations, False
    assert_valid(fuzzer.ask(transport))


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_a_json_document_never_carries_a_character_that_steers_a_terminal(text: str) -> None:
    doc = {"domains": [{"ede": [{"code": 15, "text": text}], "cname": [text]}]}
    printed = escape_json(json.dumps(doc, ensure_ascii=False, indent=1))
    assert json.loads(printed) == doc  # the same document to a parser
    shown = {unicodedata.category(ch) for ch in printed if ord(ch) > 0x7E}
    assert not shown & {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
    # readable Unicode stays as it is
    assert escape_json('"кремль.рф"') == '"кремль.рф"'
