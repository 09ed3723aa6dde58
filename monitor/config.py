"""The configuration: read config.yaml, check every key, and return a frozen Config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import dns.exception
import dns.rdatatype
import yaml

from monitor.errors import ConfigError
from monitor.names import (
    ListedName,
    WatchlistFile,
    WatchlistFileError,
    read_watchlist_file,
    to_alabel,
    to_display,
)
from monitor.probe.transport import TRANSPORTS
from monitor.snapshot import RESERVED_KEYS
from monitor.vocabulary import Group
from monitor.yamlread import NodeReader

Mode = Literal["recursive", "authoritative"]
Strategy = Literal["full", "economical"]

MODES: tuple[Mode, ...] = ("recursive", "authoritative")
GROUPS: tuple[Group, ...] = tuple(Group)
STRATEGIES: tuple[Strategy, ...] = ("full", "economical")
# Without a `strategy`, a watchlist of more names than this is economical: asking the public
# controls about every name of a top-site list, at their polite rates, would take all night.
ECONOMICAL_ABOVE = 10_000
DEFAULT_RATE = 500.0
# A snapshot line maps resolver names and its own keys side by side, so those cannot be names.
RESERVED_NAMES = frozenset(RESERVED_KEYS)

_TOP_KEYS = (
    "vantage",
    "record_types",
    "timeout",
    "attempts",
    "confirm",
    "min_controls",
    "canaries",
    "bogons",
    "stub_addresses",
    "stub_names",
    "resolvers",
    "watchlist",
    "watchlist_files",
    "strategy",
)
_RESOLVER_KEYS = (
    "name",
    "address",
    "port",
    "transport",
    "server_name",
    "ca_file",
    "mode",
    "rate",
    "url",
)
# The transports the TLS keys and the url key are for, as the messages name them ("dot and doh").
_TLS_TRANSPORTS = " and ".join(t.name for t in TRANSPORTS.values() if t.tls)
_URL_TRANSPORTS = " and ".join(t.name for t in TRANSPORTS.values() if t.by_url)


@dataclass(frozen=True)
class Resolver:
    """One resolver to query, national or control.

    ``transport`` is a name in ``probe.TRANSPORTS``; ``address`` is None only for a resolver
    given by its url alone (doh); ``rate`` is in queries a second, 0 meaning no limit;
    ``server_name`` is the TLS name to verify (without it a dot resolver's certificate is
    verified against its address).
    """

    name: str
    group: Group
    address: str | None
    port: int
    transport: str
    mode: Mode
    rate: float
    server_name: str | None
    url: str | None
    ca_file: Path | None


@dataclass(frozen=True, slots=True)
class WatchedName:
    """A domain on the watchlist: its A-label, its Unicode form and an optional label."""

    domain: str
    display: str
    label: str | None


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A line of a watchlist file that adds no name to the watchlist.

    ``reason`` is "address" for a host that is an IP address (a watchlist is for names) or
    "repeat" for a name listed before, at ``first`` ("FILE:LINE"); ``text`` is the line as
    written (a URL or a name) and ``display`` the name it stands for (None for an address).
    """

    file: str
    line: int
    text: str
    reason: Literal["address", "repeat"]
    display: str | None = None
    first: str | None = None


@dataclass(frozen=True)
class Config:
    """A checked configuration; every default is filled in.

    ``skipped`` lists, in file order, the lines of the watchlist files that added no name:
    IP addresses and repeats.
    """

    path: Path
    vantage: str
    record_types: tuple[str, ...]
    timeout: float
    attempts: int
    confirm: int
    min_controls: int
    canaries: tuple[str, ...]
    bogons: bool
    stub_addresses: frozenset[str]  # addresses and CIDR ranges
    resolvers: tuple[Resolver, ...]
    watchlist: tuple[WatchedName, ...]
    strategy: Strategy = "full"
    skipped: tuple[SkippedLine, ...] = ()
    stub_names: frozenset[str] = frozenset()  # walled-garden host names (A-labels)

    @property
    def national(self) -> tuple[Resolver, ...]:
        """The national resolvers, in file order."""
        return tuple(r for r in self.resolvers if r.group == Group.NATIONAL)

    @property
    def control(self) -> tuple[Resolver, ...]:
        """The control resolvers, in file order."""
        return tuple(r for r in self.resolvers if r.group == Group.CONTROL)


