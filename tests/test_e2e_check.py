"""End-to-end tests of `check` against real NSD and unbound on 127.0.0.x.

One lab serves the whole module: NSD holds a root zone with the test names; unbound resolvers
play the national resolvers (deleting names with always_nxdomain, refusing, answering a bogon),
the controls (over TCP, DoT and DoH with the lab's self-signed CA, one that disagrees) and
broken resolvers (refusing everything, deleting the canary). Each test writes a config that
picks its resolvers, then runs the command line as a subprocess or through click's CliRunner.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pty
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import pytest
import realdns
from click.testing import CliRunner, Result
from realdns import DNSLab, Endpoint

from monitor.cli import cli

PROJECT = Path(__file__).resolve().parent.parent

KREMLIN = "xn--e1ajeds9e.xn--p1ai"  # кремль.рф
BOGON = "10.10.34.34"
NATIONAL_ONLY_ADDRESS = "95.1.2.3"
# Addresses in the root zone, one per name; www.vk.com is a CNAME to vk.com.
ADDRESSES = {
    "example.com": "93.184.216.10",
    "youtube.com": "93.184.216.11",
    "bbc.com": "93.184.216.12",
    "dw.com": "93.184.216.13",
    "vk.com": "93.184.216.14",
    KREMLIN: "93.184.216.15",
    "failing.example": "93.184.216.16",
    "tampered.example": "93.184.216.17",
    "partial.example": "93.184.216.18",
    "unstable.example": "93.184.216.19",
}
# More A records than fit in a 1232-octet UDP reply: the udp transport must retry over TCP.
MANY = [f"93.184.217.{i}" for i in range(100)]
DELEGATED_ADDRESS = "93.184.216.99"  # what the control serves for deleg.example
RECORDS = [
    *(f"{name}. 300 IN A {address}" for name, address in ADDRESSES.items()),
    "www.vk.com. 300 IN CNAME vk.com.",
    *(f"many.example. 300 IN A {address}" for address in MANY),
    # A delegation: NSD answers deleg.example with a referral, never with an answer.
    "deleg.example. 300 IN NS ns.elsewhere.",
    "ns.elsewhere. 300 IN A 127.0.0.9",
]
DELETED_EVERYWHERE = {
    "youtube.com.": "always_nxdomain",
    "bbc.com.": "always_nxdomain",
    "failing.example.": "always_refuse",
    "natonly.example.": "static",
}


@dataclass
class Lab:
    """The module's running servers and the directory for configs."""

    nsd: Endpoint
    servers: dict[str, Endpoint]
    work: Path
    # A UDP socket that receives queries and never answers: a resolver that drops.
    silent: socket.socket
    # An address and port where nothing listens: a resolver that is not there.
    closed: tuple[str, int]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    realdns.fail_unless_installed()
    work = tmp_path_factory.mktemp("e2e-check")
    with DNSLab(work / "lab") as dnslab:
        nsd = dnslab.start_nsd(records=RECORDS)
        national_data = [f"natonly.example. A {NATIONAL_ONLY_ADDRESS}"]
        servers = {
            "nsdi-a": dnslab.start_unbound(
                "nsdi-a",
                local_zones={
                    **DELETED_EVERYWHERE,
                    "partial.example.": "always_nxdomain",
                    "tampered.example.": "redirect",
                },
                local_data=[*national_data, f"tampered.example. A {BOGON}"],
            ),
            "nsdi-b": dnslab.start_unbound(
                "nsdi-b", local_zones=DELETED_EVERYWHERE, local_data=national_data
            ),
            "google": dnslab.start_unbound(
                "google",
                local_zones={"deleg.example.": "static"},
                local_data=[f"deleg.example. A {DELEGATED_ADDRESS}"],
            ),
            "cloudflare": dnslab.start_unbound("cloudflare", tls=True, https=True),
            "quad9": dnslab.start_unbound(
                "quad9", local_zones={"unstable.example.": "always_nxdomain"}, tls=True
            ),
            "refuser": dnslab.start_unbound("refuser", local_zones={".": "always_refuse"}),
            # Answers everything but the canary, so its answers would matter if they were used.
            "nocanary": dnslab.start_unbound(
                "nocanary", local_zones={"example.com.": "always_nxdomain"}
            ),
        }
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent_address = realdns.next_address()
        silent.bind((silent_address, realdns.free_port(silent_address)))
        closed_address = realdns.next_address()
        try:
            yield Lab(
                nsd,
                servers,
                work,
                silent,
                (closed_address, realdns.free_port(closed_address)),
            )
        finally:
            silent.close()


