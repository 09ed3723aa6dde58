"""Tests for monitor.config: defaults, every kind of error with its file, line and key."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import (
    ECONOMICAL_ABOVE,
    Config,
    Resolver,
    SkippedLine,
    WatchedName,
    load_config,
    load_config_text,
)
from monitor.errors import ConfigError
from monitor.names import CITIZEN_LAB_HEADER
from monitor.probe import TRANSPORTS
from monitor.vocabulary import Group

CFG = Path("/cfg/config.yaml")
SHIPPED = Path(__file__).resolve().parent.parent / "config.yaml"

# Line numbers matter: the error tables below count from this text.
BASE = """\
resolvers:
  national:
    - {name: nsdi-a, address: 195.208.4.1}
  control:
    - {name: google, address: 8.8.8.8, transport: tcp}
watchlist:
  - youtube.com
"""


def load(text: str, path: Path = CFG) -> Config:
    return load_config_text(text, path)


def error(text: str, path: Path = CFG) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, path)
    return str(caught.value)


def config_with(national: str, control: str = "", watchlist: str = "") -> str:
    """Return a config whose first national resolver is on line 3 (and control on line 5)."""
    control = control or "    - {name: google, address: 8.8.8.8, transport: tcp}\n"
    watchlist = watchlist or "watchlist:\n  - youtube.com\n"
    return f"resolvers:\n  national:\n{national}  control:\n{control}{watchlist}"


# -- defaults and accepted settings ----------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("path", CFG),
        ("vantage", "default"),
        ("record_types", ("A", "AAAA")),
        ("timeout", 2.0),
        ("attempts", 3),
        ("confirm", 2),
        ("min_controls", 1),
        ("canaries", ("example.com",)),
        ("bogons", True),
        ("stub_addresses", frozenset()),
        ("stub_names", frozenset()),
        ("strategy", "full"),
        ("watchlist", (WatchedName("youtube.com", "youtube.com", None),)),
    ],
)
def test_default(attribute: str, expected: object) -> None:
    assert getattr(load(BASE), attribute) == expected


@pytest.mark.parametrize(
    ("setting", "attribute", "expected"),
    [
        ("vantage: ru-msk-1", "vantage", "ru-msk-1"),
        ("record_types: [aaaa, a, TYPE99, https]", "record_types", ("AAAA", "A", "SPF", "HTTPS")),
        ("timeout: 60", "timeout", 60.0),
        ("timeout: 0.25", "timeout", 0.25),
        ("attempts: 10", "attempts", 10),
        ("confirm: 0", "confirm", 0),
        ("min_controls: 1", "min_controls", 1),
        (
            "canaries: [Example.ORG, кремль.рф.]",
            "canaries",
            ("example.org", "xn--e1ajeds9e.xn--p1ai"),
        ),
        ("bogons: false", "bogons", False),
        (
            "stub_addresses: [10.0.0.1, '2001:DB8:0::1', 10.0.0.1]",
            "stub_addresses",
            frozenset({"10.0.0.1", "2001:db8::1"}),
        ),
        (
            "stub_addresses: [10.0.34.0/24, '2001:DB8::/32', 95.213.158.62/32]",
            "stub_addresses",
            frozenset({"10.0.34.0/24", "2001:db8::/32", "95.213.158.62/32"}),
        ),
        (
            "stub_names: [Warning.ISP.example., блок.рф]",
            "stub_names",
            frozenset({"warning.isp.example", "xn--90ascm.xn--p1ai"}),
        ),
        ("strategy: economical", "strategy", "economical"),
    ],
)
def test_setting(setting: str, attribute: str, expected: object) -> None:
    assert getattr(load(setting + "\n" + BASE), attribute) == expected


def resolver(name: str, group: Group = Group.NATIONAL, **fields: Any) -> Resolver:
    values: dict[str, Any] = {
        "address": None,
        "port": 53,
        "transport": "udp",
        "mode": "recursive",
        "rate": 500.0,
        "server_name": None,
        "url": None,
        "ca_file": None,
    }
    values.update(fields)
    return Resolver(name=name, group=group, **values)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{name: a, address: 192.0.2.1}", resolver("a", address="192.0.2.1")),
        ("{name: a, address: '2001:DB8::0:53'}", resolver("a", address="2001:db8::53")),
        (
            "{name: a, address: 192.0.2.1, transport: tcp, port: 5353}",
            resolver("a", address="192.0.2.1", transport="tcp", port=5353),
        ),
        (
            "{name: a, address: 192.0.2.1, transport: dot}",
            resolver("a", address="192.0.2.1", transport="dot", port=853),
        ),
        (
            "{name: a, address: 192.0.2.1, transport: dot, server_name: DNS.Example.}",
            resolver(
                "a", address="192.0.2.1", transport="dot", port=853, server_name="dns.example"
            ),
        ),
        (
            "{name: a, transport: doh, url: 'https://dns.example/dns-query'}",
            resolver("a", transport="doh", port=443, url="https://dns.example/dns-query"),
        ),
        (
            "{name: a, transport: doh, url: 'https://dns.example:8443/q', address: 192.0.2.1}",
            resolver(
                "a",
                address="192.0.2.1",
                transport="doh",
                port=8443,
                url="https://dns.example:8443/q",
            ),
        ),
        (
            "{name: a, address: 192.0.2.1, mode: authoritative, rate: 0}",
            resolver("a", address="192.0.2.1", mode="authoritative", rate=0.0),
        ),
        (
            "{name: a-1, address: 192.0.2.1, rate: 2.5}",
            resolver("a-1", address="192.0.2.1", rate=2.5),
        ),
    ],
)
def test_resolver(entry: str, expected: Resolver) -> None:
    assert load(config_with(f"    - {entry}\n")).national == (expected,)


def test_resolver_ca_file_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    text = config_with("    - {name: a, address: 192.0.2.1, transport: dot, ca_file: ca.pem}\n")
    assert load(text, tmp_path / "config.yaml").national[0].ca_file == tmp_path / "ca.pem"


def test_resolvers_national_first_then_control_in_file_order() -> None:
    config = load(
        """\
