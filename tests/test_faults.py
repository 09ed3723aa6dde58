"""Fault tests: lossy links, forged replies, NXDOMAIN rewriting, broken and offline resolvers.

The promise under test: a network or resolver fault never produces a false flag (`missing`,
`partial`, `failing`, `tampered`) and never hides a deletion behind `present`; at worst the
day says `unstable` or `inconclusive`. Real unbound resolvers sit behind tests/faultproxy.py;
exact packets (NXDOMAIN rewriting, a resolver that breaks halfway) come from monitor.lab.
Run with ``-s`` to see the measured figures that docs/reliability.md reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
import realdns
import yaml
from faultproxy import FaultProxy, Faults, loss
from realdns import DNSLab, Endpoint, MissingBinaryError

import monitor.run
from monitor.config import Config, load_config_text
from monitor.lab import Handler, Lab, Reply, Request, World
from monitor.measure import Measurement, measure
from monitor.probe import Engine, Observation

PROJECT = Path(__file__).resolve().parent.parent
NAMES = [f"site{i}.com" for i in range(1000)]
DELETED = frozenset(NAMES[i] for i in range(7, 1000, 50))  # 20 names, deleted nationally
CANARY = "example.com"
NATIONALS = ("nat-a", "nat-b")
CONTROLS = ("ctl-a", "ctl-b", "ctl-c")
# Controls: one over UDP, two over TCP as the shipped config has them.
TRANSPORT = {"nat-a": "udp", "nat-b": "udp", "ctl-a": "udp", "ctl-b": "tcp", "ctl-c": "tcp"}
FALSE_FLAGS = frozenset({"missing", "partial", "failing", "tampered", "national-only", "gone"})
NOT_CONCLUSIVE = frozenset({"unstable", "inconclusive"})
LOSS_RUNS = 5


def address_of(i: int) -> str:
    return f"93.184.{i // 250}.{i % 250 + 1}"


# ----------------------------------------------------------------------------- the vantage


@dataclass
class Vantage:
    """Real unbound resolvers, each behind its own fault proxy."""

    lab: DNSLab
    servers: dict[str, Endpoint]
    proxies: dict[str, FaultProxy]

    def config(
        self,
        tmp_path: Path,
        names: Sequence[str],
        *,
        timeout: float = 0.5,
        extra: str = "",
        resolvers: Sequence[str] = (*NATIONALS, *CONTROLS),
    ) -> Config:
        """A config over the proxies, default attempts and confirm unless ``extra`` says."""

        def entry(name: str) -> str:
            proxy = self.proxies[name]
            return (
                f"    - {{name: {name}, address: {proxy.address}, port: {proxy.port}, "
                f"transport: {TRANSPORT[name]}, rate: 0}}"
            )

        lines = [
            "vantage: faults",
            f"timeout: {timeout}",
            f"canaries: [{CANARY}]",
            extra,
            "resolvers:",
            "  national:",
            *(entry(n) for n in NATIONALS if n in resolvers),
            "  control:",
            *(entry(n) for n in CONTROLS if n in resolvers),
            "watchlist:",
            *(f"  - {n}" for n in names),
        ]
        return load_config_text("\n".join(lines) + "\n", tmp_path / "config.yaml")

    def clear(self) -> None:
        for proxy in self.proxies.values():
            proxy.clear()
            proxy.reset_counts()

    def total(self, what: str) -> int:
        return sum(p.counts[what] for p in self.proxies.values())


@pytest.fixture(scope="module")
def vantage_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vantage]:
    missing = None
    try:
        realdns.require_binaries()
    except MissingBinaryError as error:
        missing = str(error)
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    records = [f"{CANARY}. 300 IN A 93.184.216.34"]
    records += [f"{n}. 300 IN A {address_of(i)}" for i, n in enumerate(NAMES)]
    with DNSLab(tmp_path_factory.mktemp("faults") / "lab") as lab:
        lab.start_nsd(records=records)
        deleted = {f"{n}.": "always_nxdomain" for n in sorted(DELETED)}
        servers = {n: lab.start_unbound(n, local_zones=deleted) for n in NATIONALS}
        servers.update({n: lab.start_unbound(n) for n in CONTROLS})
        proxies = {}
        try:
            for seed, (name, server) in enumerate(servers.items()):
                proxies[name] = FaultProxy((server.address, server.port), seed=seed)
            yield Vantage(lab, servers, proxies)
        finally:
            for proxy in proxies.values():
                proxy.stop()


@pytest.fixture
def vantage(vantage_lab: Vantage) -> Iterator[Vantage]:
    """The module's vantage with no fault injected, before and after the test."""
    vantage_lab.clear()
    yield vantage_lab
    vantage_lab.clear()