def watched_name(text: str, label: str | None = None) -> WatchedName:
    """Return the WatchedName for a name typed by a user (Unicode or A-label).

    Raises ValueError with a short reason when *text* is not a domain name.
    """
    domain = to_alabel(text)
    return WatchedName(domain=domain, display=to_display(domain), label=label)


def load_config(path: Path) -> Config:
    """Return the checked configuration read from *path*.

    Raises ConfigError, naming the file, the line and the key, when the file cannot be read,
    is not YAML, or breaks a rule of config.yaml (see DESIGN.md).
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror or e}", file=str(path)) from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            "not UTF-8 text", file=str(path), line=data.count(b"\n", 0, e.start) + 1
        ) from e
    return load_config_text(text, path)


def load_config_text(text: str, path: Path) -> Config:
    """Return the checked configuration parsed from *text*, as if read from *path*.

    Files the configuration names (watchlist files, CA files) are looked up relative to
    ``path.parent``.  Raises ConfigError as `load_config` does.
    """
    file = str(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = ", ".join(part for part in (e.context, e.problem) if part)
        raise ConfigError(
            f"invalid YAML: {reason}", file=file, line=mark.line + 1 if mark else None
        ) from e
    except yaml.reader.ReaderError as e:
        raise ConfigError(
            f"invalid YAML: {e.reason} (character {e.character!r})",
            file=file,
            line=text.count("\n", 0, e.position) + 1,
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", file=file) from e
    except RecursionError as e:
        raise ConfigError("invalid YAML: nested too deeply", file=file) from e
    if root is None:
        raise ConfigError("the file holds no settings", file=file)
    return _Reader(path).config(root)


class _Reader(NodeReader):
    """Walks config.yaml's node tree so each error can name the line of the node at fault."""

    # -- the file ----------------------------------------------------------------------

    def config(self, root: yaml.Node) -> Config:
        top = self.mapping(root, "", _TOP_KEYS, what="a mapping of settings at the top level")
        vantage = self.slug(top["vantage"], "vantage") if "vantage" in top else "default"
        record_types: tuple[str, ...] = ("A", "AAAA")
        if "record_types" in top:
            record_types = self.unique_list(top["record_types"], "record_types", self.rdtype)
        timeout = 2.0
        if "timeout" in top:
            timeout = self.number(top["timeout"], "timeout")
            if not 0 < timeout <= 60:
                self.fail(
                    f"must be > 0 and <= 60 seconds, got {timeout:g}", top["timeout"], "timeout"
                )
        attempts = self.integer(top["attempts"], "attempts", 1, 10) if "attempts" in top else 3
        confirm = self.integer(top["confirm"], "confirm", 0, 10) if "confirm" in top else 2
        canaries: tuple[str, ...] = ("example.com",)
        if "canaries" in top:
            canaries = self.unique_list(top["canaries"], "canaries", self.name)
        bogons = self.boolean(top["bogons"], "bogons") if "bogons" in top else True
        stubs = self.set_of(top, "stub_addresses", self.network)
        stub_names = self.set_of(top, "stub_names", self.name)
        if "resolvers" not in top:
            self.fail("missing: at least one national and one control resolver", root, "resolvers")
        resolvers = self.resolvers(top["resolvers"])
        controls = sum(1 for r in resolvers if r.group == Group.CONTROL)
        min_controls = 1
        if "min_controls" in top:
            node = top["min_controls"]
            min_controls = self.integer(node, "min_controls", 1, None)
            if min_controls > controls:
                self.fail(
                    f"must be at most {controls}, the number of control resolvers, "
                    f"got {min_controls}",
                    node,
                    "min_controls",
                )
        watchlist, skipped = self.watchlist(root, top)
        strategy: Strategy = "full" if len(watchlist) <= ECONOMICAL_ABOVE else "economical"
        if "strategy" in top:
            strategy = self.choice(top["strategy"], "strategy", STRATEGIES)
        return Config(
            path=self.path,
            vantage=vantage,
            record_types=record_types,
            timeout=timeout,
            attempts=attempts,
            confirm=confirm,
            min_controls=min_controls,
            canaries=canaries,
            bogons=bogons,
            stub_addresses=stubs,
            stub_names=stub_names,
            resolvers=resolvers,
            watchlist=watchlist,
            strategy=strategy,
            skipped=skipped,
        )

    def rdtype(self, node: yaml.Node, key: str) -> str:
        text = self.string(node, key)
        try:
            rdtype = dns.rdatatype.from_text(text.strip().upper())
        except (dns.exception.DNSException, ValueError):
            self.fail(f"unknown record type {text!r}", node, key)
        if rdtype == 0 or dns.rdatatype.is_metatype(rdtype):
            self.fail(f"{text!r} is not a record type a name can hold", node, key)
        return dns.rdatatype.to_text(rdtype)

    # -- resolvers ---------------------------------------------------------------------

    def resolvers(self, node: yaml.Node) -> tuple[Resolver, ...]:
        groups = self.mapping(node, "resolvers", [g.value for g in GROUPS])
        resolvers: list[Resolver] = []
        names: dict[str, int] = {}
        for group in GROUPS:
            key = f"resolvers.{group}"
            if group not in groups:
                self.fail(f"missing: at least one {group} resolver is needed", node, key)
            items = self.sequence(groups[group], key)
            if not items:
                self.fail(f"at least one {group} resolver is needed", groups[group], key)
            for i, item in enumerate(items):
                resolver = self.resolver(item, f"{key}[{i}]", group)
                if resolver.name in names:
                    self.fail(
                        f"{resolver.name!r} is already the name of the resolver on line "
                        f"{names[resolver.name]}",
                        item,
                        f"{key}[{i}].name",
                    )
                names[resolver.name] = item.start_mark.line + 1
                resolvers.append(resolver)
        return tuple(resolvers)

    def resolver(self, node: yaml.Node, key: str, group: Group) -> Resolver:
        fields = self.mapping(node, key, _RESOLVER_KEYS)
        if "name" not in fields:
            self.fail("missing: every resolver needs a name", node, f"{key}.name")
        name = self.slug(fields["name"], f"{key}.name")
        if name in RESERVED_NAMES:
            self.fail(f"{name!r} is reserved in snapshot files", fields["name"], f"{key}.name")
        transport = TRANSPORTS["udp"]
        if "transport" in fields:
            name_of = self.choice(fields["transport"], f"{key}.transport", tuple(TRANSPORTS))
            transport = TRANSPORTS[name_of]
        kind = transport.name
        for only_tls in ("server_name", "ca_file"):
            if only_tls in fields and not transport.tls:
                self.fail(
                    f"only for {_TLS_TRANSPORTS}, not {kind}", fields[only_tls], f"{key}.{only_tls}"
                )
        if "url" in fields and not transport.by_url:
            self.fail(f"only for {_URL_TRANSPORTS}, not {kind}", fields["url"], f"{key}.url")
        if transport.by_url and "url" not in fields:
            self.fail(f"missing: a {kind} resolver needs a url", node, f"{key}.url")
        if not transport.by_url and "address" not in fields:
            self.fail(f"missing: a {kind} resolver needs an address", node, f"{key}.address")

        address = self.address(fields["address"], f"{key}.address") if "address" in fields else None
        url, url_port = self.url(fields["url"], f"{key}.url") if "url" in fields else (None, None)
        port = url_port or transport.default_port
        if "port" in fields:
            port = self.integer(fields["port"], f"{key}.port", 1, 65535)
            if url_port is not None and port != url_port:
                self.fail(
                    f"{port} differs from the url's port {url_port}", fields["port"], f"{key}.port"
                )
        mode: Mode = "recursive"
        if "mode" in fields:
            mode = self.choice(fields["mode"], f"{key}.mode", MODES)
        rate = DEFAULT_RATE
        if "rate" in fields:
            rate = self.number(fields["rate"], f"{key}.rate")
            if rate < 0:
                self.fail(
                    f"must be >= 0 (0 means no limit), got {rate:g}", fields["rate"], f"{key}.rate"
                )
        server_name = None
        if "server_name" in fields:
            server_name = self.name(fields["server_name"], f"{key}.server_name")
        ca_file = None
        if "ca_file" in fields:
            ca_file = self.base / self.string(fields["ca_file"], f"{key}.ca_file")
            if not ca_file.is_file():
                self.fail(f"no such file: {ca_file}", fields["ca_file"], f"{key}.ca_file")
        return Resolver(
            name=name,
            group=group,
            address=address,
            port=port,
            transport=kind,
            mode=mode,
            rate=rate,
            server_name=server_name,
            url=url,
            ca_file=ca_file,
        )

    def url(self, node: yaml.Node, key: str) -> tuple[str, int | None]:
        """Return a DoH url and the port it names (None when it names none)."""
        text = self.string(node, key)
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as e:
            self.fail(f"{text!r} is not a URL: {e}", node, key)
        if parts.scheme != "https" or not parts.hostname:
            self.fail(f"must be an https:// URL, got {text!r}", node, key)
        return text, port

    # -- watchlist ---------------------------------------------------------------------

    def watchlist(
        self, root: yaml.Node, top: dict[str, yaml.Node]
    ) -> tuple[tuple[WatchedName, ...], tuple[SkippedLine, ...]]:
        """Return the watchlist and the lines of its files that added no name.

        A name listed twice inline is an error; a file's IP addresses are skipped and its
        repeats (of an inline name, of its own lines, of another file's) are merged, the same
        rule for plain text and Citizen Lab CSV.  An inline entry keeps its label.
        """
        file_nodes = (
            self.sequence(top["watchlist_files"], "watchlist_files")
            if ("watchlist_files" in top)
            else []
        )
        # Where each name was first listed, as line * stride + the index of its file in
        # `files` (0: this config file): one int a name, not a tuple, for a million names.
        files = [self.file]
        stride = len(file_nodes) + 1
        first: dict[str, int] = {}
        names: dict[str, WatchedName] = {}
        skipped: list[SkippedLine] = []
        if "watchlist" in top:
            for i, item in enumerate(self.sequence(top["watchlist"], "watchlist")):
                key = f"watchlist[{i}]"
                watched = self.watched(item, key)
                if watched.domain in names:
                    line = first[watched.domain] // stride
                    self.fail(f"{watched.display} is already listed on line {line}", item, key)
                names[watched.domain] = watched
                first[watched.domain] = (item.start_mark.line + 1) * stride
        for i, item in enumerate(file_nodes):
            key = f"watchlist_files[{i}]"
            file, found = self.watchlist_file(item, key)
            files.append(file)
            in_file = [SkippedLine(file, a.line, a.text, "address") for a in found.addresses]
            for entry in found.names:
                watched = self.listed(entry, file, key)
                earlier = first.get(watched.domain)
                if earlier is None:
                    names[watched.domain] = watched
                    first[watched.domain] = entry.line * stride + i + 1
                    continue
                line, index = divmod(earlier, stride)
                in_file.append(
                    SkippedLine(
                        file,
                        entry.line,
                        entry.text,
                        "repeat",
                        display=watched.display,
                        first=f"{files[index]}:{line}",
                    )
                )
            in_file.sort(key=lambda s: s.line)
            skipped.extend(in_file)
        if not names:
            where = top.get("watchlist", top.get("watchlist_files", root))
            self.fail(
                "no names to watch (watchlist and watchlist_files are empty)", where, "watchlist"
            )
        return tuple(names.values()), tuple(skipped)

    def watched(self, node: yaml.Node, key: str) -> WatchedName:
        if isinstance(node, yaml.MappingNode):
            fields = self.mapping(node, key, ("domain", "label"))
            if "domain" not in fields:
                self.fail("missing: the entry needs a domain", node, f"{key}.domain")
            domain = self.name(fields["domain"], f"{key}.domain")
            label = self.string(fields["label"], f"{key}.label") if "label" in fields else None
            return WatchedName(domain=domain, display=to_display(domain), label=label)
        if not isinstance(node, yaml.ScalarNode):
            self.fail(f"expected a name or {{domain, label}}, got {self.kind(node)}", node, key)
        domain = self.name(node, key)
        return WatchedName(domain=domain, display=to_display(domain), label=None)

    def watchlist_file(self, node: yaml.Node, key: str) -> tuple[str, WatchlistFile]:
        """Return a watchlist file's path as messages show it, and what the file lists."""
        path = self.base / self.string(node, key)
        file = str(path)
        try:
            return file, read_watchlist_file(path)
        except UnicodeDecodeError as e:
            line = e.object.count(b"\n", 0, e.start) + 1
            raise ConfigError("not UTF-8 text", file=file, line=line, key=key) from e
        except OSError as e:
            self.fail(f"cannot read {file}: {e.strerror or e}", node, key)
        except WatchlistFileError as e:
            raise ConfigError(str(e), file=file, line=e.line, key=key) from e
        except ValueError as e:  # a NUL in the path
            self.fail(f"cannot read {file!r}: {e}", node, key)

    def listed(self, entry: ListedName, file: str, key: str) -> WatchedName:
        """Return the WatchedName of a watchlist file's line; raise ConfigError if it has none."""
        try:
            return watched_name(entry.name)
        except ValueError as e:
            raise ConfigError(
                f"{entry.name!r} is not a domain name: {e}", file=file, line=entry.line, key=key
            ) from e
