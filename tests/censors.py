"""Real censoring national resolvers for the tests: BIND, Knot Resolver, PowerDNS, dnsmasq.

Each starter runs one of Debian's programs as an ISP's resolver that forwards to an upstream of
the lab (an unbound of tests/realdns.py resolving from its NSD), with blocking rules the test
names. udp_only() puts a relay serving UDP but not TCP in front of a server; dead_server() is a
server that never answers. What they really answer, as tests/test_censors.py asserts it cell by
cell (Debian 12: BIND 9.18.49, Knot Resolver 5.6.0, PowerDNS Recursor 4.8.8, dnsmasq 2.90,
unbound 1.17.1; queries with EDNS over UDP unless said; "-" is none):

program  mechanism (as configured)     rcode     answer section        AA  SOA (auth.)  EDE
-------  ----------------------------  --------  --------------------  --  -----------  ----------
named    RPZ CNAME . (NXDOMAIN)        NXDOMAIN  -                     -   - [1]        -
named    RPZ CNAME *. (NODATA)         NOERROR   - (every type)        -   - [1]        -
named    RPZ CNAME rpz-drop.           no reply on UDP; on TCP the connection stays open, mute
named    RPZ CNAME rpz-tcp-only.       UDP: NOERROR, TC set, every section empty; TCP: true answer
named    RPZ A 10.10.34.35 (bogon)     NOERROR   that A, TTL 5 [2]     -   - [1]        -
named    RPZ A 95.213.158.62           NOERROR   that A, TTL 5 [2]     -   - [1]        -
named    RPZ CNAME warning.isp.example NOERROR   CNAME, garden's A     -   - [1, 3]     -
named    RPZ CNAME rpz-passthru.       the true answer, with no trace of the policy
kresd    policy.DENY                   NXDOMAIN  -                     AA  qname [4]    15 "CR36"
kresd    policy.DENY_MSG('text')       NXDOMAIN  - [5]                 AA  qname [4]    15 "CR36"
kresd    policy.REFUSE                 REFUSED   -                     -   -            18 "EIM4"
kresd    policy.ANSWER (an A)          NOERROR   the forged A [6]      AA  -            4 "5DO5"
kresd    policy.DROP (UDP and TCP)     SERVFAIL  -                     -   -            18 "U5KL"
pdns     RPZ CNAME . , EDE 15 "text"   NXDOMAIN  -                     -   -            15 "text"
pdns     RPZ A 95.213.158.64, EDE      NOERROR   that A, TTL <=60 [2]  -   -            15 "text"
dnsmasq  address=/name/0.0.0.0         NOERROR   A 0.0.0.0, TTL 0 [7]  AA  -            -
dnsmasq  address=/name/                NXDOMAIN  - (every type)        -   -            -
dnsmasq  server=/name/<dead server>    no reply on UDP [10]; the TCP connection closed, unanswered
unbound  local-zone always_nxdomain    NXDOMAIN  -                     AA  -            - [8]
unbound  local-zone always_refuse      REFUSED   -                     AA  -            - [8]
unbound  redirect, local-data A        NOERROR   that A [2]            AA  -            - [8]
unbound  local-zone always_null        NOERROR   A 0.0.0.0, AAAA ::    AA  -            - [8]
all      a name they leave alone       NOERROR   the true A            -   -            -
all      a name in no zone             NXDOMAIN  -                     -   "." [9]      -

[1] BIND puts the policy zone's own SOA (owner rpz.isp.) in the ADDITIONAL section (option
    add-soa, default yes), never in the authority section. PASSTHRU answers have none.
[2] Local-Data of type A only: AAAA queries get NODATA, with the same SOA and EDE as the A.
    BIND serves Local-Data with TTL 5 although the zone says 60; PowerDNS keeps the rewritten
    answer in its packet cache, where the TTL counts down from 60.
[3] Asked for AAAA: the CNAME, then the world's NODATA for the garden, with its SOA (".").
[4] Made up: the owner and MNAME are the query name itself (also below a suffix rule), the
    RNAME nobody.invalid., TTL 10800.
[5] The text is a TXT record of explanation.invalid. in the additional section; the EDE text
    stays "CR36" (Knot's EDE texts are short codes naming its source line, not the reason).
[6] Only the types given are forged; AAAA gets the true answer, without EDE. With nodata=True
    other types get NODATA, the made-up SOA of [4] and EDE 4.
[7] For the names below it too. AAAA is not touched: forwarded, the true answer.
[8] Even with "ede: yes".
[9] Passed through from the world, whose root zone holds every name; a real NXDOMAIN names the
    zone the name would be in.
[10] Not after 25 s either (measured by hand; the tests wait 1.5 s): no SERVFAIL, no REFUSED.

tests/test_censored.py adds, through the monitor: PowerDNS gives each policy zone its own EDE
(16, 17 and 18 as 15 above), with any text as it was given, control characters and all;
dnsmasq answers REFUSED once 150 forwarded queries are in flight (its dns-forward-max).

The UDP-only relay (udp_only): UDP gets the upstream's answers, losing loss_share of the queries
and of the replies (seeded); TCP "refuse": ECONNREFUSED at once; TCP "drop": the SYN is never
answered, connecting times out. dead_server(): UDP queries vanish, TCP is refused.

How they run: named and dnsmasq bind only addresses an interface carries, so they listen on
127.0.0.1 (which lo has) with a port of their own; kresd and pdns_recursor on a new 127.0.0.x.
Started as root, each switches to the user its package made (named -u bind, kresd's
user('knot-resolver'), pdns_recursor setuid=pdns, dnsmasq user=dnsmasq), with its files in a
directory that user owns (DNSLab.server_dir); started as another user, each stays that user.
Every file is in lab's directory of the server: named.conf and rpz.zone, kresd.conf,
recursor.conf with rpz.lua and rpz.zone, dnsmasq.conf; their logs are named.log, output.log
(kresd, pdns_recursor) and dnsmasq.log.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faultproxy import FaultProxy, TcpMode, loss
from realdns import DNSLab, Endpoint, LabError, MissingBinaryError, find_binary, next_address

# The Debian package of each program, and the system user it creates and the program drops to.
PACKAGES = {
    "named": "bind9",
    "kresd": "knot-resolver",
    "pdns_recursor": "pdns-recursor",
    "dnsmasq": "dnsmasq-base",
}
USERS = {"named": "bind", "kresd": "knot-resolver", "pdns_recursor": "pdns", "dnsmasq": "dnsmasq"}
# named and dnsmasq listen only on addresses an interface carries; lo carries just this one.
LOCALHOST = "127.0.0.1"
POLICY_ZONE = "rpz.isp."
_NAME = re.compile(r"(\*\.)?([A-Za-z0-9_-]+\.)+")
_TEXT = re.compile(r"[ -!#-\[\]-~]*")  # printable ASCII without quotes or backslashes


def install_hint(*programs: str) -> str:
    """Return the message saying which Debian packages provide the programs, and how to install."""
    packages = " ".join(PACKAGES[p] for p in programs)
    verb = "is" if len(programs) == 1 else "are"
    return (
        f"{' and '.join(programs)} {verb} needed for the censoring resolvers of "
        f"tests/test_censors.py: apt-get update && apt-get install -y {packages} "
        "(with a policy-rc.d that keeps their services from starting)"
    )


def require(*programs: str) -> None:
    """Return when every program is installed; raise MissingBinaryError naming the missing."""
    missing = [p for p in programs if find_binary(p) is None]
    if missing:
        raise MissingBinaryError(install_hint(*missing))


def fail_unless_installed(*programs: str) -> None:
    """Fail the calling test (never skip) when a program is missing, saying how to install it.
    For fixtures; imports pytest only when called."""
    import pytest

    message = None
    try:
        require(*programs)
    except MissingBinaryError as error:
        message = str(error)
    if message is not None:
        pytest.fail(message, pytrace=False)


# ------------------------------------------------------------------------------ policies


class Rpz:
    """The right-hand sides of Response Policy Zone rules (draft-vixie-dnsop-dns-rpz)."""

    NXDOMAIN = "CNAME ."
    NODATA = "CNAME *."
    DROP = "CNAME rpz-drop."
    TCP_ONLY = "CNAME rpz-tcp-only."
    PASSTHRU = "CNAME rpz-passthru."

    @staticmethod
    def a(address: str) -> str:
        """Return Local-Data: answer A queries with address (other types get NODATA)."""
        return f"A {address}"

    @staticmethod
    def cname(target: str) -> str:
        """Return Local-Data: a CNAME to target (a walled garden), which is then resolved."""
        _check_name(target)
        return f"CNAME {target}"


class Knot:
    """Knot Resolver policy actions, as Lua expressions for start_kresd's rules."""

    DENY = "policy.DENY"
    REFUSE = "policy.REFUSE"
    DROP = "policy.DROP"

    @staticmethod
    def deny_msg(text: str) -> str:
        """Return DENY_MSG: NXDOMAIN with text in a TXT record (printable ASCII, no quotes)."""
        return f"policy.DENY_MSG('{_check_text(text)}')"

    @staticmethod
    def answer(address: str, *, nodata: bool = False) -> str:
        """Return ANSWER: a forged A; other types pass through, or get NODATA with nodata."""
        _check_text(address)
        table = f"{{ [kres.type.A] = {{ rdata = kres.str2ip('{address}'), ttl = 300 }} }}"
        return f"policy.ANSWER({table}, {'true' if nodata else 'false'})"