def verdicts(m: Measurement) -> dict[str, str]:
    return {r.domain: r.verdict.value for r in m.domains}


@dataclass(frozen=True)
class Tally:
    """What a run over the watchlist got right and wrong."""

    false_flags: list[str]
    missed: list[str]
    found: int
    unstable: int
    inconclusive: int
    names: int

    @classmethod
    def of(cls, m: Measurement, deleted: frozenset[str]) -> Tally:
        v = verdicts(m)
        return cls(
            false_flags=sorted(
                f"{d}: {x}" for d, x in v.items() if d not in deleted and x in FALSE_FLAGS
            ),
            missed=sorted(
                f"{d}: {x}"
                for d, x in v.items()
                if d in deleted and x not in {"missing"} | NOT_CONCLUSIVE
            ),
            found=sum(v[d] == "missing" for d in deleted if d in v),
            unstable=sum(x == "unstable" for x in v.values()),
            inconclusive=sum(x == "inconclusive" for x in v.values()),
            names=len(v),
        )


def health(m: Measurement) -> dict[str, str]:
    return {r.name: r.health for r in m.resolvers}


# ----------------------------------------------------------------------------- loss


@pytest.mark.slow
def test_thirty_percent_loss_each_way_raises_no_false_flag_and_hides_no_deletion(
    vantage: Vantage, tmp_path: Path
) -> None:
    config = vantage.config(tmp_path, NAMES)
    assert (config.attempts, config.confirm, config.record_types) == (3, 2, ("A", "AAAA"))
    for proxy in vantage.proxies.values():
        proxy.everywhere(loss(0.3), loss(0.3))
    rows = []
    found = deleted_seen = 0
    for run in range(1, LOSS_RUNS + 1):
        started = time.monotonic()
        m = measure(config, confirm_spacing=0.2, detail=False)
        seconds = time.monotonic() - started
        down = sorted(n for n, h in health(m).items() if h != "up")
        if m.inconclusive:
            rows.append(f"run {run}: inconclusive ({m.inconclusive}), {seconds:.1f} s")
            continue
        t = Tally.of(m, DELETED)
        assert t.false_flags == [], f"run {run}: false flags {t.false_flags}"
        assert t.missed == [], f"run {run}: deletions hidden {t.missed}"
        found += t.found
        deleted_seen += len(DELETED)
        rows.append(
            f"run {run}: false flags 0, missed 0, deleted found missing {t.found}/{len(DELETED)}, "
            f"unstable {t.unstable} ({t.unstable / t.names:.1%}), inconclusive {t.inconclusive}, "
            f"down {down or 'none'}, {m.queries} queries, {seconds:.1f} s"
        )
    drops = vantage.total("udp.query.drop") + vantage.total("udp.reply.drop")
    drops += vantage.total("tcp.query.drop") + vantage.total("tcp.reply.drop")
    print(f"\n30% loss each way, {len(NAMES)} names, {len(DELETED)} deleted, {LOSS_RUNS} runs:")
    print("\n".join(rows))
    print(f"messages dropped by the proxies: {drops}")
    assert deleted_seen, "every run was inconclusive: the loss test measured nothing"
    # Loss may make a deletion unstable, but most must still be found.
    assert found >= 0.8 * deleted_seen, rows


# ----------------------------------------------------------------------------- many faults


@pytest.mark.slow
def test_a_storm_of_udp_faults_raises_no_false_flag_and_hides_no_deletion(
    vantage: Vantage, tmp_path: Path
) -> None:
    names = NAMES[:500]
    deleted = frozenset(n for n in names if n in DELETED)
    storm = Faults(
        drop=0.1,
        delay=0.2,
        duplicate=0.1,
        reorder=0.1,
        corrupt=0.05,
        truncate=0.05,
        wrong_id=0.05,
        wrong_question=0.05,
        other_port=0.05,
    )
    # TCP is reliable and ordered underneath; pipelined replies may come in any order.
    stream = Faults(delay=0.2, duplicate=0.1, reorder=0.1)
    for proxy in vantage.proxies.values():
        proxy.set(
            udp_queries=Faults(drop=0.1, delay=0.2, duplicate=0.1, reorder=0.1),
            udp_replies=storm,
            tcp_queries=stream,
            tcp_replies=stream,
        )
    m = measure(vantage.config(tmp_path, names), confirm_spacing=0.2, detail=False)
    assert m.inconclusive is None, m.inconclusive
    t = Tally.of(m, deleted)
    counts = sum((p.counts for p in vantage.proxies.values()), Counter())
    print(f"\nUDP fault storm over {len(names)} names: {t}\nproxies did: {dict(counts)}")
    assert t.false_flags == []
    assert t.missed == []
    assert t.found >= len(deleted) // 2
    for kind in ("corrupt", "truncate", "wrong_id", "wrong_question", "other_port"):
        assert counts[f"udp.reply.{kind}"] > 0, kind


