"""A scripted world for the lab's responders: a table of records answered like a recursive
resolver or an authoritative server, with per-resolver overrides (the demo's NSDI)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypedDict, Unpack

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from monitor.lab.responder import Reply, Request

_MAX_CHAIN = 16
_SOA_TEXT = "ns hostmaster 1 7200 3600 1209600 300"


def _name(text: str) -> dns.name.Name:
    """Return the absolute, lowercase name for ``text`` (with or without its final dot)."""
    text = text.strip()
    if text in ("", "."):
        return dns.name.root
    return dns.name.from_text(text.rstrip(".") + ".").canonicalize()


def _ancestors(name: dns.name.Name) -> Iterable[dns.name.Name]:
    """Yield ``name`` and each of its parents up to and including the root."""
    while True:
        yield name
        if name == dns.name.root:
            return
        name = name.parent()


@dataclass(frozen=True)
class Overrides:
    """How one resolver departs from the shared table; each name also covers its subdomains.

    When several apply to a query, the most specific name wins; on the same name the order is
    drop, refuse, servfail, nxdomain, redirect. ``nxdomain`` also applies to the names a CNAME
    chain reaches (the chain then ends in NXDOMAIN); the others apply to the qname only.
    ``redirect`` answers the A (or AAAA, for an IPv6 address) query with that address and
    gives NODATA to other types.
    """

    nxdomain: frozenset[str] = frozenset()
    refuse: frozenset[str] = frozenset()
    servfail: frozenset[str] = frozenset()
    redirect: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    drop: frozenset[str] = frozenset()


class Changes(TypedDict, total=False):
    """Overrides to replace, by name (None, or one not given, stays as it is)."""

    nxdomain: Iterable[str] | None
    refuse: Iterable[str] | None
    servfail: Iterable[str] | None
    redirect: Mapping[str, str] | None
    drop: Iterable[str] | None


def _changed(now: Overrides, changes: Changes) -> Overrides:
    """Return ``now`` with the overrides that ``changes`` gives replaced."""

    def names(
        key: Literal["nxdomain", "refuse", "servfail", "drop"], kept: frozenset[str]
    ) -> frozenset[str]:
        given = changes.get(key)
        return kept if given is None else frozenset(given)

    redirect = changes.get("redirect")
    return Overrides(
        nxdomain=names("nxdomain", now.nxdomain),
        refuse=names("refuse", now.refuse),
        servfail=names("servfail", now.servfail),
        redirect=now.redirect if redirect is None else MappingProxyType(dict(redirect)),
        drop=names("drop", now.drop),
    )


@dataclass(frozen=True)
class _Policy:
    """Overrides compiled to names and rdata, swapped whole so a query sees one consistent set."""

    public: Overrides
    nxdomain: frozenset[dns.name.Name]
    refuse: frozenset[dns.name.Name]
    servfail: frozenset[dns.name.Name]
    redirect: Mapping[dns.name.Name, dns.rdata.Rdata]
    drop: frozenset[dns.name.Name]

    @classmethod
    def compile(cls, overrides: Overrides) -> _Policy:
        redirect: dict[dns.name.Name, dns.rdata.Rdata] = {}
        for owner, address in overrides.redirect.items():
            try:
                family = dns.inet.af_for_address(address)
            except ValueError as exc:
                raise ValueError(f"redirect {owner!r}: {address!r} is not an IP address") from exc
            rdtype = dns.rdatatype.A if family == socket.AF_INET else dns.rdatatype.AAAA
            redirect[_name(owner)] = dns.rdata.from_text(dns.rdataclass.IN, rdtype, address)
        return cls(
            public=overrides,
            nxdomain=frozenset(map(_name, overrides.nxdomain)),
            refuse=frozenset(map(_name, overrides.refuse)),
            servfail=frozenset(map(_name, overrides.servfail)),
            redirect=MappingProxyType(redirect),
            drop=frozenset(map(_name, overrides.drop)),
        )

    def action(self, qname: dns.name.Name) -> tuple[str, dns.name.Name] | None:
        """Return the override that applies to ``qname`` and the name it was set on, if any."""
        for name in _ancestors(qname):
            for action, names in (
                ("drop", self.drop),
                ("refuse", self.refuse),
                ("servfail", self.servfail),
                ("nxdomain", self.nxdomain),
                ("redirect", self.redirect),
            ):
                if name in names:
                    return action, name
        return None

    def deleted(self, name: dns.name.Name) -> bool:
        return any(ancestor in self.nxdomain for ancestor in _ancestors(name))


@dataclass(frozen=True)
class _Table:
    """The shared records, parsed once: rrsets by (owner, rdtype), and what exists."""

    rrsets: Mapping[tuple[dns.name.Name, int], dns.rrset.RRset]
    delegations: Mapping[dns.name.Name, dns.rrset.RRset]
    existing: frozenset[dns.name.Name]
    zones: frozenset[dns.name.Name]

    @classmethod
    def build(
        cls,
        records: Mapping[tuple[str, str], Sequence[str]],
        delegations: Mapping[str, Sequence[str]],
        ttl: int,
    ) -> _Table:
        rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for (owner, type_text), values in records.items():
            name = _name(owner)
            try:
                rdtype = dns.rdatatype.from_text(type_text)
                texts = [values] if isinstance(values, str) else list(values)
                if rdtype == dns.rdatatype.CNAME and len(texts) != 1:
                    raise ValueError("a CNAME has exactly one target")
                rrset = dns.rrset.from_text_list(
                    name,
                    ttl,
                    dns.rdataclass.IN,
                    rdtype,
                    texts,
                    origin=dns.name.root,
                    relativize=False,
                )
            except (dns.exception.DNSException, ValueError) as exc:
                raise ValueError(f"record ({owner!r}, {type_text!r}) {values!r}: {exc}") from exc
            key = (name, rdtype)
            if key in rrsets:
                raise ValueError(f"record ({owner!r}, {type_text!r}) is given twice")
            rrsets[key] = rrset
        cuts: dict[dns.name.Name, dns.rrset.RRset] = {}
        for zone_text, servers in delegations.items():
            zone = _name(zone_text)
            cuts[zone] = dns.rrset.from_text_list(
                zone,
                ttl,
                dns.rdataclass.IN,
                dns.rdatatype.NS,
                list(servers),
                origin=dns.name.root,
                relativize=False,
            )
        # Parents of a known name exist too (empty non-terminals answer NODATA, not NXDOMAIN).
        existing = frozenset(
            ancestor for name in [*(n for n, _ in rrsets), *cuts] for ancestor in _ancestors(name)
        )
        soa_owners = {name for name, rdtype in rrsets if rdtype == dns.rdatatype.SOA}
        return cls(
            rrsets=MappingProxyType(rrsets),
            delegations=MappingProxyType(cuts),
            existing=existing,
            zones=frozenset(soa_owners | set(cuts)),
        )


class World:
    """A handler answering from a table of records, like a resolver or an authoritative server.

    ``records`` maps (owner, rdtype text) to rdata texts, e.g. ``("youtube.com", "A"):
    ["142.250.74.14"]`` or ``("www.youtube.com", "CNAME"): ["youtube-ui.l.google.com"]``.
    As a resolver (the default) it sets RA, follows CNAME chains inside the table (the chain
    goes in the answer section), and gives NXDOMAIN for unknown names and NODATA for known
    names without the type, both with an SOA in authority. With ``authoritative=True`` it sets
    AA instead of RA, and a name at or under a zone in ``delegations`` (zone -> NS names) gets
    a referral: no answer, the zone's NS in authority (glue from the table), NOERROR, no AA.
    Overrides (see ``Overrides``) make one table serve resolvers that differ; ``update``
    changes them while responders serve, and ``variant`` shares the table with new overrides.
    """

    def __init__(
        self,
        records: Mapping[tuple[str, str], Sequence[str]],
        *,
        authoritative: bool = False,
        delegations: Mapping[str, Sequence[str]] | None = None,
        ttl: int = 300,
        **overrides: Unpack[Changes],
    ) -> None:
        """Parse the table and the overrides.

        Raises ValueError for a record, NS name or redirect address that does not parse.
        """
        self.authoritative = authoritative
        self.ttl = ttl
        self._table = _Table.build(records, delegations or {}, ttl)
        self._lock = threading.Lock()
        self._policy = _Policy.compile(_changed(Overrides(), overrides))

    @property
    def overrides(self) -> Overrides:
        """Return the overrides in force now."""
        with self._lock:
            return self._policy.public

    def update(self, **changes: Unpack[Changes]) -> Overrides:
        """Replace the overrides given (the others stay) and return the new set.

        Queries already being answered finish with the old set. Raises ValueError for a
        redirect address that does not parse.
        """
        with self._lock:
            policy = _Policy.compile(_changed(self._policy.public, changes))
            self._policy = policy
        return policy.public

    def variant(self, *, authoritative: bool | None = None, **changes: Unpack[Changes]) -> World:
        """Return a World over the same table with this one's overrides, those given replaced.

        Raises ValueError for a redirect address that does not parse.
        """
        other = object.__new__(World)
        other.authoritative = self.authoritative if authoritative is None else authoritative
        other.ttl = self.ttl
        other._table = self._table
        other._lock = threading.Lock()
        other._policy = self._policy
        other.update(**changes)
        return other

    def __call__(self, request: Request) -> Reply:
        """Return the reply to ``request`` (None when the query's name is dropped)."""
        query = request.message
        if query is None:
            return _formerr_for(request.wire)
        response = dns.message.make_response(query, recursion_available=not self.authoritative)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        with self._lock:
            policy = self._policy
        qname = question.name.canonicalize()
        match = policy.action(qname)
        if match is not None:
            action, owner = match
            if action == "drop":
                return None
            if action in ("refuse", "servfail"):
                response.set_rcode(dns.rcode.REFUSED if action == "refuse" else dns.rcode.SERVFAIL)
                return response
            if action == "redirect":
                self._set_aa(response)
                self._redirect(response, qname, question.rdtype, policy.redirect[owner])
                return response
        self._resolve(response, qname, question.rdtype, policy)
        return response

    def _set_aa(self, response: dns.message.Message) -> None:
        if self.authoritative:
            response.flags |= dns.flags.AA

    def _redirect(
        self,
        response: dns.message.Message,
        qname: dns.name.Name,
        rdtype: int,
        rdata: dns.rdata.Rdata,
    ) -> None:
        if rdtype == rdata.rdtype:
            response.answer.append(dns.rrset.from_rdata(qname, self.ttl, rdata))
        else:
            response.authority.append(self._soa(qname))

    def _resolve(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: int, policy: _Policy
    ) -> None:
        table = self._table
        self._set_aa(response)
        name = qname
        seen = {name}
        for _ in range(_MAX_CHAIN):
            if policy.deleted(name):
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(name))
                return
            if self.authoritative and (cut := self._cut(name)) is not None:
                self._refer(response, cut)
                return
            rrset = table.rrsets.get((name, rdtype))
            if rrset is not None:
                response.answer.append(rrset)
                return
            cname = table.rrsets.get((name, dns.rdatatype.CNAME))
            if cname is None:
                if name not in table.existing:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(name))
                return
            response.answer.append(cname)
            name = next(iter(cname)).target.canonicalize()
            if name in seen:
                break
            seen.add(name)
        # A CNAME loop or an overlong chain: what a resolver gives up with.
        response.answer.clear()
        response.authority.clear()
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.SERVFAIL)

    def _cut(self, name: dns.name.Name) -> dns.name.Name | None:
        for ancestor in _ancestors(name):
            if ancestor in self._table.delegations:
                return ancestor
        return None

    def _refer(self, response: dns.message.Message, zone: dns.name.Name) -> None:
        if not response.answer:
            response.flags &= ~dns.flags.AA
        ns = self._table.delegations[zone]
        response.authority.append(ns)
        for server in ns:
            for glue_type in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = self._table.rrsets.get((server.target.canonicalize(), glue_type))
                if glue is not None:
                    response.additional.append(glue)

    def _soa(self, name: dns.name.Name) -> dns.rrset.RRset:
        """Return the SOA of the zone holding ``name``: a declared one, else its TLD or the root."""
        zone = next((a for a in _ancestors(name) if a in self._table.zones), None)
        if zone is None:
            tld = dns.name.Name(name.labels[-2:])
            zone = tld if len(name.labels) >= 2 and tld in self._table.existing else dns.name.root
        soa = self._table.rrsets.get((zone, dns.rdatatype.SOA))
        if soa is not None:
            return soa
        rrset = dns.rrset.RRset(zone, dns.rdataclass.IN, dns.rdatatype.SOA)
        rrset.add(
            dns.rdata.from_text(
                dns.rdataclass.IN, dns.rdatatype.SOA, _SOA_TEXT, origin=zone, relativize=False
            ),
            self.ttl,
        )
        return rrset


def _formerr_for(wire: bytes) -> bytes | None:
    """Return a FORMERR header echoing the ID of an unparsable query, or None without an ID."""
    if len(wire) < 2:
        return None
    return wire[:2] + struct.pack("!HHHHH", dns.flags.QR | dns.rcode.FORMERR, 0, 0, 0, 0)
