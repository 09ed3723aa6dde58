"""End-to-end tests of issue 13: verdicts and evidence against real censoring resolvers.

BIND 9, Knot Resolver, PowerDNS Recursor and dnsmasq (tests/censors.py, whose docstring table
says what each answers) play the national resolver, each started once with every rule this
module needs, forwarding to an unbound of the lab that resolves from NSD; two plain unbounds
are the controls (one over UDP, one over TCP). The monitor runs as a user runs it, as a
subprocess: `python -m monitor --config FILE check --json`, `check`, and `run` into a real git
repository in tmp_path. For every program and mechanism a test asserts the verdict and what the
national resolver said (status, answers, ede, cname, soa, aa) under both strategies; then the
suspected block pages, stub_addresses (also as a range) and stub_names, a path without TCP (a
UDP-only relay, clean and at 30 % loss each way), and hostile EDE texts and CNAME names.
Run with ``-s`` to see the figures of the lossy runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import censors
import pytest
import realdns
import yaml
from censors import Knot, PolicyZone, Rpz
from faultproxy import FaultProxy, TcpMode
from realdns import DNSLab, Endpoint

from monitor.escape import escape_markdown, escape_text
from monitor.probe.wire import MAX_EDE_TEXT

PROJECT = Path(__file__).resolve().parent.parent
VANTAGE = "lab"
CANARY = "open.example"
STRATEGIES = ["full", "economical"]

# Addresses from globally routable space, so that only the bogon and 0.0.0.0 are bogons.
GARDEN = "95.213.158.61"  # warning.isp.example, the walled garden's page
GARDEN_HOST = "warning.isp.example"
BIND_ADDRESS = "95.213.158.62"  # one name's Local-Data
BIND_PAIR = "95.213.158.70"  # two names' Local-Data: too few for a block page
BIND_SAMESITE = "95.213.158.71"  # three names of one registered domain: not a block page
BIND_PAGE = "95.213.160.7"  # three names of three registered domains: a suspected block page
PAGE_RANGE = "95.213.160.0/24"  # holds BIND_PAGE and no other answer of the world
KNOT_ADDRESS = "95.213.158.63"
PDNS_ADDRESS = "95.213.158.64"
PDNS_CENSORED = "95.213.158.66"
PDNS_FILTERED = "95.213.158.67"
PDNS_PROHIBITED = "95.213.158.68"
HOSTILE_GARDEN = "95.213.158.65"
BOGON = "10.10.34.35"
POLICY_SOA = "rpz.isp"  # BIND's policy zone, named by the SOA it adds to what it rewrites

PDNS_EDE = (15, "Blocked by the registry")
CENSORED_EDE, FILTERED_EDE, PROHIBITED_EDE = (16, "Censored"), (17, "Filtered"), (18, "Prohibited")
DENY_TEXT = "Blocked by the order of the registry"
# Each part tries to break something that shows the text: a terminal (ANSI, bidi, a line
# separator), HTML, Markdown, a commit message's trailers. Past MAX_EDE_TEXT, padding.
HOSTILE_TEXT = (
    "\x1b[31mred\x1b[0m <script>alert(1)</script> **bold** [link](http://evil.example) "
    "| cell |\nMonitor-Vantage: evil \u202eevil\u2028"
)
HOSTILE_EDE = (15, HOSTILE_TEXT + " " + "x" * 200)
# Walled-garden hosts whose names carry an ANSI escape, HTML, Markdown, a newline and a bidi
# override (zone-file escapes; dnspython writes them the same way), one that exists and one
# that does not.
HOSTILE_HOST = (
    r"\027[31mred\027[0m.<b>bold</b>.**md**|cell|.new\010line.\226\128\174rtl.hostile.example"
)
HOSTILE_GONE = r"\027]0\;title\007.<script>x</script>.gone-hostile.example"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")


# ----------------------------------------------------------------------------- what is said


def said(
    status: str,
    *answers: str,
    ede: Sequence[tuple[int, str]] = (),
    cname: Sequence[str] = (),
    soa: str | None = None,
    aa: bool = False,
) -> dict[str, Any]:
    """One observation as --json shows it."""
    return {
        "status": status,
        "answers": list(answers),
        "ede": [{"code": code, "text": text} for code, text in ede],
        "cname": list(cname),
        "soa": soa,
        "aa": aa,
    }


@dataclass(frozen=True)
class Mechanism:
    """A blocking rule of one program, the name it applies to, the verdict it must get and
    what the national resolver says about the name (A, AAAA) in --json."""

    program: str
    mechanism: str
    domain: str
    verdict: str
    a: Mapping[str, Any]
    aaaa: Mapping[str, Any]

    def __str__(self) -> str:
        return f"{self.program}-{self.mechanism}"


def real_a(domain: str) -> str:
    return f"93.184.216.{10 + NAMES.index(domain)}"


def real_aaaa(domain: str) -> str:
    return f"2606:2800:220:1::{10 + NAMES.index(domain):x}"


BIND_PAGES = [f"bind-page-{i}.example" for i in (1, 2, 3)]
BIND_GARDENS = [f"bind-garden-{i}.example" for i in (1, 2, 3)]
BIND_PAIRS = [f"bind-pair-{i}.example" for i in (1, 2)]
BIND_SAMESITES = [f"{x}.bind-samesite.example" for x in ("a", "b", "c")]
BIND_HOSTILE = [f"bind-hostile-{i}.example" for i in (1, 2, 3)]
BIND_HOSTILE_GONE = "bind-hostile-gone.example"
PDNS_HOSTILE_NXDOMAIN = "pdns-hostile-nxdomain.example"
PDNS_HOSTILE_LOCAL_DATA = "pdns-hostile-local-data.example"
KNOT_RUN = ["knot-refuse.example", "knot-drop.example", "knot-deny.example", "knot-answer.example"]

NAMES = [
    CANARY,
    "bind-nxdomain.example",
    "bind-nodata.example",
    "bind-drop.example",
    "bind-tcp-only.example",
    "bind-bogon.example",
    "bind-routable.example",
    *BIND_PAGES,
    *BIND_GARDENS,
    *BIND_PAIRS,
    *BIND_SAMESITES,
    "bind-passthru.example",
    "knot-deny.example",
    "knot-deny-msg.example",
    "knot-refuse.example",
    "knot-answer.example",
    "knot-answer-nodata.example",
    "knot-agree.example",
    "knot-drop.example",
    "pdns-nxdomain.example",
    "pdns-nodata.example",
    "pdns-local-data.example",
    "pdns-agree.example",
    "pdns-censored.example",
    "pdns-filtered.example",
    "pdns-prohibited.example",
    "dnsmasq-nxdomain.example",
    "dnsmasq-zero.example",
    "dnsmasq-dead.example",
    *BIND_HOSTILE,
    BIND_HOSTILE_GONE,
    PDNS_HOSTILE_NXDOMAIN,
    PDNS_HOSTILE_LOCAL_DATA,
]
# Names every national leaves alone: more than the economical strategy's sample of clean names
# (ECONOMICAL_SAMPLE_MIN, 100), so that it leaves some unasked and its rules decide the rest.
FILLERS = [f"filler-{i:03d}.example" for i in range(300)]
# The path without TCP: a national unbound deletes every fifth name.
UDP_NAMES = [f"udp-{i:02d}.example" for i in range(50)]
UDP_DELETED = frozenset(UDP_NAMES[::5])

RECORDS = [
    f"{GARDEN_HOST}. 300 IN A {GARDEN}",
    f"{HOSTILE_HOST}. 300 IN A {HOSTILE_GARDEN}",
    *(f"{n}. 300 IN A {real_a(n)}" for n in NAMES),
    *(f"{n}. 300 IN AAAA {real_aaaa(n)}" for n in NAMES),
    *(f"{n}. 300 IN A 93.185.{i // 250}.{i % 250 + 1}" for i, n in enumerate(FILLERS)),
    *(f"{n}. 300 IN AAAA 2606:2800:221::{i + 1:x}" for i, n in enumerate(FILLERS)),
    *(f"{n}. 300 IN A 93.186.0.{i + 1}" for i, n in enumerate(UDP_NAMES)),
    *(f"{n}. 300 IN AAAA 2606:2800:222::{i + 1:x}" for i, n in enumerate(UDP_NAMES)),
]

Said = dict[str, Any]
NXDOMAIN_AT_BIND = said("nxdomain", soa=POLICY_SOA)
NODATA_AT_BIND = said("nodata", soa=POLICY_SOA)
FORGED = [(4, "5DO5")]  # Knot's EDE texts are short codes naming its source line


def domain_of(label: str) -> str:
    return label if "." in label else f"{label}.example"


def true_answer(label: str, **a_evidence: Any) -> tuple[Said, Said]:
    """What a resolver that leaves the name alone says (A, AAAA)."""
    domain = domain_of(label)
    return said("ok", real_a(domain), **a_evidence), said("ok", real_aaaa(domain))


def bind_local_data(address: str) -> tuple[Said, Said]:
    return said("ok", address, soa=POLICY_SOA), NODATA_AT_BIND


def bind_garden() -> tuple[Said, Said]:
    # AAAA: the CNAME, then the world's NODATA for the garden host, with the root's SOA.
    return (
        said("ok", GARDEN, cname=[GARDEN_HOST], soa=POLICY_SOA),
        said("nodata", cname=[GARDEN_HOST], soa="."),
    )


def knot_deny(label: str) -> Said:
    # An authoritative NXDOMAIN whose made-up SOA is owned by the query name itself.
    return said("nxdomain", ede=[(15, "CR36")], soa=domain_of(label), aa=True)


def pdns_local_data(address: str, ede: tuple[int, str]) -> tuple[Said, Said]:
    return said("ok", address, ede=[ede]), said("nodata", ede=[ede])


def m(
    program: str, mechanism: str, label: str, verdict: str, a: Said, aaaa: Said | None = None
) -> Mechanism:
    """A row of MECHANISMS: the national says ``a`` for A and ``aaaa`` (default: the same)."""
    return Mechanism(program, mechanism, domain_of(label), verdict, a, a if aaaa is None else aaaa)


MECHANISMS = [
    # BIND 9 Response Policy Zones: the policy zone's SOA comes in the additional section.
    m("bind", "rpz-nxdomain", "bind-nxdomain", "missing", NXDOMAIN_AT_BIND),
    m("bind", "rpz-nodata", "bind-nodata", "tampered", NODATA_AT_BIND),
    m("bind", "rpz-drop", "bind-drop", "failing", said("timeout")),
    m("bind", "rpz-tcp-only", "bind-tcp-only", "present", *true_answer("bind-tcp-only")),
    m("bind", "local-data-bogon", "bind-bogon", "tampered", *bind_local_data(BOGON)),
    m("bind", "local-data-routable", "bind-routable", "present", *bind_local_data(BIND_ADDRESS)),
    *(
        m("bind", f"local-data-page-{i}", d, "present", *bind_local_data(BIND_PAGE))
        for i, d in enumerate(BIND_PAGES, 1)
    ),
    *(
        m("bind", f"local-data-pair-{i}", d, "present", *bind_local_data(BIND_PAIR))
        for i, d in enumerate(BIND_PAIRS, 1)
    ),
    *(
        m("bind", f"local-data-samesite-{i}", d, "present", *bind_local_data(BIND_SAMESITE))
        for i, d in enumerate(BIND_SAMESITES, 1)
    ),
    *(
        m("bind", f"cname-garden-{i}", d, "present", *bind_garden())
        for i, d in enumerate(BIND_GARDENS, 1)
    ),
    m("bind", "rpz-passthru", "bind-passthru", "present", *true_answer("bind-passthru")),
    # Knot Resolver policies.
    m("knot", "deny", "knot-deny", "missing", knot_deny("knot-deny")),
    m("knot", "deny-msg", "knot-deny-msg", "missing", knot_deny("knot-deny-msg")),
    m("knot", "refuse", "knot-refuse", "failing", said("refused", ede=[(18, "EIM4")])),
    m("knot", "drop", "knot-drop", "failing", said("servfail", ede=[(18, "U5KL")])),
    # ANSWER forges A only (with EDE 4 Forged Answer); AAAA is the true answer, without EDE.
    m(
        "knot",
        "answer",
        "knot-answer",
        "tampered",
        said("ok", KNOT_ADDRESS, ede=FORGED, aa=True),
        true_answer("knot-answer")[1],
    ),
    m(
        "knot",
        "answer-nodata",
        "knot-answer-nodata",
        "tampered",
        said("ok", KNOT_ADDRESS, ede=FORGED, aa=True),
        said("nodata", ede=FORGED, soa="knot-answer-nodata.example", aa=True),
    ),
    # The same label on the true address: never a flag from an EDE alone.
    m(
        "knot",
        "answer-agreeing",
        "knot-agree",
        "present",
        *true_answer("knot-agree", ede=FORGED, aa=True),
    ),
    # PowerDNS Recursor RPZ with extendedErrorCode and extendedErrorExtra: no SOA at all.
    m("pdns", "rpz-nxdomain-ede-15", "pdns-nxdomain", "missing", said("nxdomain", ede=[PDNS_EDE])),
    m("pdns", "rpz-nodata-ede-15", "pdns-nodata", "tampered", said("nodata", ede=[PDNS_EDE])),
    m(
        "pdns",
        "local-data-ede-15",
        "pdns-local-data",
        "tampered",
        *pdns_local_data(PDNS_ADDRESS, PDNS_EDE),
    ),
    m(
        "pdns",
        "local-data-ede-16",
        "pdns-censored",
        "tampered",
        *pdns_local_data(PDNS_CENSORED, CENSORED_EDE),
    ),
    m(
        "pdns",
        "local-data-ede-17",
        "pdns-filtered",
        "tampered",
        *pdns_local_data(PDNS_FILTERED, FILTERED_EDE),
    ),
    # EDE 18 Prohibited labels no answer as forged: a routable answer with it is present.
    m(
        "pdns",
        "local-data-ede-18",
        "pdns-prohibited",
        "present",
        *pdns_local_data(PDNS_PROHIBITED, PROHIBITED_EDE),
    ),
    m(
        "pdns",
        "local-data-agreeing-ede-15",
        "pdns-agree",
        "present",
        *pdns_local_data(real_a("pdns-agree.example"), PDNS_EDE),
    ),
    # dnsmasq: address=/name/ answers NXDOMAIN itself; 0.0.0.0 only for A (AAAA forwarded).
    m("dnsmasq", "address-nxdomain", "dnsmasq-nxdomain", "missing", said("nxdomain")),
    m(
        "dnsmasq",
        "address-0.0.0.0",
        "dnsmasq-zero",
        "tampered",
        said("ok", "0.0.0.0", aa=True),
        true_answer("dnsmasq-zero")[1],
    ),
    m("dnsmasq", "server-dead", "dnsmasq-dead", "failing", said("timeout")),
]
PROGRAMS = ["bind", "knot", "pdns", "dnsmasq"]
# Names a national does not resolve cleanly (an EDE, an empty answer, a suspected block page):
# the economical strategy must ask the controls about them even when they end present.
NOT_CLEAN = frozenset(
    {
        *BIND_PAGES,
        *BIND_GARDENS,
        "knot-agree.example",
        "pdns-prohibited.example",
        "pdns-agree.example",
    }
)


# ----------------------------------------------------------------------------- the world


class Reachable(Protocol):
    """A server the monitor can ask: an Endpoint of the lab or a FaultProxy."""

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class World:
    lab: DNSLab
    upstream: Endpoint  # the ISP's own unbound, which every censor forwards to
    controls: Mapping[str, tuple[Endpoint, str]]  # name -> (server, transport)
    udp_national: Endpoint  # an unbound deleting UDP_DELETED, for the path without TCP
    work: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    realdns.fail_unless_installed()
    work = tmp_path_factory.mktemp("censored")
    with DNSLab(work / "lab") as lab:
        lab.start_nsd(records=RECORDS)
        upstream = lab.start_unbound("upstream")
        controls = {
            "ctl-udp": (lab.start_unbound("ctl-udp"), "udp"),
            "ctl-tcp": (lab.start_unbound("ctl-tcp"), "tcp"),
        }
        udp_national = lab.start_unbound(
            "udp-national", local_zones={f"{n}.": "always_nxdomain" for n in sorted(UDP_DELETED)}
        )
        yield World(lab, upstream, controls, udp_national, work)


@pytest.fixture(scope="module")
def bind(world: World) -> Endpoint:
    censors.fail_unless_installed("named")
    return censors.start_named(
        world.lab,
        "bind",
        world.upstream,
        {
            "bind-nxdomain.example.": Rpz.NXDOMAIN,
            "bind-nodata.example.": Rpz.NODATA,
            "bind-drop.example.": Rpz.DROP,
            "bind-tcp-only.example.": Rpz.TCP_ONLY,
            "bind-bogon.example.": Rpz.a(BOGON),
            "bind-routable.example.": Rpz.a(BIND_ADDRESS),
            **{f"{n}.": Rpz.a(BIND_PAGE) for n in BIND_PAGES},
            **{f"{n}.": Rpz.a(BIND_PAIR) for n in BIND_PAIRS},
            **{f"{n}.": Rpz.a(BIND_SAMESITE) for n in BIND_SAMESITES},
            **{f"{n}.": Rpz.cname(f"{GARDEN_HOST}.") for n in BIND_GARDENS},
            "bind-passthru.example.": Rpz.PASSTHRU,
            "*.bind-passthru.example.": Rpz.NXDOMAIN,
            # Hostile walled gardens (Rpz.cname takes only plain names).
            **{f"{n}.": f"CNAME {HOSTILE_HOST}." for n in BIND_HOSTILE},
            f"{BIND_HOSTILE_GONE}.": f"CNAME {HOSTILE_GONE}.",
        },
    )


@pytest.fixture(scope="module")
def knot(world: World) -> Endpoint:
    censors.fail_unless_installed("kresd")
    return censors.start_kresd(
        world.lab,
        "knot",
        world.upstream,
        {
            "knot-deny.example.": Knot.DENY,
            "knot-deny-msg.example.": Knot.deny_msg(DENY_TEXT),
            "knot-refuse.example.": Knot.REFUSE,
            "knot-answer.example.": Knot.answer(KNOT_ADDRESS),
            "knot-answer-nodata.example.": Knot.answer(KNOT_ADDRESS, nodata=True),
            "knot-agree.example.": Knot.answer(real_a("knot-agree.example")),
            "knot-drop.example.": Knot.DROP,
        },
    )


@pytest.fixture(scope="module")
def pdns(world: World) -> Endpoint:
    censors.fail_unless_installed("pdns_recursor")

    def zone(origin: str, name: str, address: str, ede: tuple[int, str]) -> PolicyZone:
        return PolicyZone(origin, {f"{name}.": Rpz.a(address)}, ede)

    return censors.start_pdns_recursor(
        world.lab,
        "pdns",
        world.upstream,
        {
            "pdns-nxdomain.example.": Rpz.NXDOMAIN,
            "pdns-nodata.example.": Rpz.NODATA,
            "pdns-local-data.example.": Rpz.a(PDNS_ADDRESS),
            "pdns-agree.example.": Rpz.a(real_a("pdns-agree.example")),
        },
        ede=PDNS_EDE,
        more_zones=[
            zone("censored.rpz.isp.", "pdns-censored.example", PDNS_CENSORED, CENSORED_EDE),
            zone("filtered.rpz.isp.", "pdns-filtered.example", PDNS_FILTERED, FILTERED_EDE),
            zone(
                "prohibited.rpz.isp.",
                "pdns-prohibited.example",
                PDNS_PROHIBITED,
                PROHIBITED_EDE,
            ),
            PolicyZone(
                "hostile.rpz.isp.",
                {
                    f"{PDNS_HOSTILE_NXDOMAIN}.": Rpz.NXDOMAIN,
                    f"{PDNS_HOSTILE_LOCAL_DATA}.": Rpz.a(PDNS_ADDRESS),
                },
                HOSTILE_EDE,
            ),
        ],
    )


@pytest.fixture(scope="module")
def dead() -> Iterator[FaultProxy]:
    with censors.dead_server() as server:
        yield server


@pytest.fixture(scope="module")
def dnsmasq(world: World, dead: FaultProxy) -> Endpoint:
    censors.fail_unless_installed("dnsmasq")
    return censors.start_dnsmasq(
        world.lab,
        "dnsmasq",
        world.upstream,
        addresses={"dnsmasq-zero.example.": "0.0.0.0", "dnsmasq-nxdomain.example.": ""},
        servers={"dnsmasq-dead.example.": (dead.address, dead.port)},
    )


# ----------------------------------------------------------------------------- the monitor


def entry(name: str, server: Reachable, transport: str = "udp", rate: str = "") -> str:
    return (
        f"{{name: {name}, address: {server.address}, port: {server.port}, "
        f"transport: {transport}{rate}}}"
    )


def write_config(
    path: Path,
    world: World,
    nationals: Mapping[str, Reachable],
    watchlist: Sequence[str],
    **settings: object,
) -> Path:
    """Write a config asking ``nationals`` (over UDP) and the world's controls about
    ``watchlist``; ``settings`` override the top-level defaults (JSON is YAML). The nationals
    keep the default rate: with none, dnsmasq refuses what passes its 150 queries in flight."""
    top: dict[str, object] = {
        "vantage": VANTAGE,
        "timeout": 0.5,
        "attempts": 2,
        "confirm": 1,
        "canaries": [CANARY],
        "strategy": "full",
        **settings,
    }
    lines = [f"{key}: {json.dumps(value)}" for key, value in top.items()]
    lines += ["resolvers:", "  national:"]
    lines += [f"    - {entry(name, server)}" for name, server in nationals.items()]
    lines += ["  control:"]
    lines += [f"    - {entry(n, s, t, ', rate: 0')}" for n, (s, t) in world.controls.items()]
    lines += ["watchlist:", *(f"  - {name}" for name in watchlist)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def monitor(
    config: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor --config CONFIG ARGS`` as a subprocess, this checkout first on
    PYTHONPATH."""
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT), os.environ.get("PYTHONPATH", "")) if p
    )
    environment.pop("REGISTRY_MONITOR_CONFIG", None)
    environment.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=environment,
    )