# ----------------------------------------------------------------------------- spoofing


def observe(config: Config, resolver: str, names: Sequence[str]) -> list[Observation]:
    """Ask one resolver of ``config`` about ``names`` (A) with the probe engine."""
    found: list[Observation] = []

    async def go() -> None:
        chosen = [r for r in config.resolvers if r.name == resolver]
        async with Engine(chosen, timeout=config.timeout, attempts=config.attempts) as engine:
            await engine.observe([resolver], names, ("A",), lambda _, o: found.append(o))

    asyncio.run(go())
    return found


# The forgeries, by the name of their share in Faults and in the proxy's counts.
FORGERIES = {
    "wrong_id": Faults(wrong_id=1.0),
    "wrong_question": Faults(wrong_question=1.0),
    "other_port": Faults(other_port=1.0),
}
SPOOFS = [
    ("udp", "wrong_id"),
    ("udp", "wrong_question"),
    ("udp", "other_port"),
    ("tcp", "wrong_id"),
    ("tcp", "wrong_question"),
]


@pytest.mark.parametrize(("transport", "kind"), SPOOFS)
@pytest.mark.parametrize("genuine", [True, False], ids=["genuine-follows", "genuine-dropped"])
def test_a_reply_with_the_wrong_id_question_or_port_never_becomes_an_observation(
    vantage: Vantage, tmp_path: Path, transport: str, kind: str, genuine: bool
) -> None:
    """Each forgery says NXDOMAIN: had the engine believed one, a status would be nxdomain."""
    names = [n for n in NAMES[:40] if n not in DELETED]
    name = "ctl-a" if transport == "udp" else "ctl-b"
    plan = dataclasses.replace(FORGERIES[kind], drop=0.0 if genuine else 1.0)
    vantage.proxies[name].set(**{f"{transport}_replies": plan})
    config = vantage.config(tmp_path, names, timeout=0.3, extra="attempts: 1")
    statuses = Counter(o.status for o in observe(config, name, names))
    assert vantage.proxies[name].counts[f"{transport}.reply.{kind}"] >= len(names)
    assert statuses == Counter({"ok" if genuine else "timeout": len(names)})


def test_a_forged_nxdomain_racing_the_real_answer_on_udp_is_caught_by_tcp_confirmation(
    vantage: Vantage, tmp_path: Path
) -> None:
    """An off-path forger with the right ID wins every UDP race for some present names."""
    names = [n for n in NAMES[:100] if n not in DELETED]
    victims = frozenset(names[:10])
    for name in NATIONALS:
        vantage.proxies[name].set(udp_replies=Faults(forge_nxdomain=1.0, qnames=victims))
    m = measure(vantage.config(tmp_path, names), confirm_spacing=0.1)
    v = verdicts(m)
    assert {v[n] for n in victims} == {"unstable"}  # fooled on UDP, contradicted over TCP
    assert {v[n] for n in names if n not in victims} == {"present"}
    # The forgeries won the main pass (ok the victims did not get), and nothing after it.
    forged = sum(vantage.proxies[n].counts["udp.reply.forge_nxdomain"] for n in NATIONALS)
    assert forged == len(NATIONALS) * len(victims) * len(m.domains[0].observations["nat-a"])
    assert vantage.total("tcp.query.in") >= len(NATIONALS) * len(victims) * 2


# ----------------------------------------------------------------------------- bursts


def test_servfail_and_refused_bursts_at_one_national_raise_no_failing(
    vantage: Vantage, tmp_path: Path
) -> None:
    names = NAMES[:300]
    deleted = frozenset(n for n in names if n in DELETED)
    # The bursts fall on the watchlist's names. One that began at the first canary would make
    # nat-a down for the run (it answered no canary) and leave nothing here to test.
    bursts = Faults(servfail=0.03, refused=0.03, burst=30, qnames=frozenset(names))
    vantage.proxies["nat-a"].set(udp_queries=bursts, tcp_queries=bursts)
    m = measure(vantage.config(tmp_path, names), confirm_spacing=0.1, detail=False)
    assert m.inconclusive is None
    assert {r.health for r in m.resolvers} == {"up"}
    v = verdicts(m)
    answered = vantage.total("udp.query.servfail") + vantage.total("udp.query.refused")
    print(
        f"\nbursts: nat-a answered {answered} queries with SERVFAIL/REFUSED; {Counter(v.values())}"
    )
    assert answered >= 30
    assert not {"failing", "partial"} & set(v.values())
    assert {v[n] for n in deleted} <= {"missing", "unstable"}
    assert {v[n] for n in names if n not in deleted} <= {"present", "unstable"}