resolvers:
  control:
    - {name: c2, address: 192.0.2.2, transport: tcp}
    - {name: c1, address: 192.0.2.1, transport: tcp}
  national:
    - {name: n2, address: 192.0.2.4}
    - {name: n1, address: 192.0.2.3}
watchlist: [example.net]
"""
    )
    assert [r.name for r in config.resolvers] == ["n2", "n1", "c2", "c1"]
    assert [r.name for r in config.national] == ["n2", "n1"]
    assert [r.name for r in config.control] == ["c2", "c1"]
    assert {r.group for r in config.control} == {"control"}


def test_watchlist_entries_and_unicode() -> None:
    config = load(
        config_with(
            "    - {name: a, address: 192.0.2.1}\n",
            watchlist="""\
watchlist:
  - YouTube.com.
  - {domain: кремль.рф, label: Kremlin}
  - {domain: xn--p1ai}
""",
        )
    )
    assert config.watchlist == (
        WatchedName("youtube.com", "youtube.com", None),
        WatchedName("xn--e1ajeds9e.xn--p1ai", "кремль.рф", "Kremlin"),
        WatchedName("xn--p1ai", "рф", None),
    )


# -- errors: file, line, key and message ------------------------------------------------

F = "/cfg/config.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The file as a whole.
        ("", f"{F}: the file holds no settings"),
        ("# only a comment\n", f"{F}: the file holds no settings"),
        ("- a\n- b\n", f"{F}:1: expected a mapping of settings at the top level, got a list"),
        (
            "timeout: [1\n" + BASE,
            f"{F}:2: invalid YAML: while parsing a flow sequence, expected ',' or ']', but got ':'",
        ),
        ("vantage: a: b\n", f"{F}:1: invalid YAML: mapping values are not allowed here"),
        (
            "vantage: a\n---\nvantage: b\n",
            f"{F}:2: invalid YAML: expected a single document in the stream, "
            "but found another document",
        ),
        (
            "vantage: \x07\n",
            f"{F}:1: invalid YAML: special characters are not allowed (character 7)",
        ),
        ("1: x\n" + BASE, f"{F}:1: a key must be a string, got an integer"),
        ("timout: 2\n" + BASE, f"{F}:1: timout: unknown key (did you mean 'timeout'?)"),
        (
            "colour: red\n" + BASE,
            f"{F}:1: colour: unknown key (known: vantage, record_types, timeout, attempts, "
            "confirm, min_controls, canaries, bogons, stub_addresses, stub_names, resolvers, "
            "watchlist, watchlist_files, strategy)",
        ),
        ("timeout: 1\n" + BASE + "timeout: 2\n", f"{F}:9: timeout: duplicate key"),
        # Scalar settings.
        (
            "vantage: Default\n" + BASE,
            f"{F}:1: vantage: must be lowercase letters, digits and '-', got 'Default'",
        ),
        ("vantage:\n" + BASE, f"{F}:1: vantage: expected a string, got nothing"),
        ("vantage: ''\n" + BASE, f"{F}:1: vantage: must not be empty"),
        ("vantage: 2026-01-01\n" + BASE, f"{F}:1: vantage: expected a string, got a date"),
        ("vantage: 2001-13-45\n" + BASE, f"{F}:1: vantage: expected a string, got a date"),
        ("record_types: A\n" + BASE, f"{F}:1: record_types: expected a list, got a string"),
        ("record_types: []\n" + BASE, f"{F}:1: record_types: must not be empty"),
        ("record_types: [A, FOO]\n" + BASE, f"{F}:1: record_types[1]: unknown record type 'FOO'"),
        (
            "record_types: [A, ANY]\n" + BASE,
            f"{F}:1: record_types[1]: 'ANY' is not a record type a name can hold",
        ),
        (
            "record_types:\n  - a\n  - A\n" + BASE,
            f"{F}:3: record_types[1]: A is listed twice (first on line 2)",
        ),
        (
            "record_types: [1]\n" + BASE,
            f"{F}:1: record_types[0]: expected a string, got an integer",
        ),
        ("timeout: 0\n" + BASE, f"{F}:1: timeout: must be > 0 and <= 60 seconds, got 0"),
        ("timeout: 60.5\n" + BASE, f"{F}:1: timeout: must be > 0 and <= 60 seconds, got 60.5"),
        ("timeout: .nan\n" + BASE, f"{F}:1: timeout: must be a finite number, got .nan"),
        ("timeout: two\n" + BASE, f"{F}:1: timeout: expected a number, got a string"),
        ("timeout: '2'\n" + BASE, f"{F}:1: timeout: expected a number, got a string"),
        ("timeout: true\n" + BASE, f"{F}:1: timeout: expected a number, got true/false"),
        (
            "timeout: !!int x\n" + BASE,
            f"{F}:1: timeout: expected a number: invalid literal for int() with base 10: 'x'",
        ),
        ("attempts: 0\n" + BASE, f"{F}:1: attempts: must be between 1 and 10, got 0"),
        ("attempts: 11\n" + BASE, f"{F}:1: attempts: must be between 1 and 10, got 11"),
        ("attempts: 2.5\n" + BASE, f"{F}:1: attempts: expected an integer, got a number"),
        ("attempts: yes\n" + BASE, f"{F}:1: attempts: expected an integer, got true/false"),
        ("confirm: -1\n" + BASE, f"{F}:1: confirm: must be between 0 and 10, got -1"),
        ("confirm: 11\n" + BASE, f"{F}:1: confirm: must be between 0 and 10, got 11"),
        ("min_controls: 0\n" + BASE, f"{F}:1: min_controls: must be at least 1, got 0"),
        (
            "min_controls: 2\n" + BASE,
            f"{F}:1: min_controls: must be at most 1, the number of control resolvers, got 2",
        ),
        ("canaries: []\n" + BASE, f"{F}:1: canaries: must not be empty"),
        (
            "canaries: [example.com, 'bad name']\n" + BASE,
            f"{F}:1: canaries[1]: 'bad name' is not a domain name: contains whitespace",
        ),
        (
            "canaries: [Example.com, example.com.]\n" + BASE,
            f"{F}:1: canaries[1]: example.com is listed twice (first on line 1)",
        ),
        ("bogons: 1\n" + BASE, f"{F}:1: bogons: expected true or false, got an integer"),
        ("bogons: 'true'\n" + BASE, f"{F}:1: bogons: expected true or false, got a string"),
        (
            "stub_addresses: 10.0.0.1\n" + BASE,
            f"{F}:1: stub_addresses: expected a list, got a string",
        ),
        (
            "stub_addresses:\n  - 10.0.0.1\n  - 300.1.1.1\n" + BASE,
            f"{F}:3: stub_addresses[1]: '300.1.1.1' is not an IPv4 or IPv6 address",
        ),
        (
            "stub_addresses: [10.0.34.1/24]\n" + BASE,
            f"{F}:1: stub_addresses[0]: '10.0.34.1/24' is not an address or a CIDR range: "
            "10.0.34.1/24 has host bits set",
        ),
        (
            "stub_addresses: [10.0.0.0/33]\n" + BASE,
            f"{F}:1: stub_addresses[0]: '10.0.0.0/33' is not an address or a CIDR range: "
            "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        ),
        (
            "stub_names: [warning.isp.example, 'bad name']\n" + BASE,
            f"{F}:1: stub_names[1]: 'bad name' is not a domain name: contains whitespace",
        ),
        (
            "stub_names: warning.isp.example\n" + BASE,
            f"{F}:1: stub_names: expected a list, got a string",
        ),
        (
            "strategy: cheap\n" + BASE,
            f"{F}:1: strategy: must be one of full, economical, got 'cheap'",
        ),
        # Resolvers.
        (
            "watchlist: [a.com]\n",
            f"{F}:1: resolvers: missing: at least one national and one control resolver",
        ),
        (
            "resolvers: []\nwatchlist: [a.com]\n",
            f"{F}:1: resolvers: expected a mapping, got a list",
        ),
        (
            "resolvers:\n  nationals: []\n",
            f"{F}:2: resolvers.nationals: unknown key (did you mean 'national'?)",
        ),
        (
            "resolvers:\n  national: []\n  control: []\nwatchlist: [a.com]\n",
            f"{F}:2: resolvers.national: at least one national resolver is needed",
        ),
        (
            "resolvers:\n  national:\n    - {name: a, address: 192.0.2.1}\nwatchlist: [a.com]\n",
            f"{F}:2: resolvers.control: missing: at least one control resolver is needed",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1}\n", control="    []\n"),
            f"{F}:5: resolvers.control: at least one control resolver is needed",
        ),
        (
            config_with("    - nsdi-a\n"),
            f"{F}:3: resolvers.national[0]: expected a mapping, got a string",
        ),
        (
            config_with("    - {name: nsdi-a, adress: 195.208.4.1}\n"),
            f"{F}:3: resolvers.national[0].adress: unknown key (did you mean 'address'?)",
        ),
        (
            config_with("    - {address: 195.208.4.1}\n"),
            f"{F}:3: resolvers.national[0].name: missing: every resolver needs a name",
        ),
        (
            config_with("    - {name: NSDI, address: 195.208.4.1}\n"),
            f"{F}:3: resolvers.national[0].name: "
            "must be lowercase letters, digits and '-', got 'NSDI'",
        ),
        (
            config_with("    - {name: today, address: 195.208.4.1}\n"),
            f"{F}:3: resolvers.national[0].name: 'today' is reserved in snapshot files",
        ),
        (
            config_with("    - {name: google, address: 195.208.4.1}\n"),
            f"{F}:5: resolvers.control[0].name: "
            "'google' is already the name of the resolver on line 3",
        ),
        (
            config_with("    - {name: a, address: 195.208.4.999}\n"),
            f"{F}:3: resolvers.national[0].address: '195.208.4.999' is not an IPv4 or IPv6 address",
        ),
        (
            config_with("    - {name: a}\n"),
            f"{F}:3: resolvers.national[0].address: missing: a udp resolver needs an address",
        ),
        (
            config_with("    - {name: a, transport: dot}\n"),
            f"{F}:3: resolvers.national[0].address: missing: a dot resolver needs an address",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, port: 0}\n"),
            f"{F}:3: resolvers.national[0].port: must be between 1 and 65535, got 0",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, port: 65536}\n"),
            f"{F}:3: resolvers.national[0].port: must be between 1 and 65535, got 65536",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, port: '53'}\n"),
            f"{F}:3: resolvers.national[0].port: expected an integer, got a string",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, transport: http}\n"),
            f"{F}:3: resolvers.national[0].transport: "
            "must be one of udp, tcp, dot, doh, got 'http'",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1, transport: tcp, server_name: x.org}\n"
            ),
            f"{F}:3: resolvers.national[0].server_name: only for dot and doh, not tcp",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, ca_file: ca.pem}\n"),
            f"{F}:3: resolvers.national[0].ca_file: only for dot and doh, not udp",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1, transport: dot, server_name: 'a b'}\n"
            ),
            f"{F}:3: resolvers.national[0].server_name: "
            "'a b' is not a domain name: contains whitespace",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, transport: dot, ca_file: none.pem}\n"),
            f"{F}:3: resolvers.national[0].ca_file: no such file: /cfg/none.pem",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, transport: dot, url: 'https://x/'}\n"),
            f"{F}:3: resolvers.national[0].url: only for doh, not dot",
        ),
        (
            config_with("    - {name: a, transport: doh, address: 192.0.2.1}\n"),
            f"{F}:3: resolvers.national[0].url: missing: a doh resolver needs a url",
        ),
        (
            config_with("    - {name: a, transport: doh, url: 'http://dns.example/q'}\n"),
            f"{F}:3: resolvers.national[0].url: must be an https:// URL, got 'http://dns.example/q'",
        ),
        (
            config_with("    - {name: a, transport: doh, url: 'https:///q'}\n"),
            f"{F}:3: resolvers.national[0].url: must be an https:// URL, got 'https:///q'",
        ),
        (
            config_with("    - {name: a, transport: doh, url: 'https://dns.example:99999/q'}\n"),
            f"{F}:3: resolvers.national[0].url: 'https://dns.example:99999/q' is not a URL: "
            "Port out of range 0-65535",
        ),
        (
            config_with(
                "    - {name: a, transport: doh, url: 'https://x.example:8443/', port: 443}\n"
            ),
            f"{F}:3: resolvers.national[0].port: 443 differs from the url's port 8443",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, mode: iterative}\n"),
            f"{F}:3: resolvers.national[0].mode: must be one of recursive, authoritative, "
            "got 'iterative'",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, rate: -1}\n"),
            f"{F}:3: resolvers.national[0].rate: must be >= 0 (0 means no limit), got -1",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, rate: .inf}\n"),
            f"{F}:3: resolvers.national[0].rate: must be a finite number, got .inf",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1, rate: false}\n"),
            f"{F}:3: resolvers.national[0].rate: expected a number, got true/false",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                control="    - {name: b, address: 192.0.2.2}\n"
                "    - name: c\n      address: 192.0.2.3\n      port: x\n",
            ),
            f"{F}:8: resolvers.control[1].port: expected an integer, got a string",
        ),
        # Watchlist.
        (
            config_with("    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist: []\n"),
            f"{F}:6: watchlist: no names to watch (watchlist and watchlist_files are empty)",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1}\n", watchlist="vantage: x\n"),
            f"{F}:1: watchlist: no names to watch (watchlist and watchlist_files are empty)",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist: a.com\n"),
            f"{F}:6: watchlist: expected a list, got a string",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                watchlist="watchlist:\n  - a.com\n  - b.com\n  - {domain: A.com., label: A}\n",
            ),
            f"{F}:9: watchlist[2]: a.com is already listed on line 7",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                watchlist="watchlist:\n  - кремль.рф\n  - xn--e1ajeds9e.xn--p1ai\n",
            ),
            f"{F}:8: watchlist[1]: кремль.рф is already listed on line 7",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                watchlist="watchlist:\n  - a.com\n  - http://b.com/\n",
            ),
            f"{F}:8: watchlist[1]: 'http://b.com/' is not a domain name: is a URL, not a name",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist:\n  - 192.0.2.7\n"
            ),
            f"{F}:7: watchlist[0]: '192.0.2.7' is not a domain name: is an IP address, not a name",
        ),
        (
            config_with("    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist:\n  - 42\n"),
            f"{F}:7: watchlist[0]: expected a string, got an integer",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist:\n  - [a.com]\n"
            ),
            f"{F}:7: watchlist[0]: expected a name or {{domain, label}}, got a list",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist:\n  - {label: A}\n"
            ),
            f"{F}:7: watchlist[0].domain: missing: the entry needs a domain",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                watchlist="watchlist:\n  - {domain: a.com, note: A}\n",
            ),
            f"{F}:7: watchlist[0].note: unknown key (known: domain, label)",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                watchlist="watchlist:\n  - {domain: a.com, label: 7}\n",
            ),
            f"{F}:7: watchlist[0].label: expected a string, got an integer",
        ),
        (
            config_with(
                "    - {name: a, address: 192.0.2.1}\n",
                watchlist="watchlist:\n  - {domain: '-a.com'}\n",
            ),
            f"{F}:7: watchlist[0].domain: '-a.com' is not a domain name: "
            "label '-a' starts or ends with a hyphen",
        ),
        (
            "watchlist_files: lists/ru.txt\n" + BASE,
            f"{F}:1: watchlist_files: expected a list, got a string",
        ),
        (
            "watchlist_files: [lists/ru.txt]\n" + BASE,
            f"{F}:1: watchlist_files[0]: cannot read /cfg/lists/ru.txt: No such file or directory",
        ),
    ],
)
def test_error(text: str, message: str) -> None:
    assert error(text) == message


def test_error_attributes() -> None:
    with pytest.raises(ConfigError) as caught:
        load(config_with("    - {name: a, address: 192.0.2.1, port: 0}\n"))
    assert (caught.value.file, caught.value.line, caught.value.key) == (
        F,
        3,
        "resolvers.national[0].port",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"timeout: 2\n\xff\n", "{path}:2: not UTF-8 text"),
        (b"\xef\xbb\xbftimeout: 0\n", "{path}:1: timeout: must be > 0 and <= 60 seconds, got 0"),
    ],
)
def test_load_config_file_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content + BASE.encode())
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == message.format(path=path)


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: cannot read the file: No such file or directory"


# -- watchlist files ---------------------------------------------------------------------

PLAIN_LIST = """\
# Russian news sites
meduza.io
https://www.dw.com/ru/   # a URL stands for its host

