"""Tests of the real-DNS lab: NSD and unbound started, queried over UDP, DoT and DoH, stopped."""

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import realdns
from realdns import DNSLab, Endpoint, LabError, MissingBinaryError

RECORDS = [
    "youtube.com. 300 IN A 93.184.216.34",
    "youtube.com. 300 IN AAAA 2606:2800:220:1:248:1893:25c8:1946",
    "www.youtube.com. 300 IN CNAME youtube-ui.l.google.com.",
    "youtube-ui.l.google.com. 300 IN CNAME edge.l.google.com.",
    "edge.l.google.com. 300 IN A 142.250.74.46",
    "dangling.example. 300 IN CNAME nowhere.example.",
    "bbc.com. 300 IN A 151.101.0.81",
    "refused.example. 300 IN A 203.0.113.7",
    "blocked.example. 300 IN A 203.0.113.8",
    "name.test. 300 IN A 203.0.113.9",
]
STUB_ADDRESS = "198.51.100.34"


@dataclass(frozen=True)
class World:
    nsd: Endpoint
    control: Endpoint
    national: Endpoint
    secure: Endpoint


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    realdns.fail_unless_installed()
    with DNSLab(tmp_path_factory.mktemp("world")) as lab:
        nsd = lab.start_nsd(records=RECORDS)
        control = lab.start_unbound("control")
        national = lab.start_unbound(
            "national",
            local_zones={
                "youtube.com.": "always_nxdomain",
                "refused.example.": "always_refuse",
                "blocked.example.": "redirect",
            },
            local_data=[f"blocked.example. A {STUB_ADDRESS}"],
        )
        secure = lab.start_unbound("secure", tls=True, https=True)
        yield World(nsd, control, national, secure)


def answers(reply: dns.message.Message) -> set[str]:
    """Return the answer section as "owner TYPE rdata" strings."""
    return {
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
        for rrset in reply.answer
        for rdata in rrset
    }


def ask(server: Endpoint, qname: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    return dns.query.udp(query, server.address, port=server.port, timeout=3)


YOUTUBE_A = {"youtube.com. A 93.184.216.34"}
CHAIN = {
    "www.youtube.com. CNAME youtube-ui.l.google.com.",
    "youtube-ui.l.google.com. CNAME edge.l.google.com.",
    "edge.l.google.com. A 142.250.74.46",
}


ANSWER_CASES = [
    ("nsd", "youtube.com.", "A", dns.rcode.NOERROR, YOUTUBE_A),
    ("nsd", "nowhere.example.", "A", dns.rcode.NXDOMAIN, set()),
    ("control", "youtube.com.", "A", dns.rcode.NOERROR, YOUTUBE_A),
    (
        "control",
        "youtube.com.",
        "AAAA",
        dns.rcode.NOERROR,
        {"youtube.com. AAAA 2606:2800:220:1:248:1893:25c8:1946"},
    ),
    ("control", "www.youtube.com.", "A", dns.rcode.NOERROR, CHAIN),
    (
        "control",
        "dangling.example.",
        "A",
        dns.rcode.NXDOMAIN,
        {"dangling.example. CNAME nowhere.example."},
    ),
    ("control", "name.test.", "A", dns.rcode.NOERROR, {"name.test. A 203.0.113.9"}),
    ("national", "youtube.com.", "A", dns.rcode.NXDOMAIN, set()),
    ("national", "www.youtube.com.", "A", dns.rcode.NXDOMAIN, set()),
    ("national", "bbc.com.", "A", dns.rcode.NOERROR, {"bbc.com. A 151.101.0.81"}),
    ("control", "refused.example.", "A", dns.rcode.NOERROR, {"refused.example. A 203.0.113.7"}),
    ("national", "refused.example.", "A", dns.rcode.REFUSED, set()),
    ("control", "blocked.example.", "A", dns.rcode.NOERROR, {"blocked.example. A 203.0.113.8"}),
    (
        "national",
        "blocked.example.",
        "A",
        dns.rcode.NOERROR,
        {f"blocked.example. A {STUB_ADDRESS}"},
    ),
    (
        "national",
        "www.blocked.example.",
        "A",
        dns.rcode.NOERROR,
        {f"www.blocked.example. A {STUB_ADDRESS}"},
    ),
]


@pytest.mark.parametrize(
    ("server", "qname", "rdtype", "rcode", "expected"),
    ANSWER_CASES,
    ids=[f"{case[0]}-{case[1]}{case[2]}" for case in ANSWER_CASES],
)
def test_answers(
    world: World, server: str, qname: str, rdtype: str, rcode: dns.rcode.Rcode, expected: set[str]
) -> None:
    reply = ask(getattr(world, server), qname, rdtype)
    assert (dns.rcode.to_text(reply.rcode()), answers(reply)) == (
        dns.rcode.to_text(rcode),
        expected,
    )


@pytest.mark.parametrize(
    ("server", "aa", "ra"),
    [("nsd", True, False), ("control", False, True), ("national", False, True)],
)
def test_flags(world: World, server: str, aa: bool, ra: bool) -> None:
    reply = ask(getattr(world, server), "bbc.com.")
    assert (bool(reply.flags & dns.flags.AA), bool(reply.flags & dns.flags.RA)) == (aa, ra)


def encrypted_query(
    server: Endpoint, transport: str, qname: str, context: ssl.SSLContext
) -> dns.message.Message:
    """Return the reply of server to an A query over DoT or DoH, verified with context."""
    query = dns.message.make_query(qname, "A")
    if transport == "dot":
        assert server.tls_port is not None
        return dns.query.tls(
            query,
            server.address,
            port=server.tls_port,
            ssl_context=context,
            server_hostname=realdns.SERVER_HOSTNAME,
            timeout=3,
        )
    assert server.https_port is not None
    return dns.query.https(query, server.address, port=server.https_port, verify=context, timeout=3)


@pytest.mark.parametrize("transport", ["dot", "doh"])
def test_encrypted_transport_answers_with_the_lab_ca(world: World, transport: str) -> None:
    assert world.secure.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.secure.ca_file))
    reply = encrypted_query(world.secure, transport, "www.youtube.com.", context)
    assert answers(reply) == CHAIN