# ----------------------------------------------------------------------------- in-process labs

LAB_NAMES = [f"name{i}.example" for i in range(300)]
LAB_DELETED = frozenset(LAB_NAMES[:5])
LAB_RECORDS = {(n, "A"): [address_of(i)] for i, n in enumerate([*LAB_NAMES, CANARY])}
REWRITE = "93.184.216.200"  # where a rewriting resolver sends every name that does not exist


def lab_config(
    lab: Lab, tmp_path: Path, names: Sequence[str], extra: str = "", timeout: float = 1.0
) -> Path:
    def entry(name: str) -> str:
        return f"    - {{name: {name}, address: 127.0.0.1, port: {lab[name].port}, rate: 0}}"

    text = "\n".join(
        [
            "vantage: lab",
            f"timeout: {timeout}",
            extra,
            "resolvers:",
            "  national:",
            *(entry(n) for n in lab.responders if n.startswith("nat")),
            "  control:",
            *(entry(n) for n in lab.responders if n.startswith("ctl")),
            "watchlist:",
            *(f"  - {n}" for n in names),
        ]
    )
    path = tmp_path / "config.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def rewriting(world: World, aaaa: str) -> Handler:
    """A resolver that answers A queries for names that do not exist with REWRITE.

    ``aaaa`` says what it does to AAAA queries for them: keep NXDOMAIN, answer NOERROR with
    no records (the whole name made to exist, as a wildcard would), or rewrite too.
    """

    def handler(request: Request) -> Reply:
        reply = world(request)
        if not isinstance(reply, dns.message.Message) or reply.rcode() != dns.rcode.NXDOMAIN:
            return reply
        question = reply.question[0]
        if question.rdtype == dns.rdatatype.AAAA and aaaa == "nxdomain":
            return reply
        reply.set_rcode(dns.rcode.NOERROR)
        if question.rdtype == dns.rdatatype.A or aaaa == "rewritten":
            reply.authority.clear()
            text = REWRITE if question.rdtype == dns.rdatatype.A else "2606:2800:220:1::200"
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", question.rdtype, text))
        return reply

    return handler


@pytest.mark.parametrize("aaaa", ["nxdomain", "nodata", "rewritten"])
def test_a_resolver_rewriting_nxdomain_is_reported_and_hides_no_deletion(
    tmp_path: Path, aaaa: str
) -> None:
    world = World(LAB_RECORDS)
    national = world.variant(nxdomain=LAB_DELETED)
    handlers: dict[str, Handler] = {
        "nat-a": rewriting(national, aaaa),
        "nat-b": rewriting(national, aaaa),
        "ctl-a": world,
        "ctl-b": world,
    }
    names = LAB_NAMES[:20]
    with Lab(handlers) as lab:
        config = load_config_text(
            lab_config(lab, tmp_path, names).read_text(), tmp_path / "config.yaml"
        )
        m = measure(config, confirm_spacing=0)
    assert health(m) == {
        "nat-a": "nxdomain-rewriting",
        "nat-b": "nxdomain-rewriting",
        "ctl-a": "up",
        "ctl-b": "up",
    }
    v = verdicts(m)
    assert {n: v[n] for n in LAB_DELETED} == {n: "missing" for n in LAB_DELETED}
    assert {v[n] for n in names if n not in LAB_DELETED} == {"present"}