def rpz_zone(origin: str, policy: Mapping[str, str | Sequence[str]]) -> str:
    """Return the text of a policy zone: each owner name (absolute, "*." allowed) gets its
    right-hand side (an Rpz value or record data such as "AAAA 2001:db8::1", one or a list).

    Raises LabError for a name that is not absolute.
    """
    _check_name(origin)
    lines = [
        # PowerDNS takes the zone's name from its SOA, and "@" means $ORIGIN: say it.
        f"$ORIGIN {origin}",
        "$TTL 60",
        f"@ IN SOA localhost. hostmaster.{origin} 1 3600 600 86400 60",
        "@ IN NS localhost.",
    ]
    for name, actions in policy.items():
        _check_name(name)
        for action in [actions] if isinstance(actions, str) else actions:
            lines.append(f"{name}{origin} {action}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PolicyZone:
    """A response policy zone for start_pdns_recursor: its origin (absolute), its rules (see
    rpz_zone) and the Extended DNS Error (code, text) added to what it rewrites, if any."""

    origin: str
    policy: Mapping[str, str | Sequence[str]]
    ede: tuple[int, str] | None = None


def lua_string(text: str) -> str:
    """Return a Lua string literal of text: printable ASCII as it is, every other byte of its
    UTF-8 (and quotes and backslashes) as a three-digit decimal escape, which every Lua reads."""
    out = []
    for byte in text.encode("utf-8"):
        if 0x20 <= byte < 0x7F and byte not in b'"\\':
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


# ------------------------------------------------------------------------------ the servers


def start_named(
    lab: DNSLab,
    name: str,
    upstream: Endpoint,
    policy: Mapping[str, str | Sequence[str]],
    *,
    zone: str = POLICY_ZONE,
    start_timeout: float = 30.0,
) -> Endpoint:
    """Start BIND 9 as a forwarding resolver to upstream with policy as its one response
    policy zone (see rpz_zone); return it once the zone is in force.

    It listens on 127.0.0.1 and a port of its own, with its files in lab's directory name,
    and runs as the user bind when started as root. Raises MissingBinaryError, or LabError
    with its log.
    """
    require("named")
    named = find_binary("named")
    checkconf = find_binary("named-checkconf")
    assert named is not None
    run_as = _run_as("named")
    directory = lab.server_dir(name, owner=run_as and run_as[0])
    (directory / "rpz.zone").write_text(rpz_zone(zone, policy))
    log = directory / "named.log"
    bare_zone = zone.rstrip(".")

    def configure(port: int) -> list[str]:
        conf = directory / "named.conf"
        conf.write_text(
            "options {\n"
            f'    directory "{directory}";\n'
            f'    pid-file "{directory}/named.pid";\n'
            f'    session-keyfile "{directory}/session.key";\n'
            f'    managed-keys-directory "{directory}";\n'
            f'    dump-file "{directory}/cache_dump.db";\n'
            f'    statistics-file "{directory}/named.stats";\n'
            f"    listen-on port {port} {{ {LOCALHOST}; }};\n"
            "    listen-on-v6 { none; };\n"
            "    recursion yes;\n"
            "    allow-query { 127.0.0.0/8; };\n"
            "    allow-recursion { 127.0.0.0/8; };\n"
            f"    forwarders {{ {upstream.address} port {upstream.port}; }};\n"
            "    forward only;\n"
            "    dnssec-validation no;\n"
            "    max-cache-size 16m;\n"
            f'    response-policy {{ zone "{bare_zone}"; }};\n'
            "};\n"
            "controls { };\n"
            "logging {\n"
            f'    channel main {{ file "{log}"; print-time yes; severity info; }};\n'
            "    category default { main; };\n"
            "    category rpz { main; };\n"
            "};\n"
            f'zone "{bare_zone}" {{ type primary; file "rpz.zone"; allow-query {{ none; }}; }};\n'
        )
        if checkconf is not None:
            check = subprocess.run(
                [checkconf, "-z", str(conf)], capture_output=True, text=True, check=False
            )
            if check.returncode != 0:
                raise LabError(f"named-checkconf refused {conf}:\n{check.stdout}{check.stderr}")
        user = ["-u", run_as[0]] if run_as else []
        return [named, "-f", "-4", "-n", "1", *user, "-c", str(conf)]

    endpoint = lab.start_process(
        name, directory, configure, log=log, address=LOCALHOST, start_timeout=start_timeout
    )
    # named answers before its policy zone is in force: wait for that too.
    _wait_for_line(lab, endpoint, log, f"rpz: {bare_zone}: reload done: success", start_timeout)
    return endpoint


def start_kresd(
    lab: DNSLab,
    name: str,
    upstream: Endpoint,
    rules: Mapping[str, str],
    *,
    start_timeout: float = 30.0,
) -> Endpoint:
    """Start Knot Resolver sending every query to upstream (policy.STUB), after rules: each
    name (absolute) and the names below it get its action (a Knot value, or Lua); return it.

    It listens on a new 127.0.0.x, with its files (cache, control socket) in lab's directory
    name, and runs as the user knot-resolver (its user() call) when started as root.
    Raises MissingBinaryError, or LabError with its output.
    """
    require("kresd")
    kresd = find_binary("kresd")
    assert kresd is not None
    run_as = _run_as("kresd")
    directory = lab.server_dir(name, owner=run_as and run_as[0])
    address = next_address()
    policies = []
    for qname, action in rules.items():
        _check_name(qname)
        policies.append(f"policy.add(policy.suffix({action}, policy.todnames({{'{qname}'}})))")

    def configure(port: int) -> list[str]:
        lines = [
            "net.ipv6 = false",
            f"net.listen('{address}', {port}, {{ kind = 'dns' }})",
        ]
        if run_as:
            lines.append(f"user('{run_as[0]}', '{run_as[1]}')")
        lines += [
            "cache.size = 10 * MB",
            "trust_anchors.remove('.')",
            *policies,
            f"policy.add(policy.all(policy.STUB({{'{upstream.address}@{upstream.port}'}})))",
        ]
        (directory / "kresd.conf").write_text("\n".join(lines) + "\n")
        return [
            kresd,
            "--noninteractive",
            "--config",
            str(directory / "kresd.conf"),
            str(directory),
        ]

    return lab.start_process(
        name,
        directory,
        configure,
        log=directory / "output.log",
        address=address,
        start_timeout=start_timeout,
    )


def start_pdns_recursor(
    lab: DNSLab,
    name: str,
    upstream: Endpoint,
    policy: Mapping[str, str | Sequence[str]],
    *,
    zone: str = POLICY_ZONE,
    ede: tuple[int, str] | None = None,
    more_zones: Sequence[PolicyZone] = (),
    start_timeout: float = 30.0,
) -> Endpoint:
    """Start the PowerDNS Recursor forwarding to upstream with policy as a response policy
    zone (see rpz_zone) loaded by rpzFile; ede is the Extended DNS Error (code, text) it adds
    to every answer the zone rewrites (the text may hold any character: it goes to Lua
    escaped). more_zones are loaded after it, each with its own EDE. Return it once it answers.

    It listens on a new 127.0.0.x, with its files in lab's directory name, and runs as the
    user pdns when started as root. Raises MissingBinaryError, or LabError with its output.
    """
    require("pdns_recursor")
    recursor = find_binary("pdns_recursor")
    assert recursor is not None
    run_as = _run_as("pdns_recursor")
    directory = lab.server_dir(name, owner=run_as and run_as[0])
    address = next_address()
    loads = []
    zones = [PolicyZone(zone, policy, ede), *more_zones]
    for n, each in enumerate(zones):
        path = directory / ("rpz.zone" if n == 0 else f"rpz-{n}.zone")
        path.write_text(rpz_zone(each.origin, each.policy))
        options = [f"policyName = {lua_string(each.origin.rstrip('.'))}"]
        if each.ede is not None:
            code, text = each.ede
            options += [
                f"extendedErrorCode = {int(code)}",
                f"extendedErrorExtra = {lua_string(text)}",
            ]
        loads.append(f'rpzFile("{path}", {{ {", ".join(options)} }})\n')
    (directory / "rpz.lua").write_text("".join(loads))

    def configure(port: int) -> list[str]:
        lines = [
            f"local-address={address}",
            f"local-port={port}",
            f"forward-zones-recurse=.={upstream.address}:{upstream.port}",
            "dont-query=",  # the default refuses to query 127.0.0.0/8, where the lab lives
            "allow-from=127.0.0.0/8",
            "dnssec=off",
            "security-poll-suffix=",  # no version check through the lab's world
            "threads=1",
            "daemon=no",
            "disable-syslog=yes",
            "max-cache-entries=10000",
            f"socket-dir={directory}",
            f"lua-config-file={directory / 'rpz.lua'}",
        ]
        if run_as:
            lines += [f"setuid={run_as[0]}", f"setgid={run_as[1]}"]
        (directory / "recursor.conf").write_text("\n".join(lines) + "\n")
        return [recursor, f"--config-dir={directory}"]

    return lab.start_process(
        name,
        directory,
        configure,
        log=directory / "output.log",
        address=address,
        start_timeout=start_timeout,
    )


def start_dnsmasq(
    lab: DNSLab,
    name: str,
    upstream: Endpoint,
    *,
    addresses: Mapping[str, str] | None = None,
    servers: Mapping[str, tuple[str, int]] | None = None,
    start_timeout: float = 30.0,
) -> Endpoint:
    """Start dnsmasq forwarding to upstream; return it once it answers.

    addresses maps a name (absolute; it covers the names below too) to the address dnsmasq
    answers for it itself (address=/name/0.0.0.0), or to "" for NXDOMAIN (address=/name/);
    servers maps a name to the (address, port) queries for it go to instead (server=/name/),
    such as a dead_server(). It listens on 127.0.0.1 and a port of its own, logs queries to
    dnsmasq.log in lab's directory name, and runs as the user dnsmasq when started as root.
    Raises MissingBinaryError, or LabError with its log.
    """
    require("dnsmasq")
    dnsmasq = find_binary("dnsmasq")
    assert dnsmasq is not None
    run_as = _run_as("dnsmasq")
    directory = lab.server_dir(name, owner=run_as and run_as[0])
    log = directory / "dnsmasq.log"
    rules = []
    for qname, answer in (addresses or {}).items():
        _check_name(qname)
        _check_text(answer)
        rules.append(f"address=/{qname.rstrip('.')}/{answer}")
    for qname, (server, server_port) in (servers or {}).items():
        _check_name(qname)
        rules.append(f"server=/{qname.rstrip('.')}/{server}#{server_port}")

    def configure(port: int) -> list[str]:
        lines = [
            "keep-in-foreground",
            "no-resolv",
            "no-hosts",
            "no-poll",
            "bind-interfaces",
            f"listen-address={LOCALHOST}",
            f"port={port}",
            f"pid-file={directory}/dnsmasq.pid",
            f"log-facility={log}",
            "log-queries",
            f"server={upstream.address}#{upstream.port}",
            *rules,
        ]
        if run_as:
            lines += [f"user={run_as[0]}", f"group={run_as[1]}"]
        (directory / "dnsmasq.conf").write_text("\n".join(lines) + "\n")
        return [dnsmasq, f"--conf-file={directory / 'dnsmasq.conf'}"]

    return lab.start_process(
        name, directory, configure, log=log, address=LOCALHOST, start_timeout=start_timeout
    )


def udp_only(
    upstream: Endpoint, *, tcp: TcpMode = "refuse", loss_share: float = 0.0, seed: int = 0
) -> FaultProxy:
    """Return a relay on a new 127.0.0.x that passes UDP to upstream, losing loss_share of
    the queries and of the replies (seeded), and does not serve TCP: connections are refused
    (tcp="refuse") or go unanswered (tcp="drop"). Stop it (or use it in a with block)."""
    return FaultProxy(
        (upstream.address, upstream.port),
        host=next_address(),
        seed=seed,
        udp_queries=loss(loss_share),
        udp_replies=loss(loss_share),
        tcp=tcp,
    )


def dead_server() -> FaultProxy:
    """Return a server on a new 127.0.0.x that never answers: UDP queries vanish, TCP
    connections are refused (a daemon gone on a host still up). Stop it after use."""
    nowhere = (LOCALHOST, 9)  # discard: nothing goes there, every query is dropped first
    return FaultProxy(nowhere, host=next_address(), udp_queries=loss(1.0), tcp="refuse")


# ------------------------------------------------------------------------------ helpers


def _run_as(program: str) -> tuple[str, str] | None:
    """Return the (user, group) program drops root to, or None when not running as root."""
    if os.geteuid() != 0:
        return None
    user = USERS[program]
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise LabError(f"no user {user!r} to run {program} as: {install_hint(program)}") from None
    return user, grp.getgrgid(account.pw_gid).gr_name


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise LabError(f"{name!r} is not an absolute domain name (letters, digits, -, _)")


def _check_text(text: str) -> str:
    if not _TEXT.fullmatch(text) or len(text) > 200:
        raise LabError(f"{text!r}: only printable ASCII without quotes or backslashes")
    return text


def _wait_for_line(lab: DNSLab, endpoint: Endpoint, log: Path, line: str, timeout: float) -> None:
    """Return once log holds line; stop the server and raise LabError when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if line in log.read_text(errors="replace"):
                return
        except OSError:
            pass
        time.sleep(0.02)
    lab.stop_server(endpoint)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""
    raise LabError(f"{endpoint.name}: no {line!r} in {log} within {timeout:.0f} s\n{tail}")