def check_json(config: Path) -> dict[str, Any]:
    done = monitor(config, "check", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def by_domain(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["domain"]: d for d in document["domains"]}


def verdicts(document: Mapping[str, Any]) -> dict[str, str]:
    return {d["domain"]: d["verdict"] for d in document["domains"]}


@pytest.fixture(scope="module")
def checked(request: pytest.FixtureRequest, world: World) -> Callable[[str, str], dict[str, Any]]:
    """Return the --json of `check` of one program's names (and the fillers) as the only
    national resolver, under a strategy; each is run once for the module."""
    cache: dict[tuple[str, str], dict[str, Any]] = {}

    def get(program: str, strategy: str) -> dict[str, Any]:
        if (program, strategy) not in cache:
            server: Endpoint = request.getfixturevalue(program)
            names = [x.domain for x in MECHANISMS if x.program == program] + FILLERS
            path = world.work / f"{program}-{strategy}.yaml"
            config = write_config(path, world, {program: server}, names, strategy=strategy)
            cache[(program, strategy)] = check_json(config)
        return cache[(program, strategy)]

    return get


# ----------------------------------------------------------------------------- mechanisms


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", MECHANISMS, ids=str)
def test_each_mechanism_gets_its_verdict_with_what_the_national_said(
    checked: Callable[[str, str], dict[str, Any]], case: Mechanism, strategy: str
) -> None:
    document = checked(case.program, strategy)
    result = by_domain(document)[case.domain]
    national = result["resolvers"][case.program]
    assert (result["verdict"], national) == (case.verdict, {"A": case.a, "AAAA": case.aaaa})
    # The verdict was reached against controls that answered truly (when they were asked).
    for control in ("ctl-udp", "ctl-tcp"):
        if control in result["resolvers"]:
            assert result["resolvers"][control]["A"] == said("ok", real_a(case.domain))
    if case.verdict != "present" or (strategy == "economical" and case.domain in NOT_CLEAN):
        assert {"ctl-udp", "ctl-tcp"} <= set(result["resolvers"]), "the controls were not asked"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("program", PROGRAMS)
def test_every_other_name_is_present_and_the_program_answers_over_tcp(
    checked: Callable[[str, str], dict[str, Any]], program: str, strategy: str
) -> None:
    document = checked(program, strategy)
    found = verdicts(document)
    assert {found[n] for n in FILLERS} == {"present"}
    assert document["resolvers"][program] == {"group": "national", "health": "up"}
    asked = [n for n in FILLERS if "ctl-udp" in by_domain(document)[n]["resolvers"]]
    if strategy == "economical":
        # Only a sample of the clean names went to the controls: the strategy's rules did
        # the rest.
        assert 0 < len(asked) < len(FILLERS)
    else:
        assert len(asked) == len(FILLERS)


# ----------------------------------------------------------------------------- block pages


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_value_the_national_gives_three_registered_domains_is_a_suspected_block_page(
    checked: Callable[[str, str], dict[str, Any]], strategy: str
) -> None:
    # Not BIND_ADDRESS (one name), BIND_PAIR (two) or BIND_SAMESITE (one registered domain).
    # The walled garden shows twice: by its host name and by its address.
    assert checked("bind", strategy)["suspected_block_pages"] == [
        {"address": GARDEN, "resolvers": ["bind"], "domains": BIND_GARDENS},
        {"address": BIND_PAGE, "resolvers": ["bind"], "domains": BIND_PAGES},
        {"address": GARDEN_HOST, "resolvers": ["bind"], "domains": BIND_GARDENS},
    ]


def test_no_other_program_shows_a_suspected_block_page(
    checked: Callable[[str, str], dict[str, Any]],
) -> None:
    # Knot's forged answers go to one name each; PowerDNS gives PDNS_ADDRESS for two.
    for program in ("knot", "pdns", "dnsmasq"):
        assert checked(program, "full")["suspected_block_pages"] == [], program


STUBS = {
    "stub-address": {"stub_addresses": [BIND_PAGE]},
    "stub-range": {"stub_addresses": [PAGE_RANGE]},
    "stub-name": {"stub_names": [GARDEN_HOST]},
}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("stub", list(STUBS))
def test_a_listed_block_page_or_walled_garden_makes_its_names_tampered(
    world: World, bind: Endpoint, stub: str, strategy: str
) -> None:
    names = [*BIND_PAGES, *BIND_GARDENS, "bind-routable.example", *FILLERS]
    path = world.work / f"bind-{stub}-{strategy}.yaml"
    config = write_config(path, world, {"bind": bind}, names, strategy=strategy, **STUBS[stub])
    document = check_json(config)
    found = by_domain(document)
    listed = BIND_GARDENS if stub == "stub-name" else BIND_PAGES
    for name in [*BIND_PAGES, *BIND_GARDENS]:
        a, aaaa = bind_garden() if name in BIND_GARDENS else bind_local_data(BIND_PAGE)
        verdict = "tampered" if name in listed else "present"
        assert (found[name]["verdict"], found[name]["resolvers"]["bind"]) == (
            verdict,
            {"A": a, "AAAA": aaaa},
        ), name
    assert found["bind-routable.example"]["verdict"] == "present"
    assert {found[n]["verdict"] for n in FILLERS} == {"present"}
    # A listed page is tampering already: it is no longer merely suspected.
    pages = [p["address"] for p in document["suspected_block_pages"]]
    assert pages == ([BIND_PAGE] if stub == "stub-name" else [GARDEN, GARDEN_HOST])


# ----------------------------------------------------------------------------- check's table


def test_check_shows_the_declared_block_and_the_evidence_of_each_flagged_name(
    world: World, knot: Endpoint
) -> None:
    names = [x.domain for x in MECHANISMS if x.program == "knot"]
    config = write_config(world.work / "knot-table.yaml", world, {"knot": knot}, names)
    done = monitor(config, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    knot_ede = 'EDE 15 Blocked "CR36"'
    forged = 'EDE 4 Forged Answer "5DO5"'
    assert done.stdout == (
        "domain                      verdict   knot      ctl-udp  ctl-tcp\n"
        "knot-deny.example           missing   nxdomain  ok       ok\n"
        "knot-deny-msg.example       missing   nxdomain  ok       ok\n"
        "knot-refuse.example         failing   refused   ok       ok\n"
        "knot-drop.example           failing   servfail  ok       ok\n"
        "knot-answer.example         tampered  ok        ok       ok\n"
        "knot-answer-nodata.example  tampered  ok        ok       ok\n"
        "knot-agree.example          present   ok        ok       ok\n"
        "\n"
        "What the national resolvers said (and any control that sent an EDE):\n"
        "knot-deny.example:\n"
        f"  knot: A nxdomain, {knot_ede}, SOA knot-deny.example, AA; "
        f"AAAA nxdomain, {knot_ede}, SOA knot-deny.example, AA\n"
        "knot-deny-msg.example:\n"
        f"  knot: A nxdomain, {knot_ede}, SOA knot-deny-msg.example, AA; "
        f"AAAA nxdomain, {knot_ede}, SOA knot-deny-msg.example, AA\n"
        "knot-refuse.example:\n"
        '  knot: A refused, EDE 18 Prohibited "EIM4"; AAAA refused, EDE 18 Prohibited "EIM4"\n'
        "knot-drop.example:\n"
        '  knot: A servfail, EDE 18 Prohibited "U5KL"; AAAA servfail, EDE 18 Prohibited "U5KL"\n'
        "knot-answer.example:\n"
        f"  knot: A ok {KNOT_ADDRESS}, {forged}, AA; "
        f"AAAA ok {real_aaaa('knot-answer.example')}\n"
        "knot-answer-nodata.example:\n"
        f"  knot: A ok {KNOT_ADDRESS}, {forged}, AA; "
        f"AAAA nodata, {forged}, SOA knot-answer-nodata.example, AA\n"
    )


# ----------------------------------------------------------------------------- run, in git

DAY1, DAY2 = "2026-02-09", "2026-02-10"
AUTHOR = ("Censored Runner", "censored@example.test")


def git_env(home: Path) -> dict[str, str]:
    """The environment of a run: an explicit committer and no global or system git config."""
    config = home / "global.gitconfig"
    config.write_text("")
    env = dict(os.environ, GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1")
    for kind in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{kind}_NAME"], env[f"GIT_{kind}_EMAIL"] = AUTHOR
    return env


def git(repo: Path, env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def init_repo(path: Path, env: Mapping[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, env, "init", "-q", "-b", "main")
    return path


def run_day(
    config: Path, repo: Path, date: str, summary: Path, env: Mapping[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    done = monitor(
        config,
        "run",
        "--repo",
        str(repo),
        "--date",
        date,
        "--summary",
        str(summary),
        *extra,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def snapshot_file(repo: Path, name: str) -> str:
    return (repo / "snapshots" / VANTAGE / name).read_text(encoding="utf-8")


def domain_lines(repo: Path) -> dict[str, str]:
    return {
        line.split(":", 1)[0]: line for line in snapshot_file(repo, "domains.yaml").splitlines()
    }


def test_run_writes_the_suspected_block_pages_to_run_yaml_and_the_summary(
    world: World, bind: Endpoint, tmp_path: Path
) -> None:
    names = [x.domain for x in MECHANISMS if x.program == "bind"]
    config = write_config(tmp_path / "config.yaml", world, {"bind": bind}, names)
    env = git_env(tmp_path)
    repo = init_repo(tmp_path / "repo", env)
    summary = tmp_path / "summary.md"
    run_day(config, repo, DAY1, summary, env)
    pages = [(GARDEN, BIND_GARDENS), (BIND_PAGE, BIND_PAGES), (GARDEN_HOST, BIND_GARDENS)]
    run = yaml.safe_load(snapshot_file(repo, "run.yaml"))
    assert run["suspected_block_pages"] == [
        {"address": address, "resolvers": ["bind"], "names": 3, "domains": domains}
        for address, domains in pages
    ]
    text = summary.read_text(encoding="utf-8")
    assert "### Suspected block pages" in text
    for address, domains in pages:
        row = f"| {escape_markdown(address)} | bind | {escape_markdown(', '.join(domains))} |"
        assert row in text.splitlines()
    lines = domain_lines(repo)
    assert lines["bind-nodata.example"] == (
        f"bind-nodata.example: {{verdict: tampered, since: {DAY1}, bind: nodata, "
        "ctl-udp: ok, ctl-tcp: ok}"
    )
    assert lines["bind-drop.example"] == (
        f"bind-drop.example: {{verdict: failing, since: {DAY1}, bind: timeout, "
        "ctl-udp: ok, ctl-tcp: ok}"
    )


def two_days(
    world: World, tmp_path: Path, censor: Endpoint, names: Sequence[str]
) -> tuple[Path, str, dict[str, str]]:
    """Run a day with the ISP's own resolver as the national ``isp``, then a day with the
    censor in its place; return the repository, the second day's summary and the env."""
    env = git_env(tmp_path)
    repo = init_repo(tmp_path / "repo", env)
    for date, server in ((DAY1, world.upstream), (DAY2, censor)):
        config = write_config(tmp_path / f"config-{date}.yaml", world, {"isp": server}, names)
        run_day(config, repo, date, tmp_path / f"summary-{date}.md", env)
    return repo, (tmp_path / f"summary-{DAY2}.md").read_text(encoding="utf-8"), env


def event_row(event: str, domain: str, before: str, after: str, nationals_said: str) -> str:
    cells = [event, domain, before, after, nationals_said]
    return "| " + " | ".join(escape_markdown(c) if c != event else c for c in cells) + " |"


def test_run_summary_and_snapshot_show_the_declared_blocks(
    world: World, knot: Endpoint, tmp_path: Path
) -> None:
    repo, summary, env = two_days(world, tmp_path, knot, KNOT_RUN)
    rows = summary.splitlines()
    deny = 'isp: nxdomain, EDE 15 Blocked "CR36"'
    assert event_row("disappeared", "knot-deny.example", "present", "missing", deny) in rows
    for name, status, text in (
        ("knot-refuse", "refused", "EIM4"),
        ("knot-drop", "servfail", "U5KL"),
    ):
        said_ = f'isp: {status}, EDE 18 Prohibited "{text}"'
        assert event_row("degraded", f"{name}.example", "present", "failing", said_) in rows
    forged = 'isp: ok, EDE 4 Forged Answer "5DO5"'
    assert event_row("degraded", "knot-answer.example", "present", "tampered", forged) in rows
    # A flagged line carries the EDE codes, never their texts.
    lines = domain_lines(repo)
    for name, status, code in (
        ("knot-refuse", "refused", 18),
        ("knot-drop", "servfail", 18),
        ("knot-deny", "nxdomain", 15),
        ("knot-answer", "ok", 4),
    ):
        verdict = {"knot-deny": "missing", "knot-answer": "tampered"}.get(name, "failing")
        # ...and a tampered line the addresses it was given instead.
        answers = f", answers: {{isp: [{KNOT_ADDRESS}]}}" if verdict == "tampered" else ""
        assert lines[f"{name}.example"] == (
            f"{name}.example: {{verdict: {verdict}, since: {DAY2}, isp: {status}, "
            f"ctl-udp: ok, ctl-tcp: ok, ede: {{isp: [{code}]}}{answers}}}"
        )
    message = git(repo, env, "log", "-1", "--format=%B")
    assert "degraded: knot-refuse.example (present → failing)" in message.splitlines()


# ----------------------------------------------------------------------------- no TCP on the path

TCP_HEALTH = {"refuse": "refused", "drop": "timeout"}
LOSS_RUNS = 5
FLAGS = frozenset({"missing", "partial", "failing", "tampered", "national-only", "gone"})


def udp_only_config(world: World, relay: FaultProxy, path: Path, timeout: float = 0.5) -> Path:
    # The shipped defaults for attempts and confirm: every flag is confirmed twice. Three
    # canaries, as the README advises on a lossy path: with one, at 30 % loss each way the
    # only national answers none of it in about 1 run in 30, and the run is inconclusive.
    canaries = [CANARY, *FILLERS[:2]]
    return write_config(
        path,
        world,
        {"isp": relay},
        UDP_NAMES,
        attempts=3,
        confirm=2,
        timeout=timeout,
        canaries=canaries,
    )


@pytest.mark.parametrize("tcp", list(TCP_HEALTH))
def test_without_tcp_on_the_path_every_deleted_name_is_still_missing(
    world: World, tmp_path: Path, tcp: TcpMode
) -> None:
    env = git_env(tmp_path)
    repo = init_repo(tmp_path / "repo", env)
    summary = tmp_path / "summary.md"
    with censors.udp_only(world.udp_national, tcp=tcp) as relay:
        config = udp_only_config(world, relay, tmp_path / "config.yaml")
        done = run_day(config, repo, DAY1, summary, env, "--json")
        counts = relay.counts
    health = TCP_HEALTH[tcp]
    document = json.loads(done.stdout)
    assert document["resolvers"]["isp"] == {"group": "national", "health": "up", "tcp": health}
    assert verdicts(document) == {
        n: "missing" if n in UDP_DELETED else "present" for n in UDP_NAMES
    }
    for name in UDP_DELETED:
        national = by_domain(document)[name]["resolvers"]["isp"]
        assert national == {"A": said("nxdomain", aa=True), "AAAA": said("nxdomain", aa=True)}
    # Each deleted name was asked again twice, over UDP: the only way through.
    main_pass = 2 * len(UDP_NAMES)
    assert counts["udp.query.in"] >= main_pass + 2 * 2 * len(UDP_DELETED)
    assert (
        f"isp: {{group: national, health: up, tcp: {health}}}"
        in snapshot_file(repo, "resolvers.yaml").splitlines()
    )
    assert "### Resolvers that gave no answer over TCP" in summary.read_text()
    assert f"- isp (national): tcp: {health}; its re-queries went over UDP" in (
        summary.read_text().splitlines()
    )
    lines = domain_lines(repo)
    for name in UDP_DELETED:
        assert lines[name].startswith(f"{name}: {{verdict: missing, since: {DAY1}, isp: nxdomain")


def main_pass_said(document: Mapping[str, Any], domain: str) -> str:
    """What the national said about a name in the main pass, type by type."""
    national = by_domain(document)[domain]["resolvers"]["isp"]
    return ", ".join(f"{rdtype} {o['status']}" for rdtype, o in national.items())


@pytest.mark.slow
@pytest.mark.parametrize("tcp", list(TCP_HEALTH))
def test_at_30_percent_loss_each_way_without_tcp_no_deletion_is_missed_or_invented(
    world: World, tmp_path: Path, tcp: TcpMode
) -> None:
    rows = []
    wrong = []
    for run in range(1, LOSS_RUNS + 1):
        started = time.monotonic()
        with censors.udp_only(world.udp_national, tcp=tcp, loss_share=0.3, seed=run) as relay:
            config = udp_only_config(world, relay, tmp_path / f"config-{run}.yaml", 0.3)
            done = monitor(config, "check", "--json")
            counts = relay.counts
        seconds = time.monotonic() - started
        lost = counts["udp.query.drop"] + counts["udp.reply.drop"]
        if done.returncode != 0:
            rows.append(f"run {run}: exit {done.returncode}: {done.stderr.strip()[-200:]}")
            wrong.append(rows[-1])
            continue
        document = json.loads(done.stdout)
        found = verdicts(document)
        missed = sorted(
            f"{n}: {found[n]} (the main pass: {main_pass_said(document, n)})"
            for n in UDP_DELETED
            if found[n] != "missing"
        )
        false_flags = sorted(
            f"{n}: {v}" for n, v in found.items() if n not in UDP_DELETED and v in FLAGS
        )
        unstable = sorted(n for n, v in found.items() if v == "unstable")
        isp = document["resolvers"]["isp"]
        rows.append(
            f"run {run}: deleted found missing {len(UDP_DELETED) - len(missed)}"
            f"/{len(UDP_DELETED)}, missed {missed or 0}, false flags {false_flags or 0}, "
            f"unstable {len(unstable)} {unstable or ''}, isp {isp['health']} tcp {isp.get('tcp')}, "
            f"{counts['udp.query.in']} queries in, {lost} messages lost, {seconds:.1f} s"
        )
        if (
            missed
            or false_flags
            or isp != {"group": "national", "health": "up", "tcp": TCP_HEALTH[tcp]}
        ):
            wrong.append(rows[-1])
    print(
        f"\nUDP only (tcp {tcp}), 30 % loss each way, {len(UDP_NAMES)} names, "
        f"{len(UDP_DELETED)} deleted:\n" + "\n".join(rows)
    )
    assert wrong == []


# ----------------------------------------------------------------------------- hostile texts

BOUNDED_TEXT = HOSTILE_EDE[1][:MAX_EDE_TEXT]
HOSTILE_NAMES = {
    "pdns": [PDNS_HOSTILE_NXDOMAIN, PDNS_HOSTILE_LOCAL_DATA],
    "bind": [*BIND_HOSTILE, BIND_HOSTILE_GONE],
}


def hostile_config(world: World, server: Endpoint, program: str) -> Path:
    path = world.work / f"hostile-{program}.yaml"
    return write_config(path, world, {"isp": server}, HOSTILE_NAMES[program])


def assert_no_control_character(text: str) -> None:
    """No terminal control, line or paragraph separator or bidi control reaches text raw: each
    line of it is one line as shown."""
    for line in text.splitlines():
        assert not CONTROL_CHARACTERS.search(line), repr(line)
    assert "\x1b" not in text and "\r" not in text


def assert_markdown_safe(text: str) -> None:
    """Nor does an HTML tag of the hostile strings (Markdown renders HTML)."""
    assert_no_control_character(text)
    for tag in ("<script>", "</script>", "<b>", "</b>"):
        assert tag not in text


def test_a_hostile_ede_text_is_json_in_check_json_and_bounded(world: World, pdns: Endpoint) -> None:
    assert len(HOSTILE_EDE[1]) > MAX_EDE_TEXT > len(HOSTILE_TEXT)
    done = monitor(hostile_config(world, pdns, "pdns"), "check", "--json")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    document = json.loads(done.stdout)
    found = by_domain(document)
    label = [(15, BOUNDED_TEXT)]
    assert found[PDNS_HOSTILE_NXDOMAIN]["verdict"] == "missing"
    assert found[PDNS_HOSTILE_NXDOMAIN]["resolvers"]["isp"] == {
        "A": said("nxdomain", ede=label),
        "AAAA": said("nxdomain", ede=label),
    }
    assert found[PDNS_HOSTILE_LOCAL_DATA]["verdict"] == "tampered"
    assert found[PDNS_HOSTILE_LOCAL_DATA]["resolvers"]["isp"] == {
        "A": said("ok", PDNS_ADDRESS, ede=label),
        "AAAA": said("nodata", ede=label),
    }


def test_hostile_walled_garden_names_are_json_in_check_json(world: World, bind: Endpoint) -> None:
    done = monitor(hostile_config(world, bind, "bind"), "check", "--json")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    document = json.loads(done.stdout)
    found = by_domain(document)
    for name in BIND_HOSTILE:
        assert found[name]["verdict"] == "present"
        assert found[name]["resolvers"]["isp"]["A"] == said(
            "ok", HOSTILE_GARDEN, cname=[HOSTILE_HOST], soa=POLICY_SOA
        )
    # The chain ends in the world's NXDOMAIN: the name is missing, through its garden.
    assert found[BIND_HOSTILE_GONE]["verdict"] == "missing"
    assert found[BIND_HOSTILE_GONE]["resolvers"]["isp"] == {
        "A": said("nxdomain", cname=[HOSTILE_GONE], soa="."),
        "AAAA": said("nxdomain", cname=[HOSTILE_GONE], soa="."),
    }
    assert document["suspected_block_pages"] == [
        {"address": HOSTILE_GARDEN, "resolvers": ["isp"], "domains": BIND_HOSTILE},
        {"address": HOSTILE_HOST, "resolvers": ["isp"], "domains": BIND_HOSTILE},
    ]


HOSTILE_SAID = {
    "pdns": {
        PDNS_HOSTILE_NXDOMAIN: f'A nxdomain, EDE 15 Blocked "{BOUNDED_TEXT}", no SOA; '
        f'AAAA nxdomain, EDE 15 Blocked "{BOUNDED_TEXT}", no SOA',
        PDNS_HOSTILE_LOCAL_DATA: f'A ok {PDNS_ADDRESS}, EDE 15 Blocked "{BOUNDED_TEXT}"; '
        f'AAAA nodata, EDE 15 Blocked "{BOUNDED_TEXT}", no SOA',
    },
    "bind": {
        BIND_HOSTILE_GONE: f"A nxdomain, CNAME → {HOSTILE_GONE}, SOA .; "
        f"AAAA nxdomain, CNAME → {HOSTILE_GONE}, SOA .",
    },
}


@pytest.mark.parametrize("program", ["pdns", "bind"])
def test_checks_table_shows_hostile_texts_escaped(
    request: pytest.FixtureRequest, world: World, program: str
) -> None:
    server: Endpoint = request.getfixturevalue(program)
    done = monitor(hostile_config(world, server, program), "check")
    assert done.returncode == 0, done.stderr
    assert_no_control_character(done.stdout + done.stderr)
    lines = done.stdout.splitlines()
    for domain, text in HOSTILE_SAID[program].items():
        assert lines[lines.index(f"{domain}:") + 1] == f"  isp: {escape_text(text)}"
    if program == "bind":
        page = f"  {HOSTILE_HOST} from isp for 3 names: {', '.join(BIND_HOSTILE)}"
        assert escape_text(page) in lines


@pytest.mark.parametrize("program", ["pdns", "bind"])
def test_runs_summary_and_commit_message_never_carry_hostile_texts_raw(
    request: pytest.FixtureRequest, world: World, tmp_path: Path, program: str
) -> None:
    server: Endpoint = request.getfixturevalue(program)
    repo, summary, env = two_days(world, tmp_path, server, HOSTILE_NAMES[program])
    assert_markdown_safe(summary)
    rows = summary.splitlines()
    message = git(repo, env, "log", "-1", "--format=%B")
    assert_no_control_character(message)
    assert message.count("Monitor-Vantage:") == 1 and "evil" not in message
    lines = domain_lines(repo)
    if program == "pdns":
        for domain, event, verdict, status in (
            (PDNS_HOSTILE_NXDOMAIN, "disappeared", "missing", "nxdomain"),
            (PDNS_HOSTILE_LOCAL_DATA, "degraded", "tampered", "ok"),
        ):
            text = f'isp: {status}, EDE 15 Blocked "{BOUNDED_TEXT}"'
            assert event_row(event, domain, "present", verdict, text) in rows
            assert f"{event}: {domain} (present → {verdict})" in message.splitlines()
            # The snapshot keeps the code only: texts vary, and come from the resolver.
            # A tampered line also keeps the addresses it was given instead.
            answers = f", answers: {{isp: [{PDNS_ADDRESS}]}}" if verdict == "tampered" else ""
            assert lines[domain] == (
                f"{domain}: {{verdict: {verdict}, since: {DAY2}, isp: {status}, "
                f"ctl-udp: ok, ctl-tcp: ok, ede: {{isp: [15]}}{answers}}}"
            )
    else:
        row = event_row("disappeared", BIND_HOSTILE_GONE, "present", "missing", "isp: nxdomain")
        assert row in rows
        for page in (HOSTILE_GARDEN, HOSTILE_HOST):
            page_row = (
                f"| {escape_markdown(page)} | isp | {escape_markdown(', '.join(BIND_HOSTILE))} |"
            )
            assert page_row in rows
        run = snapshot_file(repo, "run.yaml")
        assert_no_control_character(run)
        assert [p["address"] for p in yaml.safe_load(run)["suspected_block_pages"]] == [
            HOSTILE_GARDEN,
            HOSTILE_HOST,
        ]