# ----------------------------------------------------------------------------- configs


def udp(lab: Lab, name: str, server: str | None = None, extra: str = "") -> str:
    ep = lab.servers[server or name]
    return f"{{name: {name}, address: {ep.address}, port: {ep.port}{extra}}}"


def tcp(lab: Lab, name: str, server: str | None = None) -> str:
    return udp(lab, name, server, ", transport: tcp")


def dot(lab: Lab, name: str, server: str, *, lab_ca: bool = True) -> str:
    ep = lab.servers[server]
    ca = f", ca_file: {ep.ca_file}" if lab_ca else ""
    return (
        f"{{name: {name}, address: {ep.address}, port: {ep.tls_port}, transport: dot, "
        f"server_name: {realdns.SERVER_HOSTNAME}{ca}}}"
    )


def doh(lab: Lab, name: str, server: str, *, lab_ca: bool = True) -> str:
    ep = lab.servers[server]
    ca = f", ca_file: {ep.ca_file}" if lab_ca else ""
    return f'{{name: {name}, transport: doh, url: "{ep.doh_url}"{ca}}}'


def write_config(
    lab: Lab,
    file: str,
    national: Sequence[str],
    control: Sequence[str],
    watchlist: Sequence[str],
    **settings: object,
) -> Path:
    """Write a config with the given resolver entries (inline YAML mappings) and settings."""
    top = {"vantage": "lab", "timeout": 1.0, "attempts": 2, "confirm": 0, **settings}
    lines = [f"{key}: {value}" for key, value in top.items()]
    lines += ["resolvers:", "  national:", *(f"    - {r}" for r in national)]
    lines += ["  control:", *(f"    - {r}" for r in control)]
    lines += ["watchlist:", *(f"  - {w}" for w in watchlist)]
    path = lab.work / file
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor --config CONFIG ARGS`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def invoke(config: Path, *args: str) -> Result:
    """Run the command line in this process."""
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {d["domain"]: d["verdict"] for d in doc["domains"]}


EVIDENCE = ("ede", "cname", "soa", "aa")


def said(observation: dict[str, Any]) -> dict[str, Any]:
    """An observation of a JSON document without its evidence (checked on its own): every
    observation carries the four evidence keys, whatever it says."""
    assert set(EVIDENCE) <= set(observation), observation
    return {k: v for k, v in observation.items() if k not in EVIDENCE}


def statuses(doc: dict[str, Any], domain: str) -> dict[str, dict[str, str]]:
    """Return resolver -> record type -> status for one domain of a JSON document."""
    [entry] = [d for d in doc["domains"] if d["domain"] == domain]
    return {
        resolver: {rdtype: obs["status"] for rdtype, obs in by_type.items()}
        for resolver, by_type in entry["resolvers"].items()
    }


# ----------------------------------------------------------------------------- the world

WORLD_RESOLVERS = ("nsdi-a", "nsdi-b", "google", "cloudflare", "quad9")
WORLD_WATCHLIST = [
    "youtube.com",
    "bbc.com",
    "{domain: dw.com, label: Deutsche Welle}",
    "www.vk.com",
    "кремль.рф",
    "failing.example",
    "tampered.example",
    "partial.example",
    "unstable.example",
    "natonly.example",
    "gone.example",
]
# domain -> (verdict, the A status at nsdi-a, nsdi-b, google, cloudflare, quad9)
WORLD: dict[str, tuple[str, tuple[str, ...]]] = {
    "youtube.com": ("missing", ("nxdomain", "nxdomain", "ok", "ok", "ok")),
    "bbc.com": ("missing", ("nxdomain", "nxdomain", "ok", "ok", "ok")),
    "dw.com": ("present", ("ok", "ok", "ok", "ok", "ok")),
    "www.vk.com": ("present", ("ok", "ok", "ok", "ok", "ok")),
    KREMLIN: ("present", ("ok", "ok", "ok", "ok", "ok")),
    "failing.example": ("failing", ("refused", "refused", "ok", "ok", "ok")),
    "tampered.example": ("tampered", ("ok", "ok", "ok", "ok", "ok")),
    "partial.example": ("partial", ("nxdomain", "ok", "ok", "ok", "ok")),
    "unstable.example": ("unstable", ("ok", "ok", "ok", "ok", "nxdomain")),
    "natonly.example": ("national-only", ("ok", "ok", "nxdomain", "nxdomain", "nxdomain")),
    "gone.example": ("gone", ("nxdomain", "nxdomain", "nxdomain", "nxdomain", "nxdomain")),
}


def world_config(lab: Lab) -> Path:
    return write_config(
        lab,
        "world.yaml",
        [udp(lab, "nsdi-a"), udp(lab, "nsdi-b")],
        [
            tcp(lab, "google"),
            doh(lab, "cloudflare", "cloudflare"),
            dot(lab, "quad9", "quad9"),
        ],
        WORLD_WATCHLIST,
        # One confirmation round: every doubtful verdict must survive a second look.
        confirm=1,
    )


def expected_answers(domain: str, resolver: str, status: str) -> list[str]:
    if status != "ok":
        return []
    if domain == "tampered.example" and resolver == "nsdi-a":
        return [BOGON]
    if domain == "natonly.example":
        return [NATIONAL_ONLY_ADDRESS]
    return [ADDRESSES["vk.com" if domain == "www.vk.com" else domain]]


@dataclass(frozen=True)
class Run:
    process: subprocess.CompletedProcess[str]
    dates: tuple[str, str]  # the UTC date before and after the run

    @property
    def doc(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.process.stdout)
        return loaded


def timed(config: Path, *args: str) -> Run:
    before = datetime.datetime.now(datetime.UTC).date().isoformat()
    process = monitor(config, *args)
    after = datetime.datetime.now(datetime.UTC).date().isoformat()
    return Run(process, (before, after))


@pytest.fixture(scope="module")
def world_json(lab: Lab) -> Run:
    """`check --json` over the whole world, run once for the module."""
    return timed(world_config(lab), "check", "--json")


def test_check_json_exits_0_with_schema_1(world_json: Run) -> None:
    assert world_json.process.returncode == 0, world_json.process.stderr
    assert world_json.process.stderr == ""
    doc = world_json.doc
    assert sorted(doc) == [
        "date",
        "domains",
        "events",
        "resolvers",
        "schema",
        "suspected_block_pages",
        "vantage",
    ]
    assert doc["schema"] == 1
    assert doc["vantage"] == "lab"
    assert doc["date"] in world_json.dates
    assert doc["events"] == []


def test_check_json_every_resolver_is_up(world_json: Run) -> None:
    groups = ["national", "national", "control", "control", "control"]
    assert world_json.doc["resolvers"] == {
        name: {"group": group, "health": "up"}
        for name, group in zip(WORLD_RESOLVERS, groups, strict=True)
    }


def test_check_json_verdict_of_every_domain(world_json: Run) -> None:
    assert verdicts(world_json.doc) == {d: verdict for d, (verdict, _) in WORLD.items()}
    # Every verdict of DESIGN.md's table that a lab can produce shows up once at least.
    assert set(verdicts(world_json.doc).values()) == {
        "present",
        "missing",
        "partial",
        "failing",
        "tampered",
        "gone",
        "national-only",
        "unstable",
    }


@pytest.mark.parametrize("domain", list(WORLD))
def test_check_json_statuses_and_answers(world_json: Run, domain: str) -> None:
    [entry] = [d for d in world_json.doc["domains"] if d["domain"] == domain]
    _, a_statuses = WORLD[domain]
    expected = {}
    for resolver, status in zip(WORLD_RESOLVERS, a_statuses, strict=True):
        # The zone holds A records only: where A is ok, AAAA is NOERROR without records.
        aaaa = "nodata" if status == "ok" else status
        expected[resolver] = {
            "A": {"status": status, "answers": expected_answers(domain, resolver, status)},
            "AAAA": {"status": aaaa, "answers": []},
        }
    assert {
        resolver: {rdtype: said(o) for rdtype, o in by_type.items()}
        for resolver, by_type in entry["resolvers"].items()
    } == expected


def test_check_json_deleted_name(world_json: Run) -> None:
    assert statuses(world_json.doc, "youtube.com")["nsdi-a"] == {
        "A": "nxdomain",
        "AAAA": "nxdomain",
    }
    [entry] = [d for d in world_json.doc["domains"] if d["domain"] == "youtube.com"]
    # unbound's local-zone: an NXDOMAIN made up with the AA bit, without the zone's SOA
    assert entry["resolvers"]["nsdi-a"]["A"] == {
        "status": "nxdomain",
        "answers": [],
        "ede": [],
        "cname": [],
        "soa": None,
        "aa": True,
    }
    # the controls: the real NXDOMAIN of a name in no zone carries the root zone's SOA
    [gone] = [d for d in world_json.doc["domains"] if d["domain"] == "gone.example"]
    assert gone["resolvers"]["google"]["A"]["soa"] == "."
    assert gone["resolvers"]["google"]["A"]["aa"] is False


def test_check_json_tampered_answer_is_the_bogon(world_json: Run) -> None:
    [entry] = [d for d in world_json.doc["domains"] if d["domain"] == "tampered.example"]
    assert entry["verdict"] == "tampered"
    assert said(entry["resolvers"]["nsdi-a"]["A"]) == {"status": "ok", "answers": [BOGON]}
    assert said(entry["resolvers"]["nsdi-b"]["A"]) == {
        "status": "ok",
        "answers": [ADDRESSES["tampered.example"]],
    }


def test_check_json_display_and_label(world_json: Run) -> None:
    entries = {d["domain"]: d for d in world_json.doc["domains"]}
    assert list(entries) == list(WORLD)
    assert entries[KREMLIN]["display"] == "кремль.рф"
    assert entries["dw.com"]["label"] == "Deutsche Welle"
    # ASCII names have no display; only labelled names have a label.
    for domain, entry in entries.items():
        assert ("display" in entry) == (domain == KREMLIN), domain
        assert ("label" in entry) == (domain == "dw.com"), domain
        assert sorted(entry) == sorted(
            ["domain", "verdict", "resolvers"]
            + (["display"] if domain == KREMLIN else [])
            + (["label"] if domain == "dw.com" else [])
        )


def test_check_table(lab: Lab) -> None:
    result = monitor(world_config(lab), "check")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        "domain            verdict        nsdi-a    nsdi-b    google    cloudflare  quad9\n"
        "youtube.com       missing        nxdomain  nxdomain  ok        ok          ok\n"
        "bbc.com           missing        nxdomain  nxdomain  ok        ok          ok\n"
        "dw.com            present        ok        ok        ok        ok          ok\n"
        "www.vk.com        present        ok        ok        ok        ok          ok\n"
        "кремль.рф         present        ok        ok        ok        ok          ok\n"
        "failing.example   failing        refused   refused   ok        ok          ok\n"
        "tampered.example  tampered       ok        ok        ok        ok          ok\n"
        "partial.example   partial        nxdomain  ok        ok        ok          ok\n"
        "unstable.example  unstable       ok        ok        ok        ok          nxdomain\n"
        "natonly.example   national-only  ok        ok        nxdomain  nxdomain    nxdomain\n"
        "gone.example      gone           nxdomain  nxdomain  nxdomain  nxdomain    nxdomain\n"
        "\n"
        "What the national resolvers said (and any control that sent an EDE):\n"
        # unbound's local-zone: NXDOMAIN and REFUSED made up, with AA and without an SOA
        "youtube.com:\n"
        "  nsdi-a: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA\n"
        "  nsdi-b: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA\n"
        "bbc.com:\n"
        "  nsdi-a: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA\n"
        "  nsdi-b: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA\n"
        "failing.example:\n"
        "  nsdi-a: A refused, AA; AAAA refused, AA\n"
        "  nsdi-b: A refused, AA; AAAA refused, AA\n"
        "tampered.example:\n"
        f"  nsdi-a: A ok {BOGON}, AA; AAAA nodata, no SOA, AA\n"
        f"  nsdi-b: A ok {ADDRESSES['tampered.example']}; AAAA nodata, SOA .\n"
        "partial.example:\n"
        "  nsdi-a: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA\n"
        f"  nsdi-b: A ok {ADDRESSES['partial.example']}; AAAA nodata, SOA .\n"
        "unstable.example:\n"
        f"  nsdi-a: A ok {ADDRESSES['unstable.example']}; AAAA nodata, SOA .\n"
        f"  nsdi-b: A ok {ADDRESSES['unstable.example']}; AAAA nodata, SOA .\n"
        "natonly.example:\n"
        "  nsdi-a: A ok 95.1.2.3, AA; AAAA nodata, no SOA, AA\n"
        "  nsdi-b: A ok 95.1.2.3, AA; AAAA nodata, no SOA, AA\n"
    )


def test_check_shows_progress_on_a_terminal_only(lab: Lab) -> None:
    # stderr on a pseudo-terminal: a progress line that ends with every query done. stdout
    # stays a pipe and holds the same table as when nothing is a terminal (test_check_table).
    config = world_config(lab)
    master, slave = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "check"],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=60,
            check=False,
        )
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child is gone and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert result.returncode == 0, shown
    assert result.stdout == monitor(config, "check").stdout
    text = shown.decode()
    done = re.findall(r"\r(\d[\d,]*)/(\d[\d,]*) queries, [\d,]+/s", text)
    assert done, text
    assert done[-1][0] == done[-1][1]  # the last line: every query of the main pass
    # 11 names, A and AAAA (the default record types), 5 resolvers
    assert int(done[-1][1].replace(",", "")) == len(WORLD_WATCHLIST) * 2 * 5
    assert text.endswith("\x1b[K\r\n")  # the terminal's newline after the last line


# ----------------------------------------------------------------------------- named domains


def test_check_one_name_not_on_the_watchlist(lab: Lab) -> None:
    result = invoke(world_config(lab), "check", "vk.com")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "domain  verdict  nsdi-a  nsdi-b  google  cloudflare  quad9\n"
        "vk.com  present  ok      ok      ok      ok          ok\n"
    )


def test_check_unicode_name_json(lab: Lab) -> None:
    result = invoke(world_config(lab), "check", "--json", "КРЕМЛЬ.рф", "youtube.com")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(d["domain"], d.get("display"), d["verdict"]) for d in doc["domains"]] == [
        (KREMLIN, "кремль.рф", "present"),
        ("youtube.com", None, "missing"),
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad..name", "Error: 'bad..name' is not a domain name: empty label\n"),
        ("192.0.2.1", "Error: '192.0.2.1' is not a domain name: is an IP address, not a name\n"),
        (
            "https://dw.com/",
            "Error: 'https://dw.com/' is not a domain name: is a URL, not a name\n",
        ),
    ],
)
def test_check_invalid_name_exits_2(lab: Lab, name: str, message: str) -> None:
    result = monitor(world_config(lab), "check", name)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message)


# ----------------------------------------------------------------------------- DoT and DoH


def test_dot_and_doh_controls(lab: Lab) -> None:
    config = write_config(
        lab,
        "tls.yaml",
        [udp(lab, "nsdi-b")],
        [
            dot(lab, "quad9", "quad9"),
            doh(lab, "cloudflare", "cloudflare"),
            # The same servers, trusting only the system's CAs: the lab's certificate fails.
            dot(lab, "dot-system-ca", "quad9", lab_ca=False),
            doh(lab, "doh-system-ca", "cloudflare", lab_ca=False),
        ],
        ["youtube.com", "dw.com"],
        min_controls=2,
    )
    result = invoke(config, "check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {name: r["health"] for name, r in doc["resolvers"].items()} == {
        "nsdi-b": "up",
        "quad9": "up",
        "cloudflare": "up",
        "dot-system-ca": "down",
        "doh-system-ca": "down",
    }
    assert verdicts(doc) == {"youtube.com": "missing", "dw.com": "present"}
    # A down resolver's statuses are not reported, or used.
    assert statuses(doc, "dw.com") == {
        "nsdi-b": {"A": "ok", "AAAA": "nodata"},
        "quad9": {"A": "ok", "AAAA": "nodata"},
        "cloudflare": {"A": "ok", "AAAA": "nodata"},
    }
    [dw] = [d for d in doc["domains"] if d["domain"] == "dw.com"]
    for control in ("quad9", "cloudflare"):
        assert said(dw["resolvers"][control]["A"]) == {
            "status": "ok",
            "answers": [ADDRESSES["dw.com"]],
        }

    table = invoke(config, "check")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[1:] == [
        "youtube.com  missing  nxdomain  ok     ok          down           down",
        "dw.com       present  ok        ok     ok          down           down",
        "",
        "What the national resolvers said (and any control that sent an EDE):",
        "youtube.com:",
        "  nsdi-b: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA",
    ]
    lines = table.stderr.splitlines()
    assert [line.split(" (canaries: ")[0] for line in lines] == [
        "dot-system-ca (control) is down",
        "doh-system-ca (control) is down",
    ]
    assert all(
        "example.com error" in line and "CERTIFICATE_VERIFY_FAILED" in line for line in lines
    )


class SlowDohRelay:
    """A DoH relay on another loopback address: it waits ``delay`` seconds before each TLS
    handshake (a session that is slow to open), ends TLS with the server's own certificate,
    notes when each HTTP/2 request (HEADERS frame) arrives, and passes it on to the server."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, ep: Endpoint, cert: tuple[Path, Path], address: str, delay: float) -> None:
        assert ep.https_port is not None and ep.ca_file is not None
        self.upstream, self.delay = (ep.address, ep.https_port), delay
        self.inbound = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.inbound.load_cert_chain(certfile=cert[1], keyfile=cert[0])
        self.inbound.set_alpn_protocols(["h2"])
        self.outbound = ssl.create_default_context(cafile=ep.ca_file)
        self.outbound.set_alpn_protocols(["h2"])
        self.listener = socket.create_server((address, ep.https_port))
        self.connections = 0
        self.requests: list[float] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._start(self._relay, client)

    def _relay(self, raw: socket.socket) -> None:
        # One thread per connection, both ways (an SSL socket must not be read in one thread
        # while another writes it).
        time.sleep(self.delay)
        with contextlib.suppress(OSError):
            client = self.inbound.wrap_socket(raw, server_side=True)
            server = self.outbound.wrap_socket(
                socket.create_connection(self.upstream), server_hostname=self.upstream[0]
            )
            buffer, preface = b"", True
            with client, server:
                while True:
                    readable, _, _ = select.select([client, server], [], [], 30)
                    if not readable:
                        return
                    for source in readable:
                        while data := source.recv(65536):
                            if source is client:
                                buffer, preface = self._note(buffer + data, preface)
                            (server if source is client else client).sendall(data)
                            if not source.pending():
                                break
                        else:
                            return  # one side closed

    def _note(self, buffer: bytes, preface: bool) -> tuple[bytes, bool]:
        """Note the HEADERS frames (requests) in the client's bytes; return what is left."""
        if preface:
            if len(buffer) < len(self.PREFACE):
                return buffer, True
            buffer = buffer[len(self.PREFACE) :]
        while len(buffer) >= 9:
            size = 9 + int.from_bytes(buffer[:3], "big")
            if len(buffer) < size:
                break
            if buffer[3] == 0x1:
                self.requests.append(time.monotonic())
            buffer = buffer[size:]
        return buffer, False

    def close(self) -> None:
        self.listener.close()


def test_doh_paces_the_queries_that_waited_for_the_session(lab: Lab) -> None:
    # The TLS session takes a second to open. The queries paced meanwhile must not all leave
    # at once when it opens: at most `rate` requests reach the server in any one second.
    ep = lab.servers["cloudflare"]
    directory = lab.work / "lab" / "cloudflare"  # where DNSLab wrote its key and certificate
    cert = (directory / "server.key", directory / "server.pem")
    relay = SlowDohRelay(ep, cert, "127.0.0.250", delay=1.0)
    rate = 10
    try:
        control = (
            f'{{name: slow, transport: doh, url: "{ep.doh_url}", address: 127.0.0.250, '
            f"ca_file: {ep.ca_file}, rate: {rate}}}"
        )
        names = ["dw.com", "vk.com", "www.vk.com", KREMLIN] + [f"n{i}.example" for i in range(12)]
        config = write_config(
            lab, "slow-doh.yaml", [udp(lab, "nsdi-a")], [control], names, timeout=4
        )
        result = monitor(config, "check", "--json")
    finally:
        relay.close()
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {d["domain"]: d["verdict"] for d in doc["domains"][:4]} == dict.fromkeys(
        names[:4], "present"
    )
    arrivals = relay.requests
    # canaries and the impossible name (3), 16 names x 2 types, the canary after
    assert len(arrivals) >= 3 + 32 + 1
    worst = max(sum(1 for t in arrivals if s <= t < s + 1.0) for s in arrivals)
    assert worst <= rate, (worst, [round(t - arrivals[0], 3) for t in arrivals])
    assert relay.connections == 1  # one HTTP/2 session


def test_down_tls_control_says_why(lab: Lab) -> None:
    """A control whose certificate fails must say so: "error" alone sends people guessing."""
    config = write_config(
        lab,
        "tls-why.yaml",
        [udp(lab, "nsdi-b")],
        [
            tcp(lab, "google"),
            dot(lab, "dot-system-ca", "quad9", lab_ca=False),
            doh(lab, "doh-system-ca", "cloudflare", lab_ca=False),
        ],
        ["dw.com"],
    )
    doc = json.loads(invoke(config, "check", "--json").stdout)
    for name in ("dot-system-ca", "doh-system-ca"):
        assert doc["resolvers"][name]["health"] == "down"
        assert "CERTIFICATE_VERIFY_FAILED" in doc["resolvers"][name]["detail"], (
            f"{name}'s health detail does not give the reason: {doc['resolvers'][name]['detail']!r}"
        )


# ----------------------------------------------------------------------------- canaries


def test_down_nationals_are_not_used(lab: Lab) -> None:
    config = write_config(
        lab,
        "canaries.yaml",
        [udp(lab, "nsdi-a"), udp(lab, "refuser"), udp(lab, "nocanary")],
        [tcp(lab, "google")],
        ["youtube.com", "dw.com"],
    )
    result = invoke(config, "check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["resolvers"] == {
        "nsdi-a": {"group": "national", "health": "up"},
        "refuser": {
            "group": "national",
            "health": "down",
            "detail": "canaries: example.com refused",
        },
        "nocanary": {
            "group": "national",
            "health": "down",
            "detail": "canaries: example.com nxdomain",
        },
        "google": {"group": "control", "health": "up"},
    }
    # nocanary resolves youtube.com: were it used, the nationals would split (partial).
    assert verdicts(doc) == {"youtube.com": "missing", "dw.com": "present"}
    assert statuses(doc, "youtube.com") == {
        "nsdi-a": {"A": "nxdomain", "AAAA": "nxdomain"},
        "google": {"A": "ok", "AAAA": "nodata"},
    }

    table = invoke(config, "check")
    assert table.exit_code == 0
    assert table.stdout == (
        "domain       verdict  nsdi-a    refuser  nocanary  google\n"
        "youtube.com  missing  nxdomain  down     down      ok\n"
        "dw.com       present  ok        down     down      ok\n"
        "\n"
        "What the national resolvers said (and any control that sent an EDE):\n"
        "youtube.com:\n"
        "  nsdi-a: A nxdomain, no SOA, AA; AAAA nxdomain, no SOA, AA\n"  # a down one: not shown
    )
    assert table.stderr == (
        "refuser (national) is down (canaries: example.com refused)\n"
        "nocanary (national) is down (canaries: example.com nxdomain)\n"
    )


def test_timeouts_and_closed_ports_make_a_resolver_down(lab: Lab) -> None:
    silent_address, silent_port = lab.silent.getsockname()
    closed_address, closed_port = lab.closed
    config = write_config(
        lab,
        "timeouts.yaml",
        [
            udp(lab, "nsdi-a"),
            f"{{name: silent, address: {silent_address}, port: {silent_port}}}",
            f"{{name: closed, address: {closed_address}, port: {closed_port}}}",
        ],
        [tcp(lab, "google")],
        ["youtube.com"],
        timeout=0.3,
        attempts=2,
    )
    result = invoke(config, "check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {name: (r["health"], r.get("detail")) for name, r in doc["resolvers"].items()} == {
        "nsdi-a": ("up", None),
        "silent": ("down", "canaries: example.com timeout"),
        "closed": ("down", "canaries: example.com error (network error: Connection refused)"),
        "google": ("up", None),
    }
    assert verdicts(doc) == {"youtube.com": "missing"}
    assert sorted(statuses(doc, "youtube.com")) == ["google", "nsdi-a"]


INCONCLUSIVE = {
    "every national down": (
        ["refuser", "nocanary"],
        ["google"],
        1,
        "Inconclusive: every national resolver is down (no canary answered)",
    ),
    "one control of min_controls 2": (
        ["nsdi-a"],
        ["google", "refuser"],
        2,
        "Inconclusive: 1 control resolver(s) up, fewer than min_controls (2)",
    ),
}


@pytest.mark.parametrize("case", list(INCONCLUSIVE))
def test_inconclusive_check_exits_4(lab: Lab, case: str) -> None:
    national, control, min_controls, message = INCONCLUSIVE[case]
    config = write_config(
        lab,
        "inconclusive.yaml",
        [udp(lab, n) for n in national],
        [tcp(lab, c) for c in control],
        ["youtube.com", "dw.com"],
        min_controls=min_controls,
    )
    table = invoke(config, "check")
    assert table.exit_code == 4
    assert table.stdout == ""
    assert table.stderr.splitlines()[-1] == message

    as_json = invoke(config, "check", "--json")
    assert as_json.exit_code == 4
    doc = json.loads(as_json.stdout)
    assert doc["domains"] == []
    assert doc["inconclusive"] == message.removeprefix("Inconclusive: ")
    assert as_json.stderr.splitlines()[-1] == message


def test_inconclusive_check_exits_4_as_a_subprocess(lab: Lab) -> None:
    national, control, min_controls, message = INCONCLUSIVE["every national down"]
    config = write_config(
        lab,
        "inconclusive-sub.yaml",
        [udp(lab, n) for n in national],
        [tcp(lab, c) for c in control],
        ["youtube.com"],
        min_controls=min_controls,
    )
    result = monitor(config, "check")
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr == (
        "refuser (national) is down (canaries: example.com refused)\n"
        "nocanary (national) is down (canaries: example.com nxdomain)\n"
        f"{message}\n"
    )


# ----------------------------------------------------------------------------- authoritative


@pytest.mark.parametrize(
    ("mode", "deleg_verdict"),
    [
        # RD=0 at an authoritative server: a referral shows the name is delegated.
        ("authoritative", "present"),
        # From a server taken for a recursive resolver, a referral is a failure.
        ("recursive", "failing"),
    ],
)
def test_authoritative_mode(lab: Lab, mode: str, deleg_verdict: str) -> None:
    nsd = lab.nsd
    config = write_config(
        lab,
        f"authoritative-{mode}.yaml",
        [f"{{name: nsd, address: {nsd.address}, port: {nsd.port}, mode: {mode}}}"],
        [tcp(lab, "google")],
        ["dw.com", "deleg.example", "absent.example"],
    )
    result = invoke(config, "check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["resolvers"]["nsd"] == {"group": "national", "health": "up"}
    assert verdicts(doc) == {
        "dw.com": "present",
        "deleg.example": deleg_verdict,
        "absent.example": "gone",
    }
    assert statuses(doc, "deleg.example") == {
        "nsd": {"A": "referral", "AAAA": "referral"},
        "google": {"A": "ok", "AAAA": "nodata"},
    }
    [dw] = [d for d in doc["domains"] if d["domain"] == "dw.com"]
    assert said(dw["resolvers"]["nsd"]["A"]) == {
        "status": "ok",
        "answers": [ADDRESSES["dw.com"]],
    }
    assert statuses(doc, "absent.example")["nsd"] == {"A": "nxdomain", "AAAA": "nxdomain"}


# ----------------------------------------------------------------------------- truncation


def test_udp_falls_back_to_tcp_on_truncation(lab: Lab) -> None:
    resolver = lab.servers["nsdi-b"]
    # The premise: over UDP, with the probe's EDNS size, the answer does not fit.
    query = dns.message.make_query("many.example", "A", use_edns=0, payload=1232)
    reply = dns.query.udp(query, resolver.address, port=resolver.port, timeout=2)
    assert reply.flags & dns.flags.TC
    assert not reply.answer

    config = write_config(
        lab,
        "truncation.yaml",
        [udp(lab, "nsdi-b")],
        [tcp(lab, "google")],
        ["many.example"],
        record_types="[A]",
    )
    result = invoke(config, "check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert verdicts(doc) == {"many.example": "present"}
    [entry] = doc["domains"]
    for name in ("nsdi-b", "google"):
        observation = entry["resolvers"][name]["A"]
        assert observation["status"] == "ok"
        assert len(observation["answers"]) == len(MANY)
        assert sorted(observation["answers"]) == sorted(MANY)