def test_nxdomain_rewriting_shows_in_resolvers_yaml_and_check_json(tmp_path: Path) -> None:
    world = World(LAB_RECORDS)
    national = world.variant(nxdomain=LAB_DELETED)
    handlers: dict[str, Handler] = {
        "nat-a": rewriting(national, "nxdomain"),
        "nat-b": national,
        "ctl-a": world,
        "ctl-b": world,
    }
    names = LAB_NAMES[:10]
    repo = git_repo(tmp_path / "repo")
    with Lab(handlers) as lab:
        path = lab_config(lab, tmp_path, names)
        config = load_config_text(path.read_text(), path)
        result = monitor.run.run(config, repo=repo, date="2026-03-01", confirm_spacing=0)
        checked = cli(path, "check", "--json", cwd=tmp_path)
    resolvers = yaml.safe_load((repo / "snapshots/lab/resolvers.yaml").read_text())
    assert resolvers["nat-a"] == {"group": "national", "health": "nxdomain-rewriting"}
    assert resolvers["nat-b"] == {"group": "national", "health": "up"}
    assert {e.domain: e.verdict for e in result.entries if e.domain in LAB_DELETED} == {
        n: "missing" for n in LAB_DELETED
    }
    assert checked.returncode == 0, checked.stderr
    doc = json.loads(checked.stdout)
    assert doc["resolvers"]["nat-a"]["health"] == "nxdomain-rewriting"
    assert doc["resolvers"]["nat-b"]["health"] == "up"
    assert {d["domain"]: d["verdict"] for d in doc["domains"] if d["domain"] in LAB_DELETED} == {
        n: "missing" for n in LAB_DELETED
    }


def test_a_national_that_breaks_halfway_is_down_and_raises_no_mass_missing(
    tmp_path: Path,
) -> None:
    world = World(LAB_RECORDS)
    breaking = world.variant()
    asked = Counter[str]()

    def national(request: Request) -> Reply:
        asked["n"] += 1
        if asked["n"] == 250:  # the canaries took 3; the main pass is 600 queries
            breaking.update(nxdomain=["."])
        return breaking(request)

    handlers: dict[str, Handler] = {
        "nat-a": world,
        "nat-b": national,
        "ctl-a": world,
        "ctl-b": world,
    }
    with Lab(handlers) as lab:
        path = lab_config(lab, tmp_path, LAB_NAMES, extra="record_types: [A, AAAA]")
        m = measure(load_config_text(path.read_text(), path), confirm_spacing=0)
    assert asked["n"] > 600
    after = next(r for r in m.resolvers if r.name == "nat-b")
    assert (after.health, (after.detail or "").startswith("after the main pass")) == ("down", True)
    assert Counter(verdicts(m).values()) == Counter({"present": len(LAB_NAMES)})
    assert {r.status("nat-b") for r in m.domains} == {"down"}


# ----------------------------------------------------------------------------- offline


AUTHOR = "Fault Tests"


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    for kind in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{kind}_NAME"] = AUTHOR
        env[f"GIT_{kind}_EMAIL"] = "faults@example.test"
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", AUTHOR)
    git(path, "config", "user.email", "faults@example.test")
    return path


def cli(config: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT), "HOME": str(cwd)},
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with the SHA-256 of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


OFFLINE_NAMES = [f"name{i}.example" for i in range(2000)]
OFFLINE_TIMEOUT = 1.0


@pytest.mark.parametrize("how", ["silent", "nothing-listening"])
def test_a_vantage_offline_exits_4_quickly_and_leaves_yesterday_untouched(
    tmp_path: Path, how: str
) -> None:
    records = {(n, "A"): [address_of(i)] for i, n in enumerate([*OFFLINE_NAMES, CANARY])}
    world = World(records)
    handlers = {n: world.variant() for n in ("nat-a", "nat-b", "ctl-a", "ctl-b")}
    repo = git_repo(tmp_path / "repo")
    lab = Lab(handlers)
    try:
        path = lab_config(lab, tmp_path, OFFLINE_NAMES, timeout=OFFLINE_TIMEOUT)
        yesterday = cli(path, "run", "--repo", str(repo), "--date", "2026-03-01", cwd=repo)
        assert yesterday.returncode == 0, yesterday.stderr
        head = git(repo, "rev-parse", "HEAD")
        before = tree_digest(repo / "snapshots")
        if how == "silent":
            for handler in handlers.values():
                handler.update(drop=["."])
        else:
            lab.stop()
        started = time.monotonic()
        today = cli(path, "run", "--repo", str(repo), "--date", "2026-03-02", cwd=repo)
        seconds = time.monotonic() - started
    finally:
        lab.stop()
    print(f"\noffline ({how}): exit {today.returncode} in {seconds:.1f} s")
    assert today.returncode == 4, today.stdout + today.stderr
    assert "Error: inconclusive run, nothing written" in today.stderr
    # The canaries alone: two rounds of attempts x timeout, plus the interpreter's start; the
    # watchlist (2,000 names x 2 types x 3 attempts) would take far longer.
    assert seconds < 2 * 3 * OFFLINE_TIMEOUT + 4
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert tree_digest(repo / "snapshots") == before