@pytest.mark.parametrize("transport", ["dot", "doh"])
def test_encrypted_transport_refuses_an_untrusted_certificate(world: World, transport: str) -> None:
    # The system's CAs do not know the lab's CA, so verification must fail.
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        encrypted_query(world.secure, transport, "youtube.com.", ssl.create_default_context())


def test_doh_url(world: World) -> None:
    assert world.secure.doh_url == (
        f"https://{world.secure.address}:{world.secure.https_port}/dns-query"
    )


def test_plain_servers_have_no_encrypted_ports(world: World) -> None:
    assert (world.control.tls_port, world.control.https_port, world.control.ca_file) == (
        None,
        None,
        None,
    )
    with pytest.raises(LabError):
        _ = world.control.doh_url


def test_every_server_has_its_own_address(world: World) -> None:
    servers = [world.nsd, world.control, world.national, world.secure]
    assert len({s.address for s in servers}) == len(servers)


def group_members(pgid: int) -> set[int]:
    """Return the pids of the live (not zombie) processes in process group pgid."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(entry.name))
    return members


def test_stop_leaves_no_process(dnslab: DNSLab) -> None:
    nsd = dnslab.start_nsd(records=RECORDS)
    resolver = dnslab.start_unbound("resolver", tls=True, https=True)
    pids = group_members(nsd.pid) | group_members(resolver.pid)
    # NSD runs a main process, xfrd and a server child.
    assert len(group_members(nsd.pid)) >= 2
    assert {nsd.pid, resolver.pid} <= pids
    dnslab.stop()
    assert group_members(nsd.pid) | group_members(resolver.pid) == set()
    assert dnslab.servers == []


def test_stop_server_stops_only_that_server(dnslab: DNSLab) -> None:
    nsd = dnslab.start_nsd(records=RECORDS)
    first = dnslab.start_unbound("first")
    second = dnslab.start_unbound("second")
    dnslab.stop_server(first)
    assert (group_members(first.pid), dnslab.servers) == (set(), [nsd, second])
    assert answers(ask(second, "youtube.com.")) == YOUTUBE_A


def test_two_labs_never_share_an_address(tmp_path: Path, dnslab: DNSLab) -> None:
    one = dnslab.start_nsd(records=RECORDS)
    with DNSLab(tmp_path / "other") as other:
        two = other.start_nsd(records=RECORDS)
        assert one.address != two.address
        assert answers(ask(two, "youtube.com.")) == YOUTUBE_A


def test_unbound_start_failure_shows_its_log(dnslab: DNSLab) -> None:
    dnslab.start_nsd(records=RECORDS)
    with pytest.raises(LabError, match="no-such-option"):
        dnslab.start_unbound("broken", extra="no-such-option: yes")
    assert dnslab.servers[1:] == []


def test_nsd_start_failure_shows_its_log(dnslab: DNSLab) -> None:
    # A zone without an SOA record is refused by NSD.
    with pytest.raises(LabError, match=r"nsd on 127\.0\.\d+\.\d+@\d+"):
        dnslab.start_nsd(zone_text="youtube.com. 300 IN A 93.184.216.34\n")
    assert dnslab.servers == []


def test_unbound_needs_an_nsd(dnslab: DNSLab) -> None:
    with pytest.raises(LabError, match="start NSD before unbound"):
        dnslab.start_unbound("orphan")


def test_big_zone_file_is_served_in_place(tmp_path: Path, dnslab: DNSLab) -> None:
    zone = tmp_path / "many.zone"
    zone.write_text(
        realdns.root_zone(f"n{i}.com. 300 IN A 198.18.0.{i % 250}" for i in range(1000))
    )
    nsd = dnslab.start_nsd(zone_file=zone)
    assert answers(ask(nsd, "n999.com.")) == {"n999.com. A 198.18.0.249"}


@pytest.mark.parametrize(
    ("n", "address"),
    [(0, "127.0.0.10"), (244, "127.0.0.254"), (245, "127.0.1.10"), (62719, "127.0.255.254")],
)
def test_address_for(n: int, address: str) -> None:
    assert realdns.address_for(n) == address


def test_address_for_runs_out() -> None:
    with pytest.raises(LabError):
        realdns.address_for(62720)


def test_missing_binaries_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(realdns, "_SBIN_DIRS", ())
    with pytest.raises(MissingBinaryError) as caught:
        realdns.require_binaries()
    assert str(caught.value) == (
        "nsd and unbound are needed for the end-to-end tests: "
        "apt-get update && apt-get install -y nsd unbound"
    )