YouTube.com
meduza.io
кремль.рф
"""

CSV_LIST = """\
url,category_code,category_description,date_added,source,notes
https://meduza.io/,NEWS,News Media,2017-01-01,citizenlab,
https://meduza.io/news,NEWS,News Media,2017-01-01,citizenlab,
http://8.8.8.8/,ANON,Anonymization,2017-01-01,,
https://www.rferl.org/,NEWS,News Media,2014-04-15,citizenlab,"notes, with a comma"
"""


def test_watchlist_files_merge(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "plain.txt").write_text(PLAIN_LIST, encoding="utf-8")
    (tmp_path / "lists" / "ru.csv").write_text(CSV_LIST, encoding="utf-8")
    text = config_with(
        "    - {name: a, address: 192.0.2.1}\n",
        watchlist="""\
watchlist:
  - {domain: youtube.com, label: YouTube}
  - bbc.com
watchlist_files: [lists/plain.txt, lists/ru.csv]
""",
    )
    config = load(text, tmp_path / "config.yaml")
    assert [(w.domain, w.display, w.label) for w in config.watchlist] == [
        # Inline entries first, and an inline entry keeps its label over a file's.
        ("youtube.com", "youtube.com", "YouTube"),
        ("bbc.com", "bbc.com", None),
        ("meduza.io", "meduza.io", None),
        ("www.dw.com", "www.dw.com", None),
        ("xn--e1ajeds9e.xn--p1ai", "кремль.рф", None),
        ("www.rferl.org", "www.rferl.org", None),
    ]
    # What added no name, file by file in line order, each repeat with where it came first.
    plain, csv = str(tmp_path / "lists" / "plain.txt"), str(tmp_path / "lists" / "ru.csv")
    first_meduza = f"{plain}:2"
    assert config.skipped == (
        SkippedLine(plain, 5, "YouTube.com", "repeat", "youtube.com", f"{tmp_path}/config.yaml:7"),
        SkippedLine(plain, 6, "meduza.io", "repeat", "meduza.io", first_meduza),
        SkippedLine(csv, 2, "https://meduza.io/", "repeat", "meduza.io", first_meduza),
        SkippedLine(csv, 3, "https://meduza.io/news", "repeat", "meduza.io", first_meduza),
        SkippedLine(csv, 4, "http://8.8.8.8/", "address"),
    )


def test_ip_addresses_and_repeats_follow_one_rule_in_both_formats(tmp_path: Path) -> None:
    # The same hosts, once a line of plain text and once a Citizen Lab CSV row.
    hosts = ["youtube.com", "8.8.8.8", "www.bbc.com", "[2001:4860:4860::8888]", "youtube.com"]
    plain = "".join(f"https://{h}/\n" for h in hosts)
    csv = CITIZEN_LAB_HEADER + "\n" + "".join(f"https://{h}/,NEWS,,,,\n" for h in hosts)
    results = []
    for name, content in (("plain.txt", plain), ("list.csv", csv)):
        (tmp_path / name).write_text(content, encoding="utf-8")
        text = config_with(
            "    - {name: a, address: 192.0.2.1}\n", watchlist=f"watchlist_files: [{name}]\n"
        )
        config = load(text, tmp_path / "config.yaml")
        offset = 1 if name == "list.csv" else 0  # the header line
        file = str(tmp_path / name)
        assert [w.domain for w in config.watchlist] == ["youtube.com", "www.bbc.com"]
        assert [(s.line - offset, s.reason, s.first) for s in config.skipped] == [
            (2, "address", None),
            (4, "address", None),
            (5, "repeat", f"{file}:{1 + offset}"),
        ]
        results.append([(s.text, s.display) for s in config.skipped])
    assert results[0] == results[1]


def test_a_file_of_addresses_alone_has_no_names_to_watch(tmp_path: Path) -> None:
    (tmp_path / "ips.txt").write_text("192.0.2.1\nhttp://[2001:db8::1]/\n", encoding="utf-8")
    text = config_with(
        "    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist_files: [ips.txt]\n"
    )
    assert error(text, tmp_path / "config.yaml") == (
        f"{tmp_path}/config.yaml:6: watchlist: "
        "no names to watch (watchlist and watchlist_files are empty)"
    )


def test_watchlist_files_alone_are_enough(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("example.org\n", encoding="utf-8")
    text = config_with(
        "    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist_files: [plain.txt]\n"
    )
    config = load(text, tmp_path / "config.yaml")
    assert [w.domain for w in config.watchlist] == ["example.org"]


@pytest.mark.parametrize(
    ("names", "setting", "expected"),
    [
        (ECONOMICAL_ABOVE, "", "full"),
        (ECONOMICAL_ABOVE + 1, "", "economical"),
        (ECONOMICAL_ABOVE + 1, "strategy: full\n", "full"),
        (3, "strategy: economical\n", "economical"),
    ],
)
def test_strategy_defaults_to_economical_above_ten_thousand_names(
    tmp_path: Path, names: int, setting: str, expected: str
) -> None:
    (tmp_path / "list.txt").write_text("".join(f"n{i}.example\n" for i in range(names)))
    text = config_with(
        "    - {name: a, address: 192.0.2.1}\n",
        watchlist=setting + "watchlist_files: [list.txt]\n",
    )
    config = load(text, tmp_path / "config.yaml")
    assert (len(config.watchlist), config.strategy) == (names, expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "# nothing here\n",
            "{config}:6: watchlist: no names to watch (watchlist and watchlist_files are empty)",
        ),
        (
            "a.com\n\nbad_name!.com\n",
            "{list}:3: watchlist_files[1]: 'bad_name!.com' is not a domain name: "
            "invalid character '!' in label 'bad_name!'",
        ),
        ("a.com\nhttp:///x\n", "{list}:2: watchlist_files[1]: URL has no host"),
        (
            "url,category_code,category_description,date_added,source,notes\n,NEWS,,,,\n",
            "{list}:2: watchlist_files[1]: empty url column",
        ),
        (b"a.com\n\xc3\n", "{list}:2: watchlist_files[1]: not UTF-8 text"),
    ],
)
def test_watchlist_file_errors(tmp_path: Path, content: str | bytes, message: str) -> None:
    (tmp_path / "ok.txt").write_text("# fine\n", encoding="utf-8")
    listed = tmp_path / "bad.txt"
    if isinstance(content, bytes):
        listed.write_bytes(content)
    else:
        listed.write_text(content, encoding="utf-8")
    config = tmp_path / "config.yaml"
    text = config_with(
        "    - {name: a, address: 192.0.2.1}\n", watchlist="watchlist_files: [ok.txt, bad.txt]\n"
    )
    assert error(text, config) == message.format(config=config, list=listed)


# -- the shipped config.yaml -----------------------------------------------------------

NA_SVYAZI = {
    "YouTube": {"youtube.com"},
    "WhatsApp Web": {"web.whatsapp.com", "whatsapp.com"},
    "Facebook": {"facebook.com"},
    "Facebook Messenger": {"messenger.com"},
    "Instagram": {"instagram.com"},
    "Windscribe": {"windscribe.com"},
    "APKMirror": {"apkmirror.com"},
    "Tor": {"torproject.org"},
    "BBC": {"bbc.com", "bbc.co.uk"},
    "Current Time": {"currenttime.tv"},
    "Deutsche Welle": {"dw.com"},
    "RFE/RL": {"rferl.org"},
    "The Moscow Times": {"themoscowtimes.com"},
}


def test_shipped_config_has_the_13_na_svyazi_resources() -> None:
    config = load_config(SHIPPED)
    labels: dict[str, set[str]] = {}
    for watched in config.watchlist:
        if watched.label in NA_SVYAZI:
            labels.setdefault(watched.label, set()).add(watched.domain)
    assert labels == NA_SVYAZI
    assert len(NA_SVYAZI) == 13


def test_shipped_config_resolvers_and_controls() -> None:
    config = load_config(SHIPPED)
    assert [(r.name, r.address, r.transport, r.port) for r in config.national] == [
        ("nsdi-a", "195.208.4.1", "udp", 53),
        ("nsdi-b", "195.208.5.1", "udp", 53),
    ]
    assert [(r.name, r.address, r.transport, r.port, r.rate) for r in config.control] == [
        ("google", "8.8.8.8", "tcp", 53, 50.0),
        ("cloudflare", "1.1.1.1", "doh", 443, 50.0),
        ("quad9", "9.9.9.10", "tcp", 53, 50.0),
    ]
    assert config.control[1].url == "https://cloudflare-dns.com/dns-query"
    assert config.canaries == ("example.com", "gosuslugi.ru")
    assert config.vantage == "default"


def test_shipped_config_watches_names_that_should_stay() -> None:
    domains = {w.domain: w.display for w in load_config(SHIPPED).watchlist}
    for name in ("yandex.ru", "vk.com", "wikipedia.org", "google.com", "mail.ru", "gosuslugi.ru"):
        assert domains[name] == name
    assert domains["xn--e1ajeds9e.xn--p1ai"] == "кремль.рф"


# -- property: any input gives a Config or a ConfigError ---------------------------------

TOKENS = [
    *":-[]{},#&*!|>'\"%@` \n\t.0123456789abcxyz\\",
    "\n  ",
    "\n    - ",
    ": ",
    "resolvers",
    "national",
    "control",
    "name",
    "address",
    "transport",
    "doh",
    "dot",
    "url",
    "watchlist",
    "watchlist_files",
    "domain",
    "timeout",
    "record_types",
    "canaries",
    "192.0.2.1",
    "кремль.рф",
    "xn--",
    "!!int",
    "!!binary",
    "&a",
    "*a",
    "<<",
    "~",
    ".inf",
    "2026-13-45",
]

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["udp", "doh", "https://x.example/q", "192.0.2.1", "a.com", "A", "."]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "vantage",
        "record_types",
        "timeout",
        "attempts",
        "confirm",
        "min_controls",
        "canaries",
        "bogons",
        "stub_addresses",
        "resolvers",
        "watchlist",
        "watchlist_files",
        "strategy",
        "x",
    ]
)


def outcome(text: str) -> Config | ConfigError:
    try:
        return load_config_text(text, CFG)
    except ConfigError as e:
        return e


def check_error(error: ConfigError, text: str) -> None:
    """A ConfigError opens with the file, then a line of the text (when it names one), and
    says why on that one line."""
    assert error.file == str(CFG)
    assert error.line is None or 1 <= error.line <= text.count("\n") + 1, (error.line, text)
    where = str(CFG) if error.line is None else f"{CFG}:{error.line}"
    assert str(error).startswith(f"{where}: "), str(error)
    assert error.detail.strip() and "\n" not in str(error), str(error)


def check_config(config: Config, given: dict[str, Any]) -> None:
    """A Config holds what the settings it was read from say, and the defaults for the rest."""
    assert config.path == CFG
    assert config.vantage == given.get("vantage", "default")
    for key, default in (("timeout", 2.0), ("attempts", 3), ("confirm", 2), ("bogons", True)):
        assert getattr(config, key) == given.get(key, default), key
    assert config.min_controls == given.get("min_controls", 1) <= len(config.control)
    assert len(config.record_types) == len(given.get("record_types", ["A", "AAAA"]))
    assert len(config.canaries) == len(given.get("canaries", ["example.com"]))
    assert config.stub_addresses == {
        str(ipaddress.ip_address(a)) for a in given.get("stub_addresses", [])
    }
    for group, resolvers in (("national", config.national), ("control", config.control)):
        listed = given["resolvers"][group]
        assert [r.name for r in resolvers] == [r["name"] for r in listed]
        for resolver, entry in zip(resolvers, listed, strict=True):
            assert resolver.transport == entry.get("transport", "udp")
            assert resolver.mode == entry.get("mode", "recursive")
            assert resolver.rate == entry.get("rate", 500)
            assert resolver.url == entry.get("url")
            if "address" in entry:
                assert resolver.address == str(ipaddress.ip_address(entry["address"]))
            if "port" in entry:
                assert resolver.port == entry["port"]
            elif "url" not in entry:
                assert resolver.port == TRANSPORTS[resolver.transport].default_port
    if not given.get("watchlist_files"):
        watched = given.get("watchlist") or []
        assert len(config.watchlist) == len(watched)
        for name, item in zip(config.watchlist, watched, strict=True):
            assert name.label == (item.get("label") if isinstance(item, dict) else None)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", BASE]), st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_yamlish_text_gives_config_or_config_error(start: str, tokens: str) -> None:
    """Token soup alone, or after a valid config."""
    text = start + tokens
    result = outcome(text)
    if isinstance(result, ConfigError):
        check_error(result, text)
    else:
        check_config(result, yaml.safe_load(text))


RESOLVER_KEYS = st.sampled_from(
    ["name", "address", "port", "transport", "server_name", "ca_file", "mode", "rate", "url"]
)


SOME_VALUE = st.sampled_from(
    ["udp", "tcp", "dot", "doh", "https://x.example/q", "192.0.2.9", "x", "recursive", 53, 0.5]
)


# Values a setting could hold, so that some changes keep the config valid.
PLAUSIBLE = st.integers(0, 12) | st.floats(0, 70) | st.booleans() | st.sampled_from(["full", "x"])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(KEYS, PLAUSIBLE | VALUES, max_size=3),
    st.none() | st.dictionaries(RESOLVER_KEYS, SOME_VALUE | VALUES, max_size=9),
)
def test_random_settings_over_a_valid_base_give_config_or_config_error(
    changes: dict[str, Any], extra_resolver: dict[str, Any] | None
) -> None:
    settings_ = yaml.safe_load(BASE)
    if extra_resolver is not None:
        settings_["resolvers"]["control"].append(extra_resolver)
    settings_.update(changes)
    text = yaml.safe_dump(settings_, allow_unicode=True)
    result = outcome(text)
    if isinstance(result, Config):
        check_config(result, yaml.safe_load(text))  # what the file says (a dump can lose a NEL)
        return
    check_error(result, text)
    # The key named is one of the settings, and the line is within that setting's lines
    # (safe_dump writes each top-level key at the start of a line, in sorted order).
    assert result.key is not None and result.line is not None, str(result)
    top = re.split(r"[.\[]", result.key)[0]
    assert top in settings_, str(result)
    starts = [i + 1 for i, ln in enumerate(text.splitlines()) if re.match(r"[a-z_]+:", ln)]
    first = starts[sorted(settings_).index(top)]
    following = [n for n in starts if n > first]
    assert first <= result.line < (following[0] if following else text.count("\n") + 2), (
        str(result),
        text,
    )


WATCHED = ["youtube.com", "bbc.com", "кремль.рф", "xn--80ak6aa92e.com", "dw.com", "a.example"]


@st.composite
def resolver_entry(draw: st.DrawFn, name: str) -> dict[str, Any]:
    transport = draw(st.sampled_from(["udp", "tcp", "dot", "doh", None]))
    entry: dict[str, Any] = {"name": name}
    if transport is not None:
        entry["transport"] = transport
    if transport == "doh":
        entry["url"] = draw(st.sampled_from(["https://x.example/q", "https://x.example:8443/q"]))
    if transport != "doh" or draw(st.booleans()):
        entry["address"] = draw(st.sampled_from(["192.0.2.9", "2001:DB8::9", "127.0.0.1"]))
    if "url" not in entry and draw(st.booleans()):
        entry["port"] = draw(st.integers(1, 65535))
    if draw(st.booleans()):
        entry["mode"] = draw(st.sampled_from(["recursive", "authoritative"]))
    if draw(st.booleans()):
        entry["rate"] = draw(st.integers(0, 2000) | st.floats(0, 2000))
    return entry


@st.composite
def valid_settings(draw: st.DrawFn) -> dict[str, Any]:
    national = [draw(resolver_entry(f"nat-{i}")) for i in range(draw(st.integers(1, 3)))]
    control = [draw(resolver_entry(f"ctl-{i}")) for i in range(draw(st.integers(1, 3)))]
    names = draw(st.lists(st.sampled_from(WATCHED), min_size=1, unique=True))
    watchlist = [
        {"domain": n, "label": draw(st.text(min_size=1, max_size=8).filter(str.strip))}
        if draw(st.booleans())
        else n
        for n in names
    ]
    optional = {
        "vantage": st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
        "timeout": st.integers(1, 60) | st.floats(0.001, 60),
        "attempts": st.integers(1, 10),
        "confirm": st.integers(0, 10),
        "min_controls": st.integers(1, len(control)),
        "bogons": st.booleans(),
        "record_types": st.lists(
            st.sampled_from(["A", "AAAA", "txt", "MX", "NS"]), min_size=1, unique_by=str.upper
        ),
        "canaries": st.lists(st.sampled_from(WATCHED), min_size=1, unique=True),
        "stub_addresses": st.lists(st.sampled_from(["192.0.2.1", "2001:db8::1", "2001:DB8:0::1"])),
        "strategy": st.sampled_from(["full", "economical"]),
    }
    chosen = draw(st.fixed_dictionaries({}, optional=optional))
    return {
        **chosen,
        "resolvers": {"national": national, "control": control},
        "watchlist": watchlist,
    }


@settings(max_examples=300, deadline=None)
@given(valid_settings())
def test_valid_settings_give_the_config_they_say(given_settings: dict[str, Any]) -> None:
    text = yaml.safe_dump(given_settings, allow_unicode=True)
    config = load_config_text(text, CFG)
    check_config(config, yaml.safe_load(text))  # what the file says (a dump can lose a NEL)
    assert config.strategy == given_settings.get("strategy", "full")
